"""The card pulled out of the reader logs the professional out of a relying party,
in Debian's Chromium: the demo with its provider (``python -m examples.demo --oidc``:
simulated cards in a private pcscd through vpcd, the bridge), a relying party of
its own (tests/backchannel_rp.py, PyJWT) whose page frames the provider's card
watch. The PIN is typed on the bridge's page; the card is taken out through the
simulator's control API, as a person would pull it. The relying party's session
ends by back-channel logout, its token checked by § 2.6."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Frame, sync_playwright

from cardauth.oidc.settings import REALM
from cardauth.serving import Served, listen
from tests.backchannel_rp import RelyingParty
from tests.browser_kit import announce, chromium
from tests.demo_kit import RunningDemo, running_oidc_demo
from tests.support import LOOPBACK, free_port
from tests.test_oidc_backchannel import until
from tests.test_oidc_interop import DOCTOR, log_in_with_the_card

pytestmark = pytest.mark.pcscd

RP_SECRET = "browser-relying-party-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    folder = tmp_path_factory.mktemp("backchannel-artifacts")
    announce(pytestconfig, f"Back-channel logout artifacts: {folder}")
    return folder


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[tuple[RunningDemo, RelyingParty]]:
    state = tmp_path_factory.mktemp("demo-backchannel")
    provider_port, rp_port = free_port(), free_port()
    provider = f"http://{LOOPBACK}:{provider_port}"
    party = RelyingParty(provider, "watching-rp", RP_SECRET, f"http://{LOOPBACK}:{rp_port}")
    clients = f"""\
[[clients]]
client_id = "watching-rp"
client_secret = "{RP_SECRET}"
redirect_uris = ["{party.origin}/callback"]
backchannel_logout_uri = "{party.origin}/backchannel-logout"
"""
    with running_oidc_demo(state / "demo", artifacts / "demo.log", clients, port=provider_port) as (
        running,
        _issuer,
    ):
        served = Served(party.app(), listen(LOOPBACK, rp_port), ident="rp").start("rp")
        try:
            yield running, party
        finally:
            served.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as driver:
        profile = tmp_path_factory.mktemp("chromium-backchannel")
        yield from chromium(driver, profile, locale="fr-FR")


def watch_frame(page_frames: list[Frame], provider: str) -> Frame:
    found = [frame for frame in page_frames if frame.url.startswith(provider + REALM)]
    assert found, [frame.url for frame in page_frames]
    return found[0]


def test_pulling_the_card_ends_the_relying_party_s_session(
    browser: BrowserContext, setup: tuple[RunningDemo, RelyingParty], artifacts: Path
) -> None:
    running, party = setup
    running.cards("doctor", None)
    page = browser.new_page()
    page.goto(f"{party.origin}/login")
    log_in_with_the_card(page, browser, running, artifacts / "01-provider-login.png")
    page.wait_for_url(f"{party.origin}/me")
    page.wait_for_selector("#state[data-state=logged-in]")
    assert DOCTOR in (page.text_content("#state") or "")
    frame = watch_frame(page.frames, party.provider_origin)
    frame.wait_for_selector("#watch[data-state=watching]")
    page.screenshot(path=artifacts / "02-logged-in-card-watched.png")
    sid = next(iter(party.sessions.values()))["sid"]

    running.cards(None, None)  # the card pulled out of the reader

    frame.wait_for_selector("#watch[data-state=ended]")
    assert until(lambda: not party.sessions)  # the relying party's session ended
    tokens = [claims for claims in party.received if claims.get("sid") == sid]
    assert len(tokens) == 1, party.refused
    assert tokens[0]["sub"] == DOCTOR
    page.reload()
    page.wait_for_selector("#state[data-state=logged-out]")
    page.screenshot(path=artifacts / "03-card-pulled-logged-out.png")
    # the provider's session ended too: the card is asked for again
    page.goto(f"{party.origin}/login")
    page.wait_for_selector("#login", state="visible")
