"""Secrets and security objects held by a virtual card: PINs with retry counters,
private keys, security environments, and the access rules of files and objects.

A card we would trust: PINs are compared in constant time and never logged or
shown in a ``repr``; a wrong PIN answers 63Cx with the tries left; a blocked PIN
answers 6983 whatever is presented.

IAS-ECC (the CPS3's platform) keeps PINs, keys and security environments as
"security data objects" (SDOs), each in a DF, each with a descriptor (DOCP) that
GET DATA returns: its access rules in compact form, its tries and sizes. The
encodings follow what real CPS3 cards answer (docs/simulator.md).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import Enum, IntEnum, auto

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardauth import tlv
from cardauth.cards.algorithms import CardAlgorithm, split_digest_info

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Security condition bytes (SCB) of IAS-ECC compact access rules.
SCB_ALWAYS = 0x00
SCB_NEVER = 0xFF
SCB_USER_AUTHENTICATION = 0x10  # low nibble: the security environment naming the PIN


class SdoClass(IntEnum):
    """IAS-ECC classes of security data objects (the second byte of their tag BF cc rr)."""

    CHV = 0x01  # a PIN or an unblocking code
    RSA_PRIVATE_KEY = 0x10
    SECURITY_ENVIRONMENT = 0x7B


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Compact access rules (ISO 7816-4 § 9.3.2 tag 8C; 9C for the contactless
    interface): the access mode byte, then one SCB per operation it names, from
    the highest bit down."""

    contact: bytes
    contactless: bytes | None = None

    def scb(self, operation_bit: int) -> int:
        """The SCB of the operation whose bit (0x40 down to 0x01) is ``operation_bit``;
        never when the access mode byte does not name it."""
        mode, scbs = self.contact[0], self.contact[1:]
        if not mode & operation_bit:
            return SCB_NEVER
        index = sum(
            1 for bit in (0x40, 0x20, 0x10, 0x08, 0x04, 0x02) if bit > operation_bit and mode & bit
        )
        return scbs[index] if index < len(scbs) else SCB_NEVER

    def template(self) -> bytes:
        """A1 { 8C ... [9C ...] }: the security attributes of an FCP or a DOCP."""
        body = tlv.encode(0x8C, self.contact)
        if self.contactless is not None:
            body += tlv.encode(0x9C, self.contactless)
        return tlv.encode(0xA1, body)


# Operation bits of a file's access mode byte (ISO 7816-4 § 9.3.2, table 17).
FILE_READ = 0x01
# Operation bits of an SDO's access mode byte (IAS-ECC; OpenSC's iasecc-sdo.h).
CHV_VERIFY = 0x20
CHV_RESET = 0x10
KEY_PSO_SIGNATURE = 0x40
KEY_INTERNAL_AUTHENTICATE = 0x20


@dataclass(slots=True)
class PinObject:
    """A PIN (or unblocking code) with its retry counter. Mutable: the counter is card
    state. ``home`` is the DF that holds it (3F00: global)."""

    reference: int
    value: bytes = field(repr=False)
    max_tries: int
    tries_left: int
    stored_length: int = 8  # the length of what a host sends (ASCII padded with FF)
    min_length: int = 4
    max_length: int = 8
    access: AccessRules = AccessRules(bytes.fromhex("F3000013FF00"))
    usage_left: int | None = None  # uses of the object left, when it has a counter
    home: int = 0x3F00

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

    def descriptor(self) -> bytes:
        """The DOCP (A0): tries, usage counter, access rules."""
        body = tlv.encode(0x9A, bytes((self.max_tries,))) + tlv.encode(
            0x9B, bytes((self.tries_left,))
        )
        if self.usage_left is not None:
            body += tlv.encode(0x9D, self.usage_left.to_bytes(2, "big"))
        return tlv.encode(0xA0, body + self.access.template())

    def public_data(self) -> bytes:
        """The CHV's public part (7F41): its largest and smallest length."""
        body = tlv.encode(0x80, bytes((self.max_length,))) + tlv.encode(
            0x81, bytes((self.min_length,))
        )
        return tlv.encode(0x7F41, body)


class KeyOperation(Enum):
    """The command a key serves, and so the security environment template it is set in."""

    INTERNAL_AUTHENTICATE = auto()  # authentication key: template AT (A4)
    COMPUTE_SIGNATURE = auto()  # non-repudiation key: template DST (B6), after PSO HASH


class KeyAccess(Enum):
    """When a key may be used."""

    ALWAYS = auto()  # no PIN (the Vitale card key)
    PIN = auto()  # once the PIN is verified, until it is reset (authentication key)
    PIN_EACH_USE = auto()  # the PIN must be verified again before each use (signature key)


@dataclass(frozen=True, slots=True)
class CardKey:
    """A private key on the card: its reference (what MSE names, 81 or 82 with the
    "local" bit), the DF that holds it, the algorithms and access rule it allows."""

    reference: int
    private_key: PrivateKey = field(repr=False)
    operation: KeyOperation
    algorithms: frozenset[CardAlgorithm]
    access: KeyAccess
    pin_reference: int | None = None
    home: int = 0x3F00
    rules: AccessRules = AccessRules(bytes.fromhex("7BFFFFFFFFFF00"))  # profiles say what it may do

    @property
    def modulus_bytes(self) -> int:
        key = self.private_key
        return (key.key_size + 7) // 8

    def descriptor(self) -> bytes:
        """The DOCP (A0): the key's size in bytes and its access rules."""
        return tlv.encode(
            0xA0, tlv.encode(0x80, self.modulus_bytes.to_bytes(2, "big")) + self.rules.template()
        )

    def sign(self, algorithm: CardAlgorithm, data: bytes) -> bytes:
        """Compute the signature for the data a host sent (see CardAlgorithm): any data
        under RSA_PKCS1 (INTERNAL AUTHENTICATE: the card pads what it gets, a DigestInfo
        as a rule), a hash under the hash-and-sign algorithms (PSO CDS), a SHA-256 hash
        under ECDSA.

        Raises ValueError when the data do not fit the algorithm; the interpreter
        answers that with 6A80.
        """
        key = self.private_key
        if algorithm is CardAlgorithm.RSA_PKCS1 and isinstance(key, rsa.RSAPrivateKey):
            try:
                hash_algorithm, digest = split_digest_info(data)
            except ValueError:
                return _pkcs1_type1_signature(key, data)
            # The same bytes as the padding below, computed by cryptography (faster).
            return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hash_algorithm))
        if algorithm in _HASH_AND_SIGN and isinstance(key, rsa.RSAPrivateKey):
            hash_algorithm = _HASH_AND_SIGN[algorithm]
            _require_length(data, hash_algorithm.digest_size)
            return key.sign(data, padding.PKCS1v15(), utils.Prehashed(hash_algorithm))
        if algorithm is CardAlgorithm.ECDSA_SHA256 and isinstance(key, ec.EllipticCurvePrivateKey):
            _require_length(data, 32)
            der = key.sign(data, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            r, s = utils.decode_dss_signature(der)
            size = (key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        raise ValueError("algorithm does not fit the key")


_HASH_AND_SIGN: dict[CardAlgorithm, hashes.HashAlgorithm] = {
    CardAlgorithm.SHA1_RSA_PKCS1: hashes.SHA1(),  # noqa: S303 - a card algorithm, kept for fidelity
    CardAlgorithm.SHA256_RSA_PKCS1: hashes.SHA256(),
}


@dataclass(frozen=True, slots=True)
class SecurityEnvironment:
    """A stored security environment (SDO class 7B): its control reference
    templates, as (tag, usage qualifier, reference) triples."""

    reference: int
    templates: tuple[tuple[int, int, int], ...]
    home: int = 0x3F00

    def encode(self) -> bytes:
        """7B { CRT ... }, each CRT a list of one-byte tag-length-value triples."""
        body = b"".join(
            tlv.encode(
                tag, tlv.encode(0x83, bytes((reference,))) + tlv.encode(0x95, bytes((usage,)))
            )
            for tag, usage, reference in self.templates
        )
        return tlv.encode(SdoClass.SECURITY_ENVIRONMENT, body)


def _pkcs1_type1_signature(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """RSA of ``data`` padded as a PKCS#1 v1.5 signature block (RFC 8017 § 9.2, step 5:
    00 01 FF...FF 00 data), whatever the data: what a card does for INTERNAL
    AUTHENTICATE. cryptography signs hashes only, so the private operation is done
    here (by the Chinese remainder theorem; a simulator's key protects nothing)."""
    size = (key.key_size + 7) // 8
    if len(data) > size - 11:
        raise ValueError("data too long for the modulus")
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(data)) + b"\x00" + data
    numbers = key.private_numbers()
    message = int.from_bytes(block, "big")
    first = pow(message, numbers.dmp1, numbers.p)
    second = pow(message, numbers.dmq1, numbers.q)
    signature = second + numbers.q * ((numbers.iqmp * (first - second)) % numbers.p)
    return signature.to_bytes(size, "big")


def _require_length(data: bytes, length: int) -> None:
    if len(data) != length:
        raise ValueError("wrong hash length")
