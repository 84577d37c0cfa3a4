"""The bridge's side of CIBA (webbridge.ciba) against the real provider in this
process (Flask's test client as its HTTP): enrolment with a card assertion, the
requests listed, approval and decline, a provider that forgot the bridge; what a
provider lists that could hide what the page says is not shown; the settings that
name the providers followed. Cards: the simulated cards' keys (the real card
layer, pcscd and Chromium: tests/test_bridge_ciba.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from cardauth.cards.session import Keypad
from cardauth.errors import CardRemoved
from cardauth.oidc.app import create_app
from cardauth.oidc.store import MemoryStore
from cardauth.origins import Origin
from tests.bridge_kit import BRIDGE, TELESERVICE, BridgeScene, start_bridge
from tests.oidc_kit import DOCTOR, ISSUER, PROVIDER_ORIGIN, ProviderFiles, card_assertion
from tests.test_oidc_ciba import CIBA_CLIENTS, CIBA_SECRET, GRANT, Clock
from webbridge.app import create_app as create_bridge
from webbridge.ciba import Follower, Followers, Provider, _waiting
from webbridge.config import config_from_settings
from webbridge.errors import BridgeConfigError, CibaRequestGone, ProviderRefused

PIN = "1234"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ProviderFiles:
    return ProviderFiles(tmp_path_factory.mktemp("provider")).write(CIBA_CLIENTS)


class Scene:
    """The provider, a follower of it, and a desktop software's backend."""

    def __init__(self, files: ProviderFiles) -> None:
        self.store = MemoryStore()
        self.clock = Clock()
        app = create_app(files.settings(), store=self.store, clock=self.clock.now)
        self.http = app.test_client()
        provider = Provider(ISSUER, Origin.parse(PROVIDER_ORIGIN))
        self.follower = Follower(provider, self.post)
        self.pins: list[str | Keypad] = []

    def post(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self.http.post(url.removeprefix(PROVIDER_ORIGIN), json=dict(body),
                                base_url=PROVIDER_ORIGIN)  # fmt: skip
        found: dict[str, Any] = answer.get_json()
        if answer.status_code != 200:
            raise ProviderRefused("refused", provider_code=found["error"]["code"])
        return found

    def card(self, origin: Origin, challenge: str, pin: str | Keypad) -> str:
        """The card as the bridge's card layer would answer: the PIN, then a signature."""
        self.pins.append(pin)
        return card_assertion(challenge, origin.value)

    def start(self, message: str = "Cabinet 12") -> str:
        form = {"scope": "openid", "login_hint": DOCTOR, "binding_message": message}
        answer = self.http.post(f"{ISSUER.removeprefix(PROVIDER_ORIGIN)}/protocol/openid-connect"
                                "/ext/ciba/auth", data=form, base_url=PROVIDER_ORIGIN,
                                auth=("desktop", CIBA_SECRET))  # fmt: skip
        assert answer.status_code == 200, answer.get_json()
        return str(answer.get_json()["auth_req_id"])

    def poll(self, auth_req_id: str) -> dict[str, Any]:
        self.clock.seconds += 1.5
        data = {"grant_type": GRANT, "auth_req_id": auth_req_id}
        answer = self.http.post(f"{ISSUER.removeprefix(PROVIDER_ORIGIN)}/protocol/openid-connect"
                                "/token", data=data, base_url=PROVIDER_ORIGIN,
                                auth=("desktop", CIBA_SECRET))  # fmt: skip
        found: dict[str, Any] = answer.get_json()
        return found


@pytest.fixture
def scene(files: ProviderFiles) -> Scene:
    return Scene(files)


def test_a_follower_enrols_with_the_card_and_lists_the_requests(scene: Scene) -> None:
    follower = scene.follower
    follower.refresh()
    assert follower.waiting() == []  # not enrolled: nothing asked
    assert follower.enrol(scene.card, PIN) == DOCTOR
    assert scene.pins == [PIN]
    scene.start("Cabinet 12")
    follower.refresh()
    [waiting] = follower.waiting()
    assert waiting.binding_message == "Cabinet 12"
    assert waiting.client_name == "Logiciel de cabinet"
    assert waiting.scopes == ("openid",)


def test_an_approval_gives_the_client_its_tokens(scene: Scene) -> None:
    scene.follower.enrol(scene.card, PIN)
    auth_req_id = scene.start()
    assert scene.poll(auth_req_id)["error"] == "authorization_pending"
    scene.follower.refresh()
    scene.follower.approve(scene.follower.waiting()[0].ref, scene.card, PIN)
    assert "id_token" in scene.poll(auth_req_id)
    assert scene.follower.waiting() == []


def test_a_decline_answers_access_denied(scene: Scene) -> None:
    scene.follower.enrol(scene.card, PIN)
    auth_req_id = scene.start()
    scene.follower.refresh()
    scene.follower.decline(scene.follower.waiting()[0].ref)
    assert scene.poll(auth_req_id)["error"] == "access_denied"
    with pytest.raises(CibaRequestGone):
        scene.follower.decline("x" * 22)


def test_a_card_that_fails_sends_nothing(scene: Scene) -> None:
    scene.follower.enrol(scene.card, PIN)
    auth_req_id = scene.start()
    scene.follower.refresh()
    ref = scene.follower.waiting()[0].ref

    def pulled(origin: Origin, challenge: str, pin: str | Keypad) -> str:
        raise CardRemoved("the card left the reader")

    with pytest.raises(CardRemoved):
        scene.follower.approve(ref, pulled, PIN)
    assert scene.poll(auth_req_id)["error"] == "authorization_pending"
    assert [w.ref for w in scene.follower.waiting()] == [ref]  # still to answer


def test_a_provider_that_forgot_the_bridge_asks_for_a_new_enrolment(scene: Scene) -> None:
    scene.follower.enrol(scene.card, PIN)
    scene.store.delete(f"bridge:{scene.follower.key.thumbprint}")
    scene.follower.refresh()
    assert scene.follower.idnat is None
    assert scene.follower.problem is not None
    assert scene.follower.problem.context["provider_code"] == "ciba.bridge_unknown"


@pytest.mark.parametrize(
    "change",
    [
        {"binding_message": "Cabinet \u202e21"},
        {"binding_message": "Cabinet\n12"},
        {"client_name": "\u200bLogiciel"},
        {"client_name": None},
        {"ref": "short"},
        {"challenge": 12},
        {"expires_in": "120"},
        {"expires_in": 0},
        {"scope": ["openid"]},
    ],
)
def test_a_listing_that_could_mislead_the_page_is_not_shown(change: dict[str, Any]) -> None:
    listed = {
        "ref": "r" * 22,
        "client_id": "desktop",
        "client_name": "Logiciel",
        "binding_message": "Cabinet 12",
        "scope": "openid",
        "challenge": "c" * 43,
        "expires_in": 120,
    }
    assert _waiting(listed, 0.0) is not None
    assert _waiting(listed | change, 0.0) is None


def test_the_providers_followed_are_named_by_issuer() -> None:
    config = config_from_settings({"oidc_providers": [ISSUER], "allow_development_origins": False})
    assert config.oidc_providers == (Provider(ISSUER, Origin.parse(PROVIDER_ORIGIN)),)
    more = config.with_overrides(oidc_providers=[ISSUER, "https://other.example/realm"])
    assert [p.issuer for p in more.oidc_providers] == [ISSUER, "https://other.example/realm"]


@pytest.mark.parametrize(
    "issuer",
    [
        "https://idp.example",  # an origin, not an issuer
        "http://idp.example/realm",  # not https
        "https://idp.example/realm?x=1",
        "idp.example/realm",
        json.dumps("https://idp.example/realm"),
    ],
)
def test_a_provider_that_is_not_an_issuer_is_refused(issuer: str) -> None:
    with pytest.raises(BridgeConfigError):
        config_from_settings({"oidc_providers": [issuer]})


# -- the bridge's pages, on virtual readers in this process --------------------------------


@pytest.fixture
def bridge_app(scene: Scene, tmp_path: Path) -> Iterator[tuple[Flask, BridgeScene]]:
    bridge = start_bridge(tmp_path, personas=("doctor",))
    app = create_bridge(
        config=bridge.config,
        cards=bridge.cards,
        consents=bridge.consents,
        followers=Followers([scene.follower]),
    )
    try:
        yield app, bridge
    finally:
        bridge.close()


def form(app: Flask, origin: str | None, path: str, **fields: str) -> TestResponse:
    client = app.test_client()
    if origin is not None:
        client.environ_base["HTTP_ORIGIN"] = origin
    token = app.extensions["cardauth-bridge"].form_token
    return client.post(path, data={"token": token, **fields}, base_url=BRIDGE)


def test_the_bridge_s_ciba_forms_are_its_own_and_an_approval_takes_the_pin(
    scene: Scene, bridge_app: tuple[Flask, BridgeScene]
) -> None:
    app, bridge = bridge_app
    for origin in ("https://elsewhere.example", TELESERVICE.value, None):
        assert form(app, origin, "/ciba/0/enrol", pin=PIN).status_code == 403
    assert bridge.card(0).pins_presented == 0
    assert form(app, BRIDGE, "/ciba/0/enrol", pin=PIN).status_code == 303
    french = app.test_client().get("/ciba", base_url=BRIDGE).get_data(as_text=True)
    assert DOCTOR in french
    assert "Demandes des logiciels" in french
    english = app.test_client().get("/ciba?lang=en", base_url=BRIDGE).get_data(as_text=True)
    assert "Requests from software" in english

    auth_req_id = scene.start("Cabinet 77")
    scene.follower.refresh()
    ref = scene.follower.waiting()[0].ref
    page = app.test_client().get(f"/ciba/0/{ref}", base_url=BRIDGE).get_data(as_text=True)
    assert "Cabinet 77" in page
    assert "Logiciel de cabinet" in page
    presented = bridge.card(0).pins_presented
    assert form(app, "https://elsewhere.example", f"/ciba/0/{ref}", action="allow",
                pin=PIN).status_code == 403  # fmt: skip
    without_pin = form(app, BRIDGE, f"/ciba/0/{ref}", action="allow")
    assert 'data-code="pin.format"' in without_pin.get_data(as_text=True)
    assert bridge.card(0).pins_presented == presented  # no PIN state a login left is used
    assert scene.poll(auth_req_id)["error"] == "authorization_pending"
    approved = form(app, BRIDGE, f"/ciba/0/{ref}", action="allow", pin=PIN)
    assert 'id="outcome"' in approved.get_data(as_text=True)
    assert "id_token" in scene.poll(auth_req_id)
