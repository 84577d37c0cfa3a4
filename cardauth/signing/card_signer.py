"""The CPS card as a pyHanko :class:`~pyhanko.sign.signers.Signer`: any pyHanko
user (PAdES, CAdES, S/MIME, or pyHanko's own tools) signs with the card's
non-repudiation key ``81``.

The signer's certificate is the card's signature certificate (read through the
card's PKCS#15 objects), with the CA certificates above it from the trust. Each
signature asks ``pin`` for the PIN at the moment it is made, presents it in a
session of its own and logs out (:func:`cardauth.cards.signature.sign_digest`):
a PIN is never kept from one signature, nor from a login, for the next. The
signed attributes are hashed on the host (SHA-256) and the card signs the hash
with PKCS#1 v1.5 (``sha256_rsa``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable

from asn1crypto import algos
from cryptography import x509
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from cardauth.cards import pinpad
from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.session import PinSource
from cardauth.cards.signature import sign_digest
from cardauth.errors import CardExpired, CardNotYetValid
from cardauth.signing.errors import CertificateNotForSigning, SigningError
from cardauth.signing.levels import DIGEST_ALGORITHM, SIGNATURE_MECHANISM
from cardauth.signing.trust import is_signature_certificate, to_asn1


def require_signature_certificate(certificate: x509.Certificate, now: dt.datetime) -> None:
    """A signature certificate valid at ``now``: key usage nonRepudiation (the
    card's ``81``, never its authentication key), before any PIN is asked."""
    if not is_signature_certificate(certificate):
        raise CertificateNotForSigning("the certificate's key is not for signatures")
    context = {"not_before": certificate.not_valid_before_utc.date().isoformat()}
    context["not_after"] = certificate.not_valid_after_utc.date().isoformat()
    if now > certificate.not_valid_after_utc:
        raise CardExpired("the card's signature certificate has expired", kind="cps", **context)
    if now < certificate.not_valid_before_utc:
        raise CardNotYetValid(
            "the card's signature certificate is not valid yet", kind="cps", **context
        )


class CardSigner(Signer):
    """Signs with a CPS card's non-repudiation key. ``pin`` is called once per
    signature, when the card is about to sign: it returns the PIN the holder typed,
    or :attr:`~cardauth.cards.session.Keypad.ENTRY` for the reader's keypad."""

    def __init__(
        self,
        card: CpsCard,
        pin: Callable[[], PinSource],
        *,
        chain: Iterable[x509.Certificate] = (),
        now: dt.datetime | None = None,
        keypad_timeout: int = pinpad.DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        certificate = card.certificate(KeyRole.SIGNATURE)
        require_signature_certificate(certificate, now or dt.datetime.now(dt.UTC))
        signing_cert = to_asn1(certificate)
        super().__init__(
            signing_cert=signing_cert,
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [signing_cert, *(to_asn1(c) for c in chain)]
            ),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": SIGNATURE_MECHANISM}),
        )
        self.card = card
        self.certificate = certificate
        self.signing_key_size: int = signing_cert.public_key.byte_size
        self._pin = pin
        self._keypad_timeout = keypad_timeout

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm != DIGEST_ALGORITHM:
            raise SigningError("the card signs SHA-256 hashes", digest=digest_algorithm)
        if dry_run:  # pyHanko sizing the signature's place: no card, no PIN
            return bytes(self.signing_key_size)
        digest = hashlib.sha256(data).digest()
        return sign_digest(
            self.card, digest, self._pin(), keypad_timeout=self._keypad_timeout
        ).signature
