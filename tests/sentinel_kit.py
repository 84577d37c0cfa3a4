"""A replicated Redis of the tests' own, on loopback: one primary, one replica and
three Sentinels (Debian's redis-server in ``--sentinel`` mode), without
persistence, every process stopped at the end."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.support import LOOPBACK, free_port, stop_process

SERVICE = "cardauth"
DOWN_AFTER_MS = 1000  # a primary that does not answer for 1 s is down
FAILOVER_TIMEOUT_MS = 5000
START_BOUND = 15.0


def _wait(condition: object, what: str, bound: float = START_BOUND) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            if callable(condition) and condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {bound} s")


class SentinelRedis:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.primary_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.executable = shutil.which("redis-server") or "/usr/bin/redis-server"

    @property
    def url(self) -> str:
        """The setting the stores and the rate limits take."""
        places = ",".join(f"{LOOPBACK}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{places}/{SERVICE}"

    def start_server(self, port: int, *replica_of: str) -> None:
        folder = self.workdir / f"redis-{port}"
        folder.mkdir(exist_ok=True)
        command = [self.executable, "--port", str(port), "--bind", LOOPBACK, "--save", "",
                   "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
        if replica_of:
            command += ["--replicaof", *replica_of]
        self.servers[port] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: redis.Redis(LOOPBACK, port).ping(), f"redis-server on {port}")

    def start(self) -> SentinelRedis:
        self.start_server(self.primary_port)
        self.start_server(self.replica_port, LOOPBACK, str(self.primary_port))
        replica = redis.Redis(LOOPBACK, self.replica_port)
        _wait(lambda: replica.info("replication")["master_link_status"] == "up", "replication")
        for port in self.sentinel_ports:
            config = self.workdir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind {LOOPBACK}\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} {LOOPBACK} {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n",
                encoding="utf-8",
            )
            self.sentinels.append(
                subprocess.Popen(
                    [self.executable, str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.sentinel_ports:  # each knows the replica and the two others
            sentinel = redis.Redis(LOOPBACK, port, decode_responses=True)
            _wait(lambda s=sentinel: _knows_all(s), "the sentinels to know each other")
        return self

    def primary(self) -> int:
        """The port of the primary the Sentinels name now."""
        sentinel = redis.Redis(LOOPBACK, self.sentinel_ports[0], decode_responses=True)
        found = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        assert isinstance(found, tuple)
        return int(found[1])

    def crash_primary(self) -> int:
        """SIGKILL the primary (no goodbye, writes in flight lost); its port."""
        port = self.primary()
        process = self.servers.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        return port

    def wait_for_failover(self, old: int, bound: float = 20.0) -> float:
        """Seconds until the Sentinels name another primary, and it takes writes."""
        started = time.monotonic()
        _wait(lambda: self.primary() != old, "a failover", bound)
        new = redis.Redis(LOOPBACK, self.primary())
        _wait(lambda: new.info("replication")["role"] == "master", "the promotion", bound)
        return time.monotonic() - started

    def bring_back_as_replica(self, port: int, bound: float = 20.0) -> None:
        """The crashed server started again, empty, as a replica of the new primary
        (what an operator does; the Sentinels then know it as the replica)."""
        self.start_server(port, LOOPBACK, str(self.primary()))
        replica = redis.Redis(LOOPBACK, port)
        _wait(lambda: replica.info("replication")["master_link_status"] == "up", "a replica", bound)

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers.values()]:
            stop_process(process)
        self.sentinels.clear()
        self.servers.clear()


def _knows_all(sentinel: redis.Redis) -> bool:
    found = sentinel.sentinel_master(SERVICE)
    assert isinstance(found, dict)
    return int(found["num-other-sentinels"]) == 2 and int(found["num-slaves"]) == 1
