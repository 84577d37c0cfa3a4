"""The verifier's one cache: what the exact header of a token (its certificate
chain, with the algorithm that goes with it) decided, for as long as that holds.

A verdict says: this chain is a card's authentication chain of this kind, with a
path to a trusted root, certifying this identity, and no certificate of the path
is revoked. It is kept only after a whole verification under it succeeded (so
forged or refused tokens never fill the cache), and it is used only while:

- ``now`` is within every certificate's validity (the chain offered and the path
  built): a verdict never outlives the first certificate to expire, nor serves a
  moment before the last one began;
- ``now`` is within the revocation answers' window (CRL ``thisUpdate`` less the
  allowed skew to ``nextUpdate`` plus the grace; OCSP ``thisUpdate`` to
  ``nextUpdate``);
- the CRLs it was checked against are still the ones in use: a refresh of the
  CRLs makes every earlier verdict unusable at once (even one stored after the
  refresh by a verification that began before it);
- the trust directory is the one it was made with: the cache belongs to one
  :class:`~cardauth.verify.Verifier`, and a reloaded trust directory is a new
  Verifier, with an empty cache.

What a token's payload decides (claims, times, origin, challenge) and its
signature are checked every time; a hit skips the header's decoding and checks,
the path building and the revocation look-ups.

Bounded (least recently used out first); one lock, held for the dictionary
operations only, never while verifying.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, NamedTuple, TypeVar

DEFAULT_MAX_ENTRIES = 1024  # about 15 KB a verdict (certificates parsed, header): 15 MB

V = TypeVar("V")


class _Entry(NamedTuple, Generic[V]):
    value: V
    not_before: dt.datetime
    not_after: dt.datetime
    crls: object  # the CRL set the revocation answers came from (compared by identity)


class VerdictCache(Generic[V]):
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 (no cache) or more")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, *, now: dt.datetime, crls: object) -> V | None:
        """The verdict kept for ``key``, if it still holds at ``now`` with ``crls``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.crls is crls and entry.not_before <= now <= entry.not_after:
                self._entries.move_to_end(key)
                return entry.value
            if entry.crls is not crls or now > entry.not_after:
                del self._entries[key]  # it will not hold again (a clock set back may
                # still find an entry made later: kept, but not used before its time)
            return None

    def put(
        self,
        key: Hashable,
        value: V,
        *,
        not_before: dt.datetime,
        not_after: dt.datetime,
        crls: object,
    ) -> None:
        if self.max_entries == 0 or not not_before <= not_after:
            return
        with self._lock:
            self._entries[key] = _Entry(value, not_before, not_after, crls)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
