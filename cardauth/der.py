"""Certificates from untrusted bytes, decoded completely at once; CRL files split
into their DER CRLs (decoded and indexed by :mod:`cardauth.revocation`).

cryptography decodes lazily, and each part can raise its own exception when it is
first read (ValueError, UnsupportedAlgorithm, DuplicateExtension,
UnsupportedGeneralNameType...). Reading every part here turns all of them into
one ValueError, before any check looks at the object.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----(.+?)-----END X509 CRL-----", re.DOTALL)


def decode_certificate(der: bytes) -> x509.Certificate:
    try:
        certificate = x509.load_der_x509_certificate(der)
        _ = certificate.subject, certificate.issuer, list(certificate.extensions)
        _ = certificate.public_key(), certificate.signature_hash_algorithm
        _ = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    except Exception as exc:  # whatever decoding hostile bytes raises: malformed
        raise ValueError("malformed certificate") from exc
    return certificate


def decode_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file, or the one of a DER file."""
    try:
        if b"-----BEGIN" in data:
            return [
                decode_certificate(c.public_bytes(Encoding.DER))
                for c in x509.load_pem_x509_certificates(data)
            ]
    except Exception as exc:
        raise ValueError("malformed certificate file") from exc
    return [decode_certificate(data)]


def crl_blobs(data: bytes) -> list[bytes]:
    """The DER of every CRL of a PEM file (one or several), or the one DER CRL of a
    DER file. Only split here: :class:`cardauth.revocation.RevocationList` decodes
    each one (a CRL of 100,000 entries is 5 MB: re-encoding it through
    cryptography, as ``load_pem_x509_crl(...).public_bytes(DER)`` does, costs
    0.3 s, decoding the PEM's base64 a few milliseconds)."""
    if b"-----BEGIN" not in data:
        return [data]
    bodies = _PEM_CRL.findall(data)
    if not bodies:
        raise ValueError("no CRL in the PEM file")
    try:
        return [base64.b64decode(b"".join(body.split()), validate=True) for body in bodies]
    except binascii.Error as exc:
        raise ValueError("malformed PEM CRL") from exc
