"""What a site's page may ask of the card on the bridge's page, one kind per
interaction (``POST /v1/interactions``, member ``kind``), and what each gives back.

- ``login`` (the default): the authentication key signs an assertion over the
  site's origin and challenge (docs/protocol.md).
- ``signing_certificate``: the certificate of the non-repudiation key, given once
  the professional allowed that site to have it (public data, no PIN).
- ``signature``: the non-repudiation key signs a SHA-256 hash the site prepared
  (deferred signing: the site finishes its PDF or CMS with the signature and the
  certificate). The bridge's page shows the site, the document's name and the
  hash, and asks the PIN for this signature alone. A site may name the signing
  certificate it prepared the document for (its signed attributes name it): the
  bridge then signs with that card only.

Each kind is parsed here from the site's JSON body, strictly: a member of another
kind, a hash that is not 32 bytes in canonical base64url, an algorithm other than
SHA-256, a document name that could hide what it says on the page, or a
certificate that is not base64url is refused with a code of its own, before
anything waits for the professional.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from cardauth import challenges
from cardauth.cards.signature import SHA256_SIZE, DocumentSignature
from webbridge.errors import (
    BadRequest,
    CertificateMalformed,
    DocumentNameInvalid,
    HashAlgorithmUnsupported,
    HashMalformed,
)

HASH_ALGORITHM = "SHA-256"  # the only one a CPS3 signs with its DigestInfo (PSO HASH 40)
SIGNATURE_ALGORITHM = "RS256"  # RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 § 3.3)
MAX_DOCUMENT_NAME = 120  # characters: what the bridge's page shows on a few lines
# Characters a name shown to the professional may not hold (Unicode general
# categories): controls (line breaks, escapes), format characters (bidirectional
# overrides and isolates, which reorder what is shown, e.g. "fdp.exe" shown as
# "exe.pdf"; zero-width ones), surrogates, private use, unassigned, and the line
# and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_HASH = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes in base64url, without padding
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_HEX_GROUP = 4  # hexadecimal digits per group on the page


class Kind(StrEnum):
    LOGIN = "login"
    SIGNING_CERTIFICATE = "signing_certificate"
    SIGNATURE = "signature"


@dataclass(frozen=True, slots=True)
class Login:
    """An assertion over the site's origin (the Origin header) and its challenge."""

    challenge: str
    with_vitale: bool
    kind: ClassVar[Kind] = Kind.LOGIN


@dataclass(frozen=True, slots=True)
class SigningCertificate:
    """The certificate of the non-repudiation key."""

    kind: ClassVar[Kind] = Kind.SIGNING_CERTIFICATE


@dataclass(frozen=True, slots=True)
class Signature:
    """A signature with the non-repudiation key over ``digest`` (SHA-256); when the
    site names the signing certificate it prepared the document for, by the card of
    that certificate only."""

    digest: bytes
    document_name: str
    certificate: bytes | None = None  # DER, as the site received it
    kind: ClassVar[Kind] = Kind.SIGNATURE

    def hash_groups(self) -> list[str]:
        """The hash as the page shows it: upper-case hexadecimal, in groups of four,
        so that the professional can compare it with what the site shows."""
        text = self.digest.hex().upper()
        return [text[i : i + _HEX_GROUP] for i in range(0, len(text), _HEX_GROUP)]


Operation = Login | SigningCertificate | Signature

# The members each kind takes, beside kind, request_id and page_id.
MEMBERS: Mapping[Kind, frozenset[str]] = {
    Kind.LOGIN: frozenset({"challenge", "vitale"}),
    Kind.SIGNING_CERTIFICATE: frozenset(),
    Kind.SIGNATURE: frozenset({"hash", "hash_algorithm", "document_name", "certificate"}),
}
COMMON_MEMBERS = frozenset({"kind", "request_id", "page_id"})
ALL_MEMBERS = COMMON_MEMBERS.union(*MEMBERS.values())


def parse(body: Mapping[str, Any]) -> Operation:
    """The operation a site's body asks for (``kind``: ``login`` when absent)."""
    try:
        kind = Kind(body.get("kind", Kind.LOGIN.value))
    except (ValueError, TypeError):
        raise BadRequest("kind is login, signing_certificate or signature") from None
    foreign = set(body) - COMMON_MEMBERS - MEMBERS[kind]
    if foreign:
        raise BadRequest(f"{kind.value} does not take {', '.join(sorted(foreign))}")
    if kind is Kind.LOGIN:
        return Login(challenges.check_format(body.get("challenge")), flag(body, "vitale"))
    if kind is Kind.SIGNING_CERTIFICATE:
        return SigningCertificate()
    if body.get("hash_algorithm") != HASH_ALGORITHM:
        raise HashAlgorithmUnsupported("the hash to sign is SHA-256")
    return Signature(
        parse_hash(body.get("hash")),
        parse_document_name(body.get("document_name")),
        parse_certificate(body["certificate"]) if "certificate" in body else None,
    )


def flag(body: Mapping[str, Any], name: str) -> bool:
    """An optional true/false member of a JSON body (false when absent)."""
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} is true or false")
    return value


def parse_hash(value: object) -> bytes:
    """A SHA-256 hash: 32 bytes in base64url without padding, in its one spelling
    (the last character's unused bits zero: RFC 4648 § 3.5), nothing else."""
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise HashMalformed("the hash is 32 bytes in base64url (43 characters)")
    digest = base64.urlsafe_b64decode(value + "=")
    if encode(digest) != value or len(digest) != SHA256_SIZE:
        raise HashMalformed("the hash is not spelled canonically")
    return digest


def parse_certificate(value: object) -> bytes:
    """The signing certificate a site prepared its document for: DER in base64url
    without padding (compared with the card's as bytes: never parsed here)."""
    if not isinstance(value, str) or not _BASE64URL.fullmatch(value):
        raise CertificateMalformed("certificate is a DER certificate in base64url")
    try:
        der = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:  # binascii.Error: a length no bytes have
        raise CertificateMalformed("certificate is not base64url") from None
    if encode(der) != value:
        raise CertificateMalformed("certificate is not spelled canonically")
    return der


def parse_document_name(value: object) -> str:
    """The document's name, as the bridge's page will show it: 1 to 120 characters,
    not blank, none of which could hide or reorder what the page says."""
    if not isinstance(value, str) or not value.strip():
        raise DocumentNameInvalid("the document's name is a text")
    if len(value) > MAX_DOCUMENT_NAME:
        raise DocumentNameInvalid("the document's name is too long", length=len(value))
    for character in value:
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            raise DocumentNameInvalid(
                "the document's name has a control or invisible character",
                character=f"U+{ord(character):04X}",
            )
    return value


# -- what each kind gives back ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assertion:
    token: str

    def to_dict(self) -> dict[str, str]:
        return {"assertion": self.token}


@dataclass(frozen=True, slots=True)
class Certificate:
    der: bytes

    def to_dict(self) -> dict[str, str]:
        return {"certificate": encode(self.der)}


@dataclass(frozen=True, slots=True)
class Signed:
    signed: DocumentSignature

    def to_dict(self) -> dict[str, str]:
        return {
            "signature": encode(self.signed.signature),
            "signature_algorithm": SIGNATURE_ALGORITHM,
            "certificate": encode(self.signed.certificate_der),
        }


Result = Assertion | Certificate | Signed


def encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 § 5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
