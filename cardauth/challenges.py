"""Challenges: issued by the teleservice for one browser session, consumed once.

A challenge is 32 random bytes in base64url. It is stored with a digest of the
session it was issued to (login CSRF: an assertion made in another browser must
not log this one in) and an expiry (5 minutes by default). Consuming it takes it
out of the store atomically (get-and-delete), so two processes racing on one
assertion accept it once. A store that fails refuses: it never lets a login
through.

Stores: in memory (one process), SQLite (processes of one machine), Redis (several
processes or hosts).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cardauth.errors import AssertionRefused, Refusal
from cardauth.jose import b64url_encode
from cardauth.redis_setting import RedisConnection, RedisSettingError, connect, is_redis_setting
from cardauth.trust import TrustConfigError

CHALLENGE_BYTES = 32
DEFAULT_LIFETIME = dt.timedelta(minutes=5)
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    challenge: str
    session_digest: str
    expires_at: float  # POSIX seconds


class ChallengeStore(Protocol):
    def put(self, record: ChallengeRecord, lifetime: float) -> None:
        """Keep ``record`` until it is taken or expires (``lifetime`` seconds from now;
        records issued before now minus the lifetime may be dropped)."""
        ...

    def take(self, challenge: str) -> ChallengeRecord | None:
        """Remove and return the record of ``challenge``, atomically; None if absent."""
        ...


def session_digest(session: str) -> str:
    """What the store keeps of a session identifier (never the identifier itself)."""
    return hashlib.sha256(b"cardauth session\x00" + session.encode()).hexdigest()


def issue_challenge(
    store: ChallengeStore,
    *,
    session: str,
    now: dt.datetime,
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
) -> str:
    """A fresh challenge for ``session``, kept in ``store``."""
    if not session:
        raise ValueError("a challenge belongs to a session")
    challenge = b64url_encode(secrets.token_bytes(CHALLENGE_BYTES))
    record = ChallengeRecord(challenge, session_digest(session), (now + lifetime).timestamp())
    try:
        store.put(record, lifetime.total_seconds())
    except Exception as exc:  # the store's own errors: a refusal, never a pass
        raise _unavailable(exc) from exc
    return challenge


def check_format(challenge: object, *, jws: str = "cps") -> str:
    if not isinstance(challenge, str) or not _CHALLENGE.fullmatch(challenge):
        raise AssertionRefused(
            Refusal.CHALLENGE_MALFORMED, "a challenge is 32 bytes in base64url", jws=jws
        )
    return challenge


def consume_challenge(
    store: ChallengeStore, challenge: str, *, session: str, now: dt.datetime
) -> None:
    """Take ``challenge`` out of the store; it must be there, unexpired, and issued to
    ``session``. It is gone afterwards whatever the outcome."""
    take_checked_challenge(store, check_format(challenge), session=session, now=now)


def take_checked_challenge(
    store: ChallengeStore, challenge: str, *, session: str, now: dt.datetime
) -> None:
    """:func:`consume_challenge` for a challenge whose format is already checked."""
    try:
        record = store.take(challenge)
    except Exception as exc:  # the store's own errors: a refusal, never a pass
        raise _unavailable(exc) from exc
    if record is None:
        raise AssertionRefused(
            Refusal.CHALLENGE_UNKNOWN, "unknown or already used challenge", jws="cps"
        )
    if now.timestamp() > record.expires_at:
        raise AssertionRefused(Refusal.CHALLENGE_EXPIRED, "the challenge expired", jws="cps")
    if not hmac.compare_digest(record.session_digest, session_digest(session)):
        raise AssertionRefused(
            Refusal.CHALLENGE_SESSION, "the challenge was issued to another session", jws="cps"
        )


def discard_challenge(store: ChallengeStore, challenge: str) -> None:
    """Take ``challenge`` out of the store unchecked, after a refused login: a failed
    attempt uses up its challenge too. A store failure here changes nothing (the
    challenge expires anyway), so it is not raised over the refusal being reported."""
    with contextlib.suppress(Exception):  # the store's own errors: the login is refused
        store.take(challenge)


def _unavailable(exc: Exception) -> AssertionRefused:
    """Any failure of the store (connection, disk, timeout...) is a refusal."""
    return AssertionRefused(
        Refusal.CHALLENGE_STORE, "the challenge store is unavailable", reason=type(exc).__name__
    )


class StoreFull(Exception):
    """A memory store holds as many challenges as it may (a flood of requests)."""


class MemoryChallengeStore:
    """For one process, at most ``max_records`` challenges at once (beyond, new ones
    are refused as the store being unavailable, until old ones expire). Expired
    records are dropped as new ones come in, oldest first."""

    def __init__(self, max_records: int = 100_000) -> None:
        self._records: dict[str, ChallengeRecord] = {}
        self._lock = threading.Lock()
        self._max_records = max_records

    def put(self, record: ChallengeRecord, lifetime: float) -> None:
        with self._lock:
            self._purge(record.expires_at - lifetime)
            if len(self._records) >= self._max_records:
                raise StoreFull(f"{self._max_records} challenges outstanding")
            self._records[record.challenge] = record

    def take(self, challenge: str) -> ChallengeRecord | None:
        with self._lock:
            return self._records.pop(challenge, None)

    def _purge(self, now: float) -> None:
        """Drop expired records from the oldest on: records come in expiry order
        when the lifetime is the same, so the first one still valid ends the work
        (one with a shorter lifetime behind it waits for its turn, or its take)."""
        while self._records:
            oldest = next(iter(self._records))
            if self._records[oldest].expires_at >= now:
                return
            del self._records[oldest]

    def __len__(self) -> int:
        return len(self._records)


class SqliteChallengeStore:
    """For the processes of one machine: ``DELETE ... RETURNING`` takes a record in
    one statement, so two processes cannot both take it."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._local = threading.local()
        self._inherited: list[sqlite3.Connection] = []
        with self._connection() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS challenges ("
                " challenge TEXT PRIMARY KEY, session_digest TEXT NOT NULL,"
                " expires_at REAL NOT NULL)"
            )

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, in this process: a connection must not cross a
        fork (sqlite.org/howtocorrupt.html § 2.6), as when a pre-forking server
        imports the application first. One inherited from the parent is left open,
        untouched (closing it could disturb the parent's locks)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or self._local.pid != os.getpid():
            if connection is not None:
                self._inherited.append(connection)
            connection = sqlite3.connect(self._path, timeout=5.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def put(self, record: ChallengeRecord, lifetime: float) -> None:
        connection = self._connection()
        connection.execute(
            "DELETE FROM challenges WHERE expires_at < ?", (record.expires_at - lifetime,)
        )
        connection.execute(
            "INSERT INTO challenges (challenge, session_digest, expires_at) VALUES (?, ?, ?)",
            (record.challenge, record.session_digest, record.expires_at),
        )

    def take(self, challenge: str) -> ChallengeRecord | None:
        row = (
            self._connection()
            .execute(
                "DELETE FROM challenges WHERE challenge = ? RETURNING session_digest, expires_at",
                (challenge,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return ChallengeRecord(challenge, str(row[0]), float(row[1]))


class RedisChallengeStore:
    """For several processes or hosts: ``SET ... PX`` with the lifetime, ``GETDEL`` to
    take (atomic in Redis 6.2 and later). Behind Sentinel, a take counts once a
    replica has it (:mod:`cardauth.redis_setting`: ``WAIT``), else it is refused."""

    def __init__(
        self, client: Any, *, prefix: str = "cardauth:challenge:", replicated: bool = False
    ) -> None:
        self._connection = RedisConnection(client, replicated=replicated)
        self._client = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisChallengeStore:
        connection = connect(url, timeout=timeout)
        return cls(connection.client, replicated=connection.replicated)

    def put(self, record: ChallengeRecord, lifetime: float) -> None:
        value = f"{record.session_digest}:{record.expires_at!r}"
        key = self._prefix + record.challenge
        if not self._client.set(key, value, px=max(1, int(lifetime * 1000)), nx=True):
            raise RuntimeError("challenge collision")  # 2^-256: a broken random source

    def take(self, challenge: str) -> ChallengeRecord | None:
        value = self._client.getdel(self._prefix + challenge)
        if value is None:
            return None
        if not self._connection.confirm_replicated():
            raise ReplicaLag("no replica acknowledged the challenge's deletion")
        digest, _, expires = (value.decode() if isinstance(value, bytes) else value).partition(":")
        return ChallengeRecord(challenge, digest, float(expires))


class ReplicaLag(Exception):
    """Behind Sentinel, no replica acknowledged a take in time: refused (a failover
    then could bring the challenge back)."""


def store_from_setting(setting: str) -> ChallengeStore:
    """The store a setting names: ``memory``, ``sqlite:///path/to/file.db``,
    ``redis://host:port/db`` (also ``rediss://`` and ``unix://``) or
    ``redis+sentinel://host:port[,host:port]/service_name``."""
    if setting == "memory":
        return MemoryChallengeStore()
    if setting.startswith("sqlite:///"):
        return SqliteChallengeStore(Path(setting.removeprefix("sqlite://")))
    if is_redis_setting(setting):
        try:
            return RedisChallengeStore.from_url(setting)
        except RedisSettingError as error:
            raise TrustConfigError(f"the challenge store: {error}") from None
    raise TrustConfigError(
        "a challenge store is memory, sqlite:///path, redis://... or redis+sentinel://..."
    )
