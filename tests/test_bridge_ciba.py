"""CIBA end to end: a desktop software's backend (a plain HTTP client written here
from CIBA Core 1.0 § 7 and § 10) asks cardauth-oidc to authenticate the doctor; the
real bridge, following that provider (the demo: simulated cards in a private pcscd
through vpcd, the bridge, the provider), lists the request on its own page, where
Debian's headless Chromium reads the binding message and types the PIN; the
client's polling then gets an ID token, checked with PyJWT against the provider's
published keys. Screenshots go to an artifacts folder whose path the run prints."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from tests.browser_kit import announce, chromium
from tests.demo_kit import RunningDemo, running_oidc_demo

pytestmark = pytest.mark.pcscd

PIN = "1234"
WRONG_PIN = "0000"
DOCTOR = "899700420013"
SECRET = "desktop-software-secret-0123456789abcdef"
CLIENTS = f"""
[[clients]]
client_id = "desktop"
client_name = "Logiciel de cabinet"
client_secret = "{SECRET}"
token_endpoint_auth_method = "client_secret_basic"
backchannel_token_delivery_mode = "poll"
"""
GRANT = "urn:openid:params:grant-type:ciba"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("ciba-artifacts")
    announce(pytestconfig, f"CIBA artifacts: {folder}")
    return folder


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[tuple[RunningDemo, str]]:
    state = tmp_path_factory.mktemp("demo-ciba")
    with running_oidc_demo(state / "demo", artifacts / "demo.log", CLIENTS) as running:
        yield running


@pytest.fixture(scope="module")
def discovery(demo: tuple[RunningDemo, str]) -> dict[str, Any]:
    _, issuer = demo
    found: dict[str, Any] = requests.get(
        f"{issuer}/.well-known/openid-configuration", timeout=10
    ).json()
    return found


@pytest.fixture(scope="module")
def driver() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(
    driver: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrowserContext]:
    yield from chromium(driver, tmp_path_factory.mktemp("chromium-ciba"), locale="fr-FR")


class CibaClient:
    """A desktop software's backend, in poll mode (CIBA Core § 7.1, § 10.1)."""

    def __init__(self, configuration: dict[str, Any]) -> None:
        self.configuration = configuration
        self.session = requests.Session()
        self.session.auth = ("desktop", SECRET)  # client_secret_basic

    def start(self, binding_message: str) -> dict[str, Any]:
        answer = self.session.post(
            self.configuration["backchannel_authentication_endpoint"],
            data={
                "scope": "openid scope_all",
                "login_hint": DOCTOR,
                "binding_message": binding_message,
                "acr_values": "eidas1",
                "channel": "CARD",
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def poll(self, auth_req_id: str) -> requests.Response:
        return self.session.post(
            self.configuration["token_endpoint"],
            data={"grant_type": GRANT, "auth_req_id": auth_req_id},
            timeout=10,
        )

    def tokens(self, started: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Poll every ``interval`` seconds (5 more after each slow_down, § 11)
        until the tokens come, or fail on any other error."""
        interval = float(started["interval"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(interval)
            answer = self.poll(started["auth_req_id"])
            if answer.status_code == 200:
                found: dict[str, Any] = answer.json()
                return found
            error = answer.json()["error"]
            if error == "slow_down":
                interval += 5
            elif error != "authorization_pending":
                raise AssertionError(answer.text)
        raise AssertionError("no tokens in time")


def enrol(page: Page, demo: RunningDemo, shot: Path) -> None:
    """The professional lets the bridge receive the provider's requests: once, with
    the card (the PIN typed on the bridge's page)."""
    page.goto(f"{demo.bridge}/ciba")
    page.wait_for_selector(".not-enrolled")
    page.screenshot(path=shot)
    page.fill("#pin-0", PIN)
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.click("button.enrol")
    assert posted.value.status == 303, posted.value.status
    page.wait_for_selector(".enrolled")
    assert DOCTOR in (page.text_content(".enrolled") or "")


def open_request(page: Page, demo: RunningDemo, binding_message: str) -> None:
    """The list of requests (it reloads itself), then the one with this message."""
    page.goto(f"{demo.bridge}/ciba")
    item = page.locator(".request", has_text=binding_message)
    item.wait_for(timeout=15_000)
    item.locator("a").click()
    page.wait_for_selector("#binding-message")


def test_a_ciba_request_is_approved_on_the_bridge_s_page_with_the_pin(
    demo: tuple[RunningDemo, str],
    discovery: dict[str, Any],
    browser: BrowserContext,
    artifacts: Path,
) -> None:
    running = demo[0]
    running.cards("doctor", None)
    page = browser.new_page()
    enrol(page, running, artifacts / "01-bridge-not-enrolled.png")
    client = CibaClient(discovery)
    message = f"Cabinet {secrets.randbelow(10_000):04d}"
    started = client.start(message)
    assert started["expires_in"] == 120
    assert client.poll(started["auth_req_id"]).json()["error"] == "authorization_pending"

    open_request(page, running, message)
    page.screenshot(path=artifacts / "02-ciba-request.png")
    assert page.text_content("#binding-message") == message
    asks = page.text_content("#asks") or ""
    assert "Logiciel de cabinet" in asks
    assert discovery["issuer"].split("/auth/")[0] in asks  # the provider's origin
    assert page.text_content("#scopes") == "openid scope_all"

    page.fill("#pin", WRONG_PIN)  # a wrong PIN approves nothing
    page.click("#allow")
    page.wait_for_selector("#error[data-code='pin.wrong']")
    assert client.poll(started["auth_req_id"]).status_code == 400

    page.fill("#pin", PIN)
    page.click("#allow")
    page.wait_for_selector("#outcome")
    page.screenshot(path=artifacts / "03-ciba-approved.png")

    tokens = client.tokens(started)
    keys = jwt.PyJWKClient(discovery["jwks_uri"])
    signing_key = keys.get_signing_key_from_jwt(tokens["id_token"])
    claims = jwt.decode(
        tokens["id_token"],
        signing_key.key,
        algorithms=["RS256"],
        audience="desktop",
        issuer=discovery["issuer"],
    )
    assert claims["sub"] == claims["SubjectNameID"] == DOCTOR
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["sc", "pin", "mfa", "hwk"]
    assert claims["family_name"] == "FONTAINE"
    assert client.poll(started["auth_req_id"]).json()["error"] == "invalid_grant"


def test_a_ciba_request_declined_on_the_bridge_s_page_is_access_denied(
    demo: tuple[RunningDemo, str],
    discovery: dict[str, Any],
    browser: BrowserContext,
    artifacts: Path,
) -> None:
    running = demo[0]
    running.cards("doctor", None)
    page = browser.new_page()
    page.goto(f"{running.bridge}/ciba")
    if page.query_selector(".not-enrolled") is not None:
        enrol(page, running, artifacts / "enrolled-again.png")
    client = CibaClient(discovery)
    message = f"Refus {secrets.randbelow(10_000):04d}"
    started = client.start(message)
    open_request(page, running, message)
    page.click("#decline")
    page.wait_for_selector("#outcome")
    time.sleep(started["interval"])
    answer = client.poll(started["auth_req_id"])
    assert answer.status_code == 400
    assert answer.json()["error"] == "access_denied"


def test_with_the_card_pulled_nothing_is_approved(
    demo: tuple[RunningDemo, str],
    discovery: dict[str, Any],
    browser: BrowserContext,
    artifacts: Path,
) -> None:
    running = demo[0]
    running.cards("doctor", None)
    page = browser.new_page()
    page.goto(f"{running.bridge}/ciba")
    if page.query_selector(".not-enrolled") is not None:
        enrol(page, running, artifacts / "enrolled-again.png")
    client = CibaClient(discovery)
    message = f"Carte {secrets.randbelow(10_000):04d}"
    started = client.start(message)
    open_request(page, running, message)
    running.cards(None, None)
    page.fill("#pin", PIN)
    page.click("#allow")
    page.wait_for_selector("#error")
    time.sleep(started["interval"])
    assert client.poll(started["auth_req_id"]).json()["error"] == "authorization_pending"
