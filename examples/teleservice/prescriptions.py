"""E-prescriptions signed with the doctor's CPS card, and checked by whoever
receives one: deferred signing (docs/signing.md) in a teleservice.

The doctor's page (``/prescriptions``, a doctor's CPS card only: roles.PRESCRIBERS):

1. the page gets the card's signature certificate from the bridge
   (``getSigningCertificate()``) and posts it with the form to
   ``POST /api/prescriptions``; the server checks the certificate (a signature
   certificate of a CA it trusts, valid today, **of the professional logged in**),
   writes the PDF, prepares it for a PAdES signature by that certificate
   (``deferred.prepare_pdf``), keeps what was prepared here, on the server
   (:class:`PendingSignatures`: bounded, single use, a few minutes), and answers
   the hash the card must sign;
2. the page has the card sign that hash (``sign({hash, documentName,
   certificate})``: the bridge's page shows the site, the document's name and the
   hash, and asks the PIN for this signature) and posts the raw signature to
   ``POST /api/prescriptions/<id>/signature``; the server takes what it prepared
   (once), finishes the PDF (``deferred.finish_pdf``: the signature checked against
   the certificate and hash first; B-T with a time-stamping authority, B-LT when the
   trust names an OCSP responder too), stores it, and the page offers it for
   download (``GET /prescriptions/<id>.pdf``, its signer only).

The verification page (``/verify``, any professional logged in: whoever receives a
prescription, a pharmacist first, must be able to check it, and a check shows only
what the document itself holds) takes a PDF upload (bounded) to
``POST /api/verify`` and says who signed it, when, and whether the signature holds
under the service's trust (``cardauth.signing.verification``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Blueprint, Flask, Response, request
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.errors import FPDFUnicodeEncodingException
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import ValidationContext

from cardauth import web
from cardauth.errors import CardAuthError, RequestNotJson, RequestTooLarge
from cardauth.flask import extension
from cardauth.messages import Language
from cardauth.signing import deferred
from cardauth.signing.errors import VerificationError
from cardauth.signing.levels import Level
from cardauth.signing.pades import PDF_HEADER
from cardauth.signing.timestamps import HttpTimeStamper
from cardauth.signing.trust import SigningTrust, is_signature_certificate
from cardauth.signing.verification import VerifiedSignature, verify_pdf
from examples.teleservice import messages, roles
from examples.teleservice.errors import (
    Failed,
    MethodNotAllowed,
    PrescriptionBusy,
    PrescriptionCertificate,
    PrescriptionFields,
    PrescriptionForbidden,
    PrescriptionNotFound,
    PrescriptionNotPending,
    PrescriptionOtherProfessional,
    VerificationUpload,
)

# A prescription waits this long for the card's signature (the PIN typed on the
# bridge's page), then it is gone: the doctor prepares it again.
PENDING_LIFETIME = dt.timedelta(minutes=5)
PENDING_CAPACITY = 64  # prescriptions waiting, for the whole service
PENDING_PER_PROFESSIONAL = 4  # and for one professional (a few tabs)
MAX_MEDICATIONS = 10
NAME_LENGTH = 60  # characters of a patient's surname or given name
LINE_LENGTH = 120  # characters of a medication, its dosage or its duration
UPLOAD_LIMIT = 2 * 1024 * 1024  # bytes: a signed prescription is some 60 KiB
TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
TIME_ZONE = ZoneInfo("Europe/Paris")
# What the verdict of a verification is called, by the refusal's code.
VERDICTS: Mapping[str, str] = {
    "signature.untrusted": "untrusted",
    "signature.revocation_unknown": "untrusted",
    "signature.revoked": "revoked",
}


@dataclass(frozen=True, slots=True)
class Medication:
    name: str
    dosage: str
    duration: str


@dataclass(frozen=True, slots=True)
class Prescription:
    """The form, as the server takes it: every text checked, nothing repaired."""

    surname: str
    given_name: str
    medications: tuple[Medication, ...]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Prescription:
        patient = body.get("patient")
        lines = body.get("medications")
        if not isinstance(patient, dict) or set(patient) != {"surname", "given_name"}:
            raise PrescriptionFields("patient is {surname, given_name}")
        if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_MEDICATIONS:
            raise PrescriptionFields(f"1 to {MAX_MEDICATIONS} medications")
        medications = []
        for line in lines:
            if not isinstance(line, dict) or set(line) != {"name", "dosage", "duration"}:
                raise PrescriptionFields("a medication is {name, dosage, duration}")
            medications.append(
                Medication(
                    _text(line["name"], LINE_LENGTH, "medication"),
                    _text(line["dosage"], LINE_LENGTH, "dosage"),
                    _text(line["duration"], LINE_LENGTH, "duration"),
                )
            )
        return cls(
            surname=_text(patient["surname"], NAME_LENGTH, "surname"),
            given_name=_text(patient["given_name"], NAME_LENGTH, "given_name"),
            medications=tuple(medications),
        )


def _text(value: object, length: int, field: str) -> str:
    """A line of the form: 1 to ``length`` printable characters that the PDF's
    standard fonts can write (Latin-1), no space at either end (refused, not
    repaired: the page sends them trimmed)."""
    if not isinstance(value, str) or not 0 < len(value) <= length or value != value.strip():
        raise PrescriptionFields(f"{field}: 1 to {length} characters", field=field)
    for character in value:
        if unicodedata.category(character).startswith(("C", "Z")) and character != " ":
            raise PrescriptionFields(f"{field}: a control or invisible character", field=field)
        if ord(character) > 0xFF:
            raise PrescriptionFields(f"{field}: a character the document cannot write", field=field)
    return value


@dataclass(frozen=True, slots=True)
class Pending:
    """A prepared prescription waiting for the card's signature."""

    idnat: str  # whose: only they finish it
    state: bytes  # deferred.prepare_pdf's
    certificate: x509.Certificate
    document_name: str
    expires: dt.datetime


class PendingSignatures:
    """What was prepared, kept on the server (never in the browser's cookie) until
    the signature comes back: bounded (:data:`PENDING_CAPACITY`, and
    :data:`PENDING_PER_PROFESSIONAL` each), taken once, gone after
    :data:`PENDING_LIFETIME`. In this process's memory: the demo runs one process
    (docs/teleservice.md, "Limits of the demo")."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def put(self, pending: Pending, now: dt.datetime) -> str:
        with self._lock:
            self._purge(now)
            mine = sum(p.idnat == pending.idnat for p in self._pending.values())
            if len(self._pending) >= PENDING_CAPACITY or mine >= PENDING_PER_PROFESSIONAL:
                raise PrescriptionBusy("too many prescriptions wait for a signature")
            token = secrets.token_urlsafe(16)
            self._pending[token] = pending
            return token

    def take(self, token: str, idnat: str, now: dt.datetime) -> Pending:
        """The prescription ``token`` names, prepared for ``idnat``: taken, so that
        no signature finishes it twice."""
        with self._lock:
            self._purge(now)
            pending = self._pending.get(token)
            if pending is None or not secrets.compare_digest(pending.idnat, idnat):
                raise PrescriptionNotPending("no prescription waits for this signature")
            del self._pending[token]
            return pending

    def _purge(self, now: dt.datetime) -> None:
        for token in [t for t, p in self._pending.items() if p.expires <= now]:
            del self._pending[token]


class SignedPrescriptions:
    """The signed PDFs, a folder per professional (files of this user only), named
    by the SHA-256 of the IdNat (a CPE's holds a "/")."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _of(self, idnat: str) -> Path:
        return self.folder / hashlib.sha256(idnat.encode()).hexdigest()

    def save(self, idnat: str, token: str, document: bytes) -> None:
        folder = self._of(idnat)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(folder / f"{token}.pdf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(document)

    def load(self, idnat: str, token: str) -> bytes:
        if not TOKEN.fullmatch(token):
            raise PrescriptionNotFound("no such prescription")
        try:
            return (self._of(idnat) / f"{token}.pdf").read_bytes()
        except FileNotFoundError:
            raise PrescriptionNotFound("no such prescription") from None


def prescription_pdf(
    prescription: Prescription,
    doctor: Mapping[str, Any],
    issued: dt.datetime,
    language: Language,
) -> bytes:
    """The prescription as a one-page PDF (fpdf2, its standard fonts)."""

    def t(key: str, **values: object) -> str:
        return messages.label(f"rx_{key}", language, **values)

    pdf = FPDF(format="A4")
    pdf.set_creation_date(issued)
    pdf.set_title(t("title"))
    pdf.set_author(f"{doctor['given_name']} {doctor['surname']}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, t("title"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 11)
    for line in (
        t("doctor", given_name=doctor["given_name"], surname=doctor["surname"]),
        t("idnat", idnat=doctor["idnat"], profession=doctor["profession"] or ""),
        t("date", date=messages.date_text(issued.astimezone(TIME_ZONE).date(), language)),
        t("patient", given_name=prescription.given_name, surname=prescription.surname),
    ):
        pdf.cell(0, 7, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)
    for number, medication in enumerate(prescription.medications, start=1):
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, f"{number}. {medication.name}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(
            0,
            6,
            t("line", dosage=medication.dosage, duration=medication.duration),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.ln(2)
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(0, 5, t("signed_note"))
    return bytes(pdf.output())


def install(
    app: Flask,
    settings: Mapping[str, Any],
    *,
    page: Callable[..., str],
    professional: Callable[[], dict[str, Any]],
    who: Callable[[Mapping[str, Any]], str],
    language: Callable[[], Language],
    clock: Callable[[], dt.datetime],
) -> None:
    """The prescription pages and their API, behind the application's card login."""
    trust = SigningTrust.from_directory(Path(settings["CARDAUTH_TRUST_DIR"]))
    tsa_url = settings.get("TELESERVICE_TSA_URL")
    pending = PendingSignatures()
    signed = SignedPrescriptions(Path(settings["TELESERVICE_PRESCRIPTIONS_DIR"]))
    blueprint = Blueprint("prescriptions", __name__)

    def prescriber() -> dict[str, Any]:
        return _prescriber(professional())

    @blueprint.get("/prescriptions")
    def prescribe_page() -> str:
        current = professional()
        return page(
            "prescriptions",
            who=who(current),
            may_prescribe=roles.may_prescribe(current["card_type"], current["profession_code"]),
            max_medications=MAX_MEDICATIONS,
        )

    @blueprint.post("/api/prescriptions")
    def prepare() -> dict[str, Any]:
        body = web.json_object(
            request,
            PRESCRIPTION_BODY,
            allowed={"patient", "medications", "certificate"},
            required={"patient", "medications", "certificate"},
        )
        doctor = prescriber()
        now = clock()
        certificate = _signers_certificate(body["certificate"], doctor["idnat"], trust, now)
        prescription = Prescription.from_body(body)
        prepared, name = _prepared(prescription, doctor, certificate, trust, now, language())
        expires = now + PENDING_LIFETIME
        token = pending.put(
            Pending(doctor["idnat"], prepared.state, certificate, name, expires), now
        )
        return {
            "id": token,
            "hash": _b64url(prepared.digest),
            "hash_hex": " ".join(prepared.digest.hex().upper()[i : i + 4] for i in range(0, 64, 4)),
            "document_name": name,
            "expires": expires.isoformat(timespec="seconds"),
        }

    @blueprint.post("/api/prescriptions/patient")
    def patient() -> dict[str, str]:
        """The patient's name from their Vitale card: a fresh assertion of the
        doctor's card co-signed by the Vitale card (as a lookup), audited as one
        whose answer is "prescription"."""
        body = web.json_object(
            request, PRESCRIPTION_BODY, allowed={"assertion"}, required={"assertion"}
        )
        prescriber()
        with extension().patient_lookup(body["assertion"]) as lookup:
            lookup.answer = "prescription"
        return {"given_name": lookup.patient.given_name, "surname": lookup.patient.surname}

    @blueprint.post("/api/prescriptions/<token>/signature")
    def finish(token: str) -> dict[str, Any]:
        body = web.json_object(
            request, PRESCRIPTION_BODY, allowed={"signature"}, required={"signature"}
        )
        doctor = prescriber()
        signature = _unb64url(body["signature"])
        waiting = pending.take(token, doctor["idnat"], clock())
        level, stamper, context = _level(trust, tsa_url, waiting.certificate)
        try:
            document = deferred.finish_pdf(
                waiting.state, signature, time_stamper=stamper, validation_context=context
            )
        except CardAuthError as error:
            _audit_refusal(error.code, doctor["idnat"])
            raise
        signed.save(doctor["idnat"], token, document)
        audit = extension().audit
        if audit is not None:
            audit.document_signed(doctor["idnat"], document=token, level=level.value)
        return {
            "id": token,
            "document_name": waiting.document_name,
            "level": level.value,
            "signed_text": messages.label("rx_signed", language(), level=level.value.upper()),
            "download": f"/prescriptions/{token}.pdf",
        }

    @blueprint.get("/prescriptions/<token>.pdf")
    def download(token: str) -> Response:
        document = signed.load(professional()["idnat"], token)
        response = Response(document, mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'attachment; filename="ordonnance-{token}.pdf"'
        return response

    @blueprint.get("/verify")
    def verify_page() -> str:
        return page("verify", who=who(professional()))

    @blueprint.post("/api/verify")
    def verify() -> dict[str, Any]:
        professional()
        return _verification(trust, clock(), language())

    app.register_blueprint(blueprint)


# A prescription's bodies: anything but the members named is prescription.fields.
PRESCRIPTION_BODY = web.Refusals(
    bad_request=PrescriptionFields,
    too_large=RequestTooLarge,
    content_type=RequestNotJson,
    not_found=PrescriptionNotFound,
    method_not_allowed=MethodNotAllowed,
    internal=Failed,
)


def _prescriber(current: dict[str, Any]) -> dict[str, Any]:
    """``current``, the professional logged in, if their card may sign prescriptions."""
    if not roles.may_prescribe(current["card_type"], current["profession_code"]):
        _audit_refusal(PrescriptionForbidden.code, current["idnat"])
        raise PrescriptionForbidden(
            "this card may not sign prescriptions", card_type=current["card_type"]
        )
    return current


def _prepared(
    prescription: Prescription,
    doctor: Mapping[str, Any],
    certificate: x509.Certificate,
    trust: SigningTrust,
    now: dt.datetime,
    language: Language,
) -> tuple[deferred.PreparedSignature, str]:
    """The prescription's PDF prepared for the doctor's signature, and its name."""
    try:
        document = prescription_pdf(prescription, doctor, now, language)
    except FPDFUnicodeEncodingException:  # the form is checked: the doctor's own name
        raise PrescriptionFields("a name the document cannot write") from None
    prepared = deferred.prepare_pdf(
        document,
        certificate,
        chain=trust.chain_of(certificate),
        reason=messages.label("rx_reason", language),
    )
    name = messages.label(
        "rx_document_name",
        language,
        given_name=prescription.given_name,
        surname=prescription.surname,
    )
    return prepared, name


def _level(
    trust: SigningTrust, tsa_url: str | None, certificate: x509.Certificate
) -> tuple[Level, TimeStamper | None, ValidationContext | None]:
    """The best level the service can give: B-LT with a time-stamping authority and
    an OCSP responder (its answer about the signer goes in the PDF's DSS, with the
    trust's CRLs), B-T with the authority alone, else B-B."""
    if not tsa_url:
        return Level.B_B, None, None
    stamper = HttpTimeStamper(tsa_url)
    if trust.ocsp_responder is None:
        return Level.B_T, stamper, None
    context = trust.validation_context(ocsps=trust.ocsp_answers([certificate]))
    return Level.B_LT, stamper, context


def _verification(trust: SigningTrust, now: dt.datetime, language: Language) -> dict[str, Any]:
    """The verdict on the uploaded PDF (``document``, :data:`UPLOAD_LIMIT` at most)."""
    request.max_content_length = UPLOAD_LIMIT  # before the body is read
    upload = request.files.get("document")
    if upload is None or len(request.files) != 1:
        raise VerificationUpload("one file, named document, is expected")
    document = upload.read()
    if not document.startswith(PDF_HEADER):
        raise VerificationUpload("the file is not a PDF")
    try:
        [first, *_others] = verify_pdf(document, trust, now=now)
    except VerificationError as error:
        return _verdict(VERDICTS.get(error.code, "invalid"), error, language)
    return _verified(first, language)


def _signers_certificate(
    value: object, idnat: str, trust: SigningTrust, now: dt.datetime
) -> x509.Certificate:
    """The certificate the page sent (DER, base64url), if it is a signature
    certificate, issued by a CA of the trust, valid ``now``, and names ``idnat``:
    identity comes from certificates, and this one must be the logged-in one's."""
    try:
        certificate = x509.load_der_x509_certificate(_unb64url(value))
    except (ValueError, PrescriptionFields):
        raise PrescriptionCertificate("the certificate does not parse") from None
    if trust.issuer_of(certificate) is None:
        raise PrescriptionCertificate("the certificate is not of a CA the service trusts")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise PrescriptionCertificate("the certificate is not valid today")
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise PrescriptionCertificate("a CPS card's signature key is RSA")
    if not is_signature_certificate(certificate):
        raise PrescriptionCertificate("not a signature certificate (nonRepudiation)")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not secrets.compare_digest(str(names[0].value), idnat):
        _audit_refusal(PrescriptionOtherProfessional.code, idnat)
        raise PrescriptionOtherProfessional("the certificate is another professional's")
    return certificate


def _audit_refusal(code: str, idnat: str) -> None:
    audit = extension().audit
    if audit is not None:
        audit.refused(
            code,
            origin=request.headers.get("Origin"),
            action="prescription",
            professional_idnat=idnat,
        )


def _verified(signature: VerifiedSignature, language: Language) -> dict[str, Any]:
    """A signature that holds, as the pharmacist reads it."""
    subject = signature.certificate.subject
    titles = subject.get_attributes_for_oid(NameOID.TITLE)
    profession = str(titles[0].value) if titles else ""
    idnat = signature.idnat or ""
    moment = signature.timestamp or signature.signing_time
    when = (
        messages.moment_text(moment.astimezone(TIME_ZONE), language)
        if moment is not None
        else messages.label("unknown_moment", language)
    )
    signer = {
        "given_name": signature.given_name or "",
        "surname": signature.surname or "",
        "idnat": idnat,
        "rpps": idnat[1:] if idnat.startswith("8") else None,
        "profession": profession,
    }
    shown = signer | {"rpps": signer["rpps"] or messages.label("no_patient", language)}
    summary = [
        messages.label("verdict_valid", language),
        messages.label("signed_by", language, **shown),
        messages.label(
            "signed_at_timestamp" if signature.timestamp else "signed_at_claimed",
            language,
            when=when,
        ),
        messages.label("signature_level", language, level=signature.level.value.upper()),
    ]
    return {
        "verdict": "valid",
        "valid": True,
        "code": None,
        "signer": signer,
        "timestamp": signature.timestamp.isoformat() if signature.timestamp else None,
        "signing_time": signature.signing_time.isoformat() if signature.signing_time else None,
        "level": signature.level.value,
        "summary": summary,
    }


def _verdict(verdict: str, error: CardAuthError, language: Language) -> dict[str, Any]:
    """A signature that does not hold: the verdict, its stable code and a sentence."""
    return {
        "verdict": verdict,
        "valid": False,
        "code": error.code,
        "summary": [
            messages.label(f"verdict_{verdict}", language),
            messages.describe(error, language),
        ],
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(value: object) -> bytes:
    """Base64url without padding, in its one spelling (as cardauth.js sends it)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,16384}", value):
        raise PrescriptionFields("base64url expected")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error):
        raise PrescriptionFields("base64url expected") from None
    if _b64url(data) != value:
        raise PrescriptionFields("base64url expected")
    return data
