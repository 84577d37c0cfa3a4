"""Relying parties written by others log in through cardauth-oidc, in Debian's
Chromium, with the card: the demo (``python -m examples.demo --oidc``: simulated
cards in a private pcscd through vpcd, the bridge, the provider), two unmodified
libraries of different lineages (tests/oidc_relying_parties.py: pyoidc with
pyjwkest, mozilla-django-oidc with PyJWT), the PIN typed on the bridge's page.
Screenshots go to an artifacts folder whose path the run prints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from cardauth.serving import Served, listen
from tests.browser_kit import announce, chromium
from tests.demo_kit import RunningDemo, running_oidc_demo, submit
from tests.oidc_relying_parties import pyoidc_app
from tests.support import LOOPBACK, free_port, stop_process

pytestmark = pytest.mark.pcscd

PIN = "1234"
DOCTOR = "899700420013"
PYOIDC_SECRET = "pyoidc-relying-party-secret-0123456789abcdef"
DJANGO_SECRET = "django-relying-party-secret-0123456789abcdef"
START_TIMEOUT = 60.0


class RelyingParties:
    def __init__(self) -> None:
        self.pyoidc_port = free_port()
        self.django_port = free_port()

    @property
    def pyoidc(self) -> str:
        return f"http://{LOOPBACK}:{self.pyoidc_port}"

    @property
    def django(self) -> str:
        return f"http://{LOOPBACK}:{self.django_port}"

    def clients_toml(self) -> str:
        return f"""\
[[clients]]
client_id = "pyoidc-rp"
client_secret = "{PYOIDC_SECRET}"
token_endpoint_auth_method = "client_secret_basic"
redirect_uris = ["{self.pyoidc}/callback"]
post_logout_redirect_uris = ["{self.pyoidc}/bye"]
id_token_signed_response_alg = "ES256"
userinfo_signed_response_alg = "ES256"

[[clients]]
client_id = "django-rp"
client_secret = "{DJANGO_SECRET}"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["{self.django}/oidc/callback/"]
"""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("oidc-artifacts")
    announce(pytestconfig, f"OpenID Connect interoperability artifacts: {folder}")
    return folder


@pytest.fixture(scope="module")
def parties() -> RelyingParties:
    return RelyingParties()


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path, parties: RelyingParties
) -> Iterator[tuple[RunningDemo, str]]:
    state = tmp_path_factory.mktemp("demo-oidc")
    with running_oidc_demo(
        state / "demo", artifacts / "demo.log", parties.clients_toml()
    ) as running:
        yield running


@pytest.fixture(scope="module")
def pyoidc_rp(demo: tuple[RunningDemo, str], parties: RelyingParties) -> Iterator[str]:
    app = pyoidc_app(demo[1], "pyoidc-rp", PYOIDC_SECRET, parties.pyoidc)
    served = Served(app, listen(LOOPBACK, parties.pyoidc_port), ident="pyoidc-rp").start("rp")
    try:
        yield parties.pyoidc
    finally:
        served.close()


@pytest.fixture(scope="module")
def django_rp(
    demo: tuple[RunningDemo, str], parties: RelyingParties, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("django-rp")
    log = folder / "django.log"
    command = [sys.executable, "-m", "tests.oidc_relying_parties", "django", demo[1],
               "django-rp", DJANGO_SECRET, str(folder), str(parties.django_port)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1]
        )
    deadline = time.monotonic() + START_TIMEOUT
    while "ready" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise AssertionError(log.read_text(errors="replace"))
        time.sleep(0.1)
    time.sleep(0.5)  # waitress binds right after
    try:
        yield parties.django
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(
    driver: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    yield from chromium(driver, tmp_path_factory.mktemp("chromium-oidc"), locale="fr-FR")


def claims_shown(page: Page) -> dict[str, object]:
    page.wait_for_selector("#claims")
    shown: dict[str, object] = json.loads(page.text_content("#claims") or "{}")
    return shown


def log_in_with_the_card(
    page: Page, browser: BrowserContext, demo: RunningDemo, shot: Path
) -> None:
    """On the provider's login page: the button, then the bridge's page and the PIN;
    or, when the PIN was verified a short while ago for a site the professional
    approved, nothing more: the bridge answers at once and its window closes."""
    page.wait_for_selector("#login", state="visible")
    assert page.query_selector("input[type=password]") is None  # no password here
    page.screenshot(path=shot)
    with browser.expect_page() as opened:
        page.click("#login")
    popup = opened.value
    try:
        popup.wait_for_url(f"{demo.bridge}/interaction/*", timeout=5_000)
    except PlaywrightError:  # closed by the script: the bridge answered at once
        return
    popup.wait_for_load_state()
    popup.fill("#pin", PIN)
    submit(popup, "#allow")


def test_pyoidc_logs_in_with_the_card(
    browser: BrowserContext, demo: tuple[RunningDemo, str], pyoidc_rp: str, artifacts: Path
) -> None:
    running, _issuer = demo
    running.cards("doctor", None)
    page = browser.new_page()
    page.goto(f"{pyoidc_rp}/login")
    log_in_with_the_card(page, browser, running, artifacts / "01-provider-login-page.png")
    page.wait_for_url(f"{pyoidc_rp}/callback*")
    shown = claims_shown(page)
    page.screenshot(path=artifacts / "02-pyoidc-logged-in.png")
    id_token, userinfo = shown["id_token"], shown["userinfo"]
    assert isinstance(id_token, dict)
    assert isinstance(userinfo, dict)
    assert id_token["acr"] == "eidas1"
    assert id_token["amr"] == ["sc", "pin", "mfa", "hwk"]
    assert id_token["SubjectNameID"] == DOCTOR
    assert userinfo["preferred_username"] == DOCTOR
    assert userinfo["family_name"] == "FONTAINE"


def test_pyoidc_logs_out_through_the_end_session_endpoint(
    browser: BrowserContext, pyoidc_rp: str, artifacts: Path
) -> None:
    page = browser.pages[-1]
    page.goto(f"{pyoidc_rp}/logout")
    page.wait_for_url(f"{pyoidc_rp}/bye*")
    assert claims_shown(page) == {"state": "bye-state"}
    # the provider's session is over: the next login asks for the card again
    page.goto(f"{pyoidc_rp}/login")
    page.wait_for_selector("#login", state="visible")
    page.screenshot(path=artifacts / "03-after-logout-login-page.png")


def test_mozilla_django_oidc_logs_in_with_the_card(
    browser: BrowserContext, demo: tuple[RunningDemo, str], django_rp: str, artifacts: Path
) -> None:
    running, _issuer = demo
    running.cards("doctor", None)
    page = browser.new_page()
    page.goto(f"{django_rp}/oidc/authenticate/")
    log_in_with_the_card(page, browser, running, artifacts / "04-provider-login-for-django.png")
    page.wait_for_url(f"{django_rp}/whoami*")
    shown = claims_shown(page)
    page.screenshot(path=artifacts / "05-django-logged-in.png")
    assert shown["username"] == DOCTOR
    id_token = shown["id_token"]
    assert isinstance(id_token, dict)
    assert id_token["acr"] == "eidas1"
    assert id_token["aud"] == ["django-rp"]


@pytest.fixture(scope="module")
def another_browser(
    driver: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    """A browser of its own: no session at the provider from the tests before."""
    yield from chromium(driver, tmp_path_factory.mktemp("chromium-oidc-2"), locale="fr-FR")


def test_the_teleservice_in_oidc_mode_logs_in_through_the_provider(
    another_browser: BrowserContext, demo: tuple[RunningDemo, str], artifacts: Path
) -> None:
    """``--oidc`` makes « Médecin traitant en ligne » a plain relying party: its login
    button goes to the provider; lookups still take the patient's Vitale card; its
    logout ends the session at the provider too."""
    browser = another_browser
    running, issuer = demo
    running.cards("doctor", "patient")
    page = browser.new_page()
    page.goto(f"{running.teleservice}/")
    page.wait_for_selector("#login", state="visible")
    page.click("#login")
    page.wait_for_url(f"{issuer}/protocol/openid-connect/auth*")
    log_in_with_the_card(page, browser, running, artifacts / "06-provider-for-teleservice.png")
    page.wait_for_selector("#app-view", state="visible")
    assert "FONTAINE" in (page.text_content("#professional") or "").upper()
    page.click("#lookup")  # the Vitale card co-signs with the card logged in at the provider
    page.wait_for_selector("#result p")
    assert "Fontaine" in (page.text_content("#result") or "")
    page.screenshot(path=artifacts / "07-teleservice-through-oidc.png")
    page.click("#logout")
    home = f"{running.teleservice}/"
    page.wait_for_url(lambda url: url.split("?")[0] == home)  # back from end_session
    page.wait_for_selector("#login-view", state="visible")
    page.click("#login")  # the provider asks for the card again: its session ended too
    page.wait_for_url(f"{issuer}/protocol/openid-connect/auth*")
    page.wait_for_selector("#login", state="visible")
