"""The provider's signing keys: a key set file, published at the JWKS endpoint,
rotated without breaking a token in flight.

The file (JSON, mode 0600, written by ``cardauth-oidc keys init|rotate``)::

    {"keys": [{"kid": "...", "alg": "RS256", "signs_from": "2026-12-01T00:00:00+00:00",
               "published_until": null, "jwk": {...private JWK...}}, ...]}

Rotation, by the rules relying parties rely on (OpenID Connect Core § 10.1.1):

- a key is **published** (JWKS) from the moment it is in the file, so a new key is
  seen by relying parties' caches before it **signs**, from ``signs_from`` on;
- of each algorithm (RS256, ES256), the key that signs is the one with the latest
  ``signs_from`` that has come;
- an old key stays published until ``published_until``: ``rotate`` sets it to when
  the new key starts signing plus the longest life of what the old key signed, so
  that every token it signed can still be checked. ``prune`` drops it afterwards.

The file is read again when it changes, so that every process of the provider
signs with the same key once an operator rotated it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwk

from cardauth.oidc.errors import KeySetError

ALGORITHMS = ("RS256", "ES256")  # what PSC's relying parties accept, both published
RSA_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    signs_from: dt.datetime
    published_until: dt.datetime | None
    key: jwk.Key

    def published(self, now: dt.datetime) -> bool:
        return self.published_until is None or now < self.published_until

    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False, kid=self.kid, alg=self.alg, use="sig"))

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "signs_from": self.signs_from.isoformat(),
            "published_until": self.published_until.isoformat() if self.published_until else None,
            "jwk": dict(self.key.as_dict(private=True)),
        }


def new_key(alg: str, signs_from: dt.datetime) -> SigningKey:
    if alg == "RS256":
        key: jwk.Key = jwk.RSAKey.generate_key(RSA_BITS, private=True)
    elif alg == "ES256":
        key = jwk.ECKey.generate_key("P-256", private=True)
    else:
        raise KeySetError("the provider signs with RS256 and ES256 only", alg=alg)
    return SigningKey(key.thumbprint(), alg, signs_from, None, key)


def _time(value: object, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise KeySetError(f"{what} is a date and time in ISO 8601")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise KeySetError(f"{what} is a date and time in ISO 8601") from None
    if moment.tzinfo is None:
        raise KeySetError(f"{what} needs its time zone")
    return moment


def _parse(entry: object) -> SigningKey:
    if not isinstance(entry, dict):
        raise KeySetError("each key is an object")
    kid, alg, material = entry.get("kid"), entry.get("alg"), entry.get("jwk")
    if (
        not isinstance(kid, str)
        or not kid
        or alg not in ALGORITHMS
        or not isinstance(material, dict)
    ):
        raise KeySetError("each key has a kid, an alg (RS256 or ES256) and a jwk")
    try:
        key = jwk.import_key(material)
    except Exception as exc:  # joserfc's own errors for a malformed JWK
        raise KeySetError("a key's jwk cannot be read", kid=kid[:40]) from exc
    expected = jwk.RSAKey if alg == "RS256" else jwk.ECKey
    if not isinstance(key, expected) or not key.is_private:
        raise KeySetError("a key's jwk is not a private key of its alg", kid=kid[:40])
    if isinstance(key, jwk.ECKey) and key.curve_name != "P-256":
        raise KeySetError("ES256 keys are on P-256", kid=kid[:40])
    until = entry.get("published_until")
    return SigningKey(
        kid,
        str(alg),
        _time(entry.get("signs_from"), "signs_from"),
        None if until is None else _time(until, "published_until"),
        key,
    )


def read_keys(path: Path) -> list[SigningKey]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeySetError("the key set file cannot be read", file=str(path)) from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KeySetError('the key set file is {"keys": [...]}', file=str(path))
    keys = [_parse(entry) for entry in entries]
    if len({key.kid for key in keys}) != len(keys):
        raise KeySetError("two keys have the same kid", file=str(path))
    return keys


def write_keys(path: Path, keys: Sequence[SigningKey]) -> None:
    """Write the file atomically (a reader sees the old or the new one), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"keys": [key.to_json() for key in keys]}, indent=2)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def init_keys(path: Path, now: dt.datetime) -> list[SigningKey]:
    """A first key set: one key of each algorithm, signing from now."""
    if path.exists():
        raise KeySetError("the key set file exists already: rotate it instead", file=str(path))
    keys = [new_key(alg, now) for alg in ALGORITHMS]
    write_keys(path, keys)
    return keys


def rotate_keys(
    path: Path, now: dt.datetime, *, lead: dt.timedelta, keep: dt.timedelta
) -> list[SigningKey]:
    """A new key of each algorithm, published now, signing from ``now + lead``; the
    keys it replaces published until ``now + lead + keep`` (``keep``: the longest
    life of a token they signed)."""
    keys = read_keys(path)
    starts = now + lead
    retired = [
        key
        if key.published_until is not None
        else SigningKey(key.kid, key.alg, key.signs_from, starts + keep, key.key)
        for key in keys
    ]
    fresh = [new_key(alg, starts) for alg in ALGORITHMS]
    write_keys(path, [*retired, *fresh])
    return fresh


def prune_keys(path: Path, now: dt.datetime) -> list[SigningKey]:
    """Drop the keys no longer published; the ones left."""
    kept = [key for key in read_keys(path) if key.published(now)]
    write_keys(path, kept)
    return kept


class KeySet:
    """The key set file as the provider uses it: read again when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: list[SigningKey] = []
        self._refresh()

    def _refresh(self) -> list[SigningKey]:
        with self._lock:
            try:
                status = self.path.stat()
            except OSError as exc:
                raise KeySetError("the key set file cannot be read", file=str(self.path)) from exc
            stamp = (status.st_mtime_ns, status.st_size)
            if stamp != self._stamp:
                self._keys = read_keys(self.path)
                self._stamp = stamp
            return self._keys

    def signing_key(self, alg: str, now: dt.datetime) -> SigningKey:
        candidates = [
            key
            for key in self._refresh()
            if key.alg == alg and key.signs_from <= now and key.published(now)
        ]
        if not candidates:
            raise KeySetError("no key of this algorithm signs now", alg=alg)
        return max(candidates, key=lambda key: key.signs_from)

    def published(self, now: dt.datetime) -> list[SigningKey]:
        return [key for key in self._refresh() if key.published(now)]

    def jwks(self, now: dt.datetime) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.published(now)]}

    def verification_keys(self, now: dt.datetime) -> jwk.KeySet:
        """What checks a token this provider signed (an ``id_token_hint``)."""
        return jwk.KeySet([jwk.import_key(key.public_jwk()) for key in self.published(now)])
