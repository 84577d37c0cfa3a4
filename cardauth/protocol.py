"""The assertion format's constants, shared by the builder (on the workstation) and
the verifier (at the teleservice); docs/protocol.md describes the format."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from cardauth import jose

ASSERTION_TYPE = "cardauth+jws"
VITALE_TYPE = "cardauth-vitale+jws"
BINDING_PARAMETER = "cardauth"  # our critical header parameter; its value is the version
PROTOCOL_VERSION = 1
DEFAULT_LIFETIME = dt.timedelta(minutes=2)
MAX_LIFETIME = dt.timedelta(minutes=5)

# The ``card`` claim: the chip serial of EF.SN.ICC (``5A 0A`` + 10 bytes: the issuer
# number, 80 25 00 00 01 on a CPS, then the card's own 5 bytes), in upper-case
# hexadecimal, as the card layer reads it (cardauth.cards.files.read_chip_serial).
_CARD_SERIAL = re.compile(r"[0-9A-F]{20}", re.ASCII)
# A SHA-256 thumbprint in base64url: 43 characters, the last one's 2 unused bits zero
# (RFC 4648 § 3.5), so that 32 bytes have one spelling.
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]", re.ASCII)


def thumbprint(certificate_der: bytes) -> str:
    """base64url(SHA-256(DER)), as for ``x5t#S256`` (RFC 7515 § 4.1.8)."""
    return jose.b64url_encode(hashlib.sha256(certificate_der).digest())


def is_card_serial(value: object) -> bool:
    """Whether ``value`` is a chip serial in the one spelling of the protocol: 20
    upper-case hexadecimal digits, nothing else (no sign, space or line break)."""
    return isinstance(value, str) and _CARD_SERIAL.fullmatch(value) is not None


def is_thumbprint(value: object) -> bool:
    """Whether ``value`` is a SHA-256 thumbprint as :func:`thumbprint` spells it."""
    return isinstance(value, str) and _THUMBPRINT.fullmatch(value) is not None
