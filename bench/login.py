"""Login throughput benchmark: the example teleservice's card login against a
trivial endpoint of the same app, over real HTTP, side by side in one run; then
the same with two processes sharing Redis.

The teleservice (examples/teleservice, served as ``python -m examples.teleservice``
serves it: the Flask app under waitress through cardauth.serving, on 127.0.0.1)
runs in processes of its own, its challenges in a redis-server of the benchmark's
own (loopback, no persistence), its audit trail on disk. The load client is this
process: one asyncio loop over kept-alive HTTP/1.1 connections, written with the
standard library only (a thread per connection with http.client costs the client
about twice the CPU, which the servers need on a 2-core machine).

A login is what a browser does: ``POST /cardauth/challenge`` (a new browser, so no
cookie: a new session), then ``POST /cardauth/login`` with that session's cookie
and an assertion answering that challenge, signed RS256 by the doctor's simulated
CPS card key (tests/verifier_kit.Forge: the simulator's card key and certificate
from its test PKI). Signing is the card's work, not the server's: each round asks
for all its challenges (timed), has the card key sign them here (not timed), then
posts all the logins (timed); the login path's rate is logins over the two timed
parts. Every answer is checked: 200, a cookie with each challenge, the doctor's
identity from each login.

The trivial endpoint is ``GET /vendor/cardauth.js``: a public route of the same
app whose view returns bytes it holds, through the same hooks (login guard, rate
limiter, security headers). Rounds alternate which side goes first (and which
process count); figures are medians over rounds, ratios medians of per-round
ratios. Beside the rates: the CPU time each request costs the servers, the client
and Redis (from /proc), for where the time goes.

With two processes, each listens on a port of its own (as upstreams behind a
proxy); the client spreads its connections evenly, and each login goes to the
other process than the one that issued its challenge (a challenge is single-use
across processes through Redis). Goals: logins/s >= 0.5 x the trivial endpoint's
requests/s (one process), and two processes >= 1.7 x one, in logins/s.

With ``--shared-limits`` the rate limits are counted in the same Redis
(``TELESERVICE_RATE_LIMIT_STORAGE``), as processes of one service should: else
each process counts for itself.

Usage: .venv/bin/python bench/login.py [--logins 1000] [--rounds 3] [--processes 1,2]
    [--connections 8] [--threads 8] [--shared-limits] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples, tests

import redis as redis_client

from cardauth.serving import Served, listen
from cardauth.trust import utc_now
from simulator.trust_export import export_trust
from tests.verifier_kit import Forge

ORIGIN = "https://teleservice.example"
HOST = "127.0.0.1"
RATIO_GOAL = 0.5
SCALING_GOAL = 1.7
TRIVIAL_PATH = "/vendor/cardauth.js"
DOCTOR = "899700420013"  # simulator/personas/doctor.toml
SERVER_THREADS = 8  # cardauth.serving's default, as the example is served
START_SECONDS = 20.0
PHASE_SECONDS = 120.0  # no phase runs longer: the load stops by itself
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the servers -------------------------------------------------------------------


def serve(config_path: Path, port: int, threads: int) -> int:
    """A teleservice process (``--serve``): the app under waitress on HOST:port
    until SIGTERM."""
    from examples.teleservice import create_app  # noqa: PLC0415 - the server's side only

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "queue depth" under load
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["CARDAUTH_PSEUDONYM_KEY"] = bytes.fromhex(config["CARDAUTH_PSEUDONYM_KEY"])
    served = Served(create_app(config), listen(HOST, port), ident="teleservice", threads=threads)
    stop = threading.Event()

    def close_when_asked() -> None:
        stop.wait()
        served.close()

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=close_when_asked, daemon=True).start()
    served.run()
    return 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited at start: {process.args!r}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {HOST}:{port} after {START_SECONDS:g} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Redis:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def redis_server(workdir: Path) -> Iterator[Redis]:
    """A redis-server of the benchmark's own, on loopback, without persistence
    (docs/verifier.md: challenges must not come back after a restart)."""
    port = _free_port()
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield Redis(f"redis://{HOST}:{port}/0", process)
    finally:
        _stop(process)


def write_config(directory: Path, redis_url: str, *, shared_limits: bool = False) -> Path:
    """The teleservice's settings, shared by its processes (one secret key, one
    pseudonym key, one audit trail, one database, one challenge store; with
    ``shared_limits``, the rate limits' counts in the same Redis)."""
    from examples.teleservice.store import BUNDLED_SEED, init_db  # noqa: PLC0415

    export_trust(directory / "trust", now=utc_now())
    init_db(directory / "teleservice.db", BUNDLED_SEED)
    config = {
        "SECRET_KEY": secrets.token_hex(32),
        "CARDAUTH_ORIGINS": [ORIGIN],
        "CARDAUTH_TRUST_DIR": str(directory / "trust"),
        "CARDAUTH_CHALLENGE_STORE": redis_url,
        "CARDAUTH_AUDIT_LOG": str(directory / "audit.jsonl"),
        "CARDAUTH_PSEUDONYM_KEY": secrets.token_hex(32),
        "TELESERVICE_DB": str(directory / "teleservice.db"),
        # The per-address limit is kept (its cost is part of the path), out of reach.
        "TELESERVICE_LOGIN_LIMIT": "100000000/minute",
    }
    if shared_limits:
        config["TELESERVICE_RATE_LIMIT_STORAGE"] = redis_url
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@dataclass
class Group:
    """The teleservice as ``count`` processes, each on a port of its own."""

    ports: list[int]
    processes: list[subprocess.Popen[bytes]]

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(process.pid) for process in self.processes)


@contextmanager
def servers(config: Path, count: int, threads: int) -> Iterator[Group]:
    group = Group([], [])
    try:
        for _ in range(count):
            port = _free_port()
            group.ports.append(port)
            group.processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--serve",
                        str(config),
                        "--port",
                        str(port),
                        "--threads",
                        str(threads),
                    ]
                )
            )
        for port, process in zip(group.ports, group.processes, strict=True):
            _wait_for_port(port, process)
        yield group
    finally:
        for process in group.processes:
            _stop(process)


# -- the load client ---------------------------------------------------------------


class Failure(Exception):
    pass


@dataclass
class Answer:
    status: int
    cookie: str  # the Set-Cookie's name=value, or ""
    body: bytes


class Connection:
    """One kept-alive HTTP/1.1 connection: a request at a time, answers read by
    their Content-Length (waitress gives one to every answer here)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def send(self, request: bytes) -> Answer:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, cookie = -1, ""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"set-cookie":
                cookie = value.decode("latin-1").strip().split(";", 1)[0]
        if length < 0:
            raise Failure(f"an answer without Content-Length: {head[:200]!r}")
        return Answer(status, cookie, await self.reader.readexactly(length))

    def close(self) -> None:
        self.writer.close()


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def run_phase(
    ports: Sequence[int],
    connections: int,
    work: Callable[[int, int, Connection], Awaitable[None]],
) -> float:
    """``work(index, port, connection)`` on ``connections`` kept-alive connections
    to each port, opened before the clock starts; the wall time of the work."""

    async def phase() -> float:
        targets = [port for port in ports for _ in range(connections)]
        opened = [await Connection.open(port) for port in targets]
        try:
            started = time.perf_counter()
            jobs = [work(i, port, opened[i]) for i, port in enumerate(targets)]
            await asyncio.wait_for(asyncio.gather(*jobs), PHASE_SECONDS)
            return time.perf_counter() - started
        finally:
            for connection in opened:
                connection.close()

    return asyncio.run(phase())


def trivial(ports: Sequence[int], connections: int, count: int) -> float:
    shares = _shares(count, connections * len(ports))

    async def work(index: int, port: int, connection: Connection) -> None:
        raw = request("GET", TRIVIAL_PATH)
        for _ in range(shares[index]):
            answer = await connection.send(raw)
            if answer.status != 200 or not answer.body:
                raise Failure(f"{TRIVIAL_PATH}: {answer.status}")

    return run_phase(ports, connections, work)


@dataclass
class Pending:
    """A login under way: the session cookie the challenge came with, and the
    challenge."""

    cookie: str
    challenge: str


def challenges(
    ports: Sequence[int], connections: int, count: int
) -> tuple[float, list[list[Pending]]]:
    """Asks ``count`` challenges, each from a new browser (no cookie)."""
    shares = _shares(count, connections * len(ports))
    got: list[list[Pending]] = [[] for _ in shares]

    async def work(index: int, port: int, connection: Connection) -> None:
        raw = request("POST", "/cardauth/challenge", b"{}", Origin=ORIGIN)
        for _ in range(shares[index]):
            answer = await connection.send(raw)
            if answer.status != 200 or not answer.cookie:
                raise Failure(f"challenge: {answer.status} {answer.body[:200]!r}")
            got[index].append(Pending(answer.cookie, json.loads(answer.body)["challenge"]))

    return run_phase(ports, connections, work), got


def sign(pending: list[list[Pending]]) -> list[list[bytes]]:
    """What the card does (not timed): sign each challenge, now; and the login
    requests that carry the assertions, ready to send."""
    forge = Forge(origin=ORIGIN, now=utc_now())
    key = forge.cps_key
    return [
        [
            request(
                "POST",
                "/cardauth/login",
                json.dumps({"assertion": forge.assertion(login.challenge, key=key)}).encode(),
                Origin=ORIGIN,
                Cookie=login.cookie,
            )
            for login in batch
        ]
        for batch in pending
    ]


def logins(ports: Sequence[int], connections: int, requests: list[list[bytes]]) -> float:
    """Posts each login with its session's cookie; with several processes, each to
    the next process after the one that issued its challenge."""
    shifted = [*ports[1:], *ports[:1]]

    async def work(index: int, port: int, connection: Connection) -> None:
        for raw in requests[index]:
            answer = await connection.send(raw)
            if answer.status != 200 or json.loads(answer.body)["professional"]["idnat"] != DOCTOR:
                raise Failure(f"login: {answer.status} {answer.body[:200]!r}")

    return run_phase(shifted, connections, work)


# -- the measure -------------------------------------------------------------------


@dataclass
class Meter:
    """CPU seconds spent by the servers, this client and Redis over a phase, and
    the commands Redis ran."""

    group: Group
    redis: Redis
    spent: dict[str, float] = field(default_factory=dict)
    commands: int = 0

    @contextmanager
    def counting(self) -> Iterator[None]:
        before, commands = self._now(), self._commands()
        yield
        self.commands += self._commands() - commands
        for name, value in self._now().items():
            self.spent[name] = self.spent.get(name, 0.0) + value - before[name]

    def _commands(self) -> int:
        stats = redis_client.Redis.from_url(self.redis.url).info("stats")
        return int(stats["total_commands_processed"]) - 1  # this INFO itself

    def _now(self) -> dict[str, float]:
        times = os.times()
        return {
            "server": self.group.cpu_seconds(),
            "client": times.user + times.system,
            "redis": _cpu_seconds(self.redis.process.pid),
        }


@dataclass
class Round:
    trivial_per_second: float
    logins_per_second: float
    challenges_per_second: float
    posts_per_second: float
    trivial_cpu: dict[str, float]  # ms per request
    login_cpu: dict[str, float]  # ms per login (both requests)

    @property
    def ratio(self) -> float:
        return self.logins_per_second / self.trivial_per_second


def measure_round(
    group: Group, redis: Redis, connections: int, count: int, trivial_first: bool
) -> Round:
    def trivial_side() -> tuple[float, dict[str, float]]:
        meter = Meter(group, redis)
        with meter.counting():
            seconds = trivial(group.ports, connections, count)
        return count / seconds, {k: v / count * 1000 for k, v in meter.spent.items()}

    def login_side() -> tuple[float, float, float, dict[str, float]]:
        meter = Meter(group, redis)
        with meter.counting():
            asking, pending = challenges(group.ports, connections, count)
        requests = sign(pending)
        with meter.counting():
            posting = logins(group.ports, connections, requests)
        cpu = {k: v / count * 1000 for k, v in meter.spent.items()}
        return count / (asking + posting), count / asking, count / posting, cpu

    if trivial_first:
        trivial_rate, trivial_cpu = trivial_side()
        rate, asking, posting, login_cpu = login_side()
    else:
        rate, asking, posting, login_cpu = login_side()
        trivial_rate, trivial_cpu = trivial_side()
    return Round(trivial_rate, rate, asking, posting, trivial_cpu, login_cpu)


def summary(rounds: list[Round]) -> dict[str, object]:
    median = statistics.median
    return {
        "trivial_per_second": median(r.trivial_per_second for r in rounds),
        "logins_per_second": median(r.logins_per_second for r in rounds),
        "challenges_per_second": median(r.challenges_per_second for r in rounds),
        "login_posts_per_second": median(r.posts_per_second for r in rounds),
        "ratio": median(r.ratio for r in rounds),
        "trivial_cpu_ms": {
            k: median(r.trivial_cpu[k] for r in rounds) for k in rounds[0].trivial_cpu
        },
        "login_cpu_ms": {k: median(r.login_cpu[k] for r in rounds) for k in rounds[0].login_cpu},
    }


class Measured(Protocol):
    logins_per_second: float


M = TypeVar("M", bound=Measured)


def alternate_rounds(
    groups: Mapping[int, Group],
    rounds: int,
    measure: Callable[[Group, int, bool], M],
    *,
    logins: int,
    warm_up: int,
) -> dict[int, list[M]]:
    """``measure(group, logins, trivial_first)`` of each group of processes, ``rounds``
    times, after a warm-up round of ``warm_up`` logins a process (imports, caches,
    connections to Redis); the order of the groups and of the two sides alternate
    from one round to the next."""
    for count, group in groups.items():
        measure(group, warm_up * count, True)
    counts = list(groups)
    measured: dict[int, list[M]] = {count: [] for count in counts}
    for number in range(rounds):
        for count in counts if number % 2 == 0 else reversed(counts):
            measured[count].append(measure(groups[count], logins, number % 2 == 0))
    return measured


def two_over_one(rounds: Mapping[int, Sequence[Measured]]) -> float | None:
    """How many more logins two processes make than one: the median of the rounds'
    ratios (None without both)."""
    if 1 not in rounds or 2 not in rounds:
        return None
    return statistics.median(
        two.logins_per_second / one.logins_per_second
        for one, two in zip(rounds[1], rounds[2], strict=True)
    )


def cpu_text(figures: object) -> str:
    """CPU milliseconds by side, as a report prints them."""
    assert isinstance(figures, dict)
    return ", ".join(f"{name} {value:.2f}" for name, value in figures.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=1000, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--connections", type=int, default=8, help="client connections per process")
    parser.add_argument("--threads", type=int, default=SERVER_THREADS, help="waitress threads")
    parser.add_argument(
        "--shared-limits", action="store_true", help="rate limits counted in Redis too"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve, args.port, args.threads)
    counts = [int(n) for n in args.processes.split(",")]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work, ExitStack() as stack:
        workdir = Path(work)
        redis = stack.enter_context(redis_server(workdir))
        config = write_config(workdir, redis.url, shared_limits=args.shared_limits)
        groups = {
            count: stack.enter_context(servers(config, count, args.threads)) for count in counts
        }
        rounds = alternate_rounds(
            groups,
            args.rounds,
            lambda group, logins, trivial_first: measure_round(
                group, redis, args.connections, logins, trivial_first
            ),
            logins=args.logins,
            warm_up=50,
        )
    report(rounds, load, args.json)
    return 0


def report(rounds: dict[int, list[Round]], load: float, as_json: bool) -> None:
    results = {count: summary(measured) for count, measured in rounds.items()}
    scaling = two_over_one(rounds)
    if as_json:
        print(
            json.dumps(
                {
                    "processes": results,
                    "login_scaling_2_over_1": scaling,
                    "load_average_at_start": load,
                    "goals": {"ratio": RATIO_GOAL, "login_scaling_2_over_1": SCALING_GOAL},
                },
                indent=2,
            )
        )
        return

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    print(f"Load average at start: {load:.2f} ({os.cpu_count()} cores)")
    for count, figures in results.items():
        print(f"{count} process(es), medians over {len(rounds[count])} rounds")
        print(
            f"  trivial endpoint {figures['trivial_per_second']:8.0f} requests/s "
            f"(CPU ms each: {cpu_text(figures['trivial_cpu_ms'])})"
        )
        print(
            f"  login path       {figures['logins_per_second']:8.0f} logins/s "
            f"(CPU ms each: {cpu_text(figures['login_cpu_ms'])})"
        )
        print(
            f"    challenges {figures['challenges_per_second']:.0f}/s, "
            f"logins posted {figures['login_posts_per_second']:.0f}/s"
        )
        ratio = figures["ratio"]
        assert isinstance(ratio, float)
        goal = f" ({verdict(ratio >= RATIO_GOAL)} the goal >= {RATIO_GOAL})" if count == 1 else ""
        print(f"  logins / trivial {ratio:8.2f}{goal}")
    if scaling is not None:
        print(
            f"2 processes / 1, logins/s: {scaling:.2f} "
            f"({verdict(scaling >= SCALING_GOAL)} the goal >= {SCALING_GOAL})"
        )


if __name__ == "__main__":
    sys.exit(main())
