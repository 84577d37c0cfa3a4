"""Where the provider keeps what a login leaves behind: browser sessions, the
challenges of the card login, authorization codes, tokens, used client-assertion
identifiers. Nothing of it lives in one process's memory when the provider runs as
several (DESIGN.md): Redis then, the memory store only for one process in
development.

The provider needs few operations, each atomic in the store:

- ``put`` with a lifetime (``only_new``: refused if the key exists, Redis ``SET NX``);
- ``get``, ``delete``;
- ``take``: get and delete in one step (Redis ``GETDEL``): two processes racing on
  one authorization code get it once;
- ``take_and_mark``: ``take``, and in the same step leave a marker under another
  key (Redis ``MULTI``: ``GETDEL`` + ``SET``), so that a code presented again is
  known as used (RFC 6749 § 4.1.2: the tokens it gave are revoked);
- ``add`` / ``members``: a set with a lifetime (the tokens of one grant, the
  relying parties of one provider session);
- ``take_members``: a set's members, and the set removed, in one step (one process
  sends a session's logout tokens, however many end it at once);
- ``schedule`` / ``take_due``: members with a time (Redis sorted set), and those
  whose time has come taken out in one step (the ends of provider sessions: one
  process ends each).

Values are text (JSON, by the callers). A failing store raises
:class:`StoreUnavailable`: the caller refuses, never lets a request through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from cardauth.oidc.errors import ConfigError, StoreUnavailable
from cardauth.redis_setting import RedisConnection, RedisSettingError, connect, is_redis_setting

KEY_PREFIX = "cardauth:oidc:"


class OidcStore(Protocol):
    def put(self, key: str, value: str, lifetime: float, *, only_new: bool = False) -> bool:
        """Keep ``value`` for ``lifetime`` seconds; False if ``only_new`` and the key
        is there."""
        ...

    def get(self, key: str) -> str | None: ...

    def delete(self, *keys: str) -> None: ...

    def take(self, key: str) -> str | None:
        """Remove and return the value of ``key``, atomically; None if absent."""
        ...

    def take_and_mark(self, key: str, marker: str, value: str, lifetime: float) -> str | None:
        """:meth:`take` ``key`` and, in the same atomic step, put ``value`` under
        ``marker`` for ``lifetime`` seconds (only if ``key`` was there)."""
        ...

    def add(self, key: str, member: str, lifetime: float) -> None:
        """Add ``member`` to the set ``key``, which lives ``lifetime`` seconds more."""
        ...

    def members(self, key: str) -> set[str]: ...

    def take_members(self, key: str) -> set[str]:
        """The members of the set ``key``, removed with it atomically."""
        ...

    def schedule(self, key: str, member: str, at: float) -> None:
        """``member`` due at ``at`` (POSIX seconds) in the schedule ``key``."""
        ...

    def replicated(self) -> None:
        """After a step that must outlive a failover (a revocation, a session ended):
        behind Sentinel, :class:`StoreUnavailable` unless a replica has it."""
        ...

    def take_due(self, key: str, now: float, limit: int = 100) -> list[str]:
        """The members of ``key`` due by ``now`` (at most ``limit``), removed from it
        atomically: each is taken by one caller."""
        ...


class MemoryStore:
    """One process only (development, tests): a dictionary with expiry times."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._values: dict[str, tuple[Any, float]] = {}
        self._schedules: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _live(self, key: str) -> Any:
        found = self._values.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._values[key]
            return None
        return found[0]

    def put(self, key: str, value: str, lifetime: float, *, only_new: bool = False) -> bool:
        with self._lock:
            if only_new and self._live(key) is not None:
                return False
            self._values[key] = (value, self._clock() + lifetime)
            return True

    def get(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            return value if isinstance(value, str) else None

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)

    def take(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            self._values.pop(key, None)
            return value if isinstance(value, str) else None

    def take_and_mark(self, key: str, marker: str, value: str, lifetime: float) -> str | None:
        with self._lock:
            taken = self._live(key)
            self._values.pop(key, None)
            if isinstance(taken, str):
                self._values[marker] = (value, self._clock() + lifetime)
                return taken
            return None

    def add(self, key: str, member: str, lifetime: float) -> None:
        with self._lock:
            current = self._live(key)
            members = set(current) if isinstance(current, frozenset) else set()
            members.add(member)
            self._values[key] = (frozenset(members), self._clock() + lifetime)

    def members(self, key: str) -> set[str]:
        with self._lock:
            current = self._live(key)
            return set(current) if isinstance(current, frozenset) else set()

    def take_members(self, key: str) -> set[str]:
        with self._lock:
            current = self._live(key)
            self._values.pop(key, None)
            return set(current) if isinstance(current, frozenset) else set()

    def replicated(self) -> None:
        """One process, nothing replicated."""

    def schedule(self, key: str, member: str, at: float) -> None:
        with self._lock:
            self._schedules.setdefault(key, {})[member] = at

    def take_due(self, key: str, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            schedule = self._schedules.get(key, {})
            due = sorted((at, member) for member, at in schedule.items() if at <= now)[:limit]
            for _, member in due:
                del schedule[member]
            return [member for _, member in due]


class RedisStore:
    """Several processes or hosts: one Redis (6.2 or later, for ``GETDEL``), or the
    primary Sentinel names. Behind Sentinel, what is single use (a code taken, a
    client assertion's ``jti`` marked) counts once a replica acknowledged it
    (``WAIT``), else it is refused (:mod:`cardauth.redis_setting`)."""

    def __init__(self, client: Any, *, prefix: str = KEY_PREFIX, replicated: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._connection = RedisConnection(client, replicated=replicated)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 2.0) -> RedisStore:
        try:
            connection = connect(url, timeout=timeout, decode_responses=True)
        except RedisSettingError as error:
            raise ConfigError(f"the store: {error}", setting=url[:60]) from None
        return cls(connection.client, replicated=connection.replicated)

    def _call(self, operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except Exception as exc:  # the client's own errors: a refusal, never a pass
            raise StoreUnavailable(
                "the provider's store is unavailable", reason=type(exc).__name__
            ) from exc

    def replicated(self) -> None:
        """After a single-use step: refused unless a replica has it (behind Sentinel)."""
        if not self._call(self._connection.confirm_replicated):
            raise StoreUnavailable("no replica acknowledged in time", reason="ReplicaLag")

    def put(self, key: str, value: str, lifetime: float, *, only_new: bool = False) -> bool:
        milliseconds = max(1, int(lifetime * 1000))
        done = self._call(
            lambda: self._client.set(self._prefix + key, value, px=milliseconds, nx=only_new)
        )
        if only_new and done:
            self.replicated()
        return bool(done)

    def get(self, key: str) -> str | None:
        value = self._call(lambda: self._client.get(self._prefix + key))
        return value if isinstance(value, str) else None

    def delete(self, *keys: str) -> None:
        if keys:
            self._call(lambda: self._client.delete(*(self._prefix + key for key in keys)))

    def take(self, key: str) -> str | None:
        value = self._call(lambda: self._client.getdel(self._prefix + key))
        if not isinstance(value, str):
            return None
        self.replicated()
        return value

    def take_and_mark(self, key: str, marker: str, value: str, lifetime: float) -> str | None:
        # A Lua script runs alone in Redis: the take and the marker are one step.
        script = (
            "local v = redis.call('GETDEL', KEYS[1]) "
            "if v then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end "
            "return v"
        )
        milliseconds = str(max(1, int(lifetime * 1000)))
        taken = self._call(
            lambda: self._client.eval(
                script, 2, self._prefix + key, self._prefix + marker, value, milliseconds
            )
        )
        if not isinstance(taken, str):
            return None
        self.replicated()
        return taken

    def add(self, key: str, member: str, lifetime: float) -> None:
        name = self._prefix + key

        def run() -> None:
            pipeline = self._client.pipeline(transaction=True)
            pipeline.sadd(name, member)
            pipeline.pexpire(name, max(1, int(lifetime * 1000)))
            pipeline.execute()

        self._call(run)

    def members(self, key: str) -> set[str]:
        found = self._call(lambda: self._client.smembers(self._prefix + key))
        return {str(member) for member in found}

    def take_members(self, key: str) -> set[str]:
        name = self._prefix + key

        def run() -> Any:
            pipeline = self._client.pipeline(transaction=True)  # MULTI: one step
            pipeline.smembers(name)
            pipeline.delete(name)
            return pipeline.execute()[0]

        return {str(member) for member in self._call(run)}

    def schedule(self, key: str, member: str, at: float) -> None:
        self._call(lambda: self._client.zadd(self._prefix + key, {member: at}))

    def take_due(self, key: str, now: float, limit: int = 100) -> list[str]:
        # A Lua script runs alone in Redis: what one process takes, no other does.
        script = (
            "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2]) "
            "if #m > 0 then redis.call('ZREM', KEYS[1], unpack(m)) end "
            "return m"
        )
        found = self._call(
            lambda: self._client.eval(script, 1, self._prefix + key, repr(now), str(limit))
        )
        return [str(member) for member in found]


def store_from_setting(setting: str) -> OidcStore:
    """``memory`` (one process), ``redis://host:port/db`` (also ``rediss://``,
    ``unix://``) or ``redis+sentinel://host:port[,host:port]/service_name``."""
    if setting == "memory":
        return MemoryStore()
    if is_redis_setting(setting):
        return RedisStore.from_url(setting)
    raise ConfigError(
        "the store is memory, redis://host:port/db or redis+sentinel://host:port/service",
        setting=setting[:60],
    )
