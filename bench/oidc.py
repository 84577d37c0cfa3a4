"""Login throughput of cardauth-oidc: the whole authorization code flow on a card
login, against a trivial endpoint of the same app, over real HTTP, side by side in
one run; with one and two provider processes sharing one Redis.

The provider (``cardauth.oidc.app.create_app``, served as ``cardauth-oidc serve``
serves it: waitress through cardauth.serving, 16 threads, on 127.0.0.1) runs in
processes of its own, its store (sessions, challenges, codes, tokens, rate limits)
in a redis-server of the benchmark's own (loopback, no persistence). The rate
limits are counted as in production (in Redis), their limits set out of reach. The
load client is this process (bench/login.py's: one asyncio loop over kept-alive
HTTP/1.1 connections, standard library only).

A login is what a browser and a relying party do, each answer checked:

1. ``GET …/auth?…`` (a new browser: PKCE S256, state, nonce, acr_values): the
   login page;
2. ``POST /cardauth/challenge``: the card login's challenge, a session cookie;
3. the card signs the challenge: the assertion is made here by the doctor's
   simulated CPS card key (RS256, tests/verifier_kit.Forge), for every login of
   the round **before** the second timed part: **not timed** (a real card takes
   150 to 400 ms for it);
4. ``POST /cardauth/login`` with the assertion (the verifier: certificate path,
   revocation, origin, single-use challenge), a renewed session cookie;
5. ``GET …/auth?…`` again: a 302 to the relying party with the code and state;
6. ``POST …/token`` (client_secret_basic, the code, the PKCE verifier): the access
   token and the ID token;
7. ``GET …/userinfo`` with the access token: the doctor's IdNat.

Steps 1-2 are timed for all the round's logins, then (after the signatures) steps
4-7; the rate is logins over both timed parts. With two processes each listens on a
port of its own (upstreams behind a proxy), the client spreads its connections
evenly, and each login's second part goes to the other process than its first
(single use across processes, through Redis). The trivial endpoint is
``GET /.well-known/openid-configuration``: a view that builds a small dictionary
and answers it as JSON, through the same hooks (rate-limit check, security
headers). Rounds alternate which side goes first; figures are medians over
rounds, ratios medians of per-round ratios; beside them the CPU time per request
of the servers, the client and Redis (from /proc), and Redis commands per login.

Usage: .venv/bin/python bench/oidc.py [--logins 300] [--rounds 3] [--processes 1,2]
    [--connections 8] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests, cardauth

from login import (
    HOST,
    Connection,
    Failure,
    Group,
    Meter,
    Redis,
    _free_port,
    _shares,
    _stop,
    _wait_for_port,
    alternate_rounds,
    cpu_text,
    redis_server,
    run_phase,
    two_over_one,
)

from cardauth.serving import Served, listen
from cardauth.trust import utc_now
from tests.oidc_kit import AUTH, DOCTOR, REDIRECT, SECRET, TOKEN, USERINFO, ProviderFiles
from tests.verifier_kit import Forge

ORIGIN = "https://idp.example"  # the public origin (behind a TLS front)
TRIVIAL_PATH = "/.well-known/openid-configuration"
THREADS = 16  # cardauth-oidc serve's
BASIC = base64.b64encode(f"rp-basic:{SECRET}".encode()).decode()
OUT_OF_REACH = "100000000/minute"


# -- the servers -------------------------------------------------------------------


def serve(folder: Path, store: str, port: int) -> int:
    """A provider process (``--serve``): the app under waitress until SIGTERM."""
    from cardauth.oidc.app import create_app  # noqa: PLC0415 - the server's side only

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    settings = ProviderFiles(folder).settings(
        ORIGIN, store=store, login_limit=OUT_OF_REACH, calls_limit=OUT_OF_REACH
    )
    served = Served(create_app(settings), listen(HOST, port), ident="oidc", threads=THREADS)
    stop = threading.Event()

    def close_when_asked() -> None:
        stop.wait()
        served.close()

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=close_when_asked, daemon=True).start()
    served.run()
    return 0


@contextmanager
def providers(folder: Path, store: str, count: int) -> Iterator[Group]:
    group = Group([], [])
    try:
        for _ in range(count):
            port = _free_port()
            group.ports.append(port)
            command = [sys.executable, __file__, "--serve", str(folder), "--store", store,
                       "--port", str(port)]  # fmt: skip
            group.processes.append(subprocess.Popen(command))
        for port, process in zip(group.ports, group.processes, strict=True):
            _wait_for_port(port, process)
        yield group
    finally:
        for process in group.processes:
            _stop(process)


# -- the load client ---------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names (the last of each)
    body: bytes


async def exchange(connection: Connection, raw: bytes) -> Reply:
    """One request on a kept-alive connection; every header of the answer kept."""
    connection.writer.write(raw)
    head = await connection.reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    length = int(headers.get("content-length", "-1"))
    if length < 0:
        raise Failure(f"an answer without Content-Length: {head[:200]!r}")
    body = await connection.reader.readexactly(length)
    return Reply(int(lines[0].split(b" ", 2)[1]), headers, body)


def build(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def cookie_of(reply: Reply) -> str:
    return reply.headers.get("set-cookie", "").split(";", 1)[0]


@dataclass
class Login:
    """One login under way: its authorization request, PKCE verifier and state,
    the session cookie and challenge of its first part; then the assertion."""

    query: str
    verifier: str
    state: str
    cookie: str = ""
    challenge: str = ""
    assertion: str = ""


def new_login() -> Login:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(12)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "rp-basic",
            "redirect_uri": REDIRECT,
            "scope": "openid scope_all",
            "acr_values": "eidas1",
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
    )
    return Login(query, verifier, state)


def first_parts(ports: Sequence[int], connections: int, count: int) -> tuple[float, list[Login]]:
    """Steps 1-2 of ``count`` logins, each a new browser."""
    shares = _shares(count, connections * len(ports))
    made: list[list[Login]] = [[] for _ in shares]

    async def work(index: int, port: int, connection: Connection) -> None:
        for _ in range(shares[index]):
            login = new_login()
            page = await exchange(connection, build("GET", f"{AUTH}?{login.query}"))
            if page.status != 200 or b'id="login"' not in page.body:
                raise Failure(f"auth: {page.status} {page.body[:200]!r}")
            asked = await exchange(
                connection,
                build("POST", "/cardauth/challenge", b"{}", Origin=ORIGIN,
                      Content_Type="application/json"),
            )  # fmt: skip
            if asked.status != 200 or not cookie_of(asked):
                raise Failure(f"challenge: {asked.status} {asked.body[:200]!r}")
            login.cookie, login.challenge = cookie_of(asked), json.loads(asked.body)["challenge"]
            made[index].append(login)

    seconds = run_phase(ports, connections, work)
    return seconds, [login for batch in made for login in batch]


def sign(logins: list[Login]) -> None:
    """The card's part (not timed): each challenge signed by the card's key."""
    forge = Forge(origin=ORIGIN, now=utc_now())
    key = forge.cps_key
    for login in logins:
        login.assertion = forge.assertion(login.challenge, key=key)


def second_parts(ports: Sequence[int], connections: int, logins: list[Login]) -> float:
    """Steps 4-7, each login on the next process after its first part's."""
    shifted = [*ports[1:], *ports[:1]]
    shares = _shares(len(logins), connections * len(ports))
    batches, start = [], 0
    for share in shares:
        batches.append(logins[start : start + share])
        start += share

    async def one(connection: Connection, login: Login) -> None:
        body = json.dumps({"assertion": login.assertion}).encode()
        logged = await exchange(
            connection,
            build("POST", "/cardauth/login", body, Origin=ORIGIN, Cookie=login.cookie,
                  Content_Type="application/json"),
        )  # fmt: skip
        if logged.status != 200 or json.loads(logged.body)["professional"]["idnat"] != DOCTOR:
            raise Failure(f"login: {logged.status} {logged.body[:200]!r}")
        coded = await exchange(
            connection, build("GET", f"{AUTH}?{login.query}", Cookie=cookie_of(logged))
        )
        answer = parse_qs(urlsplit(coded.headers.get("location", "")).query)
        if coded.status != 302 or answer.get("state") != [login.state]:
            raise Failure(f"code: {coded.status} {coded.body[:200]!r}")
        form = urlencode(
            {
                "grant_type": "authorization_code",
                "code": answer["code"][0],
                "redirect_uri": REDIRECT,
                "code_verifier": login.verifier,
            }
        ).encode()
        tokens = await exchange(
            connection,
            build("POST", TOKEN, form, Authorization=f"Basic {BASIC}",
                  Content_Type="application/x-www-form-urlencoded"),
        )  # fmt: skip
        if tokens.status != 200 or "id_token" not in json.loads(tokens.body):
            raise Failure(f"token: {tokens.status} {tokens.body[:200]!r}")
        access = json.loads(tokens.body)["access_token"]
        info = await exchange(connection, build("GET", USERINFO, Authorization=f"Bearer {access}"))
        if info.status != 200 or json.loads(info.body)["SubjectNameID"] != DOCTOR:
            raise Failure(f"userinfo: {info.status} {info.body[:200]!r}")

    async def work(index: int, port: int, connection: Connection) -> None:
        for login in batches[index]:
            await one(connection, login)

    return run_phase(shifted, connections, work)


def trivial(ports: Sequence[int], connections: int, count: int) -> float:
    shares = _shares(count, connections * len(ports))

    async def work(index: int, port: int, connection: Connection) -> None:
        raw = build("GET", TRIVIAL_PATH)
        for _ in range(shares[index]):
            answer = await exchange(connection, raw)
            if answer.status != 200 or b"issuer" not in answer.body:
                raise Failure(f"{TRIVIAL_PATH}: {answer.status}")

    return run_phase(ports, connections, work)


# -- the measure -------------------------------------------------------------------


@dataclass
class Round:
    trivial_per_second: float
    logins_per_second: float
    trivial_cpu: dict[str, float]  # ms per request
    login_cpu: dict[str, float]  # ms per login (its six requests)
    redis_commands: float  # per login

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

    def login_side() -> tuple[float, dict[str, float], float]:
        meter = Meter(group, redis)
        with meter.counting():
            first, logins = first_parts(group.ports, connections, count)
        sign(logins)
        with meter.counting():
            second = second_parts(group.ports, connections, logins)
        cpu = {k: v / count * 1000 for k, v in meter.spent.items()}
        return count / (first + second), cpu, meter.commands / count

    if trivial_first:
        trivial_rate, trivial_cpu = trivial_side()
        rate, login_cpu, commands = login_side()
    else:
        rate, login_cpu, commands = login_side()
        trivial_rate, trivial_cpu = trivial_side()
    return Round(trivial_rate, rate, trivial_cpu, login_cpu, commands)


def summary(rounds: list[Round]) -> dict[str, object]:
    median = statistics.median
    return {
        "trivial_per_second": median(r.trivial_per_second for r in rounds),
        "logins_per_second": median(r.logins_per_second for r in rounds),
        "ratio": median(r.ratio for r in rounds),
        "trivial_cpu_ms": {
            k: median(r.trivial_cpu[k] for r in rounds) for k in rounds[0].trivial_cpu
        },
        "login_cpu_ms": {k: median(r.login_cpu[k] for r in rounds) for k in rounds[0].login_cpu},
        "redis_commands_per_login": median(r.redis_commands for r in rounds),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=300, help="per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--connections", type=int, default=8, help="client connections per process")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args.serve, args.store, args.port)
    counts = [int(n) for n in args.processes.split(",")]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work, ExitStack() as stack:
        folder = Path(work)
        redis = stack.enter_context(redis_server(folder))
        ProviderFiles(folder).write()
        groups = {
            count: stack.enter_context(providers(folder, redis.url, count)) for count in counts
        }
        rounds = alternate_rounds(
            groups,
            args.rounds,
            lambda group, logins, trivial_first: measure_round(
                group, redis, args.connections, logins, trivial_first
            ),
            logins=args.logins,
            warm_up=20,
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
                },
                indent=2,
            )
        )
        return

    print(f"Load average at start: {load:.2f} ({os.cpu_count()} cores)")
    print(
        "The card's signature (step 3) is made beforehand by the simulated card's key: not timed."
    )
    for count, figures in results.items():
        print(f"{count} process(es), medians over {len(rounds[count])} rounds")
        print(
            f"  trivial endpoint {figures['trivial_per_second']:8.0f} requests/s "
            f"(CPU ms each: {cpu_text(figures['trivial_cpu_ms'])})"
        )
        print(
            f"  whole OIDC login {figures['logins_per_second']:8.0f} logins/s "
            f"(CPU ms each: {cpu_text(figures['login_cpu_ms'])}; "
            f"{figures['redis_commands_per_login']:.0f} Redis commands)"
        )
        print(f"  logins / trivial {figures['ratio']:8.3f}")
    if scaling is not None:
        print(f"2 processes / 1, logins/s: {scaling:.2f}")


if __name__ == "__main__":
    sys.exit(main())
