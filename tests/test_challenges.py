"""Challenge stores: issued per session, consumed once, atomically across processes,
and a store that fails refuses. Redis is a real redis-server the tests start."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import shutil
import subprocess
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import pytest
import redis

from cardauth.challenges import (
    ChallengeStore,
    MemoryChallengeStore,
    RedisChallengeStore,
    SqliteChallengeStore,
    consume_challenge,
    issue_challenge,
)
from cardauth.errors import AssertionRefused
from tests.support import free_port

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


class RedisServer:
    """A redis-server of the tests' own, on loopback, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ChallengeStore:
    if request.param == "memory":
        return MemoryChallengeStore()
    if request.param == "sqlite":
        return SqliteChallengeStore(tmp_path / "challenges.db")
    server = request.getfixturevalue("redis_server")
    return RedisChallengeStore.from_url(server.url)


def test_a_challenge_is_32_random_bytes_in_base64url(store: ChallengeStore) -> None:
    first = issue_challenge(store, session="s", now=NOW)
    second = issue_challenge(store, session="s", now=NOW)
    assert len(first) == 43
    assert first != second


def test_consumed_once(store: ChallengeStore) -> None:
    challenge = issue_challenge(store, session="s", now=NOW)
    consume_challenge(store, challenge, session="s", now=NOW)
    with pytest.raises(AssertionRefused) as refused:
        consume_challenge(store, challenge, session="s", now=NOW)
    assert refused.value.code == "challenge.unknown"


def test_bound_to_its_session_and_gone_after_a_wrong_try(store: ChallengeStore) -> None:
    challenge = issue_challenge(store, session="browser-A", now=NOW)
    with pytest.raises(AssertionRefused) as refused:
        consume_challenge(store, challenge, session="browser-B", now=NOW)
    assert refused.value.code == "challenge.session"
    with pytest.raises(AssertionRefused):  # an attacker's try burnt it: no second chance
        consume_challenge(store, challenge, session="browser-A", now=NOW)


def test_expires_after_five_minutes(store: ChallengeStore) -> None:
    challenge = issue_challenge(store, session="s", now=NOW)
    with pytest.raises(AssertionRefused) as refused:
        consume_challenge(
            store, challenge, session="s", now=NOW + dt.timedelta(minutes=5, seconds=1)
        )
    assert refused.value.code == "challenge.expired"


def test_the_store_keeps_no_session_identifier(tmp_path: Path) -> None:
    store = SqliteChallengeStore(tmp_path / "c.db")
    issue_challenge(store, session="secret-session-cookie", now=NOW)
    assert b"secret-session-cookie" not in (tmp_path / "c.db").read_bytes()


def _race(kind: str, location: str, challenge: str, start_at: float, results: Queue[str]) -> None:
    store: ChallengeStore = (
        SqliteChallengeStore(location)
        if kind == "sqlite"
        else RedisChallengeStore.from_url(location)
    )
    while time.time() < start_at:
        pass
    try:
        consume_challenge(store, challenge, session="s", now=NOW)
        results.put("accepted")
    except AssertionRefused as refused:
        results.put(refused.code)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_processes_racing_on_one_challenge_accept_it_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    location = (
        str(tmp_path / "race.db")
        if kind == "sqlite"
        else request.getfixturevalue("redis_server").url
    )
    store = (
        SqliteChallengeStore(location)
        if kind == "sqlite"
        else RedisChallengeStore.from_url(location)
    )
    context = multiprocessing.get_context("spawn")
    for _ in range(3):
        challenge = issue_challenge(store, session="s", now=NOW)
        results = context.Queue()
        start_at = time.time() + 1.5
        racers = [
            context.Process(target=_race, args=(kind, location, challenge, start_at, results))
            for _ in range(6)
        ]
        for racer in racers:
            racer.start()
        outcomes = sorted(results.get(timeout=30) for _ in racers)
        for racer in racers:
            racer.join(timeout=30)
        assert outcomes == ["accepted"] + ["challenge.unknown"] * 5


def _race_inherited(
    store: SqliteChallengeStore, challenge: str, start_at: float, results: Queue[str]
) -> None:
    while time.time() < start_at:
        time.sleep(0.001)
    try:
        consume_challenge(store, challenge, session="s", now=NOW)
        results.put("accepted")
    except AssertionRefused as refused:
        results.put(refused.code)


def test_a_sqlite_store_made_before_fork_serves_the_children(tmp_path: Path) -> None:
    """A pre-forking server builds the application (and its store) once, then
    forks its workers: each worker opens its own connection (an SQLite connection
    must not cross a fork) and the challenge is still taken once."""
    store = SqliteChallengeStore(tmp_path / "forked.db")
    context = multiprocessing.get_context("fork")
    for _ in range(3):
        challenge = issue_challenge(store, session="s", now=NOW)  # the parent's connection
        results = context.Queue()
        start_at = time.time() + 0.5
        racers = [
            context.Process(target=_race_inherited, args=(store, challenge, start_at, results))
            for _ in range(6)
        ]
        for racer in racers:
            racer.start()
        outcomes = sorted(results.get(timeout=30) for _ in racers)
        for racer in racers:
            racer.join(timeout=30)
        assert outcomes == ["accepted"] + ["challenge.unknown"] * 5
    last = issue_challenge(store, session="s", now=NOW)  # the parent's connection still works
    consume_challenge(store, last, session="s", now=NOW)


def test_a_store_that_is_down_refuses(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    store = RedisChallengeStore.from_url(server.url)
    challenge = issue_challenge(store, session="s", now=NOW)
    server.stop()
    with pytest.raises(AssertionRefused) as refused:
        consume_challenge(store, challenge, session="s", now=NOW)
    assert refused.value.code == "challenge.store_unavailable"
    with pytest.raises(AssertionRefused) as refused:
        issue_challenge(store, session="s", now=NOW)
    assert refused.value.code == "challenge.store_unavailable"


def test_a_broken_sqlite_store_refuses(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteChallengeStore(path)
    challenge = issue_challenge(store, session="s", now=NOW)
    other = SqliteChallengeStore(path)
    other._connection().execute("DROP TABLE challenges")
    with pytest.raises(AssertionRefused) as refused:
        consume_challenge(store, challenge, session="s", now=NOW)
    assert refused.value.code == "challenge.store_unavailable"


def test_a_memory_store_holds_a_bounded_number_of_challenges() -> None:
    store = MemoryChallengeStore(max_records=3)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for _ in range(3):
        issue_challenge(store, session="s" * 16, now=now)
    with pytest.raises(AssertionRefused) as refused:  # a flood: refused, never a pass
        issue_challenge(store, session="s" * 16, now=now)
    assert refused.value.code == "challenge.store_unavailable"
    later = now + dt.timedelta(minutes=6)  # the first ones expired: room again
    issue_challenge(store, session="s" * 16, now=later)
    assert len(store) == 1
