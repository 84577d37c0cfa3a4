"""Certificates and CRLs from untrusted bytes, decoded completely at once.

cryptography decodes lazily, and each part can raise its own exception when it is
first read (ValueError, UnsupportedAlgorithm, DuplicateExtension,
UnsupportedGeneralNameType...). Reading every part here turns all of them into
one ValueError, before any check looks at the object.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


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


def decode_crl(der: bytes) -> x509.CertificateRevocationList:
    try:
        crl = x509.load_der_x509_crl(der)
        _ = crl.issuer, list(crl.extensions), crl.signature_hash_algorithm
        _ = crl.last_update_utc, crl.next_update_utc
        for entry in crl:
            _ = entry.serial_number, list(entry.extensions)
    except Exception as exc:  # whatever decoding hostile bytes raises: malformed
        raise ValueError("malformed CRL") from exc
    return crl


def decode_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL of a PEM file (one or several), or the one of a DER file."""
    if b"-----BEGIN" not in data:
        return [decode_crl(data)]
    blocks = _PEM_CRL.findall(data)
    if not blocks:
        raise ValueError("no CRL in the PEM file")
    try:
        return [
            decode_crl(x509.load_pem_x509_crl(block).public_bytes(Encoding.DER)) for block in blocks
        ]
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError("malformed CRL") from exc
