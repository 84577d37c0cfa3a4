"""The bridge's doors: every web page the professional visits can reach it, so
each request must show the bridge's own Host, an approved Origin, JSON for what
changes state, a small body; CORS names the one approved origin; the bridge's
page is never framed and its forms come from its own origin only. Any site may
open a login, and learns nothing of it before the professional answers; an
approval is given by a PIN that worked, and withdrawn at once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardauth.jose import CompactJws
from cardauth.origins import Origin
from tests.bridge_flows import answer, open_page, outcome, reload, start_login
from tests.bridge_kit import (
    BRIDGE,
    TELESERVICE,
    BridgeScene,
    bridge_scene,
    get,
    post_json,
    request_id,
)
from webbridge.app import APPROVAL_CHECK_SECONDS
from webbridge.interactions import MAX_UNOPENED

FOREIGN = "https://evil.example"


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[BridgeScene]:
    yield from bridge_scene(tmp_path)


def _code(response: object) -> str:
    body = response.get_json()  # type: ignore[attr-defined]
    assert isinstance(body, dict)
    return str(body["error"]["code"])


# -- Host: DNS rebinding -------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example:24790", "evil.example", "127.0.0.1:8080", "127.0.0.1.nip.io:24790"]
)
def test_a_rebinding_host_is_refused(scene: BridgeScene, host: str) -> None:
    for path in ("/v1/status", "/v1/cards", "/consents"):
        response = scene.client().get(path, base_url=f"http://{host}")
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    refused = scene.client().post(
        "/v1/authenticate", json={"challenge": scene.challenge()}, base_url=f"http://{host}"
    )
    assert refused.status_code == 403
    assert _code(refused) == "bridge.host"


def test_localhost_is_the_bridge_too(scene: BridgeScene) -> None:
    response = scene.client().get("/v1/status", base_url="http://localhost:24790")
    assert response.status_code == 200


# -- Origin ----------------------------------------------------------------------------


def test_a_foreign_origin_gets_nothing(scene: BridgeScene) -> None:
    foreign = scene.client(FOREIGN)
    for response in (
        get(foreign, "/v1/status"),
        get(foreign, "/v1/cards"),
        post_json(foreign, "/v1/authenticate", {"challenge": scene.challenge()}),
        get(foreign, "/v1/events"),
    ):
        assert response.status_code == 403
        assert _code(response) == "bridge.origin_forbidden"
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "FONTAINE" not in response.get_data(as_text=True)


@pytest.mark.parametrize("origin", [None, "null"])
def test_an_api_call_without_origin_is_refused(scene: BridgeScene, origin: str | None) -> None:
    response = get(scene.client(origin), "/v1/cards")
    assert response.status_code == 403
    assert _code(response) == "bridge.origin_required"


def test_cors_names_the_one_approved_origin(scene: BridgeScene) -> None:
    response = get(scene.client(), "/v1/status")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == TELESERVICE.value
    assert "Origin" in response.headers["Vary"]
    assert "*" not in response.headers.get("Access-Control-Allow-Origin", "")
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_the_assertion_carries_the_browsers_origin_never_the_body(scene: BridgeScene) -> None:
    client = scene.client()
    challenge = scene.challenge()
    spoofed = post_json(client, "/v1/authenticate", {"challenge": challenge, "origin": FOREIGN})
    assert spoofed.status_code == 400
    assert _code(spoofed) == "bridge.bad_request"
    page = open_page(scene, TELESERVICE.value, challenge)
    answer(scene, page, pin="1234")
    token = outcome(client, page)["assertion"]
    assert CompactJws.split(token).payload()["aud"] == TELESERVICE.value
    assert scene.verify(token, challenge).origin == TELESERVICE.value


# -- preflights, Private Network Access --------------------------------------------------


def _preflight(scene: BridgeScene, origin: str) -> object:
    return scene.client(origin).options(
        "/v1/authenticate",
        base_url=BRIDGE,
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )


def test_a_private_network_preflight_is_answered_for_an_approved_origin(
    scene: BridgeScene,
) -> None:
    response = _preflight(scene, TELESERVICE.value)
    assert response.status_code == 204  # type: ignore[attr-defined]
    headers = response.headers  # type: ignore[attr-defined]
    assert headers["Access-Control-Allow-Origin"] == TELESERVICE.value
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Origin" in headers["Vary"]


def test_a_private_network_preflight_from_an_unapproved_origin_is_refused(
    scene: BridgeScene,
) -> None:
    response = _preflight(scene, FOREIGN)
    assert response.status_code == 403  # type: ignore[attr-defined]
    headers = response.headers  # type: ignore[attr-defined]
    assert "Access-Control-Allow-Private-Network" not in headers
    assert "Access-Control-Allow-Origin" not in headers


# -- bodies ------------------------------------------------------------------------------


def test_state_changing_calls_take_json_only(scene: BridgeScene) -> None:
    """A form or text/plain POST is what a page may send cross-site without a
    preflight: refused before anything is read."""
    client = scene.client()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = client.post(
            "/v1/authenticate",
            data='{"challenge": "x"}',
            headers={"Content-Type": content_type},
            base_url=BRIDGE,
        )
        assert response.status_code == 415
        assert _code(response) == "bridge.content_type"


def test_an_oversized_body_is_refused(scene: BridgeScene) -> None:
    response = post_json(scene.client(), "/v1/authenticate", {"challenge": "A" * 20_000})
    assert response.status_code == 413
    assert _code(response) == "bridge.too_large"


@pytest.mark.parametrize(
    "body",
    [
        "[1]",
        "{",
        '{"challenge": 12}',
        '{"challenge": "short"}',
        '{"challenge": "' + "A" * 43 + '", "vitale": "yes"}',
        '{"challenge": "' + "A" * 43 + '", "extra": 1}',
        "[" * 10_000,
    ],
)
def test_a_bad_body_is_a_400(scene: BridgeScene, body: str) -> None:
    response = scene.client().post(
        "/v1/authenticate", data=body, content_type="application/json", base_url=BRIDGE
    )
    assert response.status_code == 400
    assert _code(response) in ("bridge.bad_request", "challenge.malformed")


# -- rate limit ------------------------------------------------------------------------


def test_authentications_are_rate_limited_per_origin(tmp_path: Path) -> None:
    other = Origin.parse("https://other.example")
    for scene in bridge_scene(tmp_path, authentications_per_minute=3):
        scene.consents.grant(other, now=dt.datetime.now(dt.UTC), days=1)
        client = scene.client()
        answers = [
            post_json(client, "/v1/authenticate", {"challenge": scene.challenge()})
            for _ in range(4)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert _code(answers[-1]) == "bridge.rate_limited"
        assert answers[-1].headers["Retry-After"] == "60"
        assert answers[-1].headers["Access-Control-Allow-Origin"] == TELESERVICE.value
        elsewhere = post_json(
            scene.client(other.value), "/v1/authenticate", {"challenge": scene.challenge()}
        )
        assert elsewhere.status_code == 200


# -- the bridge's own page -------------------------------------------------------------


def test_the_page_is_never_framed_and_runs_no_foreign_script(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    response = get(scene.client(None), page.url)
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Access-Control-Allow-Origin" not in response.headers
    # Its own form carries its Origin (under no-referrer a browser would send "null").
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("destination", ["image", "iframe", "empty", "script"])
def test_the_page_opens_a_place_only_when_shown_in_a_window(
    scene: BridgeScene, destination: str
) -> None:
    """An <img>, a frame or a fetch of the bridge's page takes none of the places of
    open pages: only a window or a tab the professional sees does."""
    page, _started = start_login(scene, FOREIGN, scene.challenge())
    loaded = get(scene.client(None), page.url, headers={"Sec-Fetch-Dest": destination})
    assert loaded.status_code == 400
    assert 'id="pin"' not in loaded.get_data(as_text=True)
    interaction = scene.app.extensions["cardauth-bridge"].interactions.get(page.url.rsplit("/")[-1])
    assert not interaction.opened
    shown = get(scene.client(None), page.url, headers={"Sec-Fetch-Dest": "document"})
    assert 'id="pin"' in shown.get_data(as_text=True)
    assert interaction.opened


def test_the_pages_form_is_accepted_from_the_bridges_origin_only(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    for origin in (FOREIGN, TELESERVICE.value, None):
        forged = scene.client(origin).post(
            page.url, data={"token": page.token, "action": "allow", "pin": "1234"}, base_url=BRIDGE
        )
        assert forged.status_code == 403
    assert scene.card(0).pins_presented == 0
    wrong_token = scene.client(BRIDGE).post(
        page.url, data={"token": "x" * 32, "action": "allow", "pin": "1234"}, base_url=BRIDGE
    )
    assert wrong_token.status_code == 303  # back to the page, which says nothing was done
    assert scene.card(0).pins_presented == 0
    reload(scene, page)
    assert 'data-code="bridge.form_spent"' in page.html


def test_the_outcome_goes_to_the_asking_origin_only(scene: BridgeScene) -> None:
    page = open_page(scene, "https://new.example", scene.challenge())
    answer(scene, page, pin="1234")  # allowed once, not remembered
    stolen = get(scene.client(FOREIGN), f"/v1/interactions/{page.request_id}")
    assert stolen.status_code == 403
    configured = get(scene.client(), f"/v1/interactions/{page.request_id}")
    assert configured.status_code == 404  # an approved origin, but not the one that asked
    mine = outcome(scene.client("https://new.example"), page)
    assert mine["status"] == "ok"
    again = get(scene.client("https://new.example"), f"/v1/interactions/{page.request_id}")
    assert again.status_code == 403  # collected: gone, and the site was approved only once


# -- consent ---------------------------------------------------------------------------


def test_a_new_site_asks_once_then_is_remembered(scene: BridgeScene) -> None:
    new = "https://new.example"
    assert get(scene.client(new), "/v1/status").status_code == 403
    page = open_page(scene, new, scene.challenge())
    assert "https://new.example" in page.html
    assert 'id="remember"' in page.html
    answer(scene, page, pin="1234", remember="on")
    assert outcome(scene.client(new), page)["status"] == "ok"
    assert get(scene.client(new), "/v1/status").status_code == 200
    approved = scene.consents.list(now=dt.datetime.now(dt.UTC))
    assert [c.origin.value for c in approved] == [new]
    assert approved[0].expires_at - approved[0].granted_at == dt.timedelta(days=30)


def test_an_expired_approval_is_asked_again(scene: BridgeScene) -> None:
    new = Origin.parse("https://new.example")
    scene.consents.grant(new, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=31), days=30)
    assert get(scene.client(new.value), "/v1/status").status_code == 403
    page = open_page(scene, new.value, scene.challenge())
    assert 'id="remember"' in page.html  # asked again


def test_approvals_are_listed_and_withdrawn_on_the_bridges_page(scene: BridgeScene) -> None:
    new = Origin.parse("https://new.example")
    scene.consents.grant(new, now=dt.datetime.now(dt.UTC), days=30)
    listing = get(scene.client(None), "/consents").get_data(as_text=True)
    assert "https://new.example" in listing
    assert TELESERVICE.value in listing
    token = listing.split('name="token" value="')[1].split('"')[0]
    forged = scene.client(FOREIGN).post(
        "/consents/revoke", data={"token": token, "origin": new.value}, base_url=BRIDGE
    )
    assert forged.status_code == 403
    assert get(scene.client(new.value), "/v1/status").status_code == 200
    withdrawn = scene.client(BRIDGE).post(
        "/consents/revoke", data={"token": token, "origin": new.value}, base_url=BRIDGE
    )
    assert withdrawn.status_code == 200
    assert get(scene.client(new.value), "/v1/status").status_code == 403


def test_a_site_is_trusted_only_after_a_pin_that_worked(scene: BridgeScene) -> None:
    new = "https://new.example"
    page = open_page(scene, new, scene.challenge())
    answer(scene, page, pin="0000", remember="on")  # ticked, but the PIN was wrong
    answer(scene, page, action="decline")
    assert outcome(scene.client(new), page)["status"] == "declined"
    assert scene.consents.list(now=dt.datetime.now(dt.UTC)) == []
    assert get(scene.client(new), "/v1/status").status_code == 403


def test_a_withdrawn_approval_closes_the_sites_event_streams(scene: BridgeScene) -> None:
    new = Origin.parse("https://new.example")
    scene.consents.grant(new, now=dt.datetime.now(dt.UTC), days=30)
    opened, ended = threading.Event(), threading.Event()

    def follow() -> None:
        """The site's page: its stream of card events, read to its end (in the
        thread that asked for it, as a server's worker does)."""
        response = get(scene.client(new.value), "/v1/events", buffered=False)
        assert response.status_code == 200
        opened.set()
        for _chunk in response.response:
            pass
        ended.set()

    threading.Thread(target=follow, daemon=True).start()
    assert opened.wait(timeout=5)
    assert not ended.wait(timeout=APPROVAL_CHECK_SECONDS + 0.5)  # approved: it goes on
    scene.consents.revoke(new)  # as `cardauth-bridge consents revoke` does, from elsewhere
    assert ended.wait(timeout=APPROVAL_CHECK_SECONDS + 3)


# -- logins opened by any site -----------------------------------------------------------


def test_a_site_not_approved_learns_nothing_of_a_login_until_the_professional_answers(
    scene: BridgeScene,
) -> None:
    page, started = start_login(scene, FOREIGN, scene.challenge())
    assert started.status_code == 201
    assert "Access-Control-Allow-Origin" not in started.headers
    path = f"/v1/interactions/{page.request_id}"
    site = scene.client(FOREIGN)
    asked = time.monotonic()
    pending = get(site, f"{path}?wait=5")
    assert time.monotonic() - asked < 1  # answered at once: no timing tells it waits
    reload(scene, page)
    answer(scene, page, pin="0000")  # a wrong PIN is not an answer to the site
    for response in (pending, get(site, path), get(site, f"/v1/interactions/{request_id()}")):
        assert response.status_code == 403
        assert _code(response) == "bridge.origin_forbidden"
        assert "Access-Control-Allow-Origin" not in response.headers
    answer(scene, page, pin="1234")
    done = get(site, path)
    assert done.headers["Access-Control-Allow-Origin"] == FOREIGN
    assert done.get_json()["status"] == "ok"


def test_sites_not_approved_cannot_take_a_trusted_sites_login_place(scene: BridgeScene) -> None:
    for n in range(3 * MAX_UNOPENED):
        _page, started = start_login(scene, f"https://s{n}.evil.example", scene.challenge())
        assert started.status_code == 201
    challenge = scene.challenge()
    page = open_page(scene, TELESERVICE.value, challenge)
    answer(scene, page, pin="1234")
    scene.verify(outcome(scene.client(), page)["assertion"], challenge)


def test_a_new_login_of_the_site_replaces_the_one_waiting(scene: BridgeScene) -> None:
    first = open_page(scene, TELESERVICE.value, scene.challenge())
    second = open_page(scene, TELESERVICE.value, scene.challenge())
    replaced = outcome(scene.client(), first)
    assert (replaced["status"], replaced["error"]["code"]) == ("failed", "bridge.replaced")
    answer(scene, first, pin="1234")  # typed in the old window: nothing reaches the card
    assert 'data-code="bridge.replaced"' in first.html
    assert scene.card(0).pins_presented == 0
    answer(scene, second, pin="1234")
    assert outcome(scene.client(), second)["status"] == "ok"
