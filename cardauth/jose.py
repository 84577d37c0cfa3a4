"""JWS compact serialisation (RFC 7515 § 7.1), strictly.

Reading is deliberately less forgiving than RFC 7515 allows, because the input is
an attacker's: base64url without padding and in its one canonical form
(RFC 7515 § 2, § 5.2), JSON objects only, no duplicate member names (a parser
that keeps the first and one that keeps the last would disagree: RFC 7515 § 5.2
lets us refuse them), no NaN or Infinity, and bounded sizes. Signing is left to
the caller (a card) through a callback.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from cardauth.errors import AssertionRefused, Refusal

MAX_TOKEN_LENGTH = 32 * 1024
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SEXTET = {char: value for value, char in enumerate(_ALPHABET)}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, jws: str = "cps") -> bytes:
    """Decode unpadded base64url, refusing any other spelling of the same bytes."""
    padding = -len(text) % 4
    # The base64url alphabet has - and _ where base64 has + and /, and no padding.
    if padding == 3 or "+" in text or "/" in text or "=" in text:
        raise AssertionRefused(Refusal.MALFORMED, "not base64url", jws=jws)
    # The last character's unused low bits must be zero (RFC 4648 § 3.5): 4 bits when
    # two characters end the text, 2 bits when three do. Else it is another spelling.
    if padding and _SEXTET.get(text[-1], 0) & (0x0F if padding == 2 else 0x03):
        raise AssertionRefused(Refusal.MALFORMED, "non-canonical base64url", jws=jws)
    standard = text.replace("-", "+").replace("_", "/") + "=" * padding
    try:  # strict mode refuses anything outside the alphabet, whitespace included
        return binascii.a2b_base64(standard, strict_mode=True)
    except (binascii.Error, ValueError):
        raise AssertionRefused(Refusal.MALFORMED, "not base64url", jws=jws) from None


def canonical_json(value: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys, UTF-8: what we sign."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


class _DuplicateName(ValueError):
    pass


class _NotJsonConstant(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _DuplicateName
    return value


def _no_constants(name: str) -> Any:
    raise _NotJsonConstant


# One decoder for every token (json.loads with hooks would build one per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def strict_json_object(data: bytes, *, jws: str = "cps") -> dict[str, Any]:
    """A JSON object, refusing duplicate names, NaN/Infinity and anything else."""
    try:
        value = _DECODER.decode(data.decode("utf-8"))
    except _DuplicateName:
        raise AssertionRefused(
            Refusal.DUPLICATE_KEY, "duplicate JSON member name", jws=jws
        ) from None
    except _NotJsonConstant:
        raise AssertionRefused(
            Refusal.MALFORMED, "NaN and Infinity are not JSON", jws=jws
        ) from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AssertionRefused(Refusal.MALFORMED, "not JSON", jws=jws) from None
    if not isinstance(value, dict):
        raise AssertionRefused(Refusal.MALFORMED, "not a JSON object", jws=jws)
    return value


class CompactJws(NamedTuple):
    """The three parts of a compact JWS, split but not decoded: a verifier decodes
    each part when it needs it (and need not decode a header it has already
    checked). Nothing in it is verified yet. (A named tuple: it is made for every
    token, and costs less than a frozen dataclass.)"""

    header_b64: str
    payload_b64: str
    signature_b64: str
    name: str  # which token, for errors: "cps" or "vitale"

    @classmethod
    def split(
        cls, token: object, *, name: str = "cps", max_length: int = MAX_TOKEN_LENGTH
    ) -> CompactJws:
        if not isinstance(token, str):
            raise AssertionRefused(Refusal.MALFORMED, "a JWS is a string", jws=name)
        if len(token) > max_length:
            raise AssertionRefused(
                Refusal.TOO_LARGE, "assertion too large", jws=name, limit=max_length
            )
        parts = token.split(".")
        if len(parts) != 3:
            raise AssertionRefused(Refusal.MALFORMED, "a compact JWS has three parts", jws=name)
        return cls(parts[0], parts[1], parts[2], name)

    def header(self) -> dict[str, Any]:
        return strict_json_object(b64url_decode(self.header_b64, jws=self.name), jws=self.name)

    def payload(self) -> dict[str, Any]:
        return strict_json_object(b64url_decode(self.payload_b64, jws=self.name), jws=self.name)

    def signature(self) -> bytes:
        return b64url_decode(self.signature_b64, jws=self.name)

    @property
    def signing_input(self) -> bytes:
        """What the signature covers (RFC 7515 § 5.2, step 8)."""
        return f"{self.header_b64}.{self.payload_b64}".encode("ascii")


def serialize(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """The compact JWS of ``header`` and ``payload``; ``sign`` gets the signing input
    (RFC 7515 § 5.1) and returns the signature."""
    signing_input = (
        f"{b64url_encode(canonical_json(header))}.{b64url_encode(canonical_json(payload))}"
    )
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"


def signature_verifier(algorithm: str, key: PublicKeyTypes) -> Callable[[bytes, bytes], None]:
    """A function checking a JWS signature for ``alg`` under ``key`` (RFC 7518
    § 3.3-3.5: RS256, PS256 with a 32-byte salt, ES256 as r || s); it raises
    InvalidSignature. A key of another kind is a ValueError (callers admit only these)."""
    sha256 = hashes.SHA256()
    if isinstance(key, rsa.RSAPublicKey):
        scheme: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if algorithm == "RS256"
            else padding.PSS(padding.MGF1(hashes.SHA256()), 32)  # salt = hash size
        )
        return lambda signature, data: key.verify(signature, data, scheme, sha256)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("a JWS key is RSA or EC P-256")
    ecdsa = ec.ECDSA(sha256)

    def verify_es256(signature: bytes, data: bytes) -> None:
        if len(signature) != 64:  # r || s, 32 bytes each (RFC 7518 § 3.4)
            raise InvalidSignature
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        key.verify(der, data, ecdsa)

    return verify_es256
