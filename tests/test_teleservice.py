"""« Médecin traitant en ligne » (examples/teleservice): card login only, every
route behind it, lookups co-signed by the patient's Vitale card, rules by card
type, a rate limit per professional, and an audit trail each professional sees
their own part of. Assertions are signed with the simulated cards' keys and
verified by the real verifier against the test PKI's exported trust."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from cardauth.assertion import build_assertion
from cardauth.audit import AuditLog
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import open_card
from cardauth.cards.vitale import VitaleCard
from cardauth.origins import Origin
from examples.teleservice import create_app, oidc
from examples.teleservice.app import PUBLIC_ENDPOINTS
from examples.teleservice.errors import SettingsError
from examples.teleservice.roles import RULES, Disclosure, disclosure_for
from examples.teleservice.store import BUNDLED_SEED, init_db
from simulator.trust_export import export_trust
from simulator.workstation import virtual_workstation
from tests.test_challenges import RedisServer
from tests.verifier_kit import NOW, ORIGIN, Forge

KEY = bytes(range(32))
BRIDGE = "http://127.0.0.1:24790"
DOCTOR = "899700420013"  # simulator/personas/doctor.toml
PHARMACIST = "899700420039"
# Everything the seed knows of patients and doctors: none of it may leak without login.
SECRETS = (
    "285037511542370",
    "178016912304552",
    "263022A00401181",
    "ROBIN",
    "LEROY",
    "SANTONI",
    "FONTAINE",
    "VASSEUR",
    "99700420013",
    "99700735741",
)
CPA_PERSONA = """\
kind = "cps"
description = "Agent administratif d'un établissement (CPA), pour les tests du téléservice"

[card]
serial = "0000100901"

[holder]
card_type = "CPA"
idnat = "899700420088"
civility = "M"
surname = "AUBRY"
given_name = "Denis"

[certificate]
not_before = 2025-01-01
not_after = 2030-12-31
"""


@pytest.fixture(scope="module")
def trust_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``cardauth-sim export-trust DIR`` writes, with CRLs issued at NOW."""
    directory = tmp_path_factory.mktemp("trust")
    export_trust(directory, now=NOW)
    return directory


def config(tmp_path: Path, trust_dir: Path, **changes: object) -> dict[str, Any]:
    db = tmp_path / "teleservice.db"
    if not db.exists():
        init_db(db, BUNDLED_SEED)
    return {
        "SECRET_KEY": "test secret",
        "CARDAUTH_ORIGINS": [ORIGIN.value],
        "CARDAUTH_TRUST_DIR": str(trust_dir),
        "CARDAUTH_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "CARDAUTH_PSEUDONYM_KEY": KEY,
        "TELESERVICE_DB": str(db),
        "TELESERVICE_BRIDGE_URL": BRIDGE,
    } | changes


@pytest.fixture
def app(tmp_path: Path, trust_dir: Path) -> Flask:
    return create_app(config(tmp_path, trust_dir), clock=lambda: NOW)


def challenge(client: FlaskClient) -> str:
    response = client.post("/cardauth/challenge", json={})
    assert response.status_code == 200
    return str(response.get_json()["challenge"])


def login(client: FlaskClient, persona: str = "doctor") -> TestResponse:
    token = Forge(cps_persona=persona).assertion(challenge(client))
    response = client.post("/cardauth/login", json={"assertion": token})
    assert response.status_code == 200, response.get_json()
    return response


def lookup(client: FlaskClient, persona: str = "doctor", vitale: str = "patient") -> TestResponse:
    forge = Forge(cps_persona=persona, vitale_persona=vitale)
    current = challenge(client)
    token = forge.assertion(current, vitale=forge.vitale(current))
    return client.post("/api/lookup", json={"assertion": token})


def logged_in(app: Flask, persona: str = "doctor") -> FlaskClient:
    client = app.test_client()
    login(client, persona)
    return client


def cpa_persona(tmp_path: Path) -> str:
    path = tmp_path / "cpa-agent.toml"
    path.write_text(CPA_PERSONA, encoding="utf-8")
    return str(path)


def every_request(app: Flask) -> Iterator[tuple[Rule, str, str]]:
    """Each registered route with each of its methods, its variables filled in."""
    for rule in app.url_map.iter_rules():
        values = dict.fromkeys(rule.arguments, "teleservice.js")
        path = rule.build(values, append_unknown=False)
        assert path is not None
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method, path[1]


def send(client: FlaskClient, method: str, path: str, **kwargs: Any) -> TestResponse:
    return client.open(path, method=method, **kwargs)


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# -- every route behind the card login --------------------------------------------------


def test_no_route_gives_data_without_a_card_login(app: Flask) -> None:
    """Walks app.url_map: a route added later is covered without touching this test."""
    client = app.test_client()
    seen = 0
    for rule, method, path in every_request(app):
        for body in ({}, {"nir": "285037511542370", "birth_date": "1985-03-14"}):
            response = send(client, method, f"{path}?nir=285037511542370", json=body)
            leaked = [s for s in SECRETS if s in text(response)]
            assert not leaked, (rule.rule, method, leaked)
            if rule.endpoint in PUBLIC_ENDPOINTS:
                continue
            if response.status_code == 302:
                assert method == "GET"
                assert response.headers["Location"].startswith("/?")
            else:
                assert response.status_code == 401, (rule.rule, method)
                assert response.get_json()["error"]["code"] == "login.required"
            seen += 1
    assert seen >= 8  # /api/me, /api/lookup, /api/lookups, /journal, twice each


def test_only_the_login_page_its_assets_and_cardauth_are_public(app: Flask) -> None:
    assert {rule.endpoint for rule in app.url_map.iter_rules()} >= PUBLIC_ENDPOINTS
    assert {
        "index",
        "static",
        "cardauth_js",
        "cardauth.challenge",
        "cardauth.login",
        "cardauth.logout",
    } == PUBLIC_ENDPOINTS
    client = app.test_client()
    assert client.get("/no/such/page").status_code in (302, 401)  # nothing to probe


def test_no_route_takes_a_nir_or_birth_data(app: Flask) -> None:
    # Only the static files' name, and a signed prescription's id: 22 random
    # base64url characters the service made (prescriptions.TOKEN), nothing a person
    # could derive from a patient.
    for rule in app.url_map.iter_rules():
        assert rule.arguments <= {"filename", "token"}, rule.rule


def test_a_html_page_without_login_sends_to_the_login_page(app: Flask) -> None:
    response = app.test_client().get("/journal?lang=en")
    assert response.status_code == 302
    assert response.headers["Location"] == "/?lang=en"


def test_the_login_page_has_no_password_form(app: Flask) -> None:
    page = text(app.test_client().get("/"))
    assert 'id="login"' in page
    assert "<form" not in page
    assert "password" not in page.lower()
    assert "<input" not in page


def test_an_identifier_and_a_password_do_not_log_in(app: Flask) -> None:
    client = app.test_client()
    challenge(client)
    response = client.post(
        "/cardauth/login", json={"adeli": "991038431", "password": "secret", "rpps": DOCTOR}
    )
    assert response.status_code == 401
    assert client.get("/api/me").status_code == 401


# -- card login, logout ---------------------------------------------------------------


def test_cps_login_shows_the_professional_from_the_certificate(app: Flask) -> None:
    client = app.test_client()
    assert login(client).get_json()["professional"]["idnat"] == DOCTOR
    me = client.get("/api/me").get_json()
    assert me["professional"] == {
        "idnat": DOCTOR,
        "surname": "FONTAINE",
        "given_name": "Élise",
        "card_type": "CPS",
        "profession": "Médecin",
    }
    assert me["access"] == "FULL"
    assert me["may_look_up"] is True


def test_logout_ends_access(app: Flask) -> None:
    client = logged_in(app)
    assert client.post("/cardauth/logout", json={}).status_code == 200
    assert client.get("/api/me").status_code == 401
    assert lookup(client).status_code == 401


def test_an_honest_login_and_lookup_with_virtual_cards_in_a_reader(app: Flask) -> None:
    """The cards themselves sign (simulated CPS and Vitale in in-process readers)."""
    workstation, readers = virtual_workstation()
    try:
        workstation.insert(0, "doctor")
        workstation.insert(1, "parent")
        cps, vitale = (open_card(readers, name) for name in readers.slot_names)
        assert isinstance(cps, CpsCard)
        assert isinstance(vitale, VitaleCard)
        cps.verify_pin("1234")
        client = app.test_client()
        origin = Origin.parse(ORIGIN.value)
        token = build_assertion(cps, origin=origin, challenge=challenge(client), now=NOW)
        assert client.post("/cardauth/login", json={"assertion": token}).status_code == 200
        token = build_assertion(
            cps, origin=origin, challenge=challenge(client), now=NOW, vitale=vitale
        )
        result = client.post("/api/lookup", json={"assertion": token}).get_json()
        assert result["patient"] == {"surname": "LEROY", "given_name": "Antoine"}
        assert result["doctor"]["surname"] == "VASSEUR"
    finally:
        workstation.close()


# -- lookups: the patient from the Vitale card only ------------------------------------


def test_a_doctor_sees_the_declared_doctor(app: Flask) -> None:
    response = lookup(logged_in(app))
    assert response.status_code == 200
    result = response.get_json()
    assert result["patient"] == {"surname": "ROBIN", "given_name": "Jeanne"}
    assert (result["registered"], result["declared"], result["access"]) == (True, True, "FULL")
    assert result["doctor"] == {
        "surname": "FONTAINE",
        "given_name": "Élise",
        "practice": "Cabinet du Dr Fontaine",
        "city": "Paris",
        "rpps": "99700420013",
    }
    assert result["declared_on"] == "2021-09-06"
    assert "285037511542370" not in text(response)  # the NIR is not sent back either


def test_a_patient_without_a_declared_doctor(app: Flask) -> None:
    result = lookup(logged_in(app), vitale="patient-corsica").get_json()
    assert (result["registered"], result["declared"]) == (True, False)
    assert "doctor" not in result
    assert result["summary"] == ["Marie-Ange SANTONI n'a pas déclaré de médecin traitant."]


def test_a_patient_unknown_to_the_service(tmp_path: Path, trust_dir: Path) -> None:
    seed = tmp_path / "seed.toml"
    seed.write_text(
        BUNDLED_SEED.read_text(encoding="utf-8").split("[[patients]]")[0], encoding="utf-8"
    )
    init_db(tmp_path / "teleservice.db", seed)
    app = create_app(config(tmp_path, trust_dir), clock=lambda: NOW)
    result = lookup(logged_in(app)).get_json()
    assert (result["registered"], result["declared"]) == (False, False)


def test_a_lookup_without_the_vitale_card_is_refused(app: Flask) -> None:
    client = logged_in(app)
    token = Forge().assertion(challenge(client))
    response = client.post("/api/lookup", json={"assertion": token})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "vitale.missing"
    assert not any(s in text(response) for s in SECRETS)


@pytest.mark.parametrize(
    "body",
    [
        {"nir": "285037511542370"},
        {"sex": 2, "birth_date": "1985-03-14", "birthplace": "75115"},
        {"surname": "ROBIN", "given_name": "Jeanne", "birth_date": "1985-03-14"},
        {"assertion": None, "nir": "285037511542370"},
    ],
)
def test_a_lookup_naming_the_patient_gets_nothing(app: Flask, body: dict[str, Any]) -> None:
    client = logged_in(app)
    challenge(client)
    response = client.post("/api/lookup", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "lookup.fields"
    assert not any(s in text(response) for s in SECRETS)


def test_a_nir_beside_a_valid_assertion_is_refused_not_used(app: Flask) -> None:
    client = logged_in(app)
    forge = Forge(vitale_persona="patient")
    current = challenge(client)
    token = forge.assertion(current, vitale=forge.vitale(current))
    response = client.post("/api/lookup", json={"assertion": token, "nir": "178016912304552"})
    assert response.get_json()["error"]["code"] == "lookup.fields"
    # and a NIR in the query string is not read: the card's patient is the one shown
    response = lookup(logged_in(app), vitale="patient")
    assert response.get_json()["patient"]["surname"] == "ROBIN"
    client = logged_in(app)
    current = challenge(client)
    token = forge.assertion(current, vitale=forge.vitale(current))
    response = client.post("/api/lookup?nir=178016912304552", json={"assertion": token})
    assert response.get_json()["patient"]["surname"] == "ROBIN"


def test_a_lookup_is_json_only(app: Flask) -> None:
    client = logged_in(app)
    response = client.post("/api/lookup", data={"assertion": "x"})
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "request.json"


def test_a_lookup_nested_too_deep_is_refused_not_a_crash(app: Flask) -> None:
    client = logged_in(app)
    deep = "[" * 5_000 + "]" * 5_000
    response = client.post("/api/lookup", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "lookup.fields"


def test_an_oversized_lookup_is_a_typed_refusal(app: Flask) -> None:
    client = logged_in(app)
    response = client.post("/api/lookup", json={"assertion": "a" * 70_000})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request.too_large"


def test_a_lookup_signed_by_another_card_is_refused(app: Flask) -> None:
    client = logged_in(app)
    response = lookup(client, persona="pharmacist")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "lookup.other_professional"


# -- what each card may see (roles.py, docs/teleservice.md) ----------------------------


@pytest.mark.parametrize(
    ("persona", "access", "shown"),
    [
        ("doctor", "FULL", {"declared", "doctor", "declared_on"}),
        ("doctor-cardiologist", "FULL", {"declared", "doctor", "declared_on"}),
        ("pharmacist", "DOCTOR", {"declared", "doctor"}),
        ("nurse", "DOCTOR", {"declared", "doctor"}),
        ("physiotherapist", "DOCTOR", {"declared", "doctor"}),
        ("cpe-employee", "DECLARED", {"declared"}),
        ("cpf-student", "DECLARED", {"declared"}),
    ],
)
def test_what_each_card_sees(app: Flask, persona: str, access: str, shown: set[str]) -> None:
    client = logged_in(app, persona)
    assert client.get("/api/me").get_json()["access"] == access
    result = lookup(client, persona=persona).get_json()
    assert result["access"] == access
    assert result["declared"] is True
    assert {"declared", "doctor", "declared_on"} & set(result) == shown
    if "doctor" in shown:
        assert ("rpps" in result["doctor"]) is (access == "FULL")
    else:
        assert "FONTAINE" not in json.dumps(result)


def test_a_cpa_card_looks_up_nothing_and_the_refusal_is_audited(app: Flask, tmp_path: Path) -> None:
    persona = cpa_persona(tmp_path)
    client = logged_in(app, persona)
    me = client.get("/api/me").get_json()
    assert (me["professional"]["card_type"], me["access"], me["may_look_up"]) == (
        "CPA",
        "NONE",
        False,
    )
    response = lookup(client, persona=persona)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "lookup.forbidden"
    assert not any(s in text(response) for s in SECRETS)
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").open()]
    assert [entry["event"] for entry in entries] == ["login", "lookup_refused"]
    assert entries[1]["professional"] == entries[0]["professional"]  # who was refused


@pytest.mark.parametrize(
    ("card_type", "profession", "expected"),
    [
        ("CPS", "10", Disclosure.FULL),
        ("CPS", "21", Disclosure.DOCTOR),
        ("CPS", "60", Disclosure.DOCTOR),
        ("CPS", None, Disclosure.NONE),  # a CPS card that names no profession
        ("CPS", "99", Disclosure.NONE),  # a profession nobody decided about
        ("CPE", None, Disclosure.DECLARED),
        ("CPE", "10", Disclosure.DECLARED),
        ("CPF", "10", Disclosure.DECLARED),
        ("CPA", None, Disclosure.NONE),
        ("XYZ", "10", Disclosure.NONE),
        (None, "10", Disclosure.NONE),
    ],
)
def test_the_rules_refuse_what_they_do_not_name(
    card_type: str | None, profession: str | None, expected: Disclosure
) -> None:
    assert disclosure_for(card_type, profession) is expected


def test_the_rules_table_in_the_docs_matches_roles_py() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "teleservice.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| (CP[SEFA]) \| `?([0-9*]+)`?[^|]*\| (\w+) \|", docs, re.M))
    assert rows == {(card, code, level.name) for (card, code), level in RULES.items()}


# -- rate limit -------------------------------------------------------------------------


def test_lookups_are_rate_limited_per_professional(tmp_path: Path, trust_dir: Path) -> None:
    app = create_app(
        config(tmp_path, trust_dir, TELESERVICE_LOOKUP_LIMIT="2/minute"), clock=lambda: NOW
    )
    doctor = logged_in(app)
    assert lookup(doctor).status_code == 200
    assert lookup(doctor).status_code == 200
    refused = lookup(doctor)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "lookup.rate_limited"
    assert refused.headers["Retry-After"] == "60"
    assert not any(s in text(refused) for s in SECRETS)
    # refused attempts count as well: no probing past the limit
    assert doctor.post("/api/lookup", json={"nir": "1"}).status_code == 429
    # another professional has their own count, and a new session does not reset it
    assert lookup(logged_in(app, "nurse"), persona="nurse").status_code == 200
    assert lookup(logged_in(app)).status_code == 429


def test_the_open_login_endpoints_are_rate_limited_per_address(
    tmp_path: Path, trust_dir: Path
) -> None:
    app = create_app(
        config(tmp_path, trust_dir, TELESERVICE_LOGIN_LIMIT="3/minute"), clock=lambda: NOW
    )
    flood = app.test_client()
    answers = [flood.post("/cardauth/challenge", json={}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    refused = flood.post("/cardauth/login", json={"assertion": "x"})
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "login.rate_limited"
    assert refused.headers["Retry-After"] == "60"
    other = app.test_client()  # the same address: a flood from one place stops there
    assert other.post("/cardauth/challenge", json={}).status_code == 429


def test_processes_sharing_redis_share_the_login_limit(tmp_path: Path, trust_dir: Path) -> None:
    redis = RedisServer(tmp_path).start()
    try:
        shared = config(
            tmp_path,
            trust_dir,
            TELESERVICE_LOGIN_LIMIT="3/minute",
            TELESERVICE_RATE_LIMIT_STORAGE=redis.url,
        )
        first, second = (create_app(shared, clock=lambda: NOW).test_client() for _ in range(2))
        asked = [first.post("/cardauth/challenge", json={}) for _ in range(2)]
        asked.append(second.post("/cardauth/challenge", json={}))
        assert [answer.status_code for answer in asked] == [200, 200, 200]
        # two processes do not make twice the limit: the fourth is refused by either
        for client in (first, second):
            refused = client.post("/cardauth/challenge", json={})
            assert refused.status_code == 429
            assert refused.get_json()["error"]["code"] == "login.rate_limited"
    finally:
        redis.stop()


def test_a_login_limit_that_is_no_limit_is_refused_at_start(
    tmp_path: Path, trust_dir: Path
) -> None:
    with pytest.raises(SettingsError, match="TELESERVICE_LOGIN_LIMIT"):
        create_app(config(tmp_path, trust_dir, TELESERVICE_LOGIN_LIMIT="often"))


def test_a_hostile_origin_does_not_grow_the_audit_trail(tmp_path: Path, trust_dir: Path) -> None:
    app = create_app(config(tmp_path, trust_dir), clock=lambda: NOW)
    client = app.test_client()
    client.post(
        "/cardauth/login", json={"assertion": "x"}, headers={"Origin": "https://x" + "a" * 50_000}
    )
    entries = [json.loads(line) for line in (tmp_path / "audit.jsonl").open()]
    assert entries[-1]["event"] == "login_refused"
    assert entries[-1]["origin"] == "invalid"


def test_an_origin_header_cannot_plant_a_nir_in_the_audit_trail(app: Flask, tmp_path: Path) -> None:
    planted = {"Origin": "285037511542370"}
    app.test_client().post("/cardauth/login", json={"assertion": "x"}, headers=planted)
    persona = cpa_persona(tmp_path)
    client = logged_in(app, persona)
    forge = Forge(cps_persona=persona, vitale_persona="patient")
    current = challenge(client)
    token = forge.assertion(current, vitale=forge.vitale(current))
    assert client.post("/api/lookup", json={"assertion": token}, headers=planted).status_code == 403
    trail = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    assert "285037511542370" not in trail
    refusals = [json.loads(line) for line in trail.splitlines() if "_refused" in line]
    assert [(entry["event"], entry["origin"]) for entry in refusals] == [
        ("login_refused", "invalid"),
        ("lookup_refused", "invalid"),
    ]


def test_requests_without_login_do_not_use_up_a_professional_s_lookups(
    tmp_path: Path, trust_dir: Path
) -> None:
    app = create_app(
        config(tmp_path, trust_dir, TELESERVICE_LOOKUP_LIMIT="1/minute"), clock=lambda: NOW
    )
    anonymous = app.test_client()
    for _ in range(3):
        assert anonymous.post("/api/lookup", json={}).status_code == 401
    assert lookup(logged_in(app)).status_code == 200


# -- the audit trail --------------------------------------------------------------------


def test_lookups_are_audited_with_a_keyed_pseudonym(app: Flask, tmp_path: Path) -> None:
    lookup(logged_in(app), vitale="parent")
    trail = (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    assert "178016912304552" not in trail
    audit = AuditLog(tmp_path / "audit.jsonl", pseudonym_key=KEY)
    assert [e["patient"] for e in audit.lookups_by(DOCTOR)] == [audit.pseudonym("178016912304552")]


def test_a_professional_sees_their_own_lookups_only(app: Flask, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", pseudonym_key=KEY)
    doctor, pharmacist = logged_in(app), logged_in(app, "pharmacist")
    assert lookup(doctor, vitale="patient").status_code == 200
    assert lookup(pharmacist, persona="pharmacist", vitale="parent").status_code == 200
    assert lookup(pharmacist, persona="pharmacist", vitale="patient-corsica").status_code == 200
    robin, leroy = audit.pseudonym("285037511542370"), audit.pseudonym("178016912304552")
    mine = doctor.get(f"/api/lookups?professional={PHARMACIST}").get_json()["lookups"]
    assert [entry["patient"] for entry in mine] == [robin[:16]]
    theirs = pharmacist.get("/api/lookups").get_json()["lookups"]
    assert len(theirs) == 2
    assert theirs[1]["patient"] == leroy[:16]  # newest first
    page = text(doctor.get("/journal"))
    assert robin[:16] in page
    assert leroy[:16] not in page
    assert "Mes recherches" in page


def visible_text(page: str) -> str:
    """What a person reads of a page: no tags, no attributes."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", page)).split())


def append_to_trail(tmp_path: Path, **entry: str) -> None:
    """An entry as an earlier run (or version) of the service wrote it."""
    with (tmp_path / "audit.jsonl").open("a", encoding="utf-8") as trail:
        trail.write(json.dumps(entry) + "\n")


def test_my_lookups_give_the_date_and_time_in_paris(app: Flask, tmp_path: Path) -> None:
    append_to_trail(  # winter: UTC+1
        tmp_path,
        at="2025-12-01T22:45:00+00:00",
        event="patient_lookup",
        professional=DOCTOR,
        patient="ab" * 32,
        outcome="verified",
        answer="declared",
    )
    doctor = logged_in(app)
    lookup(doctor)  # at NOW, 2026-06-01 12:00 UTC: summer, UTC+2
    lookups = doctor.get("/api/lookups").get_json()["lookups"]
    assert [entry["when"] for entry in lookups] == [
        "1er juin 2026 à 14:00",
        "1er décembre 2025 à 23:45",
    ]
    assert lookups[1]["at"] == "2025-12-01T22:45:00+00:00"  # as the trail has it, for programs
    page = visible_text(text(doctor.get("/journal")))
    assert "1er décembre 2025 à 23:45" in page
    assert "2025-12-01" not in page
    assert "UTC" not in page
    english = visible_text(text(doctor.get("/journal?lang=en")))
    assert "1 December 2025, 23:45" in english
    assert "1 June 2026, 14:00" in english


def test_my_lookups_say_each_outcome_in_a_sentence(app: Flask, tmp_path: Path) -> None:
    doctor = logged_in(app)
    lookup(doctor, vitale="patient")
    lookup(doctor, vitale="patient-corsica")
    doctor.post("/api/lookup", json={"assertion": Forge().assertion(challenge(doctor))})
    lookup(doctor, persona="pharmacist")
    append_to_trail(  # written before lookups recorded their answer
        tmp_path,
        at="2026-06-01T12:30:00+00:00",
        event="patient_lookup",
        professional=DOCTOR,
        patient="ab" * 32,
        outcome="verified",
    )
    lookups = doctor.get("/api/lookups").get_json()["lookups"]
    assert [entry["outcome_text"] for entry in lookups] == [
        "Recherche faite ; sa réponse n'a pas été enregistrée.",
        "Refusée : la recherche était signée par une autre carte CPS que la vôtre.",
        "Refusée : la carte Vitale du patient n'a pas signé la recherche.",
        "Le patient n'a pas déclaré de médecin traitant.",
        "Le patient a déclaré un médecin traitant.",
    ]
    assert [entry["outcome"] for entry in lookups] == [
        "verified",
        "lookup.other_professional",
        "vitale.missing",
        "not_declared",
        "declared",
    ]
    page = visible_text(text(doctor.get("/journal")))
    for entry in lookups:
        assert entry["outcome_text"] in page
        assert entry["outcome"] not in page  # no code a person would have to decode
    english = doctor.get("/api/lookups?lang=en").get_json()["lookups"]
    assert english[3]["outcome_text"] == "The patient has not declared a médecin traitant."


def test_my_lookups_name_an_unknown_patient_as_such(tmp_path: Path, trust_dir: Path) -> None:
    seed = tmp_path / "seed.toml"
    seed.write_text(
        BUNDLED_SEED.read_text(encoding="utf-8").split("[[patients]]")[0], encoding="utf-8"
    )
    init_db(tmp_path / "teleservice.db", seed)
    app = create_app(config(tmp_path, trust_dir), clock=lambda: NOW)
    doctor = logged_in(app)
    lookup(doctor)
    (entry,) = doctor.get("/api/lookups").get_json()["lookups"]
    assert entry["outcome"] == "unknown_patient"
    assert entry["outcome_text"] == "Patient inconnu du service : aucune déclaration enregistrée."


def test_the_declaration_date_reads_as_a_date(app: Flask) -> None:
    doctor = logged_in(app)
    assert lookup(doctor).get_json()["summary"][-1] == (
        "RPPS 99700420013, déclaré le 6 septembre 2021."
    )
    english = Forge(vitale_persona="patient")
    current = challenge(doctor)
    token = english.assertion(current, vitale=english.vitale(current))
    answer = doctor.post(
        "/api/lookup", json={"assertion": token}, headers={"Accept-Language": "en"}
    )
    assert answer.get_json()["summary"][-1] == "RPPS 99700420013, declared on 6 September 2021."


# -- pages: headers, language, the bridge's client --------------------------------------


def test_security_headers_on_every_answer(app: Flask) -> None:
    client = logged_in(app)
    for _rule, method, path in every_request(app):
        response = send(client, method, path, json={})
        policy = response.headers["Content-Security-Policy"]
        directives = dict(d.split(" ", 1) for d in policy.split("; "))
        assert BRIDGE in directives["connect-src"].split()
        assert directives["form-action"] == "'none'"  # no form, to the bridge or elsewhere
        assert directives["frame-ancestors"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert response.headers["Referrer-Policy"] == "same-origin"  # cardauth.js needs none
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def header_of(page: str) -> str:
    found = re.search(r"<header.*?</header>", page, re.S)
    assert found is not None, "no header"
    return html.unescape(found.group(0))


def test_every_page_names_the_service_in_its_header(app: Flask) -> None:
    client = logged_in(app)
    for path in ("/", "/?lang=en", "/journal", "/journal?lang=en"):
        assert "Médecin traitant en ligne" in header_of(text(client.get(path))), path


def test_the_header_says_who_is_logged_in_with_the_logout_button(app: Flask) -> None:
    client = logged_in(app)
    assert client.get("/api/me").get_json()["who"] == "Élise FONTAINE — Médecin (CPS)"
    header = header_of(text(client.get("/journal")))  # a page the server writes logged in
    assert "Élise FONTAINE — Médecin (CPS)" in header
    assert 'id="logout"' in header
    login_page = header_of(text(app.test_client().get("/")))  # the script fills it in
    assert re.search(r'id="session"[^>]*hidden', login_page)
    assert 'id="professional"></strong>' in login_page


def test_pages_use_no_inline_style_and_nothing_from_elsewhere(app: Flask) -> None:
    client = logged_in(app)
    for path in ("/", "/journal"):
        page = text(client.get(path))
        assert "<style" not in page
        assert " style=" not in page
        for address in re.findall(r'(?:src|href)="([^"]*)"', page):
            assert address.startswith(("/", "?")), (path, address)
    css = text(client.get("/static/teleservice.css"))
    assert "url(" not in css
    assert "@import" not in css
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "style-src 'self';" in policy


def test_pages_have_no_inline_script(app: Flask) -> None:
    page = text(app.test_client().get("/"))
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ['<script type="module" src="/static/teleservice.js">']
    assert " on" not in re.sub(r"<(p|a|button|section|div|main|header)[ >]", "", page).lower()
    assert f'content="{BRIDGE}"' in page
    for element in ("login", "lookup", "result", "professional", "error", "logout"):
        assert f'id="{element}"' in page


def test_the_page_script_drives_the_bridge_as_the_brief_says() -> None:
    script = (
        Path(__file__).parents[1] / "examples" / "teleservice" / "static" / "teleservice.js"
    ).read_text(encoding="utf-8")
    assert 'from "/vendor/cardauth.js"' in script
    assert "bridge.login(challenge)" in script
    assert "bridge.login(challenge, { vitale: true })" in script
    assert 'kind === "cps" && state === "removed"' in script
    assert 'kind === "vitale" && state === "removed"' in script
    assert '"/cardauth/logout"' in script


def test_french_by_default_english_on_request(app: Flask) -> None:
    client = app.test_client()
    assert "Se connecter avec la carte CPS" in text(client.get("/"))
    assert "Log in with the CPS card" in text(client.get("/?lang=en"))
    english = text(client.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"}))
    assert '<html lang="en">' in english
    refused = client.get("/api/me", headers={"Accept-Language": "en"}).get_json()
    assert refused["error"]["message"] == "Log in with your CPS card."
    doctor = logged_in(app)
    result = lookup(doctor, vitale="patient-corsica").get_json()
    assert "n'a pas déclaré" in result["summary"][0]
    forge = Forge(vitale_persona="patient-corsica")
    current = challenge(doctor)
    token = forge.assertion(current, vitale=forge.vitale(current))
    english_result = doctor.post(
        "/api/lookup", json={"assertion": token}, headers={"Accept-Language": "en"}
    ).get_json()
    assert english_result["summary"] == ["Marie-Ange SANTONI has not declared a médecin traitant."]


def test_cardauth_js_is_served_from_the_installed_bridge(app: Flask) -> None:
    import importlib.resources

    response = app.test_client().get("/vendor/cardauth.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    expected = importlib.resources.files("webbridge").joinpath("static/cardauth.js").read_bytes()
    assert response.data == expected
    examples = Path(__file__).parents[1] / "examples"
    assert not list(examples.rglob("cardauth.js"))  # no copy to fall behind


def test_the_session_cookie_is_http_only_and_same_site(app: Flask) -> None:
    client = app.test_client()
    challenge(client)
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def test_a_login_ends_after_the_session_length(tmp_path: Path, trust_dir: Path) -> None:
    """A login ends after CARDAUTH_SESSION_MAX_HOURS for the teleservice's routes too."""
    now = [NOW]
    app = create_app(config(tmp_path, trust_dir), clock=lambda: now[0])
    client = logged_in(app)
    now[0] = NOW + dt.timedelta(hours=11)
    assert client.get("/api/me").status_code == 401
    assert client.get("/journal").status_code == 302


def test_in_oidc_mode_only_the_way_to_the_provider_is_added_to_the_public_routes(
    tmp_path: Path, trust_dir: Path
) -> None:
    settings = config(
        tmp_path,
        trust_dir,
        TELESERVICE_OIDC_ISSUER="https://idp.example/auth/realms/esante-wallet",
        TELESERVICE_OIDC_CLIENT_ID="teleservice",
        TELESERVICE_OIDC_CLIENT_SECRET="a-secret-of-the-teleservice-0123456789",
    )
    app = create_app(settings, clock=lambda: NOW)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints >= PUBLIC_ENDPOINTS | oidc.ENDPOINTS
    client = app.test_client()
    # a callback that does not answer a request of this browser logs nobody in
    back = client.get("/oidc/callback?code=forged&state=forged")
    assert back.status_code == 302
    assert "ended=oidcRefused" in back.headers["Location"]
    assert client.get("/api/me").status_code == 401


def test_in_oidc_mode_the_professional_comes_from_psc_s_claims() -> None:
    claims = {
        "SubjectNameID": DOCTOR,
        "family_name": "FONTAINE",
        "given_name": "Élise",
        "SubjectRefPro": {
            "exercices": [{"codeProfession": "10", "codeCategorieProfessionnelle": "C"}]
        },
    }
    professional = oidc.professional_from_claims(claims)
    assert professional.idnat == DOCTOR
    assert professional.identifier_type == "RPPS"
    assert professional.card_type == "CPS"
    assert professional.profession_code == "10"
    assert disclosure_for(professional.card_type, professional.profession_code) is Disclosure.FULL
