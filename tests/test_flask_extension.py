"""The Flask extension: challenge per browser session, card login, protected views,
logout, patient lookups co-signed by the Vitale card, and the audit trail."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from cardauth.audit import AuditConfigError, AuditLog
from cardauth.certificates import Professional
from cardauth.flask import (
    CardAuth,
    current_professional,
    extension,
    login_required,
    login_time,
)
from cardauth.trust import TrustConfigError
from cardauth.verify import Verifier
from tests.verifier_kit import NOW, ORIGIN, Forge, crl_checker, trust_store

KEY = bytes(range(32))


def make_app(
    tmp_path: Path, clock: Callable[[], dt.datetime] = lambda: NOW, **config: object
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        CARDAUTH_ORIGINS=[ORIGIN.value],
        CARDAUTH_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        CARDAUTH_PSEUDONYM_KEY=KEY,
        **config,
    )
    CardAuth(app, verifier=Verifier(trust=trust_store(), revocation=crl_checker()), clock=clock)

    @app.get("/patients")
    @login_required
    def patients() -> dict[str, Any]:
        professional = current_professional()
        assert professional is not None
        return {"who": professional["idnat"]}

    @app.post("/lookup")
    @login_required
    def lookup() -> dict[str, Any]:
        patient = extension().verify_lookup((app_json() or {}).get("assertion"))
        return {"patient": patient.to_dict()}

    @app.post("/lookup-answered")
    @login_required
    def lookup_answered() -> dict[str, Any]:
        with extension().patient_lookup((app_json() or {}).get("assertion")) as lookup:
            if lookup.patient.surname == "LEROY":
                raise RuntimeError("the service's own store failed")
            lookup.answer = "declared"
        return {"patient": lookup.patient.to_dict()}

    return app


def app_json() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


def challenge(client: FlaskClient) -> str:
    response = client.post("/cardauth/challenge", json={})
    assert response.status_code == 200
    return str(response.get_json()["challenge"])


def login(client: FlaskClient, forge: Forge | None = None) -> Any:
    token = (forge or Forge()).assertion(challenge(client))
    return client.post("/cardauth/login", json={"assertion": token})


def test_protected_view_without_login_gives_nothing(app: Flask) -> None:
    response = app.test_client().get("/patients")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "login.required"
    assert "899700420013" not in response.get_data(as_text=True)


def test_card_login_then_the_view(app: Flask) -> None:
    client = app.test_client()
    response = login(client)
    assert response.status_code == 200
    assert response.get_json()["professional"]["idnat"] == "899700420013"
    assert client.get("/patients").get_json() == {"who": "899700420013"}


def test_logout_ends_access(app: Flask) -> None:
    client = app.test_client()
    login(client)
    assert client.post("/cardauth/logout", json={}).status_code == 200
    assert client.get("/patients").status_code == 401


def test_an_assertion_made_in_another_browser_cannot_log_this_one_in(app: Flask) -> None:
    attacker, victim = app.test_client(), app.test_client()
    token = Forge().assertion(challenge(attacker))  # the attacker's card, the attacker's session
    challenge(victim)
    response = victim.post("/cardauth/login", json={"assertion": token})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "challenge.unknown"
    assert victim.get("/patients").status_code == 401


def test_replay_is_refused(app: Flask) -> None:
    client = app.test_client()
    token = Forge().assertion(challenge(client))
    assert client.post("/cardauth/login", json={"assertion": token}).status_code == 200
    again = client.post("/cardauth/login", json={"assertion": token})
    assert again.status_code == 401


def test_login_needs_json(app: Flask) -> None:
    client = app.test_client()
    for response in (
        client.post("/cardauth/challenge", data="x"),
        client.post("/cardauth/login", data={"assertion": "x"}),
    ):
        assert response.status_code == 415
        assert response.get_json()["error"]["code"] == "request.json"  # typed, not a page


def test_an_older_cookie_cannot_try_its_challenge_again(app: Flask) -> None:
    """The challenge leaves the cookie at the first try; a copy of the cookie from
    before that try finds it gone from the store too."""
    client = app.test_client()
    value = challenge(client)
    cookie = client.get_cookie("session")
    assert cookie is not None
    forged = Forge().assertion(value, key=Forge(cps_persona="pharmacist").cps_key)
    first = client.post("/cardauth/login", json={"assertion": forged})
    assert first.get_json()["error"]["code"] == "assertion.signature"
    client.set_cookie("session", cookie.value)  # the copy made before the try
    honest = client.post("/cardauth/login", json={"assertion": Forge().assertion(value)})
    assert honest.status_code == 401
    assert honest.get_json()["error"]["code"] == "challenge.unknown"


def test_hostile_bodies_get_typed_errors(app: Flask) -> None:
    client = app.test_client()
    nested = "[" * 100_000 + "]" * 100_000
    headers = {"Content-Type": "application/json"}

    def code(path: str, body: str) -> tuple[int, str]:
        response = client.post(path, data=body, headers=headers)
        return response.status_code, response.get_json()["error"]["code"]

    malformed = (400, "request.malformed")
    assert code("/cardauth/challenge", "[" * 50_000) == malformed
    too_big = json.dumps({"assertion": "a" * 70_000})
    assert code("/cardauth/login", too_big) == (413, "request.too_large")
    assert code("/cardauth/login", nested[:60_000]) == malformed
    assert code("/cardauth/login", '["a"]') == malformed
    assert code("/cardauth/challenge", "{") == malformed
    assert client.post("/cardauth/challenge", data="", headers=headers).status_code == 200


def test_a_login_lasts_a_working_day(tmp_path: Path) -> None:
    now = [NOW]
    app = make_app(tmp_path, clock=lambda: now[0])
    client = app.test_client()
    assert login(client).status_code == 200
    now[0] = NOW + dt.timedelta(hours=9, minutes=59)
    assert client.get("/patients").status_code == 200
    now[0] = NOW + dt.timedelta(hours=10, minutes=1)
    response = client.get("/patients")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "login.required"
    now[0] = NOW - dt.timedelta(minutes=10)  # a clock set back far does not extend it either
    assert client.get("/patients").status_code == 401


def test_the_session_length_is_configurable(tmp_path: Path) -> None:
    now = [NOW]
    app = make_app(tmp_path, clock=lambda: now[0], CARDAUTH_SESSION_MAX_HOURS=1)
    client = app.test_client()
    assert login(client).status_code == 200
    now[0] = NOW + dt.timedelta(minutes=61)
    assert client.get("/patients").status_code == 401


def test_refusals_speak_french_by_default(app: Flask) -> None:
    client = app.test_client()
    response = login(client, Forge(cps_persona="cps-revoked"))
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "revocation.revoked"
    assert "révoquée" in error["message"]
    english = app.test_client()
    token = Forge(cps_persona="cps-revoked").assertion(challenge(english))
    response = english.post(
        "/cardauth/login", json={"assertion": token}, headers={"Accept-Language": "en"}
    )
    assert "revoked" in response.get_json()["error"]["message"]


def test_patient_lookup_with_the_vitale_card_is_audited_with_a_pseudonym(
    app: Flask, tmp_path: Path
) -> None:
    client = app.test_client()
    login(client)
    forge = Forge(vitale_persona="parent")
    current = challenge(client)
    token = forge.assertion(current, vitale=forge.vitale(current))
    response = client.post("/lookup", json={"assertion": token})
    assert response.status_code == 200
    assert response.get_json()["patient"]["nir"] == "178016912304552"
    trail = (tmp_path / "audit.jsonl").read_text()
    assert "178016912304552" not in trail
    audit = AuditLog(tmp_path / "audit.jsonl", pseudonym_key=KEY)
    lookups = audit.lookups_by("899700420013")
    assert [entry["patient"] for entry in lookups] == [audit.pseudonym("178016912304552")]
    assert [json.loads(line)["event"] for line in trail.splitlines()] == ["login", "patient_lookup"]


def lookup_token(client: FlaskClient, vitale: str = "patient", cps: str = "doctor") -> str:
    forge = Forge(cps_persona=cps, vitale_persona=vitale)
    current = challenge(client)
    return forge.assertion(current, vitale=forge.vitale(current))


def trail_entries(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def test_a_lookup_is_audited_with_what_the_service_answered(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    login(client)
    response = client.post("/lookup-answered", json={"assertion": lookup_token(client)})
    assert response.status_code == 200
    entry = trail_entries(tmp_path)[-1]
    assert (entry["event"], entry["outcome"], entry["answer"]) == (
        "patient_lookup",
        "verified",
        "declared",
    )


def test_a_lookup_the_service_failed_to_answer_is_still_audited(app: Flask, tmp_path: Path) -> None:
    app.testing = False  # the view's error becomes a 500, as in production
    client = app.test_client()
    login(client)
    response = client.post("/lookup-answered", json={"assertion": lookup_token(client, "parent")})
    assert response.status_code == 500
    entry = trail_entries(tmp_path)[-1]
    assert (entry["event"], entry["outcome"]) == ("patient_lookup", "verified")
    assert "answer" not in entry


def test_verify_lookup_writes_the_entries_it_always_wrote(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    login(client)
    client.post("/lookup", json={"assertion": lookup_token(client)})
    entry = trail_entries(tmp_path)[-1]
    assert set(entry) == {"at", "event", "professional", "patient", "outcome"}
    assert entry["outcome"] == "verified"


def test_lookup_attempts_include_the_refused_ones(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    login(client)
    client.post("/lookup", json={"assertion": lookup_token(client)})
    client.post("/lookup", json={"assertion": Forge().assertion(challenge(client))})  # no Vitale
    client.post("/lookup", json={"assertion": lookup_token(client, cps="pharmacist")})
    audit = AuditLog(tmp_path / "audit.jsonl", pseudonym_key=KEY)
    attempts = audit.lookup_attempts_by("899700420013")
    assert [(e["event"], e.get("code")) for e in attempts] == [
        ("patient_lookup", None),
        ("patient_lookup_refused", "vitale.missing"),
        ("patient_lookup_refused", "lookup.other_professional"),
    ]
    assert len(audit.lookups_by("899700420013")) == 1  # the ones let through, as before
    assert audit.lookup_attempts_by("899700420039") == []  # the pharmacist looked up nothing


def test_lookup_without_the_vitale_card_is_refused(app: Flask) -> None:
    client = app.test_client()
    login(client)
    response = client.post("/lookup", json={"assertion": Forge().assertion(challenge(client))})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "vitale.missing"


def test_lookup_signed_by_another_professional_is_refused(app: Flask, tmp_path: Path) -> None:
    client = app.test_client()
    login(client)
    other = Forge(cps_persona="pharmacist")
    current = challenge(client)
    token = other.assertion(current, vitale=other.vitale(current))
    response = client.post("/lookup", json={"assertion": token})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "lookup.other_professional"
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert events[-1] == {
        "at": events[-1]["at"],
        "event": "patient_lookup_refused",
        "code": "lookup.other_professional",
        "origin": None,
        "professional": "899700420013",  # the one logged in, whose lookup was refused
    }
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "sent",
    [
        "285037511542370",  # a NIR planted in the trail
        "https://teleservice.example/285037511542370",  # an origin has no path
        "patient 285037511542370 Jeanne ROBIN",
        "null",
        "HTTPS://TELESERVICE.EXAMPLE",  # not as a browser serialises an origin
        "https://x" + "a" * 300,
    ],
)
def test_the_audit_trail_keeps_an_origin_header_only_when_it_is_an_origin(
    app: Flask, tmp_path: Path, sent: str
) -> None:
    app.test_client().post("/cardauth/login", json={"assertion": "x"}, headers={"Origin": sent})
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["event"] == "login_refused"
    assert entry["origin"] == "invalid"


@pytest.mark.parametrize(
    "sent",
    ["https://elsewhere.example", "https://teleservice.example:8443", "http://127.0.0.1:8450"],
)
def test_the_audit_trail_keeps_the_origin_of_a_refused_request(
    app: Flask, tmp_path: Path, sent: str
) -> None:
    app.test_client().post("/cardauth/login", json={"assertion": "x"}, headers={"Origin": sent})
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert entry["origin"] == sent  # who tried, for the one who reads the trail


def test_a_short_pseudonym_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AuditConfigError):
        AuditLog(tmp_path / "a.jsonl", pseudonym_key=b"short")


def test_pseudonyms_depend_on_the_key(tmp_path: Path) -> None:
    first = AuditLog(tmp_path / "a.jsonl", pseudonym_key=KEY)
    second = AuditLog(tmp_path / "b.jsonl", pseudonym_key=bytes(32))
    nir = "178016912304552"
    assert first.pseudonym(nir) == first.pseudonym(nir)
    assert first.pseudonym(nir) != second.pseudonym(nir)
    assert nir not in first.pseudonym(nir)


@pytest.mark.parametrize("seconds", ["300", 0, -5, 86_400, True])
def test_a_challenge_lifetime_that_would_break_logins_is_refused_at_start(
    tmp_path: Path, seconds: object
) -> None:
    with pytest.raises(TrustConfigError, match="CARDAUTH_CHALLENGE_LIFETIME_SECONDS"):
        make_app(tmp_path, CARDAUTH_CHALLENGE_LIFETIME_SECONDS=seconds)


def test_a_session_started_for_a_login_verified_elsewhere_is_a_card_login_s(
    tmp_path: Path,
) -> None:
    """``start_session``: what an OpenID Connect relying party calls after the ID token
    of a provider that did the card login; the same session, the same limits."""
    now = [NOW]
    app = make_app(tmp_path, clock=lambda: now[0])
    professional = Professional(
        idnat="899700420013",
        identifier_type="RPPS",
        identifier="99700420013",
        surname="FONTAINE",
        given_name="Élise",
        card_type="CPS",
        profession="Médecin",
        profession_code="10",
        certificate_serial="",
    )

    @app.get("/elsewhere")
    def elsewhere() -> dict[str, Any]:
        extension().start_session(professional)
        return {"at": login_time()}

    client = app.test_client()
    assert client.get("/patients").status_code == 401
    assert client.get("/elsewhere").get_json() == {"at": NOW.timestamp()}
    assert client.get("/patients").get_json() == {"who": professional.idnat}
    now[0] = NOW + dt.timedelta(hours=11)  # past CARDAUTH_SESSION_MAX_HOURS
    assert client.get("/patients").status_code == 401
