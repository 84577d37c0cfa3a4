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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cardauth.errors import AssertionRefused, Refusal

MAX_TOKEN_LENGTH = 32 * 1024
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, jws: str = "cps") -> bytes:
    """Decode unpadded base64url, refusing any other spelling of the same bytes."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise AssertionRefused(Refusal.MALFORMED, "not base64url", jws=jws)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AssertionRefused(Refusal.MALFORMED, "not base64url", jws=jws) from None
    if b64url_encode(data) != text:  # unused low bits set: another spelling
        raise AssertionRefused(Refusal.MALFORMED, "non-canonical base64url", jws=jws)
    return data


def canonical_json(value: dict[str, Any]) -> bytes:
    """Compact JSON with sorted keys, UTF-8: what we sign."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def strict_json_object(data: bytes, *, jws: str = "cps") -> dict[str, Any]:
    """A JSON object, refusing duplicate names, NaN/Infinity and anything else."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)):
            raise AssertionRefused(Refusal.DUPLICATE_KEY, "duplicate JSON member name", jws=jws)
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise AssertionRefused(Refusal.MALFORMED, "NaN and Infinity are not JSON", jws=jws)

    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AssertionRefused(Refusal.MALFORMED, "not JSON", jws=jws) from None
    if not isinstance(value, dict):
        raise AssertionRefused(Refusal.MALFORMED, "not a JSON object", jws=jws)
    return value


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A parsed compact JWS. Nothing in it is verified yet."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @classmethod
    def parse(
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
        header_b64, payload_b64, signature_b64 = parts
        return cls(
            header=strict_json_object(b64url_decode(header_b64, jws=name), jws=name),
            payload=strict_json_object(b64url_decode(payload_b64, jws=name), jws=name),
            signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
            signature=b64url_decode(signature_b64, jws=name),
        )


def serialize(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """The compact JWS of ``header`` and ``payload``; ``sign`` gets the signing input
    (RFC 7515 § 5.1) and returns the signature."""
    signing_input = (
        f"{b64url_encode(canonical_json(header))}.{b64url_encode(canonical_json(payload))}"
    )
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"
