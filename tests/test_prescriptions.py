"""E-prescriptions in the example teleservice (examples/teleservice/prescriptions.py),
through Flask's test client: a doctor's CPS card signs (the card's signature key,
from the simulator's PKI, signs the hash the server prepared, as the bridge would
have the card do), the server finishes a PAdES signature that pyHanko's validator
accepts, and every refusal of the way has its code. What the browser and the real
card do is in tests/test_e2e_prescriptions.py."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cardauth.signing import deferred
from cardauth.signing.levels import Level
from cardauth.signing.trust import SigningTrust
from cardauth.signing.verification import verify_pdf
from examples.teleservice import create_app
from examples.teleservice.prescriptions import (
    PENDING_LIFETIME,
    PENDING_PER_PROFESSIONAL,
    UPLOAD_LIMIT,
)
from examples.teleservice.roles import PRESCRIBERS, may_prescribe
from simulator.personas import load_cps
from simulator.pki import cps_key, simulator_pki
from simulator.trust_export import export_trust
from simulator.tsa import TimeStampAuthority
from tests.signing_kit import make_pdf
from tests.test_teleservice import challenge, config, logged_in
from tests.verifier_kit import NOW, Forge

DOCTOR_IDNAT = "899700420013"
FORM: dict[str, Any] = {
    "patient": {"given_name": "Jeanne", "surname": "ROBIN"},
    "medications": [
        {"name": "Amoxicilline 1 g", "dosage": "1 comprimé matin et soir", "duration": "6 jours"}
    ],
}


class Clock:
    """The teleservice's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def trust_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("trust")
    export_trust(directory, now=NOW)
    return directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, trust_dir: Path, clock: Clock) -> Flask:
    return create_app(config(tmp_path, trust_dir), clock=clock)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def certificates(persona: str) -> Any:
    return simulator_pki().cps_certificates(load_cps(persona))


def der(certificate: x509.Certificate) -> str:
    return b64url(certificate.public_bytes(Encoding.DER))


def card_signature(persona: str, digest: bytes) -> str:
    """What the card of ``persona`` answers through the bridge: PKCS#1 v1.5 with its
    signature key (81) over the SHA-256 hash."""
    key = cps_key(load_cps(persona), "signature")
    return b64url(key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())))


def prepare(client: FlaskClient, persona: str = "doctor", **changes: Any) -> TestResponse:
    body = FORM | {"certificate": der(certificates(persona).signature)} | changes
    return client.post("/api/prescriptions", json=body)


def sign(client: FlaskClient, prepared: dict[str, Any], persona: str = "doctor") -> TestResponse:
    signature = card_signature(persona, unb64url(prepared["hash"]))
    return client.post(
        f"/api/prescriptions/{prepared['id']}/signature", json={"signature": signature}
    )


def code(response: TestResponse) -> str:
    return str(response.get_json()["error"]["code"])


def upload(client: FlaskClient, data: bytes, name: str = "ordonnance.pdf") -> TestResponse:
    return client.post(
        "/api/verify",
        data={"document": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def signed_prescription(app: Flask) -> bytes:
    client = logged_in(app)
    prepared = prepare(client).get_json()
    done = sign(client, prepared)
    assert done.status_code == 200, done.get_json()
    download = client.get(done.get_json()["download"])
    assert download.status_code == 200
    return bytes(download.data)


@pytest.fixture
def tsa() -> Iterator[TimeStampAuthority]:
    authority = TimeStampAuthority(clock=lambda: NOW).start()
    try:
        yield authority
    finally:
        authority.stop()


# -- the doctor signs ---------------------------------------------------------------------


def test_a_doctor_signs_a_prescription_and_downloads_the_signed_pdf(
    app: Flask, trust_dir: Path, tmp_path: Path
) -> None:
    client = logged_in(app)
    prepared = prepare(client)
    assert prepared.status_code == 200, prepared.get_json()
    answer = prepared.get_json()
    assert len(unb64url(answer["hash"])) == 32
    assert answer["document_name"] == "Ordonnance de Jeanne ROBIN.pdf"
    done = sign(client, answer)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["level"] == "b-b"  # no time-stamping authority configured
    download = client.get(done.get_json()["download"])
    assert download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment")

    trust = SigningTrust.from_directory(trust_dir)
    [verified] = verify_pdf(download.data, trust, now=NOW)
    assert verified.idnat == DOCTOR_IDNAT
    assert verified.certificate == certificates("doctor").signature
    trail = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert trail[-1] | {"at": None} == {
        "at": None,
        "event": "document_signed",
        "professional": DOCTOR_IDNAT,
        "document": answer["id"],
        "level": "b-b",
    }


def test_with_a_time_stamping_authority_the_prescription_is_b_t(
    tmp_path: Path, trust_dir: Path, tsa: TimeStampAuthority
) -> None:
    app = create_app(config(tmp_path, trust_dir, TELESERVICE_TSA_URL=tsa.url), clock=lambda: NOW)
    [verified] = verify_pdf(
        signed_prescription(app), SigningTrust.from_directory(trust_dir), now=NOW
    )
    assert verified.level is Level.B_T
    assert verified.timestamp == NOW


def test_only_a_doctor_s_cps_card_prescribes() -> None:
    assert {("CPS", "10")} == PRESCRIBERS
    assert may_prescribe("CPS", "10")
    for card_type, profession in (("CPS", "21"), ("CPS", "60"), ("CPE", "10"), ("CPF", "10")):
        assert not may_prescribe(card_type, profession)
    assert not may_prescribe(None, None)


@pytest.mark.parametrize("persona", ["nurse", "pharmacist", "cpe-employee", "cpf-student"])
def test_a_card_that_does_not_prescribe_signs_nothing(
    app: Flask, persona: str, tmp_path: Path
) -> None:
    client = logged_in(app, persona)
    refused = prepare(client, persona)
    assert refused.status_code == 403
    assert code(refused) == "prescription.forbidden"
    page = client.get("/prescriptions").get_data(as_text=True)
    assert 'id="not-prescriber"' in page
    assert 'id="prepare"' not in page
    trail = (tmp_path / "audit.jsonl").read_text()
    assert '"prescription_refused"' in trail
    assert "prescription.forbidden" in trail


def test_a_certificate_of_another_professional_is_refused(app: Flask) -> None:
    client = logged_in(app)  # Dr Fontaine; the cardiologist's card in the reader
    refused = prepare(client, "doctor-cardiologist")
    assert refused.status_code == 403
    assert code(refused) == "prescription.other_professional"


@pytest.mark.parametrize(
    "certificate",
    [
        der(simulator_pki().cps_certificates(load_cps("doctor")).authentication),
        b64url(b"not a certificate"),
        "MII+/",
        der(simulator_pki().cps_root.certificate),
    ],
    ids=["authentication", "garbage", "not-base64url", "a-ca"],
)
def test_a_certificate_that_is_not_a_card_s_signature_certificate_is_refused(
    app: Flask, certificate: str
) -> None:
    refused = prepare(logged_in(app), certificate=certificate)
    assert refused.status_code == 400
    assert code(refused) == "prescription.certificate"


@pytest.mark.parametrize(
    "changes",
    [
        {"medications": []},
        {"medications": [{"name": "x", "dosage": "y"}]},
        {"medications": [FORM["medications"][0]] * 11},
        {"patient": {"given_name": "Jeanne"}},
        {"patient": {"given_name": "Jeanne", "surname": "R" * 61}},
        {"patient": {"given_name": "Jeanne", "surname": "ROBIN\u202e"}},
        {"patient": {"given_name": "Jeanne", "surname": "ROBIN\n"}},
        {"patient": {"given_name": "Chloë", "surname": "Œuvray"}},  # Œ: not in Latin-1
        {"patient": {"given_name": " ", "surname": "ROBIN"}},
        {"nir": "285037511542370"},
    ],
)
def test_a_form_the_document_cannot_carry_is_refused(app: Flask, changes: dict[str, Any]) -> None:
    refused = prepare(logged_in(app), **changes)
    assert refused.status_code == 400
    assert code(refused) == "prescription.fields"


DOCTOR_WITH_AN_OE = """\
kind = "cps"
description = "Un médecin dont le nom ne s'écrit pas en Latin-1, pour les tests"

[card]
serial = "0000100902"

[holder]
card_type = "CPS"
idnat = "899700420021"
civility = "DR"
surname = "ŒUVRAY"
given_name = "Chloé"
profession_code = "10"

[certificate]
not_before = 2025-01-01
not_after = 2030-12-31
"""


def test_a_doctor_s_name_the_document_cannot_write_is_a_refusal_not_a_crash(
    app: Flask, tmp_path: Path
) -> None:
    persona = tmp_path / "doctor-oe.toml"
    persona.write_text(DOCTOR_WITH_AN_OE, encoding="utf-8")
    client = logged_in(app, str(persona))
    refused = prepare(client, str(persona))
    assert refused.status_code == 400
    assert code(refused) == "prescription.fields"


def test_a_signature_over_another_hash_is_refused_and_the_prescription_is_gone(
    app: Flask,
) -> None:
    client = logged_in(app)
    prepared = prepare(client).get_json()
    other = card_signature("doctor", bytes(32))
    refused = client.post(
        f"/api/prescriptions/{prepared['id']}/signature", json={"signature": other}
    )
    assert refused.status_code == 400
    assert code(refused) == "signing.signature_value"
    assert code(sign(client, prepared)) == "prescription.not_pending"  # single use


def test_a_signature_by_another_card_is_refused(app: Flask) -> None:
    client = logged_in(app)
    prepared = prepare(client).get_json()
    refused = sign(client, prepared, "doctor-cardiologist")
    assert code(refused) == "signing.signature_value"


def test_a_prepared_prescription_is_finished_once(app: Flask) -> None:
    client = logged_in(app)
    prepared = prepare(client).get_json()
    assert sign(client, prepared).status_code == 200
    replayed = sign(client, prepared)
    assert replayed.status_code == 409
    assert code(replayed) == "prescription.not_pending"


def test_a_prepared_prescription_expires(app: Flask, clock: Clock) -> None:
    client = logged_in(app)
    prepared = prepare(client).get_json()
    clock.now = NOW + PENDING_LIFETIME
    late = sign(client, prepared)
    assert late.status_code == 409
    assert code(late) == "prescription.not_pending"


def test_another_professional_neither_finishes_nor_downloads_a_prescription(app: Flask) -> None:
    doctor = logged_in(app)
    prepared = prepare(doctor).get_json()
    colleague = logged_in(app, "doctor-cardiologist")
    assert code(sign(colleague, prepared, "doctor")) == "prescription.not_pending"
    done = sign(doctor, prepared)  # still waiting for its own doctor
    assert done.status_code == 200
    download = colleague.get(done.get_json()["download"])
    assert download.status_code == 404
    assert code(download) == "prescription.not_found"
    assert colleague.get("/prescriptions/..%2f..%2faudit.pdf").status_code == 404


def test_prescriptions_waiting_for_a_signature_are_bounded(app: Flask) -> None:
    client = logged_in(app)
    for _ in range(PENDING_PER_PROFESSIONAL):
        assert prepare(client).status_code == 200
    busy = prepare(client)
    assert busy.status_code == 503
    assert code(busy) == "prescription.busy"
    assert prepare(logged_in(app, "doctor-cardiologist"), "doctor-cardiologist").status_code == 200


def test_a_refusal_is_said_in_french_and_in_english(app: Flask) -> None:
    client = logged_in(app, "nurse")
    french = prepare(client, "nurse").get_json()["error"]["message"]
    english = client.post(
        "/api/prescriptions",
        json=FORM | {"certificate": der(certificates("nurse").signature)},
        headers={"Accept-Language": "en"},
    ).get_json()["error"]["message"]
    assert "ordonnance" in french
    assert "prescription" in english


def read_vitale(client: FlaskClient, persona: str = "doctor") -> TestResponse:
    forge = Forge(cps_persona=persona, vitale_persona="patient")
    current = challenge(client)
    token = forge.assertion(current, vitale=forge.vitale(current))
    return client.post("/api/prescriptions/patient", json={"assertion": token})


def test_the_patient_s_name_comes_from_the_vitale_card_and_the_reading_is_audited(
    app: Flask,
) -> None:
    client = logged_in(app)
    read = read_vitale(client)
    assert read.status_code == 200, read.get_json()
    assert read.get_json() == {"given_name": "Jeanne", "surname": "ROBIN"}
    [entry] = client.get("/api/lookups").get_json()["lookups"]
    assert entry["outcome"] == "prescription"
    assert entry["outcome_text"] == "Carte Vitale lue pour une ordonnance."


def test_reading_the_vitale_card_for_a_prescription_takes_a_prescriber(app: Flask) -> None:
    refused = read_vitale(logged_in(app, "pharmacist"), "pharmacist")
    assert refused.status_code == 403
    assert code(refused) == "prescription.forbidden"


def test_reading_the_vitale_card_takes_the_vitale_card_s_signature(app: Flask) -> None:
    client = logged_in(app)
    alone = Forge().assertion(challenge(client))  # the CPS card alone
    refused = client.post("/api/prescriptions/patient", json={"assertion": alone})
    assert code(refused) == "vitale.missing"


# -- whoever receives it checks it ------------------------------------------------------


def test_the_pharmacist_sees_who_signed_and_that_it_holds(app: Flask) -> None:
    document = signed_prescription(app)
    answer = upload(logged_in(app, "pharmacist"), document)
    assert answer.status_code == 200
    result = answer.get_json()
    assert result["verdict"] == "valid"
    assert result["signer"] == {
        "given_name": "Élise",
        "surname": "FONTAINE",
        "idnat": DOCTOR_IDNAT,
        "rpps": DOCTOR_IDNAT[1:],
        "profession": "Médecin",
    }
    assert result["summary"][0] == "Signature valide."
    assert "selon le poste du signataire" in result["summary"][2]  # B-B: no time stamp


def test_a_tampered_prescription_is_said_invalid(app: Flask) -> None:
    document = signed_prescription(app)
    at = document.index(b"/Producer (") + len(b"/Producer (")
    tampered = document[:at] + bytes([document[at] ^ 0x01]) + document[at + 1 :]
    result = upload(logged_in(app, "pharmacist"), tampered).get_json()
    assert result["verdict"] == "invalid"
    assert result["code"] == "signature.invalid"
    assert result["summary"][0].startswith("Signature invalide")


def signed_elsewhere(certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """A PDF signed with ``key`` for ``certificate``, by the deferred API."""
    prepared = deferred.prepare_pdf(make_pdf(), certificate)
    signature = key.sign(prepared.digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    return deferred.finish_pdf(prepared.state, signature)


def test_a_revoked_signer_is_said_revoked(app: Flask) -> None:
    persona = load_cps("cps-revoked")
    document = signed_elsewhere(
        simulator_pki().cps_certificates(persona).signature, cps_key(persona, "signature")
    )
    result = upload(logged_in(app, "pharmacist"), document).get_json()
    assert (result["verdict"], result["code"]) == ("revoked", "signature.revoked")
    assert result["summary"][0].startswith("Signature révoquée")


def test_a_signer_outside_the_trust_is_said_untrusted(app: Flask) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "899700420013")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    result = upload(logged_in(app, "pharmacist"), signed_elsewhere(certificate, key)).get_json()
    assert result["verdict"] == "untrusted"
    assert result["code"] == "signature.untrusted"
    assert result["summary"][0].startswith("Signature non reconnue")


def test_an_unsigned_pdf_is_said_invalid(app: Flask) -> None:
    result = upload(logged_in(app, "pharmacist"), make_pdf()).get_json()
    assert (result["verdict"], result["code"]) == ("invalid", "signature.missing")


def test_a_file_that_is_not_a_pdf_is_refused(app: Flask) -> None:
    client = logged_in(app, "pharmacist")
    refused = upload(client, b"GIF89a not a prescription", "photo.gif")
    assert refused.status_code == 400
    assert code(refused) == "verification.upload"
    nothing = client.post("/api/verify", data={}, content_type="multipart/form-data")
    assert code(nothing) == "verification.upload"


def test_an_oversized_upload_is_refused(app: Flask) -> None:
    refused = upload(logged_in(app, "pharmacist"), b"%PDF-1.7\n" + bytes(UPLOAD_LIMIT))
    assert refused.status_code == 413
    assert code(refused) == "request.too_large"


def test_a_damaged_pdf_is_a_verdict_not_a_crash(app: Flask) -> None:
    document = signed_prescription(app)
    result = upload(logged_in(app, "pharmacist"), document[: len(document) // 2]).get_json()
    assert result["verdict"] == "invalid"
    assert result["code"].startswith("signature.")
