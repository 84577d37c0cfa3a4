"""Signature algorithms a card key offers, and the DigestInfo the host sends.

The algorithm reference is the byte a host puts in tag 80 of MANAGE SECURITY
ENVIRONMENT (ISO 7816-4 § 11.5.11). The RSA and hash values are IAS-ECC's, as
real CPS3 cards list them in their EF.TokenInfo (``algRef``) and as their
middleware sends them; the ECDSA value is our Vitale profile's
(docs/simulator.md).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from cryptography.hazmat.primitives import hashes

from cardauth.errors import MalformedApdu


class CardAlgorithm(IntEnum):
    """What the card does with the data of INTERNAL AUTHENTICATE or PSO CDS."""

    RSA_PKCS1 = 0x02  # INTERNAL AUTHENTICATE: data = a DigestInfo, the card pads it (type 1)
    SHA1_RSA_PKCS1 = 0x12  # PSO CDS: the SHA-1 hash (from PSO HASH), signed with its DigestInfo
    SHA256_RSA_PKCS1 = 0x42  # PSO CDS: the SHA-256 hash (from PSO HASH), signed likewise
    ECDSA_SHA256 = 0x04  # data = SHA-256 hash; card returns r || s, each the curve size


class HashReference(IntEnum):
    """The hash of the hash template (MSE SET AA), for PSO HASH (IAS-ECC)."""

    SHA1 = 0x10
    SHA256 = 0x40


# DER prefixes of DigestInfo for each hash (RFC 8017 § 9.2, note 1).
_DIGEST_INFO_PREFIXES: dict[str, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def digest_info(hash_algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """The DER DigestInfo of ``digest`` (what the card signs under PKCS#1 v1.5)."""
    prefix = _DIGEST_INFO_PREFIXES.get(hash_algorithm.name)
    if prefix is None or len(digest) != hash_algorithm.digest_size:
        raise MalformedApdu("unsupported hash or wrong digest length", hash=hash_algorithm.name)
    return prefix + digest


def split_digest_info(data: bytes) -> tuple[hashes.HashAlgorithm, bytes]:
    """The hash algorithm and digest of a DigestInfo; ValueError when it is not one."""
    for name, prefix in _DIGEST_INFO_PREFIXES.items():
        algorithm = _HASHES[name]
        if data.startswith(prefix) and len(data) == len(prefix) + algorithm.digest_size:
            return algorithm, data[len(prefix) :]
    raise ValueError("not a DigestInfo of a supported hash")


class SignatureScheme(StrEnum):
    """How a digest is signed by a card key, named as in JOSE (RFC 7518 § 3.1)."""

    RS256 = "RS256"  # RSASSA-PKCS1-v1_5 with SHA-256
    ES256 = "ES256"  # ECDSA P-256 with SHA-256, signature as r || s

    @property
    def card_algorithm(self) -> CardAlgorithm:
        return _CARD_ALGORITHMS[self]

    def card_input(self, digest: bytes) -> bytes:
        """The data the card signs for a SHA-256 ``digest``."""
        if len(digest) != hashes.SHA256.digest_size:
            raise MalformedApdu("a SHA-256 digest is 32 bytes", length=len(digest))
        if self is SignatureScheme.RS256:
            return digest_info(hashes.SHA256(), digest)
        return digest


_CARD_ALGORITHMS = {
    SignatureScheme.RS256: CardAlgorithm.RSA_PKCS1,
    SignatureScheme.ES256: CardAlgorithm.ECDSA_SHA256,
}
