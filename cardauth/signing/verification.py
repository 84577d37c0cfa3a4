"""Who signed, when, and whether it holds: PAdES, CAdES (detached) and S/MIME
signatures checked by pyHanko's validator against a trust (:mod:`.trust`), with
revocation required for every certificate below a root.

The checks, in order, each a refusal with its code: the signature is there and
parses (``signature.missing``, ``signature.malformed``); it matches the document
(``signature.invalid``: altered, or not the key's, or a PDF changed after it beyond
what its signature allows); the signer's certificate is a signature certificate, nonRepudiation
(``signature.certificate_usage``: never a card's authentication key), chains to a
trusted root and
was valid at the signing time (``signature.untrusted``), was not revoked
(``signature.revoked``), revocation data said so (``signature.revocation_unknown``);
its time stamp, if any, holds (``signature.timestamp_invalid``). Everything is
checked at ``now``; a PDF's own revocation data (its DSS, PAdES B-LT) count beside
the trust's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.validation import async_validate_detached_cms, async_validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.status import (
    PdfSignatureStatus,
    StandardCMSSignatureStatus,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InsufficientRevinfoError,
    PathBuildingError,
    ValidationError,
)

from cardauth.der import decode_certificate
from cardauth.signing import smime
from cardauth.signing.errors import (
    DocumentInvalid,
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
    SignatureRevocationUnknown,
    SignatureRevoked,
    SignatureUntrusted,
    SignatureWrongKey,
    TimestampInvalid,
)
from cardauth.signing.levels import Format, Level
from cardauth.signing.pades import PDF_HEADER
from cardauth.signing.trust import SigningTrust, is_signature_certificate

Status = TypeVar("Status", bound=StandardCMSSignatureStatus)

UNKNOWN_REVOCATION = frozenset(
    (AdESIndeterminate.TRY_LATER, AdESIndeterminate.REVOCATION_OUT_OF_BOUNDS_NO_POE)
)
REVOKED = frozenset(
    (AdESFailure.REVOKED, AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE)
)


# RFC 4514 names the attributes of a CPS certificate's subject that it has no short
# name for: as people read them (and as OpenSSL prints them).
NAME_LABELS = {NameOID.GIVEN_NAME: "GN", NameOID.SURNAME: "SN", NameOID.TITLE: "title"}


def name_text(name: x509.Name) -> str:
    return name.rfc4514_string(NAME_LABELS)


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that holds: who signed (from the certificate), when."""

    format: Format
    level: Level
    signer: str  # the certificate's subject, RFC 4514
    idnat: str | None  # the CN of a CPS card certificate: the professional's IdNat
    given_name: str | None
    surname: str | None
    certificate_serial: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    non_repudiation: bool  # the certificate is a signature certificate (key 81)
    signing_time: dt.datetime | None  # what the signer's computer said
    timestamp: dt.datetime | None  # what the time-stamping authority says
    timestamp_authority: str | None
    certificate: x509.Certificate

    def to_dict(self) -> dict[str, object]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "valid": True,
            "format": self.format.value,
            "level": self.level.value,
            "signer": self.signer,
            "idnat": self.idnat,
            "given_name": self.given_name,
            "surname": self.surname,
            "certificate": {
                "serial": self.certificate_serial,
                "issuer": self.issuer,
                "not_before": iso(self.not_before),
                "not_after": iso(self.not_after),
                "non_repudiation": self.non_repudiation,
            },
            "signing_time": iso(self.signing_time),
            "timestamp": iso(self.timestamp),
            "timestamp_authority": self.timestamp_authority,
        }


def verify_pdf(
    document: bytes, trust: SigningTrust, *, now: dt.datetime
) -> tuple[VerifiedSignature, ...]:
    """Every signature of a PDF, each checked; the first that fails is the refusal."""
    if not document.startswith(PDF_HEADER):
        raise SignatureMalformed("the document is not a PDF")
    try:
        reader = PdfFileReader(io.BytesIO(document), strict=False)
        signatures = reader.embedded_regular_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError, zlib.error) as exc:
        raise SignatureMalformed("the PDF cannot be read", reason=str(exc)) from exc
    if not signatures:
        raise SignatureMissing("the PDF carries no signature")
    crls, ocsps = _dss_revocation(reader)

    def context() -> ValidationContext:
        return trust.validation_context(moment=now, crls=crls, ocsps=ocsps)

    found = []
    for embedded in signatures:
        status = _validated(
            async_validate_pdf_signature(
                embedded, signer_validation_context=context(), ts_validation_context=context()
            )
        )
        level = Level.B_LT if (crls or ocsps) and status.timestamp_validity else None
        found.append(_verified(status, Format.PADES, level, context))
    return tuple(found)


def verify_detached(
    signature: bytes, content: bytes, trust: SigningTrust, *, now: dt.datetime
) -> VerifiedSignature:
    """A detached CMS signature (``.p7s``) of ``content``."""
    signed_data = _signed_data(signature)

    def context() -> ValidationContext:
        return trust.validation_context(moment=now)

    status = _validated(
        async_validate_detached_cms(
            content,
            signed_data,
            signer_validation_context=context(),
            ts_validation_context=context(),
        )
    )
    return _verified(status, Format.CADES, None, context)


def verify_smime(message: bytes, trust: SigningTrust, *, now: dt.datetime) -> VerifiedSignature:
    """A ``multipart/signed`` message: its first part against its signature."""
    try:
        entity, signature = smime.split_signed(message)
    except DocumentInvalid as exc:
        raise SignatureMalformed(exc.message) from exc
    verified = verify_detached(signature, entity, trust, now=now)
    return replace(verified, format=Format.SMIME)


def _validated(validation: Coroutine[Any, Any, Status]) -> Status:
    """pyHanko's status, or its refusal as ours: a signature whose structure does
    not hold (its signed attributes contradict it) is not the signer's."""
    try:
        return asyncio.run(validation)
    except SignatureValidationError as exc:
        if exc.ades_subindication is AdESFailure.FORMAT_FAILURE:
            raise SignatureMalformed("the signature's structure is wrong", reason=str(exc)) from exc
        raise SignatureInvalid("the signature does not hold", reason=str(exc)) from exc
    except (PdfError, ValueError, KeyError, TypeError, NotImplementedError, zlib.error) as exc:
        raise SignatureMalformed("the signature cannot be read", reason=str(exc)) from exc


def _dss_revocation(reader: PdfFileReader) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The CRLs and OCSP answers of the PDF's document security store (PAdES B-LT)."""
    try:
        store = DocumentSecurityStore.read_dss(reader)
        crls = tuple(bytes(ref.get_object().data) for ref in store.crls)
        ocsps = tuple(bytes(ref.get_object().data) for ref in store.ocsps)
    except NoDSSFoundError:
        return (), ()
    except (PdfError, ValueError, KeyError, TypeError, AttributeError, zlib.error) as exc:
        raise SignatureMalformed("the PDF's DSS cannot be read", reason=str(exc)) from exc
    return crls, ocsps


def _signed_data(signature: bytes) -> cms.SignedData:
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise SignatureMalformed("the CMS object is not SignedData")
        signed_data: cms.SignedData = info["content"]
        signed_data.native  # noqa: B018 - decodes it all: a damaged one fails here
    except ValueError as exc:
        raise SignatureMalformed("the signature is not a CMS object", reason=str(exc)) from exc
    if len(signed_data["signer_infos"]) != 1:
        raise SignatureMalformed("the CMS object must carry exactly one signature")
    return signed_data


def _verified(
    status: StandardCMSSignatureStatus,
    format: Format,
    level: Level | None,
    context: Callable[[], ValidationContext],
) -> VerifiedSignature:
    """The checks of the module docstring, in its order, on pyHanko's status."""
    try:  # pyHanko's parser is laxer than cryptography's: a certificate may get here
        certificate = decode_certificate(status.signing_cert.dump())
    except ValueError:
        raise SignatureMalformed("the signer's certificate cannot be read") from None
    names = {"signer": name_text(certificate.subject)}
    if not (status.intact and status.valid):
        raise SignatureInvalid("the signature does not match the document", **names)
    if isinstance(status, PdfSignatureStatus) and not status.bottom_line and status.trusted:
        raise SignatureInvalid("the PDF was changed after it was signed", **names)
    if not is_signature_certificate(certificate):
        raise SignatureWrongKey("the signer's certificate is not for signatures", **names)
    indication = status.trust_problem_indic
    if status.revoked or indication in REVOKED:
        raise SignatureRevoked("the signer's certificate is revoked", **names)
    if indication in UNKNOWN_REVOCATION:
        raise SignatureRevocationUnknown("no revocation data for the signer", **names)
    if not status.trusted:
        if _lacks_revocation_data(status.signing_cert, context()):
            raise SignatureRevocationUnknown("no revocation data for the signer", **names)
        reason = indication.standard_name if indication else "untrusted"
        raise SignatureUntrusted("the signer's certificate is not trusted", reason=reason, **names)
    stamp = status.timestamp_validity
    if stamp is not None:
        _require_timestamp(stamp, names)
    if level is None:
        level = Level.B_T if stamp is not None else Level.B_B
    return _describe(certificate, status, format, level)


def _lacks_revocation_data(certificate: asn1_x509.Certificate, context: ValidationContext) -> bool:
    """Whether the signer's path fails for want of revocation data alone: pyHanko says
    "chain failure" for it as for any other, its certificate validator tells them
    apart (only asked once a signature has failed)."""
    validator = CertificateValidator(certificate, validation_context=context)
    try:
        asyncio.run(validator.async_validate_path())
    except InsufficientRevinfoError:
        return True
    except (ValidationError, PathBuildingError, ValueError):
        return False
    return False


def _require_timestamp(stamp: TimestampSignatureStatus, context: dict[str, str]) -> None:
    if not (stamp.intact and stamp.valid and stamp.trusted):
        raise TimestampInvalid("the signature's time stamp does not hold", **context)


def _describe(
    certificate: x509.Certificate,
    status: StandardCMSSignatureStatus,
    format: Format,
    level: Level,
) -> VerifiedSignature:
    def attribute(oid: x509.ObjectIdentifier) -> str | None:
        values = certificate.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    stamp = status.timestamp_validity
    authority = None
    if stamp is not None:
        try:
            authority = decode_certificate(stamp.signing_cert.dump()).subject
        except ValueError:
            raise SignatureMalformed("the time stamp's certificate cannot be read") from None
    return VerifiedSignature(
        format=format,
        level=level,
        signer=name_text(certificate.subject),
        idnat=attribute(NameOID.COMMON_NAME),
        given_name=attribute(NameOID.GIVEN_NAME),
        surname=attribute(NameOID.SURNAME),
        certificate_serial=f"{certificate.serial_number:X}",
        issuer=name_text(certificate.issuer),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        non_repudiation=is_signature_certificate(certificate),
        signing_time=status.signer_reported_dt,
        timestamp=stamp.timestamp if stamp is not None else None,
        timestamp_authority=name_text(authority) if authority is not None else None,
        certificate=certificate,
    )
