"""Secrets held by a virtual card: PINs with retry counters, and private keys.

A card we would trust: PINs are compared in constant time and never logged or
shown in a ``repr``; a wrong PIN answers 63Cx with the tries left; a blocked PIN
answers 6983 whatever is presented.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import Enum, auto

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardauth.cards.algorithms import CardAlgorithm, split_digest_info

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(slots=True)
class PinObject:
    """A PIN (or PUK) with its retry counter. Mutable: the counter is card state."""

    reference: int
    value: bytes = field(repr=False)
    max_tries: int
    tries_left: int
    encoded_length: int = 8  # the length of what a host sends (ASCII padded with FF)

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0

    def check(self, presented: bytes) -> bool:
        """Compare in constant time and update the counter. The caller checks ``blocked``."""
        if hmac.compare_digest(presented, self.value):
            self.tries_left = self.max_tries
            return True
        self.tries_left = max(0, self.tries_left - 1)
        return False

    def replace(self, new_value: bytes) -> None:
        self.value = new_value
        self.tries_left = self.max_tries

    def unblock(self) -> None:
        self.tries_left = self.max_tries


class KeyOperation(Enum):
    """The command a key serves, and so the security environment template it is set in."""

    INTERNAL_AUTHENTICATE = auto()  # authentication key: template AT (A4)
    COMPUTE_SIGNATURE = auto()  # non-repudiation key: template DST (B6)


class KeyAccess(Enum):
    """When a key may be used."""

    ALWAYS = auto()  # no PIN (the Vitale card key)
    PIN = auto()  # once the PIN is verified, until reset (authentication key)
    PIN_EACH_USE = auto()  # the PIN must be verified again before each use (signature key)


@dataclass(frozen=True, slots=True)
class CardKey:
    """A private key on the card, with the algorithms and access rule it allows."""

    reference: int
    private_key: PrivateKey = field(repr=False)
    operation: KeyOperation
    algorithms: frozenset[CardAlgorithm]
    access: KeyAccess
    pin_reference: int | None = None

    def sign(self, algorithm: CardAlgorithm, data: bytes) -> bytes:
        """Compute the signature for the data a host sent (see CardAlgorithm).

        Raises ValueError when the data do not fit the algorithm; the interpreter
        answers that with 6A80.
        """
        key = self.private_key
        if algorithm is CardAlgorithm.RSA_PKCS1_DIGEST_INFO and isinstance(key, rsa.RSAPrivateKey):
            hash_algorithm, digest = split_digest_info(data)
            return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hash_algorithm))
        if algorithm is CardAlgorithm.RSA_PSS_SHA256 and isinstance(key, rsa.RSAPrivateKey):
            _require_length(data, 32)
            pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            return key.sign(data, pss, utils.Prehashed(hashes.SHA256()))
        if algorithm is CardAlgorithm.ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePrivateKey):
            _require_length(data, 32)
            der = key.sign(data, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            r, s = utils.decode_dss_signature(der)
            size = (key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        raise ValueError("algorithm does not fit the key")


def _require_length(data: bytes, length: int) -> None:
    if len(data) != length:
        raise ValueError("wrong hash length")
