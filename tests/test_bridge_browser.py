"""The bridge as a browser sees it: Debian's Chromium, headless, driven by Playwright,
logs in to small teleservice pages with webbridge/static/cardauth.js.

Everything runs on 127.0.0.1: the real ``cardauth-bridge --simulate`` in a process of
its own (a doctor's CPS card and a patient's Vitale card in virtual readers), and
teleservices served by http.server on ports of their own, so each is an origin of its
own. A teleservice issues challenges and verifies the assertions it is given with
cardauth's verifier, as a real one would. Screenshots of the bridge's PIN page and of
the page after login go to an artifacts folder whose path the run prints.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from cardauth.challenges import MemoryChallengeStore, issue_challenge
from cardauth.errors import CardAuthError
from cardauth.origins import Origin
from cardauth.verify import Verifier
from simulator.personas import load_cps
from tests.browser_kit import announce, chromium
from tests.signing_kit import DOCTOR_CERTIFICATES, openssl_verifies, unb64url, verifies
from tests.support import LOOPBACK, STOP_TIMEOUT, free_port, stop_process
from tests.verifier_kit import crl_checker, trust_store

CLIENT = Path(__file__).resolve().parents[1] / "webbridge" / "static" / "cardauth.js"
DOCTOR = load_cps("doctor")
WRONG_PIN = "0000"
SESSION = "the-browser-session"
START_TIMEOUT = 20.0  # s, for the bridge to answer
SELF_CLOSE_MS = 5_000  # ms: the bridge's page closes itself 1.5 s after the outcome
PROFESSIONAL_READS_MS = 9_000  # longer than cardauth.js gives a popup to show the page
NO_BRIDGE_MS = 15_000  # cardauth.js tells a bridge that does not run within 8 s and a poll

# -- a teleservice: a page that uses cardauth.js, and its server ------------------------

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Teleservice</title>
<style>
body { font-family: sans-serif; margin: 2rem; max-width: 50rem; }
#assertion { display: block; max-height: 6rem; overflow: hidden; word-break: break-all; }
</style>
</head>
<body>
<h1>A teleservice</h1>
<p><button id="login" type="button">login</button>
<button id="watch" type="button">watch the cards</button>
<button id="certificate" type="button">signing certificate</button>
<button id="sign" type="button">sign the prescription</button></p>
<p>State: <output id="state">idle</output></p>
<p>Challenge: <code id="challenge"></code></p>
<p>Error: <code id="error"></code></p>
<p>Identity: <output id="identity"></output></p>
<p>Assertion: <code id="assertion"></code></p>
<ul id="events"></ul>
<script type="module" src="app.js"></script>
</body>
</html>
"""

SIGNED_ATTRIBUTES = "the signed attributes of the prescription's CMS"
APP = """import { CardAuthBridge } from "./cardauth.js";

const SIGNED_ATTRIBUTES = "%s";

const bridge = new CardAuthBridge({ url: new URLSearchParams(location.search).get("bridge") });
const $ = (id) => document.getElementById(id);
window.bridge = bridge;
window.cardEvents = [];
window.loginErrors = [];

async function challenge() {
  const answer = await (await fetch("/challenge", { method: "POST" })).json();
  $("challenge").textContent = answer.challenge;
  return answer.challenge;
}

$("login").addEventListener("click", async () => {
  delete document.body.dataset.outcome;
  for (const id of ["challenge", "error", "identity", "assertion"]) $(id).textContent = "";
  $("state").textContent = "logging in";
  try {
    const assertion = await bridge.login(challenge);
    $("assertion").textContent = assertion;
    const response = await fetch("/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ assertion }),
    });
    const answer = await response.json();
    if (!response.ok) throw Object.assign(new Error("refused by the server"), answer);
    const who = answer.professional;
    const name = `${who.given_name} ${who.surname}`;
    $("identity").textContent = `${name}, ${who.identifier_type} ${who.identifier}`;
    $("state").textContent = "logged in";
    document.body.dataset.outcome = "ok";
  } catch (error) {
    window.loginErrors.push({ code: error.code, message: error.message });
    $("error").textContent = error.code ?? String(error);
    $("state").textContent = "failed";
    document.body.dataset.outcome = "error";
  }
});

// Deferred signing: the teleservice hashes what is to be signed (here, in the page;
// its server, in real life) and gets back the raw signature and the certificate.
window.signing = [];
window.signingErrors = [];
window.documentName = "Ordonnance du 2 décembre 2026.pdf";
const PREPARED = new TextEncoder().encode(SIGNED_ATTRIBUTES);

async function signing(ask) {
  delete document.body.dataset.signed;
  try {
    window.signing.push(await ask());
    document.body.dataset.signed = "ok";
  } catch (error) {
    window.signingErrors.push({ code: error.code, message: error.message });
    document.body.dataset.signed = "error";
  }
}

$("certificate").addEventListener("click", () => signing(() => bridge.getSigningCertificate()));
$("sign").addEventListener("click", () =>
  signing(() =>
    bridge.sign({
      hash: () => crypto.subtle.digest("SHA-256", PREPARED),
      documentName: window.documentName,
      certificate: window.preparedFor, // the signing certificate, when the page has it
    }),
  ),
);

$("watch").addEventListener("click", () => {
  bridge.onCardEvent((event) => {
    window.cardEvents.push(event);
    const item = document.createElement("li");
    item.textContent = `${event.slot}: ${event.kind} ${event.state}`;
    $("events").append(item);
  });
});
""".replace("%s", SIGNED_ATTRIBUTES)


@dataclass
class Teleservice:
    """A teleservice on its own loopback port: its page and its two calls,
    ``POST /challenge`` and ``POST /login`` (the assertion, verified)."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    challenges: MemoryChallengeStore = field(default_factory=MemoryChallengeStore)
    issued: list[str] = field(default_factory=list)
    verified: list[dict[str, Any]] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def page_url(self, bridge: str) -> str:
        return f"{self.origin}/index.html?bridge={bridge}"

    def issue(self) -> dict[str, Any]:
        challenge = issue_challenge(self.challenges, session=SESSION, now=_now())
        self.issued.append(challenge)
        return {"challenge": challenge}

    def login(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = _now()
        verifier = Verifier(trust=trust_store(), revocation=crl_checker(now))
        try:
            login = verifier.verify(
                str(body.get("assertion", "")),
                expected_origins=(Origin.parse(self.origin, allow_development=True),),
                expected_challenge=self.issued[-1] if self.issued else "",
                session=SESSION,
                challenges_store=self.challenges,
                now=now,
            )
        except CardAuthError as error:
            return 400, {"code": error.code}
        answer = login.to_dict()
        self.verified.append(answer)
        return 200, answer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=STOP_TIMEOUT)


def start_teleservice(site: Path) -> Teleservice:
    service: Teleservice

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(site), **kwargs)

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/challenge":
                self._json(200, service.issue())
            elif self.path == "/login":
                self._json(*service.login(body))
            else:
                self._json(404, {"code": "not_found"})

        def _json(self, status: int, value: dict[str, Any]) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="teleservice", daemon=True)
    service = Teleservice(server, thread)
    thread.start()
    return service


@dataclass
class Sites:
    newcomer: Teleservice  # not approved at first: the professional approves it
    refuser: Teleservice  # the professional refuses it
    stranger: Teleservice  # never approved
    trusted: Teleservice  # approved by the bridge's configuration (--allow-origin)


# -- the bridge, in a process of its own -------------------------------------------------


@dataclass
class Bridge:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def status(self, origin: str) -> tuple[int, dict[str, Any]]:
        """GET /v1/status as a page of ``origin`` would send it."""
        request = urllib.request.Request(f"{self.url}/v1/status", headers={"Origin": origin})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def start_bridge(state: Path, log: Path, allowed: str) -> Bridge:
    executable = Path(sys.executable).with_name("cardauth-bridge")
    assert executable.exists(), f"{executable} missing: run scripts/setup.sh"
    port = free_port()
    command = [
        str(executable),
        "--simulate",
        "--port",
        str(port),
        "--allow-development-origins",
        "--state-dir",
        str(state),
        "--allow-origin",
        allowed,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    bridge = Bridge(process, f"http://{LOOPBACK}:{port}", log)
    try:
        wait_until_answering(bridge, allowed)
    except BaseException:
        stop_process(process)
        raise
    return bridge


def wait_until_answering(bridge: Bridge, origin: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if bridge.process.poll() is not None:
            raise AssertionError(f"the bridge stopped: {bridge.log.read_text(errors='replace')}")
        try:
            status, answer = bridge.status(origin)
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        assert status == 200, answer
        assert answer["service"] == "cardauth-bridge"
        return
    raise AssertionError(f"the bridge never answered: {bridge.log.read_text(errors='replace')}")


# -- fixtures: one bridge, four sites and one browser for the module ---------------------


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("bridge-browser-artifacts")
    announce(pytestconfig, f"bridge browser test artifacts (screenshots, bridge log): {folder}")
    return folder


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    site = tmp_path_factory.mktemp("teleservice")
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    (site / "app.js").write_text(APP, encoding="utf-8")
    shutil.copy(CLIENT, site / "cardauth.js")
    started: list[Teleservice] = []
    try:
        for _ in range(4):
            started.append(start_teleservice(site))
        yield Sites(*started)
    finally:
        for service in started:
            service.close()


@pytest.fixture(scope="module")
def bridge(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path, sites: Sites
) -> Iterator[Bridge]:
    state = tmp_path_factory.mktemp("bridge-state")
    running = start_bridge(state, artifacts / "bridge.log", allowed=sites.trusted.origin)
    try:
        yield running
    finally:
        stop_process(running.process)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(
    playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    yield from chromium(playwright, tmp_path_factory.mktemp("chromium-profile"), locale="en-US")


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    opened = browser.new_page()
    try:
        yield opened
    finally:
        opened.close()


# -- steps -------------------------------------------------------------------------------


def open_teleservice(page: Page, site: Teleservice, bridge: Bridge) -> None:
    page.goto(site.page_url(bridge.url))
    page.wait_for_function("window.bridge !== undefined")


def click_login_and_get_popup(page: Page, browser: BrowserContext, bridge: Bridge) -> Page:
    """Click "login" on the teleservice: the bridge's page opens in a popup."""
    with browser.expect_page() as opened:
        page.click("#login")
    popup = opened.value
    popup.wait_for_url(f"{bridge.url}/interaction/*")
    popup.wait_for_selector("#allow")
    return popup


def answer_on_bridge_page(popup: Page, button: str, artifacts: Path) -> None:
    """Click a button of the bridge's page; its form posts to the bridge itself,
    which shows the page again by GET (post/redirect/get)."""
    with popup.expect_response(lambda response: response.request.method == "POST") as posted:
        popup.click(button)
    response = posted.value
    assert response.status == 303, (response.status, response.request.header_value("origin"))
    popup.wait_for_load_state()


def outcome_of_login(page: Page) -> str:
    """'ok' or the error code the page shows, once the login is over."""
    page.wait_for_selector("body[data-outcome]")
    if page.get_attribute("body", "data-outcome") == "ok":
        return "ok"
    return page.text_content("#error") or ""


def wait_until_closed(popup: Page) -> None:
    if not popup.is_closed():
        popup.wait_for_event("close", timeout=SELF_CLOSE_MS)


def payload_of(assertion: str) -> dict[str, Any]:
    parts = assertion.split(".")
    assert len(parts) == 3, "a JWS in compact form has three parts"
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    )
    return decoded


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- the tests ---------------------------------------------------------------------------


def test_first_login_asks_the_professional_then_the_next_one_goes_straight(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites, artifacts: Path
) -> None:
    site = sites.newcomer
    open_teleservice(page, site, bridge)

    # (a) A site not approved yet: the bridge's own page asks, in a popup.
    popup = click_login_and_get_popup(page, browser, bridge)
    assert site.origin in (popup.text_content("#asks") or "")
    popup.screenshot(path=artifacts / "bridge-pin-page.png")

    popup.fill("#pin", WRONG_PIN)
    answer_on_bridge_page(popup, "#allow", artifacts)
    assert popup.get_attribute("#error", "data-code") == "pin.wrong"
    assert "2" in (popup.text_content("#tries") or "")
    popup.screenshot(path=artifacts / "bridge-wrong-pin.png")

    popup.fill("#pin", DOCTOR.pin)
    popup.check("#remember")
    answer_on_bridge_page(popup, "#allow", artifacts)
    assert outcome_of_login(page) == "ok"
    assertion = page.text_content("#assertion") or ""
    payload = payload_of(assertion)
    assert payload["aud"] == site.origin
    assert payload["nonce"] == site.issued[-1] == page.text_content("#challenge")
    assert site.verified[-1]["origin"] == site.origin
    assert site.verified[-1]["professional"]["idnat"] == str(DOCTOR.holder.idnat)
    page.screenshot(path=artifacts / "teleservice-after-login.png")
    wait_until_closed(popup)  # the bridge's page closes itself, COOP or not

    # (b) The site is approved now and the PIN fresh: no page of the bridge opens.
    status, answer = bridge.status(site.origin)
    assert (status, answer["pin_fresh"]) == (200, True)
    opened: list[Page] = []

    def record(window: Page) -> None:
        opened.append(window)

    browser.on("page", record)
    try:
        started = time.monotonic()
        page.click("#login")
        assert outcome_of_login(page) == "ok"
        elapsed = time.monotonic() - started
    finally:
        browser.remove_listener("page", record)
    second = payload_of(page.text_content("#assertion") or "")
    assert (second["aud"], second["nonce"]) == (site.origin, site.issued[-1])
    assert second["nonce"] != payload["nonce"]
    for window in opened:  # at most the empty window opened at the click, closed at once
        wait_until_closed(window)
        assert window.url == "about:blank"
    assert elapsed < 5, elapsed


def test_refusing_on_the_bridge_page_gives_the_page_bridge_declined(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites, artifacts: Path
) -> None:
    site = sites.refuser
    open_teleservice(page, site, bridge)
    popup = click_login_and_get_popup(page, browser, bridge)
    assert site.origin in (popup.text_content("#asks") or "")

    answer_on_bridge_page(popup, "#decline", artifacts)
    assert outcome_of_login(page) == "bridge.declined"
    assert site.verified == []
    wait_until_closed(popup)
    status, answer = bridge.status(site.origin)
    assert (status, answer["error"]["code"]) == (403, "bridge.origin_forbidden")


def test_card_events_start_with_the_cards_present(page: Page, bridge: Bridge, sites: Sites) -> None:
    open_teleservice(page, sites.trusted, bridge)
    assert page.evaluate("window.bridge.available()") is True

    page.click("#watch")
    page.wait_for_function("window.cardEvents.length >= 2")
    events: list[dict[str, str]] = page.evaluate("window.cardEvents")
    assert sorted((e["state"], e["kind"]) for e in events) == [
        ("present", "cps"),
        ("present", "vitale"),
    ]
    readers: list[str] = page.evaluate("window.bridge.status().then((s) => s.readers)")
    assert sorted(e["slot"] for e in events) == sorted(readers)


def test_a_site_not_approved_cannot_tell_that_the_bridge_runs(
    page: Page, bridge: Bridge, sites: Sites
) -> None:
    """No CORS for it, and Cross-Origin-Resource-Policy: same-origin even on the
    refusal: to such a page, the bridge looks like nothing listening."""
    open_teleservice(page, sites.stranger, bridge)
    assert page.evaluate("window.bridge.available()") is False
    code = page.evaluate("window.bridge.status().then(() => 'answered', (e) => e.code)")
    assert code == "bridge.unreachable"
    assert bridge.status(sites.stranger.origin)[0] == 403  # it runs all the same


def test_closing_the_bridges_window_then_logging_in_again_starts_afresh(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites
) -> None:
    """The professional closes the bridge's window instead of answering, then clicks
    the login button again: a new window, a new login (the first one ends with
    "bridge.replaced", never "a login is under way")."""
    open_teleservice(page, sites.stranger, bridge)
    first = click_login_and_get_popup(page, browser, bridge)
    first.close()
    second = click_login_and_get_popup(page, browser, bridge)
    # The professional takes their time: the site, which reads nothing yet, keeps
    # waiting (it does not take the bridge's page for a browser's error page).
    second.wait_for_timeout(PROFESSIONAL_READS_MS)
    answer_on_bridge_page(second, "#decline", Path())
    page.wait_for_function("window.loginErrors.length >= 2")
    errors: list[dict[str, str]] = page.evaluate("window.loginErrors")
    assert [e["code"] for e in errors] == ["bridge.replaced", "bridge.declined"]
    assert errors[1]["message"] == "You refused this site access to your card."  # the bridge's
    assert errors[0]["message"] == "A new request to your card was made: this one is given up."


CODE_USE = re.compile(r'#fail\(\s*"([a-z_.]+)"|describe\(\s*"([a-z_.]+)"|MESSAGES\["([a-z_.]+)"\]')


def test_every_code_of_the_client_speaks_french_and_english(
    page: Page, bridge: Bridge, sites: Sites
) -> None:
    """The client's messages, as the browser loads them: every code it raises has a
    sentence in each language, and the two differ."""
    open_teleservice(page, sites.trusted, bridge)
    messages: dict[str, dict[str, str]] = page.evaluate(
        "import('./cardauth.js').then((module) => module.MESSAGES)"
    )
    used = {next(g for g in match if g) for match in CODE_USE.findall(CLIENT.read_text())}
    assert used, "no code found in cardauth.js: the pattern is stale"
    assert used <= set(messages), sorted(used - set(messages))
    for code, texts in messages.items():
        assert set(texts) == {"fr", "en"}, code
        assert all(text.strip() for text in texts.values()), code
        assert texts["fr"] != texts["en"], code
    french = page.evaluate(
        "import('./cardauth.js').then((m) => new m.CardAuthBridge({ lang: 'fr' }).lang)"
    )
    assert french == "fr"


def test_a_bridge_that_does_not_run_fails_the_login_within_seconds(
    page: Page, browser: BrowserContext, sites: Sites
) -> None:
    """No bridge on the port: the popup shows the browser's error page, never the
    bridge's; the login fails with bridge.unreachable, in words, within seconds."""
    page.goto(sites.stranger.page_url(f"http://{LOOPBACK}:{free_port()}"))  # nothing there
    page.wait_for_function("window.bridge !== undefined")
    with browser.expect_page():
        page.click("#login")
    started = time.monotonic()
    page.wait_for_function("window.loginErrors.length >= 1", timeout=NO_BRIDGE_MS)
    assert time.monotonic() - started < NO_BRIDGE_MS / 1000
    errors: list[dict[str, str]] = page.evaluate("window.loginErrors")
    assert errors == [
        {
            "code": "bridge.unreachable",
            "message": "The cardauth bridge on your workstation does not answer this site. "
            "Check that it is running, then try again.",
        }
    ]


def test_an_aborted_signal_opens_nothing(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites
) -> None:
    open_teleservice(page, sites.stranger, bridge)
    windows = len(browser.pages)
    code = page.evaluate(
        """() => window.bridge.login("A".repeat(43), { signal: AbortSignal.abort() })
              .then(() => "logged in", (error) => error.code)"""
    )
    assert code == "bridge.aborted"
    assert len(browser.pages) == windows


# -- signing -----------------------------------------------------------------------------


def click_and_get_bridge_page(
    page: Page, browser: BrowserContext, bridge: Bridge, button: str
) -> Page:
    """Click ``button`` on the teleservice: the bridge's page opens in a popup."""
    with browser.expect_page() as opened:
        page.click(button)
    popup = opened.value
    popup.wait_for_url(f"{bridge.url}/interaction/*")
    popup.wait_for_selector("#allow")
    return popup


def signing_outcome(page: Page) -> str:
    """'ok' or the error code the page got, once the signing call is over."""
    page.wait_for_selector("body[data-signed]")
    if page.get_attribute("body", "data-signed") == "ok":
        return "ok"
    code: str = page.evaluate("window.signingErrors.at(-1).code")
    return code


def grouped(digest: bytes) -> str:
    text = digest.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def test_a_page_signs_a_document_the_professional_sees_on_the_bridge_page(
    page: Page,
    browser: BrowserContext,
    bridge: Bridge,
    sites: Sites,
    artifacts: Path,
    tmp_path: Path,
) -> None:
    site = sites.trusted  # approved for logins: signing asks the professional all the same
    open_teleservice(page, site, bridge)

    # The signing certificate: the bridge's page names the site, asks no PIN.
    popup = click_and_get_bridge_page(page, browser, bridge, "#certificate")
    assert site.origin in (popup.text_content("#asks") or "")
    assert popup.query_selector("#pin") is None
    answer_on_bridge_page(popup, "#allow", artifacts)
    assert signing_outcome(page) == "ok"
    certificate = unb64url(page.evaluate("window.signing.at(-1).certificate"))
    assert certificate == DOCTOR_CERTIFICATES.signature.public_bytes(Encoding.DER)
    wait_until_closed(popup)
    page.evaluate("window.preparedFor = window.signing.at(-1).certificate")

    # A signature: the site, the document's name and its hash, then the PIN.
    digest = hashlib.sha256(SIGNED_ATTRIBUTES.encode()).digest()
    popup = click_and_get_bridge_page(page, browser, bridge, "#sign")
    assert site.origin in (popup.text_content("#asks") or "")
    assert popup.text_content("#document-name") == "Ordonnance du 2 décembre 2026.pdf"
    assert popup.text_content("#document-hash") == grouped(digest)
    popup.screenshot(path=artifacts / "bridge-signature-page.png")
    popup.fill("#pin", WRONG_PIN)
    answer_on_bridge_page(popup, "#allow", artifacts)
    assert popup.get_attribute("#error", "data-code") == "pin.wrong"
    popup.fill("#pin", DOCTOR.pin)
    answer_on_bridge_page(popup, "#allow", artifacts)
    assert signing_outcome(page) == "ok"
    signed: dict[str, str] = page.evaluate("window.signing.at(-1)")
    assert signed["signatureAlgorithm"] == "RS256"
    assert unb64url(signed["certificate"]) == certificate
    signature = unb64url(signed["signature"])
    assert verifies(DOCTOR_CERTIFICATES.signature, signature, digest)
    assert openssl_verifies(certificate, signature, digest, tmp_path)
    wait_until_closed(popup)


def test_a_site_not_approved_asking_for_the_signing_certificate_gets_a_refusal_only(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites, artifacts: Path
) -> None:
    open_teleservice(page, sites.stranger, bridge)
    popup = click_and_get_bridge_page(page, browser, bridge, "#certificate")
    assert sites.stranger.origin in (popup.text_content("#asks") or "")
    answer_on_bridge_page(popup, "#decline", artifacts)
    assert signing_outcome(page) == "bridge.declined"
    assert page.evaluate("window.signing") == []


@pytest.mark.parametrize(
    ("request_js", "code"),
    [
        ('{ hash: new Uint8Array(31), documentName: "a.pdf" }', "document.hash_malformed"),
        ('{ hash: "A".repeat(42) + "B", documentName: "a.pdf" }', "document.hash_malformed"),
        (
            '{ hash: new Uint8Array(32), documentName: "a.pdf", hashAlgorithm: "SHA-1" }',
            "document.hash_algorithm",
        ),
        ('{ hash: new Uint8Array(32), documentName: "fdp\\u202e.exe" }', "document.name_invalid"),
        ('{ hash: new Uint8Array(32), documentName: "x".repeat(121) }', "document.name_invalid"),
        (
            '{ hash: new Uint8Array(32), documentName: "a.pdf", certificate: "MII+" }',
            "document.certificate_malformed",
        ),
    ],
)
def test_sign_refuses_what_the_bridge_would_before_opening_anything(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites, request_js: str, code: str
) -> None:
    open_teleservice(page, sites.stranger, bridge)
    windows = len(browser.pages)
    got = page.evaluate(
        f"() => window.bridge.sign({request_js}).then(() => 'signed', (error) => error.code)"
    )
    assert got == code
    assert len([p for p in browser.pages if not p.is_closed()]) <= windows


def test_a_site_not_approved_gets_its_signature_once_the_professional_signs(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites, artifacts: Path
) -> None:
    """The site reads nothing while the bridge's page waits (no CORS for it), then
    the signature once the professional has signed; and it stays not approved."""
    site = sites.refuser  # refused a login before: never approved
    open_teleservice(page, site, bridge)
    page.evaluate("window.documentName = 'Certificat médical.pdf'")
    popup = click_and_get_bridge_page(page, browser, bridge, "#sign")
    assert popup.text_content("#document-name") == "Certificat médical.pdf"
    popup.wait_for_timeout(PROFESSIONAL_READS_MS)  # the site keeps waiting meanwhile
    assert page.get_attribute("body", "data-signed") is None
    popup.fill("#pin", DOCTOR.pin)
    answer_on_bridge_page(popup, "#allow", artifacts)
    assert signing_outcome(page) == "ok"
    digest = hashlib.sha256(SIGNED_ATTRIBUTES.encode()).digest()
    signature = unb64url(page.evaluate("window.signing.at(-1).signature"))
    assert verifies(DOCTOR_CERTIFICATES.signature, signature, digest)
    assert bridge.status(site.origin)[0] == 403


def test_an_aborted_signature_opens_nothing(
    page: Page, browser: BrowserContext, bridge: Bridge, sites: Sites
) -> None:
    open_teleservice(page, sites.trusted, bridge)
    windows = len(browser.pages)
    code = page.evaluate(
        """() => window.bridge
              .sign({ hash: new Uint8Array(32), documentName: "a.pdf",
                      signal: AbortSignal.abort() })
              .then(() => "signed", (error) => error.code)"""
    )
    assert code == "bridge.aborted"
    assert len(browser.pages) == windows
