"""The assertion format's constants, shared by the builder (on the workstation) and
the verifier (at the teleservice); docs/protocol.md describes the format."""

from __future__ import annotations

import datetime as dt
import hashlib

from cardauth import jose

ASSERTION_TYPE = "cardauth+jws"
VITALE_TYPE = "cardauth-vitale+jws"
BINDING_PARAMETER = "cardauth"  # our critical header parameter; its value is the version
PROTOCOL_VERSION = 1
DEFAULT_LIFETIME = dt.timedelta(minutes=2)
MAX_LIFETIME = dt.timedelta(minutes=5)


def thumbprint(certificate_der: bytes) -> str:
    """base64url(SHA-256(DER)), as for ``x5t#S256`` (RFC 7515 § 4.1.8)."""
    return jose.b64url_encode(hashlib.sha256(certificate_der).digest())
