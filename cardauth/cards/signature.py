"""A document signature with the CPS card's non-repudiation key (``81``), over a
SHA-256 digest the caller computed: the form deferred signing needs (the
teleservice prepares the PDF or CMS, sends its digest to be signed, and finishes
the document with the signature and the certificate).

Each signature has a PIN session of its own: the card is logged out, the PIN the
holder typed for this very signature (or on the reader's keypad) is presented, PSO
COMPUTE DIGITAL SIGNATURE runs, and the card logs out, whatever state it was in
before. A PIN verified for a
login is never what lets the signature key sign. The card wraps the digest in its
DigestInfo and pads it (RSASSA-PKCS1-v1_5, RFC 8017 § 8.2.1), so the answer is the
raw signature of the document whose SHA-256 digest it is; it is checked against the
signature certificate before it goes out (an answer damaged on the way, or a fault,
is refused here, never handed out).

The authentication key (``82``) is never reached from here: the card layer names
the key by its PKCS#15 usage (nonRepudiation), and the sequence (hash template,
signature template, PSO) is one the authentication key does not take.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from cardauth.cards import pinpad
from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.session import PinSource, log_out, pin_session
from cardauth.errors import MalformedApdu, MalformedCardData

SHA256_SIZE = hashes.SHA256.digest_size


@dataclass(frozen=True, slots=True)
class DocumentSignature:
    """What a teleservice needs to finish a document: the raw RSASSA-PKCS1-v1_5
    signature with SHA-256, and the certificate of the key that made it."""

    signature: bytes
    certificate_der: bytes


def sign_digest(
    card: CpsCard,
    digest: bytes,
    pin: PinSource,
    *,
    keypad_timeout: int = pinpad.DEFAULT_TIMEOUT_SECONDS,
) -> DocumentSignature:
    """Sign ``digest`` (SHA-256, 32 bytes) with the non-repudiation key, after one
    VERIFY of ``pin`` (never optional: every signature asks for it), then log out."""
    if len(digest) != SHA256_SIZE:
        raise MalformedApdu("a SHA-256 digest is 32 bytes", length=len(digest))
    with card.transaction():
        certificate_der = card.certificate_der(KeyRole.SIGNATURE)
        key = card.parse_certificate(certificate_der).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise MalformedCardData("the card's signature certificate has no RSA key")
        # Logged out first: a PIN a login left verified (the bridge keeps it for its
        # idle time) is not what lets the signature key sign, even on a card that
        # keeps the security status through a failed VERIFY.
        log_out(card)
        with pin_session(card, pin, keep=False, keypad_timeout=keypad_timeout):
            signature = card.sign(digest)
    try:
        key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    except InvalidSignature:
        raise MalformedCardData(
            "the card's signature does not verify with its signature certificate",
            command="PSO CDS",
        ) from None
    return DocumentSignature(signature, certificate_der)
