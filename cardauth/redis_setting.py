"""A Redis client from a setting, for the stores that several processes share (the
challenge store, cardauth-oidc's store; the rate limits read the same setting
through ``limits``).

- ``redis://host:port/db`` (also ``rediss://``, ``unix://``): one Redis server.
- ``redis+sentinel://[:password@]host:port[,host:port...]/service_name``: the
  primary that Redis Sentinel names for ``service_name``, found again after a
  failover (the format of ``limits``' Sentinel storage, so that one setting serves
  all three). Database 0.

Single use across a failover. Redis replicates asynchronously: a code or a
challenge taken (``GETDEL``) on the primary, whose deletion had not reached the
replica when the primary failed, is there again on the promoted replica, and could
be taken a second time. So a client of a Sentinel setting is *replicated*: after
taking a single-use item, the store sends ``WAIT 1 <ms>`` (the replica has the
deletion) and refuses the item when no replica acknowledged in time (the item was
taken on the primary: refusing loses one login, it never accepts one twice).
docs/oidc.md says what it costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel://"
PLAIN_SCHEMES = ("redis://", "rediss://", "unix://")
REPLICA_WAIT_MS = 200  # how long a take waits for the replica's acknowledgement


class RedisSettingError(ValueError):
    """A Redis setting that cannot be read."""


@dataclass(frozen=True)
class RedisConnection:
    client: Any  # redis.Redis
    replicated: bool  # behind Sentinel: single-use takes wait for a replica

    def confirm_replicated(self) -> bool:
        """After a single-use take: True when it is safe to accept the item (no
        replication to wait for, or one replica acknowledged within
        REPLICA_WAIT_MS)."""
        if not self.replicated:
            return True
        return int(self.client.wait(1, REPLICA_WAIT_MS)) >= 1


def is_redis_setting(setting: str) -> bool:
    return setting.startswith((*PLAIN_SCHEMES, SENTINEL_SCHEME))


def sentinel_locations(setting: str) -> tuple[list[tuple[str, int]], str, str | None]:
    """The sentinels' addresses, the service name and the password of a
    ``redis+sentinel://`` setting."""
    parts = urlsplit(setting)
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) if credentials else None
    service = parts.path.strip("/")
    locations = []
    for place in hosts.split(","):
        host, _, port = place.rpartition(":")
        if not host or not port.isdigit():
            raise RedisSettingError("a sentinel is host:port")
        locations.append((host.strip("[]"), int(port)))
    if not service or "/" in service:
        raise RedisSettingError("redis+sentinel://host:port[,host:port]/service_name")
    return locations, service, password or None


def connect(
    setting: str, *, timeout: float = 2.0, decode_responses: bool = False
) -> RedisConnection:
    import redis  # noqa: PLC0415 - only services that use Redis need it
    from redis.sentinel import Sentinel  # noqa: PLC0415

    if setting.startswith(SENTINEL_SCHEME):
        locations, service, password = sentinel_locations(setting)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            locations,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
        )
        client = sentinel.master_for(  # type: ignore[no-untyped-call]
            service,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=decode_responses,
        )
        return RedisConnection(client, replicated=True)
    if setting.startswith(PLAIN_SCHEMES):
        client = redis.Redis.from_url(
            setting,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=decode_responses,
        )
        return RedisConnection(client, replicated=False)
    raise RedisSettingError("redis://host:port/db or redis+sentinel://host:port/service_name")
