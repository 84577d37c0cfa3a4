"""Deferred signing, for a teleservice with no card on its server: the document is
prepared on the server, the card signs a hash on the professional's workstation
(through the bridge), and the server finishes the signature.

1. :func:`prepare_pdf` (or :func:`prepare_cms`) with the document and the signer's
   certificate (the card's signature certificate, as the bridge reports it) gives a
   :class:`PreparedSignature`: ``digest``, the SHA-256 hash the card signs (of the
   CMS signed attributes), and ``state``, bytes the teleservice keeps meanwhile.
2. The bridge has the card sign ``digest``: RSA PKCS#1 v1.5 over that SHA-256 hash
   (the card's PSO COMPUTE DIGITAL SIGNATURE), the raw signature bytes back.
3. :func:`finish_pdf` (or :func:`finish_cms`) with ``state`` and the raw signature
   checks the signature against the certificate and hash, then gives the signed
   PDF (or the DER ``.p7s``); with a time stamper, B-T; with a validation context
   too, B-LT (PDF).

Nothing here needs a card or pyscard (``pip install 'cardauth[signing]'``). The
state holds the document and what was prepared, as JSON; it is the teleservice's
to keep (server side), and is checked again when it comes back. Synchronous calls
(they run pyHanko's coroutines to completion): do not call them from a running
event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
from dataclasses import dataclass
from typing import IO, Any

from asn1crypto import algos, cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import ExternalSigner, PdfSigner
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from cardauth.signing import pades
from cardauth.signing.errors import (
    CertificateNotForSigning,
    DeferredStateInvalid,
    SignatureValueInvalid,
)
from cardauth.signing.levels import DIGEST_ALGORITHM, SIGNATURE_MECHANISM, Level
from cardauth.signing.trust import is_signature_certificate, to_asn1

STATE_VERSION = 1
# The room kept in the PDF for the signature container: the signature, the
# signer's chain, a time stamp token and its chain, with a margin.
PDF_SIGNATURE_ROOM = 32 * 1024


@dataclass(frozen=True, slots=True)
class PreparedSignature:
    """What :func:`prepare_pdf` and :func:`prepare_cms` give: the hash the card must
    sign and the state to keep until :func:`finish_pdf` or :func:`finish_cms`."""

    digest: bytes  # SHA-256 of the signed attributes: what the card signs
    state: bytes  # JSON, to keep server side and give back to finish


def prepare_pdf(
    document: bytes,
    certificate: bytes | x509.Certificate,
    *,
    chain: tuple[x509.Certificate, ...] = (),
    reason: str | None = None,
) -> PreparedSignature:
    """Prepare ``document`` (a PDF) for a PAdES signature by ``certificate`` (DER or
    decoded), with the CA certificates ``chain`` above it carried in the signature."""
    signer_certificate = _signature_certificate(certificate)
    signer = _external_signer(signer_certificate, chain, None)
    writer = pades.open_pdf(document)
    metadata = pades.signature_metadata(writer, Level.B_B, None, reason)
    pdf_signer = PdfSigner(metadata, signer=signer)

    async def prepare() -> tuple[PreparedByteRangeDigest, IO[bytes], cms.CMSAttributes]:
        prepared, _tbs, output = await pdf_signer.async_digest_doc_for_signing(
            writer, bytes_reserved=PDF_SIGNATURE_ROOM
        )
        attributes = await signer.signed_attrs(
            prepared.document_digest, DIGEST_ALGORITHM, use_pades=True
        )
        return prepared, output, attributes

    prepared, output, attributes = asyncio.run(prepare())
    state = {
        "kind": "pdf",
        "document": _b64(_read_all(output)),
        "document_digest": _b64(prepared.document_digest),
        "reserved": [prepared.reserved_region_start, prepared.reserved_region_end],
        **_signer_state(signer_certificate, chain, attributes),
    }
    return PreparedSignature(hashlib.sha256(attributes.dump()).digest(), _encode(state))


def finish_pdf(
    state: bytes,
    signature: bytes,
    *,
    time_stamper: TimeStamper | None = None,
    validation_context: ValidationContext | None = None,
) -> bytes:
    """The signed PDF: B-B; B-T with ``time_stamper``; B-LT with a
    ``validation_context`` too, whose revocation data go in the document's DSS."""
    values = _decode(state, "pdf")
    signer, attributes = _checked_signer(values, signature)
    try:
        document = base64.b64decode(values["document"], validate=True)
        start, end = values["reserved"]
        prepared = PreparedByteRangeDigest(
            base64.b64decode(values["document_digest"], validate=True), int(start), int(end)
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise DeferredStateInvalid("the state's document cannot be read") from exc
    if not 0 < prepared.reserved_region_start < prepared.reserved_region_end <= len(document):
        raise DeferredStateInvalid("the state's reserved region is out of the document")

    async def finish() -> bytes:
        container = await signer.async_sign_prescribed_attributes(
            DIGEST_ALGORITHM, attributes, timestamper=time_stamper
        )
        output = io.BytesIO(document)
        await PdfTBSDocument.async_finish_signing(output, prepared, container)
        if validation_context is None:
            return output.getvalue()
        reader = PdfFileReader(output, strict=False)
        embedded = reader.embedded_regular_signatures[-1]
        extended = await async_add_validation_info(embedded, validation_context)
        return bytes(extended.getvalue())

    return asyncio.run(finish())


def prepare_cms(
    content: bytes,
    certificate: bytes | x509.Certificate,
    *,
    chain: tuple[x509.Certificate, ...] = (),
) -> PreparedSignature:
    """Prepare a detached CAdES signature (``.p7s``) of ``content``."""
    signer_certificate = _signature_certificate(certificate)
    signer = _external_signer(signer_certificate, chain, None)
    attributes = asyncio.run(
        signer.signed_attrs(
            hashlib.sha256(content).digest(), DIGEST_ALGORITHM, use_pades=True, is_pdf_sig=False
        )
    )
    state = {"kind": "cms", **_signer_state(signer_certificate, chain, attributes)}
    return PreparedSignature(hashlib.sha256(attributes.dump()).digest(), _encode(state))


def finish_cms(state: bytes, signature: bytes, *, time_stamper: TimeStamper | None = None) -> bytes:
    """The DER detached signature: B-B, or B-T with ``time_stamper``."""
    signer, attributes = _checked_signer(_decode(state, "cms"), signature)
    container: cms.ContentInfo = asyncio.run(
        signer.async_sign_prescribed_attributes(
            DIGEST_ALGORITHM, attributes, timestamper=time_stamper
        )
    )
    der: bytes = container.dump()
    return der


# -- the state ---------------------------------------------------------------------------


def _signature_certificate(certificate: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(certificate, bytes):
        try:
            certificate = x509.load_der_x509_certificate(certificate)
        except ValueError as exc:
            raise CertificateNotForSigning("the certificate does not parse") from exc
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise CertificateNotForSigning("a CPS card's signature key is RSA")
    if not is_signature_certificate(certificate):
        raise CertificateNotForSigning("the certificate's key is not for signatures")
    return certificate


def _external_signer(
    certificate: x509.Certificate, chain: tuple[x509.Certificate, ...], value: bytes | None
) -> ExternalSigner:
    signing_cert = to_asn1(certificate)
    key_size = certificate.public_key().key_size // 8  # type: ignore[union-attr]
    return ExternalSigner(
        signing_cert,
        SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [signing_cert, *(to_asn1(c) for c in chain)]
        ),
        signature_value=value if value is not None else key_size,
        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": SIGNATURE_MECHANISM}),
    )


def _signer_state(
    certificate: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    attributes: cms.CMSAttributes,
) -> dict[str, Any]:
    return {
        "certificate": _b64(certificate.public_bytes(Encoding.DER)),
        "chain": [_b64(c.public_bytes(Encoding.DER)) for c in chain],
        "signed_attributes": _b64(attributes.dump()),
    }


def _checked_signer(
    values: dict[str, Any], signature: bytes
) -> tuple[ExternalSigner, cms.CMSAttributes]:
    """The signer that embeds ``signature``, once it is seen to be the certificate's
    key's PKCS#1 v1.5 signature over the SHA-256 of the signed attributes."""
    try:
        certificate = x509.load_der_x509_certificate(
            base64.b64decode(values["certificate"], validate=True)
        )
        chain = tuple(
            x509.load_der_x509_certificate(base64.b64decode(c, validate=True))
            for c in values["chain"]
        )
        encoded = base64.b64decode(values["signed_attributes"], validate=True)
        attributes = cms.CMSAttributes.load(encoded)
        attributes.native  # noqa: B018 - decodes it all: a damaged one fails here
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise DeferredStateInvalid("the state's signer cannot be read") from exc
    public_key = _signature_certificate(certificate).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)  # _signature_certificate checked it
    digest = hashlib.sha256(attributes.dump()).digest()
    try:
        public_key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise SignatureValueInvalid(
            "the signature is not the certificate's key's over the prepared hash"
        ) from exc
    return _external_signer(certificate, chain, signature), attributes


def _encode(state: dict[str, Any]) -> bytes:
    return json.dumps({"cardauth_deferred": STATE_VERSION, **state}).encode()


def _decode(state: bytes, kind: str) -> dict[str, Any]:
    try:
        values = json.loads(state)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeferredStateInvalid("the state is not what prepare gave") from exc
    if not isinstance(values, dict) or values.get("cardauth_deferred") != STATE_VERSION:
        raise DeferredStateInvalid("the state is not what prepare gave")
    if values.get("kind") != kind:
        raise DeferredStateInvalid("the state is of another kind", kind=str(values.get("kind")))
    return values


def _read_all(stream: IO[bytes]) -> bytes:
    stream.seek(0)
    return stream.read()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
