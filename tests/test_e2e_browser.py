"""The whole path in a real browser: the README's main command (``python -m
examples.demo``: virtual cards in a private pcscd through vpcd, the bridge, the
teleservice « Médecin traitant en ligne », the simulator's control page) in a process
of its own, and Debian's Chromium, headless, driven by Playwright, as a health
professional would use them. Cards are inserted and pulled through the control
page's API, as a person would on the page. Screenshots of each step go to an
artifacts folder whose path the run prints.

The tests follow one another (a login, then lookups, then the card pulled...), as a
working session does; each one puts the cards it needs in the reader first.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.browser_kit import announce, chromium
from tests.demo_kit import RunningDemo, open_bridge_page, start_demo, submit, teleservice_page
from tests.support import LOOPBACK, stop_process

pytestmark = pytest.mark.pcscd

LOGOUT_MS = 2_000  # the teleservice page logs out by itself within 2 s of the pull
WRONG_PIN = "0000"
PIN = "1234"


class _ForeignPage(BaseHTTPRequestHandler):
    """A page of a site nobody approved: blank, so that its scripts can be run."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>elsewhere</title><p>elsewhere</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("e2e-artifacts")
    announce(pytestconfig, f"end-to-end artifacts (screenshots, demo output): {folder}")
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[RunningDemo]:
    running = start_demo(tmp_path_factory.mktemp("demo-state"), artifacts / "demo.log")
    try:
        yield running
    finally:
        stop_process(running.process)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as driver:
        yield from chromium(driver, tmp_path_factory.mktemp("chromium-e2e"), locale="fr-FR")


@pytest.fixture(scope="module")
def page(browser: BrowserContext, demo: RunningDemo) -> Iterator[Page]:
    yield from teleservice_page(browser, demo)


@pytest.fixture(scope="module")
def foreign_site() -> Iterator[str]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _ForeignPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- steps --------------------------------------------------------------------------------


def shown_error(page: Page) -> str:
    page.wait_for_selector("#error", state="visible")
    return page.text_content("#error") or ""


# -- the tests ----------------------------------------------------------------------------


def test_login_with_the_pin_after_a_wrong_one(
    page: Page, browser: BrowserContext, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    page.wait_for_selector("#login", state="visible")
    assert page.query_selector("input[type=password]") is None  # no password form
    page.screenshot(path=artifacts / "01-teleservice-login.png")

    popup = open_bridge_page(page, browser, demo)
    assert demo.teleservice in (popup.text_content("#asks") or "")  # names the site
    assert "FONTAINE" in (popup.text_content("#card") or "").upper()  # and the card
    popup.screenshot(path=artifacts / "02-bridge-pin-page.png")

    popup.fill("#pin", WRONG_PIN)
    submit(popup, "#allow")
    assert popup.get_attribute("#error", "data-code") == "pin.wrong"
    assert "2" in (popup.text_content("#tries") or "")  # tries left
    popup.screenshot(path=artifacts / "03-bridge-wrong-pin.png")

    popup.fill("#pin", PIN)
    assert popup.query_selector("#remember") is None  # the demo's bridge trusts this site
    submit(popup, "#allow")
    page.wait_for_selector("#app-view", state="visible")
    assert "FONTAINE" in (page.text_content("#professional") or "").upper()
    page.screenshot(path=artifacts / "04-teleservice-logged-in.png")


def test_the_header_names_the_service_and_who_is_logged_in(page: Page) -> None:
    page.wait_for_selector("#app-view", state="visible")  # logged in by the test before
    header = page.locator("header")
    assert "Médecin traitant en ligne" in (header.text_content() or "")
    assert "FONTAINE" in (header.locator("#professional").text_content() or "").upper()
    assert header.locator("#logout").is_visible()


def test_lookup_needs_the_patients_vitale_card(
    page: Page, demo: RunningDemo, artifacts: Path
) -> None:
    page.wait_for_selector("#app-view", state="visible")  # logged in by the test before
    page.click("#lookup")  # the PIN is fresh and the site approved: no window opens
    page.wait_for_selector("#result p")
    result = page.text_content("#result") or ""
    assert "Fontaine" in result  # Jeanne Robin declared Dr Élise Fontaine
    assert "ROBIN" in result.upper()
    page.screenshot(path=artifacts / "05-lookup-with-vitale.png")

    demo.cards("doctor", None)
    page.click("#lookup")
    assert "Vitale" in shown_error(page)  # a sentence that names the card
    assert page.get_attribute("#error", "data-code") == "card.not_present"
    assert page.query_selector("#result p") is None
    page.screenshot(path=artifacts / "06-lookup-without-vitale.png")


def test_an_error_is_a_sentence_its_code_in_small_print(page: Page) -> None:
    """The error of the test before: the bridge's sentence, never its code alone."""
    sentence = page.text_content("#error-message") or ""
    assert "card.not_present" not in sentence
    assert "[" not in sentence
    assert sentence.endswith("."), sentence
    assert "card.not_present" in (page.text_content("#error .support") or "")


def test_an_error_without_a_sentence_gets_a_generic_one(
    page: Page, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    page.wait_for_selector("#app-view", state="visible")
    generic = page.get_attribute("#error", "data-generic") or ""
    assert generic.startswith("L'opération n'a pas abouti")
    failures: dict[str, Any] = {  # what a proxy, or a network, might do
        "http.502": lambda route: route.fulfill(status=502, body="Bad Gateway"),
        "": lambda route: route.abort(),
    }
    for code, failure in failures.items():
        page.route("**/api/lookup", failure)
        try:
            page.click("#lookup")
            page.wait_for_function(
                "(code) => document.getElementById('error').dataset.code === code"
                " && !document.getElementById('error').hidden",
                arg=code,
            )
            assert page.text_content("#error-message") == generic
            assert page.is_visible("#error .support") is bool(code)
        finally:
            page.unroute("**/api/lookup")
    page.screenshot(path=artifacts / "06a-error-without-a-sentence.png")


def test_the_result_goes_when_the_vitale_card_leaves(
    page: Page, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    page.wait_for_selector("#app-view", state="visible")
    page.click("#lookup")
    page.wait_for_selector("#result p")
    demo.cards("doctor", None)  # the patient takes their card back
    page.wait_for_selector("#result p", state="detached", timeout=LOGOUT_MS)
    assert "ROBIN" not in (page.text_content("main") or "").upper()
    assert page.is_visible("#app-view")  # the professional is still logged in
    page.screenshot(path=artifacts / "06b-vitale-card-taken-back.png")


def test_the_page_says_when_the_session_ended_on_the_server(
    page: Page, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    page.wait_for_selector("#app-view", state="visible")
    ended = page.evaluate(
        """fetch("/cardauth/logout", {method: "POST", body: "{}",
                  headers: {"Content-Type": "application/json"}}).then((answer) => answer.status)"""
    )
    assert ended == 200  # the page does not know yet
    page.click("#lookup")  # the cards sign, the server answers login.required
    page.wait_for_selector("#login-view", state="visible")
    assert page.text_content("#notice") == (
        "Votre session a pris fin : reconnectez-vous avec votre carte CPS."
    )
    assert page.is_hidden("#app-view")
    page.screenshot(path=artifacts / "06c-session-ended.png")
    page.click("#login")  # again, for the tests that follow: the card's PIN is still fresh
    page.wait_for_selector("#app-view", state="visible")
    assert page.is_hidden("#notice")


def test_logging_out_then_in_asks_the_pin_again(
    page: Page, browser: BrowserContext, demo: RunningDemo, artifacts: Path
) -> None:
    """After "Se déconnecter", the card has forgotten the PIN: "Se connecter" opens
    the bridge's page again, where the PIN is asked."""
    demo.cards("doctor", "patient")
    page.wait_for_selector("#app-view", state="visible")  # logged in by the tests before
    page.click("#logout")
    page.wait_for_selector("#login-view", state="visible")
    popup = open_bridge_page(page, browser, demo)
    popup.wait_for_selector("#pin")
    popup.screenshot(path=artifacts / "06d-pin-asked-after-logout.png")
    popup.fill("#pin", PIN)
    submit(popup, "#allow")
    page.wait_for_selector("#app-view", state="visible")


def test_pulling_the_cps_card_logs_the_page_out(
    page: Page, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    page.wait_for_selector("#app-view", state="visible")
    pulled = time.monotonic()
    demo.cards(None, "patient")  # returns once the bridge knows: the page is told too
    page.wait_for_selector("#login-view", state="visible", timeout=5 * LOGOUT_MS)
    elapsed = time.monotonic() - pulled
    assert elapsed < LOGOUT_MS / 1000, elapsed
    assert page.is_hidden("#app-view")
    page.screenshot(path=artifacts / "07-card-pulled-logged-out.png")
    # The server ended the session too: nothing more for this browser.
    status = page.evaluate("fetch('/api/me').then((answer) => answer.status)")
    deadline = time.monotonic() + 2
    while status != 401 and time.monotonic() < deadline:
        time.sleep(0.1)
        status = page.evaluate("fetch('/api/me').then((answer) => answer.status)")
    assert status == 401


def test_the_page_says_it_logged_out_because_the_card_was_pulled(page: Page) -> None:
    page.wait_for_selector("#login-view", state="visible")  # the CPS card pulled before
    assert page.text_content("#notice") == (
        "Vous avez été déconnecté : votre carte CPS a été retirée du lecteur."
    )
    assert page.is_hidden("#session")  # nobody named in the header any more


def test_my_lookups_read_as_dates_and_sentences(
    page: Page, browser: BrowserContext, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    page.wait_for_selector("#login-view", state="visible")
    popup = open_bridge_page(page, browser, demo)  # the card left: its PIN again
    popup.fill("#pin", PIN)
    submit(popup, "#allow")
    page.wait_for_selector("#app-view", state="visible")
    page.click("#journal")
    page.wait_for_selector("#lookups")
    first = page.locator("#lookups tbody tr").last  # the oldest: Jeanne Robin, found
    cells = [cell.strip() for cell in first.locator("td").all_text_contents()]
    assert re.fullmatch(r"\d{1,2}(er)? \w+ 20\d\d à \d\d:\d\d", cells[0]), cells
    assert cells[2] == "Le patient a déclaré un médecin traitant."
    assert "FONTAINE" in (page.text_content("#professional") or "").upper()
    page.screenshot(path=artifacts / "07b-my-lookups.png")


def test_pulling_the_cps_card_on_my_lookups_logs_out_too(
    page: Page, demo: RunningDemo, artifacts: Path
) -> None:
    page.wait_for_selector("#lookups")  # « Mes recherches », opened by the test before
    demo.cards(None, "patient")
    page.wait_for_selector("#login-view", state="visible", timeout=5 * LOGOUT_MS)
    assert page.query_selector("#lookups") is None
    assert page.text_content("#notice") == (
        "Vous avez été déconnecté : votre carte CPS a été retirée du lecteur."
    )
    assert page.evaluate("fetch('/api/me').then((answer) => answer.status)") == 401
    page.screenshot(path=artifacts / "07c-card-pulled-on-my-lookups.png")


def test_a_blocked_card_says_what_to_do(
    page: Page, browser: BrowserContext, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("cps-blocked", "patient")
    page.wait_for_selector("#login-view", state="visible")
    popup = open_bridge_page(page, browser, demo)
    popup.wait_for_selector("#blocked")
    assert "PUK" in (popup.text_content("#blocked") or "")
    assert popup.query_selector("#pin") is None  # no PIN to type on a blocked card
    popup.screenshot(path=artifacts / "08-bridge-blocked-card.png")
    popup.close()


def test_a_foreign_page_gets_nothing_from_the_bridge(
    browser: BrowserContext, demo: RunningDemo, foreign_site: str, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    stranger = browser.new_page()
    try:
        stranger.goto(foreign_site)
        attempts = stranger.evaluate(
            """async (bridge) => {
                const tries = {
                    cards: () => fetch(`${bridge}/v1/cards`).then((r) => r.json()),
                    status: () => fetch(`${bridge}/v1/status`).then((r) => r.json()),
                    authenticate: () => fetch(`${bridge}/v1/authenticate`, {
                        method: "POST",
                        headers: { "Content-Type": "application/json" },
                        body: JSON.stringify({ challenge: "A".repeat(43) }),
                    }).then((r) => r.json()),
                    simple: () => fetch(`${bridge}/v1/authenticate`, {
                        method: "POST", mode: "no-cors",
                        body: JSON.stringify({ challenge: "A".repeat(43) }),
                    }).then((r) => r.type),
                };
                const outcome = {};
                for (const [name, attempt] of Object.entries(tries)) {
                    try { outcome[name] = JSON.stringify(await attempt()); }
                    catch (error) { outcome[name] = "refused"; }
                }
                return outcome;
            }""",
            demo.bridge,
        )
        stranger.screenshot(path=artifacts / "09-foreign-page.png")
    finally:
        stranger.close()
    # Nothing readable: no CORS for a site nobody approved, no preflight answered for
    # it; even a no-cors request fails (Cross-Origin-Resource-Policy: same-origin).
    assert attempts == dict.fromkeys(("cards", "status", "authenticate", "simple"), "refused")


def test_the_control_page_moves_cards_from_the_browser(
    browser: BrowserContext, demo: RunningDemo, artifacts: Path
) -> None:
    demo.cards("doctor", "patient")
    control = browser.new_page()
    try:
        control.goto(f"{demo.control}/")
        control.screenshot(path=artifacts / "10-control-page.png")
        with control.expect_navigation():
            control.click("#remove-1")  # its own form: a POST with the page's Origin
        assert control.get_attribute("#slot-1", "data-persona") == ""
        control.select_option("#persona-1", "parent")
        with control.expect_navigation():
            control.click("#insert-1")
        assert control.get_attribute("#slot-1", "data-persona") == "parent"
        assert control.query_selector("#error") is None
        control.screenshot(path=artifacts / "11-control-page-after-moves.png")
    finally:
        control.close()
    demo.cards("doctor", "patient")  # the reader as the API sees it agrees


def test_the_demo_stops_cleanly_on_ctrl_c(demo: RunningDemo) -> None:
    """Last: Ctrl-C stops everything, and says so."""
    status = stop_process(demo.process, sig=signal.SIGINT)
    assert status == 0, demo.log()
    assert "Demo stopped." in demo.log()
