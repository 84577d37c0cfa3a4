"""A teleservice whose challenge store is Redis, under load, while Redis is stopped
and started again on the same port: every login and challenge request is refused
(503 ``challenge.store_unavailable``) while it is down, logins are accepted again
soon after it is back (the Redis client reconnects by itself), and no challenge is
ever accepted twice, replays included.

Redis runs without persistence (``--save ""``, ``--appendonly no``), as the
challenge store should: it comes back empty, so a challenge issued before the
outage is unknown afterwards and refused (``challenge.unknown``; the browser asks
for a new one). That is the safe side: a store restored from an RDB snapshot or
an AOF that lags (``appendfsync everysec``) after a crash would bring back
challenges taken since, and an assertion already accepted could then be accepted
again. Losing challenges refuses logins; resurrecting them would accept replays.

The cards are the simulator's, each worker thread with its own in-process reader
and CPS card whose PIN it verified once; each challenge is signed by the card.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cardauth.assertion import build_assertion
from cardauth.cards.application import CardFacts
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import open_card
from cardauth.challenges import store_from_setting
from cardauth.flask import CardAuth
from cardauth.verifier_service import create_app
from cardauth.verify import Verifier
from simulator.workstation import Workstation, virtual_workstation
from tests.test_challenges import RedisServer
from tests.verifier_kit import NOW, ORIGIN, crl_checker, trust_store

PERSONAS = (
    "doctor",
    "nurse",
    "pharmacist",
    "physiotherapist",
    "cpe-employee",
    "doctor-cardiologist",
)
WARM_SECONDS = 1.5  # load before the outage
OUTAGE_SECONDS = 3.0  # Redis down, load going on
AFTER_SECONDS = 2.0  # load after Redis is back
RECOVERY_BOUND = 5.0  # seconds after the restart by which logins must be accepted again
MAX_ROUNDS = 1500  # per worker: the load is bounded in count as well as in time
HELD = 8  # logins whose challenge is issued before the outage, sent during or after it
TOKEN = "5f0c3a9e" * 8
STORE_DOWN = "challenge.store_unavailable"


class Answer(NamedTuple):
    status: int
    code: str  # "ok" for 200, else the error code of the JSON body ("-" if none)


def _answer(response: Any) -> Answer:
    if response.status_code == 200:
        return Answer(200, "ok")
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return Answer(response.status_code, code if isinstance(code, str) else "-")


class Flow(Protocol):
    """One login in one browser session: ask a challenge, send the card's assertion,
    then (once accepted) replay it with everything the browser had before."""

    challenge: str | None

    def ask(self) -> Answer: ...

    def log_in(self, token: str) -> Answer: ...

    def replay(self) -> Answer: ...


class ExtensionFlow:
    """Through the Flask extension: the challenge lives in the session cookie, so a
    replay comes with a copy of the cookie taken before the login."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._client: FlaskClient = app.test_client()
        self._cookie = ""
        self._token = ""
        self.challenge: str | None = None

    def ask(self) -> Answer:
        response = self._client.post("/cardauth/challenge", json={})
        if response.status_code == 200:
            self.challenge = str(response.get_json()["challenge"])
        return _answer(response)

    def log_in(self, token: str) -> Answer:
        cookie = self._client.get_cookie("session")
        self._cookie, self._token = (cookie.value if cookie else ""), token
        return _answer(self._client.post("/cardauth/login", json={"assertion": token}))

    def replay(self) -> Answer:
        thief = self._app.test_client()
        thief.set_cookie("session", self._cookie)
        return _answer(thief.post("/cardauth/login", json={"assertion": self._token}))


class ServiceFlow:
    """Through cardauth-verifier: the backend sends the session and the challenge; a
    replay is the same body again."""

    def __init__(self, client: FlaskClient) -> None:
        self._client = client
        self._session = secrets.token_hex(16)
        self._body: dict[str, str] = {}
        self.challenge: str | None = None

    def _post(self, path: str, body: dict[str, str]) -> Answer:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return _answer(self._client.post(path, json=body, headers=headers))

    def ask(self) -> Answer:
        response = self._client.post(
            "/v1/challenges",
            json={"session": self._session},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        if response.status_code == 200:
            self.challenge = str(response.get_json()["challenge"])
        return _answer(response)

    def log_in(self, token: str) -> Answer:
        assert self.challenge is not None
        self._body = {"assertion": token, "session": self._session, "challenge": self.challenge}
        return self._post("/v1/verify", self._body)

    def replay(self) -> Answer:
        return self._post("/v1/verify", self._body)


def _verifier() -> Verifier:
    return Verifier(trust=trust_store(), revocation=crl_checker())


def extension_flows(url: str, tmp_path: Path) -> Callable[[], Flow]:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        CARDAUTH_ORIGINS=[ORIGIN.value],
        CARDAUTH_CHALLENGE_STORE=url,
        CARDAUTH_AUDIT_LOG=str(tmp_path / "audit.jsonl"),
        CARDAUTH_PSEUDONYM_KEY=bytes(range(32)),
    )
    CardAuth(app, verifier=_verifier(), clock=lambda: NOW)
    return lambda: ExtensionFlow(app)


def service_flows(url: str, tmp_path: Path) -> Callable[[], Flow]:
    app = create_app(
        verifier=_verifier(),
        origins=(ORIGIN,),
        store=store_from_setting(url),
        token=TOKEN,
        clock=lambda: NOW,
    )
    client = app.test_client()  # no cookies: one client serves every thread
    return lambda: ServiceFlow(client)


class Card:
    """A simulated CPS card in its own in-process reader, PIN verified once."""

    def __init__(self, persona: str) -> None:
        self._workstation: Workstation
        self._workstation, readers = virtual_workstation()
        self._workstation.insert(0, persona)
        cps = open_card(readers, readers.slot_names[0])
        assert isinstance(cps, CpsCard)
        cps.verify_pin("1234")
        self._cps: CpsCard = cps
        self._facts: CardFacts = cps.facts()

    def sign(self, challenge: str) -> str:
        return build_assertion(
            self._cps, origin=ORIGIN, challenge=challenge, now=NOW, facts=self._facts
        )

    def close(self) -> None:
        self._workstation.close()


@dataclass(frozen=True)
class Attempt:
    kind: str  # challenge, login, replay, held
    started: float  # time.monotonic()
    ended: float
    answer: Answer
    challenge: str | None = None
    issued: float = 0.0  # when the challenge was given (its request ended)


@dataclass
class Journal:
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: list[str] = field(default_factory=list)

    def run(self, kind: str, call: Callable[[], Answer], flow: Flow, issued: float = 0.0) -> Answer:
        started = time.monotonic()
        answer = call()
        attempt = Attempt(kind, started, time.monotonic(), answer, flow.challenge, issued)
        with self.lock:
            self.attempts.append(attempt)
        return answer


def _work(
    card: Card, new_flow: Callable[[], Flow], journal: Journal, stop: threading.Event
) -> None:
    try:
        _rounds(card, new_flow, journal, stop)
    except BaseException as failure:  # a worker that dies must fail the test, not thin the load
        journal.failures.append(repr(failure))
        raise


def _rounds(
    card: Card, new_flow: Callable[[], Flow], journal: Journal, stop: threading.Event
) -> None:
    """Challenge, card signature, login; then a replay of an earlier accepted login."""
    accepted: list[Flow] = []
    for round_ in range(MAX_ROUNDS):
        if stop.is_set():
            return
        flow = new_flow()
        if journal.run("challenge", flow.ask, flow).status == 200:
            assert flow.challenge is not None
            issued = time.monotonic()
            token = card.sign(flow.challenge)
            if journal.run("login", lambda: flow.log_in(token), flow, issued).status == 200:  # noqa: B023
                accepted.append(flow)
        else:
            time.sleep(0.01)  # a real client would back off too
        if accepted:
            old = accepted[round_ % len(accepted)]
            journal.run("replay", old.replay, old)


@dataclass
class Held:
    """A login whose challenge was issued (and signed) before the outage."""

    flow: Flow
    token: str
    issued: float


def _hold(card: Card, new_flow: Callable[[], Flow]) -> Held:
    flow = new_flow()
    assert flow.ask().status == 200
    assert flow.challenge is not None
    return Held(flow, card.sign(flow.challenge), time.monotonic())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.mark.parametrize("through", ["extension", "verifier_service"])
def test_redis_stopped_and_started_under_load(
    through: str, redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    make = extension_flows if through == "extension" else service_flows
    new_flow = make(redis_server.url, tmp_path)
    cards = [Card(persona) for persona in PERSONAS]
    spare = Card("doctor")  # the main thread's, for the held logins
    journal, stop = Journal(), threading.Event()
    workers = [
        threading.Thread(target=_work, args=(card, new_flow, journal, stop), daemon=True)
        for card in cards
    ]
    began = time.monotonic()
    try:
        for worker in workers:
            worker.start()
        time.sleep(WARM_SECONDS)
        held = [_hold(spare, new_flow) for _ in range(HELD)]

        down_from = time.monotonic()
        redis_server.stop()  # SIGTERM; nothing saved (persistence off)
        stopped = time.monotonic()
        for late in held[: HELD // 2]:
            journal.run("held", lambda: late.flow.log_in(late.token), late.flow, late.issued)  # noqa: B023
        time.sleep(OUTAGE_SECONDS)
        restarting = time.monotonic()
        redis_server.start()  # the same port
        restarted = time.monotonic()
        for late in held[HELD // 2 :]:
            journal.run("held", lambda: late.flow.log_in(late.token), late.flow, late.issued)  # noqa: B023
        for late in held[: HELD // 2]:  # those refused during the outage, again
            journal.run("replay", late.flow.replay, late.flow)
        time.sleep(AFTER_SECONDS)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        for card in [*cards, spare]:
            card.close()
    ended = time.monotonic()
    assert not any(worker.is_alive() for worker in workers)
    attempts = list(journal.attempts)

    # Figures, for docs/robustness.md (pytest -s shows them).
    by_kind_code = Counter((a.kind, a.answer.status, a.answer.code) for a in attempts)
    outage = [a for a in attempts if a.started >= stopped and a.ended <= restarting]
    logins = [a for a in attempts if a.kind in ("login", "held")]
    accepted = [a for a in logins if a.answer.status == 200]
    after = [a for a in accepted if a.started >= restarted]
    first_after = min((a.ended for a in after), default=float("inf")) - restarted
    print(f"\n[{through}] {len(PERSONAS)} workers, {ended - began:.1f} s of load,")
    print(f"  Redis down {restarting - down_from:.2f} s, answering PING")
    print(f"  {restarted - restarting:.2f} s after its start; first login accepted")
    print(f"  {first_after:.3f} s after that")
    print(f"  attempts {len(attempts)}: logins {len(logins)}, accepted {len(accepted)}")
    print(f"  during the outage {len(outage)} requests, all {Counter(a.answer for a in outage)}")
    for (kind, status, code), count in sorted(by_kind_code.items()):
        print(f"  {kind:9} {status} {code:28} {count}")

    # Never a crash: every answer is 200 or a typed refusal, and nothing was logged.
    assert journal.failures == []
    assert {a.answer.status for a in attempts} <= {200, 401, 503}
    assert all(a.answer.code != "-" for a in attempts)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    # While Redis was down: every request refused as "store unavailable", none let in.
    assert len([a for a in outage if a.kind != "replay"]) >= len(PERSONAS)
    assert all(a.answer == Answer(503, STORE_DOWN) for a in outage)
    assert Counter(a.answer for a in attempts if a.kind == "held") == {
        Answer(503, STORE_DOWN): HELD // 2,
        Answer(401, "challenge.unknown"): HELD - HELD // 2,  # lost with the old Redis
    }

    # A challenge issued before the outage is never accepted after it (Redis came back
    # empty), and no challenge is accepted twice, replays included.
    assert not [a for a in accepted if a.issued < down_from and a.started >= stopped]
    per_challenge = Counter(
        a.challenge for a in attempts if a.answer.status == 200 and a.kind != "challenge"
    )
    assert per_challenge
    assert max(per_challenge.values()) == 1
    replays = [a for a in attempts if a.kind == "replay"]
    assert replays
    assert not [a for a in replays if a.answer.status == 200]
    assert {a.answer for a in replays} <= {
        Answer(401, "challenge.unknown"),
        Answer(503, STORE_DOWN),
    }
    assert {a.answer.code for a in attempts if a.answer.status == 401} == {"challenge.unknown"}

    # Back again without restarting the application: logins accepted within the bound,
    # by every worker's card.
    assert first_after <= RECOVERY_BOUND
    assert len(after) >= len(PERSONAS)
    if through == "extension":
        trail = (tmp_path / "audit.jsonl").read_text().splitlines()
        assert sum('"event":"login"' in line for line in trail) == len(accepted)


def test_a_teleservice_started_before_redis_serves_once_redis_is_up(tmp_path: Path) -> None:
    """The store connects when first used: an application started while Redis is not
    there refuses (503) and then serves, without being restarted."""
    server = RedisServer(tmp_path)  # its port chosen, nothing listening yet
    new_flow = extension_flows(server.url, tmp_path)
    card = Card("doctor")
    try:
        early = new_flow()
        assert early.ask() == Answer(503, STORE_DOWN)
        server.start()
        flow = new_flow()
        assert flow.ask() == Answer(200, "ok")
        assert flow.challenge is not None
        assert flow.log_in(card.sign(flow.challenge)) == Answer(200, "ok")
        assert flow.replay() == Answer(401, "challenge.unknown")
    finally:
        card.close()
        server.stop()
