"""Card login from a teleservice deployed as in production, in today's Chromium: the
teleservice « Médecin traitant en ligne » over https, under a name with a server
certificate (``teleservice.test``, from a test CA), behind a TLS front on a port
that Chromium treats as a **public** address (``--ip-address-space-overrides``);
the bridge on the loopback, as on a doctor's workstation.

From such a page, Chromium (142 and later) lets a fetch reach the bridge only with
the Local Network Access permission, which these tests deny, then grant, through
the DevTools protocol, as a person would at the browser's prompt (headless Chromium
has no prompt: it refuses at once). The login start is a CORS request, whose Origin
header Chromium sends from https to http, where a form POST would carry
``Origin: null``: the whole path (the bridge's PIN page, the fast path, the Vitale
lookup, the card pulled) runs here as on loopback, and so does a document signature.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from playwright.sync_api import BrowserContext, CDPSession, Page, sync_playwright

from tests.browser_kit import announce, chromium
from tests.demo_kit import RunningDemo, open_bridge_page, start_demo, submit, teleservice_page
from tests.signing_kit import (
    DOCTOR_CERTIFICATES,
    b64url,
    openssl_verifies,
    unb64url,
    verifies,
)
from tests.support import LOOPBACK, free_port, stop_process
from tests.tls_front import ServerCertificate, TlsFront, issue_server_certificate

pytestmark = pytest.mark.pcscd

NAME = "teleservice.test"
PIN = "1234"
LOGOUT_MS = 2_000  # the page logs out by itself within 2 s of the pull


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("https-artifacts")
    announce(pytestconfig, f"https deployment artifacts (screenshots, demo output): {folder}")
    return folder


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return issue_server_certificate(NAME, tmp_path_factory.mktemp("web-pki"))


@pytest.fixture(scope="module")
def front_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: Path,
    certificate: ServerCertificate,
    front_port: int,
) -> Iterator[RunningDemo]:
    running = start_demo(
        tmp_path_factory.mktemp("demo-state"),
        artifacts / "demo.log",
        public_origin=f"https://{NAME}:{front_port}",
    )
    try:
        front = TlsFront(certificate, front_port, _teleservice_port(running)).start()
        try:
            yield running
        finally:
            front.close()
    finally:
        stop_process(running.process)


def _teleservice_port(demo: RunningDemo) -> int:
    """The teleservice's own loopback port, which the demo was started with."""
    arguments = demo.process.args
    assert isinstance(arguments, list)
    return int(arguments[arguments.index("--teleservice-port") + 1])


@pytest.fixture(scope="module")
def browser(
    tmp_path_factory: pytest.TempPathFactory, certificate: ServerCertificate, front_port: int
) -> Iterator[BrowserContext]:
    flags = [
        f"--host-resolver-rules=MAP {NAME} {LOOPBACK}",
        f"--ignore-certificate-errors-spki-list={certificate.spki_sha256}",
        f"--ip-address-space-overrides={LOOPBACK}:{front_port}=public",
    ]
    with sync_playwright() as driver:
        yield from chromium(
            driver, tmp_path_factory.mktemp("chromium-https"), locale="fr-FR", flags=flags
        )


@pytest.fixture(scope="module")
def page(browser: BrowserContext, demo: RunningDemo) -> Iterator[Page]:
    yield from teleservice_page(browser, demo)


@pytest.fixture(scope="module")
def devtools(browser: BrowserContext, page: Page) -> CDPSession:
    return browser.new_cdp_session(page)


def local_network_access(page: Page, devtools: CDPSession, demo: RunningDemo, setting: str) -> None:
    """What the professional answers at Chromium's prompt for this site; the page
    sees it in the permission's state."""
    devtools.send(
        "Browser.setPermission",
        {
            "permission": {"name": "loopback-network"},
            "setting": setting,
            "origin": demo.teleservice,
        },
    )
    state = page.evaluate(
        "navigator.permissions.query({name: 'loopback-network'}).then((p) => p.state)"
    )
    assert state == setting


# -- the tests ----------------------------------------------------------------------------


def test_the_teleservice_is_an_https_page_of_the_public_internet(
    page: Page, demo: RunningDemo
) -> None:
    assert demo.teleservice == f"https://{NAME}:{demo.teleservice.rsplit(':', 1)[1]}"
    assert page.url.startswith(f"https://{NAME}:")
    assert page.evaluate("window.isSecureContext") is True
    # A loopback fetch without the permission is refused by the browser itself: the
    # page is in the public address space.
    refused = page.evaluate(
        "(bridge) => fetch(`${bridge}/v1/status`).then(() => 'answered', () => 'refused')",
        demo.bridge,
    )
    assert refused == "refused"


def test_a_denied_local_network_access_fails_cleanly(
    page: Page, browser: BrowserContext, devtools: CDPSession, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    local_network_access(page, devtools, demo, "denied")
    opened: list[Page] = []

    def record(window: Page) -> None:
        opened.append(window)

    browser.on("page", record)
    try:
        page.click("#login")
        page.wait_for_selector("#error", state="visible")
    finally:
        browser.remove_listener("page", record)
    error = page.text_content("#error") or ""
    assert "réseau local" in error, error  # what to do, in French
    assert "bridge.permission_denied" in (page.inner_html("#error") or ""), error
    for window in opened:  # the empty window of the click, closed at once
        if not window.is_closed():
            window.wait_for_event("close")
    page.screenshot(path=artifacts / "01-permission-denied.png")


def test_the_whole_path_with_the_permission_granted(
    page: Page, browser: BrowserContext, devtools: CDPSession, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    local_network_access(page, devtools, demo, "granted")

    # First login: the bridge's page, naming the https site, asks for the PIN.
    popup = open_bridge_page(page, browser, demo)
    popup.wait_for_selector("#pin")
    assert demo.teleservice in (popup.text_content("#asks") or "")
    popup.screenshot(path=artifacts / "02-bridge-pin-page.png")
    popup.fill("#pin", PIN)
    submit(popup, "#allow")
    page.wait_for_selector("#app-view", state="visible")
    assert "FONTAINE" in (page.text_content("#professional") or "").upper()
    page.screenshot(path=artifacts / "03-logged-in.png")

    # The fast path: a lookup co-signed by the Vitale card, without any window.
    windows = len(browser.pages)
    page.click("#lookup")
    page.wait_for_selector("#result p")
    assert "ROBIN" in (page.text_content("#result") or "").upper()
    assert len([p for p in browser.pages if not p.is_closed()]) <= windows
    page.screenshot(path=artifacts / "04-lookup.png")

    # The card pulled: the page is logged out within moments.
    pulled = time.monotonic()
    demo.cards(None, "patient")
    page.wait_for_selector("#login-view", state="visible", timeout=5 * LOGOUT_MS)
    assert time.monotonic() - pulled < LOGOUT_MS / 1000
    page.screenshot(path=artifacts / "05-card-pulled.png")


def test_a_signature_without_local_network_access_fails_cleanly(
    page: Page, browser: BrowserContext, devtools: CDPSession, demo: RunningDemo
) -> None:
    demo.cards("doctor", "patient")
    local_network_access(page, devtools, demo, "denied")
    page.evaluate("import('/vendor/cardauth.js').then((m) => { window.cardauthModule = m; })")
    opened: list[Page] = []

    def record(window: Page) -> None:
        opened.append(window)

    browser.on("page", record)
    try:
        failed: dict[str, str] = page.evaluate(
            """(url) => new window.cardauthModule.CardAuthBridge({ url, lang: "fr" })
                  .sign({ hash: new Uint8Array(32), documentName: "Compte rendu.pdf" })
                  .then(() => ({ code: "signed" }),
                        (error) => ({ code: error.code, message: error.message }))""",
            demo.bridge,
        )
    finally:
        browser.remove_listener("page", record)
    assert failed["code"] == "bridge.permission_denied"
    assert "réseau local" in failed["message"]
    for window in opened:  # the empty window of the call, closed at once
        if not window.is_closed():
            window.wait_for_event("close")
        assert window.url == "about:blank"


def test_a_document_signed_from_the_https_page(
    page: Page,
    browser: BrowserContext,
    devtools: CDPSession,
    demo: RunningDemo,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    """cardauth.sign() from the https page of the public Internet: the bridge's page
    names the https site and shows the hash, the PIN is typed there, and the page
    gets a signature that openssl verifies with the card's signing certificate."""
    demo.cards("doctor", "patient")
    local_network_access(page, devtools, demo, "granted")
    digest = hashlib.sha256(b"the signed attributes of a report's CMS").digest()
    page.evaluate("import('/vendor/cardauth.js').then((m) => { window.cardauthModule = m; })")
    with browser.expect_page() as opened:
        page.evaluate(
            """([url, hash]) => {
                const bridge = new window.cardauthModule.CardAuthBridge({ url });
                window.signed = bridge
                  .sign({ hash, documentName: "Compte rendu opératoire.pdf" })
                  .then((answer) => answer, (error) => ({ code: error.code }));
            }""",
            [demo.bridge, b64url(digest)],
        )
    popup = opened.value
    popup.wait_for_url(f"{demo.bridge}/interaction/*")
    popup.wait_for_selector("#pin")
    assert demo.teleservice in (popup.text_content("#asks") or "")
    assert popup.text_content("#document-name") == "Compte rendu opératoire.pdf"
    text = digest.hex().upper()
    assert popup.text_content("#document-hash") == " ".join(
        text[i : i + 4] for i in range(0, len(text), 4)
    )
    popup.screenshot(path=artifacts / "06-bridge-signature-page.png")
    popup.fill("#pin", PIN)
    submit(popup, "#allow")
    signed: dict[str, str] = page.evaluate("window.signed")
    assert set(signed) == {"signature", "signatureAlgorithm", "certificate"}, signed
    certificate, signature = unb64url(signed["certificate"]), unb64url(signed["signature"])
    assert certificate == DOCTOR_CERTIFICATES.signature.public_bytes(Encoding.DER)
    assert verifies(DOCTOR_CERTIFICATES.signature, signature, digest)
    assert openssl_verifies(certificate, signature, digest, tmp_path)
