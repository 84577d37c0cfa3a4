"""CIBA in poll mode (OpenID Connect CIBA Core 1.0) at PSC's ``…/ext/ciba/auth``, in
one process (Flask's test client): the client's requests and polls with every error
the specification names, and the professional's bridge (enrolment with the card,
signed calls, approval with a card assertion over the request's challenge, decline).
Card assertions are signed with the simulated cards' keys and checked by the real
verifier against the test PKI; the ID token is checked with joserfc against the
provider's published keys. The real bridge, pcscd and Chromium: test_bridge_ciba.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from joserfc import jwk, jws, jwt
from werkzeug.test import TestResponse

from cardauth.oidc.app import create_app
from cardauth.oidc.store import MemoryStore
from tests.oidc_kit import (
    CERTS,
    DOCTOR,
    ISSUER,
    PROVIDER_ORIGIN,
    SECRET,
    TOKEN,
    USERINFO,
    ProviderFiles,
    card_assertion,
)

CIBA_SECRET = "secret-of-the-desktop-software-0123456789"
CIBA_CLIENTS = f"""
[[clients]]
client_id = "desktop"
client_name = "Logiciel de cabinet"
client_secret = "{CIBA_SECRET}"
token_endpoint_auth_method = "client_secret_basic"
backchannel_token_delivery_mode = "poll"

[[clients]]
client_id = "other-desktop"
client_secret = "{CIBA_SECRET}-other"
token_endpoint_auth_method = "client_secret_post"
backchannel_token_delivery_mode = "poll"
"""
OIDC = f"{ISSUER}/protocol/openid-connect".removeprefix(PROVIDER_ORIGIN)
CIBA = f"{OIDC}/ext/ciba/auth"
BRIDGE = f"{OIDC}/ext/ciba/bridge"
GRANT = "urn:openid:params:grant-type:ciba"
NURSE = "0991031014"  # simulator/personas/nurse.toml


class Clock:
    """The provider's time and its memory store's, moved by the test."""

    def __init__(self) -> None:
        self.seconds = dt.datetime.now(dt.UTC).timestamp()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.seconds, dt.UTC)

    def time(self) -> float:
        return self.seconds


@dataclass
class Provider:
    app: Flask
    clock: Clock

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.app.test_client().post(path, base_url=PROVIDER_ORIGIN, **kwargs)

    def get(self, path: str) -> TestResponse:
        return self.app.test_client().get(path, base_url=PROVIDER_ORIGIN)


@dataclass
class BridgeKey:
    """What a professional's bridge holds: its key, enrolled by a card login."""

    provider: Provider
    key: jwk.ECKey = field(default_factory=lambda: jwk.ECKey.generate_key("P-256"))

    def enrol(self, persona: str = "doctor") -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        challenge = self.provider.post(f"{BRIDGE}/challenge", json={"key": public}).get_json()
        body = {
            "key": public,
            "challenge": challenge["challenge"],
            "assertion": card_assertion(challenge["challenge"], persona=persona),
        }
        answer = self.provider.post(f"{BRIDGE}/enrol", json=body)
        assert answer.status_code == 200, answer.get_json()
        return dict(answer.get_json())

    def signed(self, name: str, address: str | None = None, **members: Any) -> dict[str, str]:
        payload = {
            "htu": address or f"{PROVIDER_ORIGIN}{BRIDGE}/{name}",
            "iat": int(self.provider.clock.time()),
            "jti": secrets.token_urlsafe(16),
            **members,
        }
        header = {"alg": "ES256", "typ": "cardauth-bridge+jwt", "kid": self.key.thumbprint()}
        return {"request": jws.serialize_compact(header, json.dumps(payload), self.key)}

    def call(self, name: str, **members: Any) -> TestResponse:
        return self.provider.post(f"{BRIDGE}/{name}", json=self.signed(name, **members))

    def pending(self) -> list[dict[str, Any]]:
        answer = self.call("pending")
        assert answer.status_code == 200, answer.get_json()
        return list(answer.get_json()["requests"])

    def approve(self, waiting: dict[str, Any], persona: str = "doctor") -> TestResponse:
        assertion = card_assertion(waiting["challenge"], persona=persona)
        return self.call("answer", ref=waiting["ref"], decision="approve", assertion=assertion)


def basic(client_id: str = "desktop", secret: str = CIBA_SECRET) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def ciba_params(**changes: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "scope": "openid scope_all",
        "login_hint": DOCTOR,
        "binding_message": "Cabinet A-42",
        "acr_values": "eidas1",
        "channel": "CARD",
    }
    params.update(changes)
    return {name: value for name, value in params.items() if value is not None}


def start(provider: Provider, **changes: str | None) -> TestResponse:
    return start_as(provider, basic(), **changes)


def start_as(provider: Provider, headers: dict[str, str], **changes: str | None) -> TestResponse:
    return provider.post(CIBA, data=ciba_params(**changes), headers=headers)


def started(provider: Provider, **changes: str | None) -> dict[str, Any]:
    answer = start(provider, **changes)
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def poll(
    provider: Provider, auth_req_id: str, headers: dict[str, str] | None = None
) -> TestResponse:
    data = {"grant_type": GRANT, "auth_req_id": auth_req_id}
    return provider.post(TOKEN, data=data, headers=basic() if headers is None else headers)


def error_of(answer: TestResponse) -> str:
    return str(answer.get_json()["error"])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ProviderFiles:
    return ProviderFiles(tmp_path_factory.mktemp("provider")).write(CIBA_CLIENTS)


def make_provider(files: ProviderFiles, **settings: Any) -> Provider:
    clock = Clock()
    app = create_app(files.settings(**settings), store=MemoryStore(clock.time), clock=clock.now)
    return Provider(app, clock)


@pytest.fixture
def provider(files: ProviderFiles) -> Provider:
    return make_provider(files)


@pytest.fixture
def bridge(provider: Provider) -> BridgeKey:
    key = BridgeKey(provider)
    key.enrol()
    return key


# -- discovery ---------------------------------------------------------------------------


def test_discovery_advertises_ciba_in_poll_mode(provider: Provider) -> None:
    found = provider.get(f"{ISSUER.removeprefix(PROVIDER_ORIGIN)}/.well-known/openid-configuration")
    document = found.get_json()
    assert document["backchannel_authentication_endpoint"] == f"{PROVIDER_ORIGIN}{CIBA}"
    assert document["backchannel_token_delivery_modes_supported"] == ["poll"]
    assert document["backchannel_user_code_parameter_supported"] is False
    assert GRANT in document["grant_types_supported"]


# -- the flow ----------------------------------------------------------------------------


def test_an_approved_request_gives_the_polling_client_its_tokens(
    provider: Provider, bridge: BridgeKey
) -> None:
    answer = started(provider)
    assert answer["expires_in"] == 120
    assert answer["interval"] == 1
    assert len(answer["auth_req_id"]) == 43  # 32 random bytes
    assert error_of(poll(provider, answer["auth_req_id"])) == "authorization_pending"

    waiting = bridge.pending()
    assert len(waiting) == 1
    assert waiting[0]["binding_message"] == "Cabinet A-42"
    assert waiting[0]["client_name"] == "Logiciel de cabinet"
    assert waiting[0]["scope"] == "openid scope_all"
    approved = bridge.approve(waiting[0])
    assert approved.status_code == 200, approved.get_json()
    assert bridge.pending() == []

    provider.clock.seconds += 1
    tokens = poll(provider, answer["auth_req_id"])
    assert tokens.status_code == 200, tokens.get_json()
    body = tokens.get_json()
    assert tokens.headers["Cache-Control"] == "no-store"
    keys = jwk.KeySet.import_key_set(provider.get(CERTS).get_json())
    claims = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == ["desktop"]
    assert claims["sub"] == claims["SubjectNameID"] == DOCTOR
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["sc", "pin", "mfa", "hwk"]
    assert "nonce" not in claims
    assert claims["auth_time"] == int(provider.clock.time()) - 1
    assert "at_hash" in claims


def test_the_access_token_reads_userinfo(provider: Provider, bridge: BridgeKey) -> None:
    answer = started(provider)
    bridge.approve(bridge.pending()[0])
    tokens = poll(provider, answer["auth_req_id"]).get_json()
    found = provider.app.test_client().get(
        USERINFO,
        base_url=PROVIDER_ORIGIN,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert found.status_code == 200
    assert found.get_json()["preferred_username"] == DOCTOR


def test_an_auth_req_id_gives_tokens_once(provider: Provider, bridge: BridgeKey) -> None:
    answer = started(provider)
    bridge.approve(bridge.pending()[0])
    assert poll(provider, answer["auth_req_id"]).status_code == 200
    provider.clock.seconds += 2
    again = poll(provider, answer["auth_req_id"])
    assert again.status_code == 400
    assert error_of(again) == "invalid_grant"


def test_polling_faster_than_the_interval_slows_down_by_five_seconds(
    provider: Provider, bridge: BridgeKey
) -> None:
    auth_req_id = started(provider)["auth_req_id"]
    assert error_of(poll(provider, auth_req_id)) == "authorization_pending"
    assert error_of(poll(provider, auth_req_id)) == "slow_down"  # within the second
    provider.clock.seconds += 2  # the old interval (1 s) is past, the new one (6 s) not
    assert error_of(poll(provider, auth_req_id)) == "slow_down"
    provider.clock.seconds += 11.5  # past the interval, 11 s after the second slow_down
    assert error_of(poll(provider, auth_req_id)) == "authorization_pending"


def test_a_request_past_its_expiry_answers_expired_token(
    provider: Provider, bridge: BridgeKey
) -> None:
    auth_req_id = started(provider, requested_expiry="30")["auth_req_id"]
    provider.clock.seconds += 31
    answer = poll(provider, auth_req_id)
    assert answer.status_code == 400
    assert error_of(answer) == "expired_token"
    assert bridge.pending() == []  # nothing left to answer


def test_a_declined_request_answers_access_denied(provider: Provider, bridge: BridgeKey) -> None:
    auth_req_id = started(provider)["auth_req_id"]
    waiting = bridge.pending()[0]
    declined = bridge.call("answer", ref=waiting["ref"], decision="decline")
    assert declined.status_code == 200
    answer = poll(provider, auth_req_id)
    assert answer.status_code == 400
    assert error_of(answer) == "access_denied"
    late = bridge.approve(waiting)  # the first answer stands
    assert late.status_code == 404
    assert late.get_json()["error"]["code"] == "ciba.request_unknown"


def test_another_client_s_auth_req_id_is_invalid_grant(
    provider: Provider, bridge: BridgeKey
) -> None:
    auth_req_id = started(provider)["auth_req_id"]
    bridge.approve(bridge.pending()[0])
    data = {
        "grant_type": GRANT,
        "auth_req_id": auth_req_id,
        "client_id": "other-desktop",
        "client_secret": f"{CIBA_SECRET}-other",
    }
    answer = provider.post(TOKEN, data=data)
    assert answer.status_code == 400
    assert error_of(answer) == "invalid_grant"
    assert poll(provider, auth_req_id).status_code == 200  # still the right client's


def test_an_unknown_auth_req_id_is_invalid_grant(provider: Provider) -> None:
    for unknown in (secrets.token_urlsafe(32), "short", "é" * 43):
        assert error_of(poll(provider, unknown)) == "invalid_grant"


# -- refused requests --------------------------------------------------------------------


@pytest.mark.parametrize("hint", ["", "12345", "8" + "0" * 11, DOCTOR + " ", "1" + DOCTOR[1:]])
def test_a_login_hint_that_is_not_an_idnat_is_unknown_user_id(
    provider: Provider, bridge: BridgeKey, hint: str
) -> None:
    answer = start(provider, login_hint=hint)
    assert answer.status_code == 400
    assert error_of(answer) == "unknown_user_id"


def test_a_professional_no_bridge_follows_is_unknown_user_id(
    provider: Provider, bridge: BridgeKey
) -> None:
    assert error_of(start(provider, login_hint=NURSE)) == "unknown_user_id"


@pytest.mark.parametrize(
    "message",
    [
        None,
        "",
        "   ",
        "x" * 65,
        "Cabinet\nA-42",
        "Cabinet\x00A",
        "Cabinet \u202eA-42",  # right-to-left override
        "Cabinet\u200bA-42",  # zero-width space
        "Cabinet\u00a0A-42",  # a space that is not one
        "Cabinet\ue000",  # private use
        "Cabine\u0301t",  # e and a combining accent: not in normal form C
    ],
)
def test_a_bad_binding_message_is_refused(
    provider: Provider, bridge: BridgeKey, message: str | None
) -> None:
    answer = start(provider, binding_message=message)
    assert answer.status_code == 400
    assert error_of(answer) == "invalid_binding_message"


def test_a_binding_message_in_french_is_accepted(provider: Provider, bridge: BridgeKey) -> None:
    started(provider, binding_message="Dr Lefèvre — poste n° 3")
    assert bridge.pending()[0]["binding_message"] == "Dr Lefèvre — poste n° 3"


def test_a_wrong_client_secret_is_invalid_client(provider: Provider, bridge: BridgeKey) -> None:
    answer = start_as(provider, basic(secret="not-the-secret-of-the-desktop-software"))
    assert answer.status_code == 401
    assert error_of(answer) == "invalid_client"
    assert error_of(start_as(provider, {})) == "invalid_client"


def test_a_client_not_registered_for_ciba_is_unauthorized(
    provider: Provider, bridge: BridgeKey
) -> None:
    answer = start_as(provider, basic("rp-basic", SECRET))
    assert answer.status_code == 400
    assert error_of(answer) == "unauthorized_client"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"scope": "scope_all"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"channel": "MOBILE"}, "invalid_request"),
        ({"acr_values": "eidas2"}, "invalid_request"),
        ({"id_token_hint": "x"}, "invalid_request"),
        ({"client_notification_token": "x"}, "invalid_request"),
        ({"requested_expiry": "5"}, "invalid_request"),
        ({"requested_expiry": "ten"}, "invalid_request"),
    ],
)
def test_requests_ciba_does_not_take_are_refused(
    provider: Provider, bridge: BridgeKey, changes: dict[str, str | None], error: str
) -> None:
    answer = start(provider, **changes)
    assert answer.status_code == 400
    assert error_of(answer) == error


def test_requests_for_one_professional_are_limited(files: ProviderFiles) -> None:
    provider = make_provider(files, ciba_professional_limit="3/minute")
    BridgeKey(provider).enrol()
    for _ in range(3):
        started(provider)
    flood = start(provider)
    assert flood.status_code == 403
    assert error_of(flood) == "access_denied"


def test_requests_waiting_for_one_professional_are_bounded(
    provider: Provider, bridge: BridgeKey
) -> None:
    for _ in range(5):
        started(provider)
    assert error_of(start(provider)) == "access_denied"
    assert len(bridge.pending()) == 5


def test_requests_of_one_client_are_limited(files: ProviderFiles) -> None:
    provider = make_provider(files, ciba_client_limit="2/minute")
    BridgeKey(provider).enrol()
    started(provider)
    started(provider)
    assert error_of(start(provider)) == "access_denied"


# -- the bridge ----------------------------------------------------------------------------


def test_a_bridge_not_enrolled_reads_nothing(provider: Provider, bridge: BridgeKey) -> None:
    started(provider)
    stranger = BridgeKey(provider)
    answer = stranger.call("pending")
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "ciba.bridge_unknown"


def test_another_professional_s_bridge_sees_and_answers_nothing(
    provider: Provider, bridge: BridgeKey
) -> None:
    started(provider)
    nurse = BridgeKey(provider)
    assert nurse.enrol("nurse")["idnat"] == NURSE
    assert nurse.pending() == []
    waiting = bridge.pending()[0]
    answer = nurse.call("answer", ref=waiting["ref"], decision="decline")
    assert answer.status_code == 404


def test_an_approval_signed_by_another_professional_s_card_is_refused(
    provider: Provider, bridge: BridgeKey
) -> None:
    auth_req_id = started(provider)["auth_req_id"]
    answer = bridge.approve(bridge.pending()[0], persona="nurse")
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "ciba.other_professional"
    assert error_of(poll(provider, auth_req_id)) == "authorization_pending"


def test_an_approval_is_a_card_assertion_over_the_request_s_challenge(
    provider: Provider, bridge: BridgeKey
) -> None:
    auth_req_id = started(provider)["auth_req_id"]
    waiting = bridge.pending()[0]
    other = card_assertion(secrets.token_urlsafe(32))
    answer = bridge.call("answer", ref=waiting["ref"], decision="approve", assertion=other)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"].startswith("challenge.")
    foreign = card_assertion(waiting["challenge"], origin="https://elsewhere.example")
    answer = bridge.call("answer", ref=waiting["ref"], decision="approve", assertion=foreign)
    assert answer.status_code in (400, 401)
    assert error_of(poll(provider, auth_req_id)) == "authorization_pending"


def test_a_bridge_call_is_bound_to_its_address_time_and_once(
    provider: Provider, bridge: BridgeKey
) -> None:
    elsewhere = bridge.signed("pending", address=f"{PROVIDER_ORIGIN}{BRIDGE}/answer")
    assert provider.post(f"{BRIDGE}/pending", json=elsewhere).status_code == 401
    body = bridge.signed("pending")
    assert provider.post(f"{BRIDGE}/pending", json=body).status_code == 200
    replayed = provider.post(f"{BRIDGE}/pending", json=body)
    assert replayed.status_code == 401
    assert replayed.get_json()["error"]["code"] == "ciba.bridge_proof"
    old = bridge.signed("pending")
    provider.clock.seconds += 61
    assert provider.post(f"{BRIDGE}/pending", json=old).status_code == 401


def test_a_bridge_call_signed_by_another_key_is_refused(
    provider: Provider, bridge: BridgeKey
) -> None:
    impostor = BridgeKey(provider)
    forged = impostor.signed("pending")
    header = {"alg": "ES256", "typ": "cardauth-bridge+jwt", "kid": bridge.key.thumbprint()}
    payload = json.loads(jws.extract_compact(forged["request"].encode()).payload)
    forged = {"request": jws.serialize_compact(header, json.dumps(payload), impostor.key)}
    answer = provider.post(f"{BRIDGE}/pending", json=forged)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "ciba.bridge_proof"


def test_a_bridge_enrols_a_public_p256_key_only(provider: Provider) -> None:
    private = jwk.ECKey.generate_key("P-256").as_dict(private=True)
    answer = provider.post(f"{BRIDGE}/challenge", json={"key": private})
    assert answer.get_json()["error"]["code"] == "ciba.bridge_key"
    rsa = jwk.RSAKey.generate_key(2048).as_dict(private=False)
    assert provider.post(f"{BRIDGE}/challenge", json={"key": rsa}).status_code == 400


def test_an_enrolment_challenge_is_bound_to_the_key_it_was_issued_for(
    provider: Provider,
) -> None:
    first, second = BridgeKey(provider), BridgeKey(provider)
    public = first.key.as_dict(private=False)
    challenge = provider.post(f"{BRIDGE}/challenge", json={"key": public}).get_json()["challenge"]
    body = {
        "key": second.key.as_dict(private=False),
        "challenge": challenge,
        "assertion": card_assertion(challenge),
    }
    answer = provider.post(f"{BRIDGE}/enrol", json=body)
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "challenge.session"
    assert second.call("pending").status_code == 401
