"""Soak: thousands of logins through the bridge's CardService with faults injected.

In-process virtual readers hold a CPS card and the patient's Vitale card; every
card suffers random faults (simulator/faults.py: pulled mid-command, mute,
garbage, truncated answers, wrong status words, resets) at ``--fault-rate`` per
command, and now and then the workstation itself moves: the CPS card is
swapped for another professional's, the two cards change slots, or the CPS
card's reader is unplugged (a login is tried meanwhile) and plugged in again.
Each login asks with the PIN state as it is and, when the card says the PIN is
needed, "types" the right PIN once (as a person would).

What must hold, and is counted: no exception other than a CardAuthError
(``crashes``); every failure a typed error (``failures`` by code); every
assertion verified by cardauth's verifier names the professional whose card was
in the reader, the origin asked, and the patient when the Vitale card co-signed
(``wrong_identities``, ``refused_by_verifier``); no PIN try spent (each CPS card
ends with all its tries, and receives no more PINs than were typed); memory
(tracemalloc, from the end of the warm-up) and open file descriptors and threads
flat between the middle and the end of the run.

Usage: .venv/bin/python bench/soak.py [--seconds 600] [--count 0] [--seed 1]
       [--fault-rate 0.02] [--latency none|cps3] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import sys
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cardauth.challenges import MemoryChallengeStore, issue_challenge
from cardauth.errors import AssertionRefused, CardAuthError, PinRequired
from cardauth.origins import Origin
from cardauth.revocation import RevocationChecker, RevocationPolicy
from cardauth.trust import PkiProfile, TrustStore
from cardauth.verify import Verifier
from simulator.card import VirtualCard
from simulator.faults import PRESETS, Fault
from simulator.personas import load, load_cps, load_vitale
from simulator.pki import BIRTH_RANK_ATTRIBUTE, CARD_TYPE_POLICIES, VITALE_POLICY, simulator_pki
from simulator.workstation import virtual_workstation
from webbridge.cards import CardService

ORIGINS = (Origin.parse("https://teleservice.example"), Origin.parse("https://other.example"))
CPS_PERSONAS = ("doctor", "pharmacist", "nurse")
VITALE_PERSONA = "patient"
PIN = "1234"
SESSION = "soak"
MOVE_RATE = 0.01  # per login: swap, change slots, unplug the reader
VITALE_RATE = 0.3  # logins that ask for the Vitale card's co-assertion
SETTLE = 0.05  # seconds after a move, for the bridge's monitor to see it
WARM_UP = 0.1  # share of the run before memory is traced


@dataclass
class SoakReport:
    authentications: int = 0  # logins attempted
    succeeded: int = 0
    verified: int = 0
    pins_typed: int = 0
    crashes: int = 0
    crash_samples: list[str] = field(default_factory=list)
    wrong_identities: int = 0
    refused_by_verifier: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    moves: Counter[str] = field(default_factory=Counter)
    pin_tries_lost: int = 0
    pins_presented: int = 0
    memory_middle: int = 0
    memory_end: int = 0
    fds: tuple[int, int, int] = (0, 0, 0)  # at the start, the middle, the end
    threads: tuple[int, int, int] = (0, 0, 0)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "authentications": self.authentications,
            "succeeded": self.succeeded,
            "verified": self.verified,
            "pins_typed": self.pins_typed,
            "pins_presented": self.pins_presented,
            "pin_tries_lost": self.pin_tries_lost,
            "crashes": self.crashes,
            "crash_samples": self.crash_samples,
            "wrong_identities": self.wrong_identities,
            "refused_by_verifier": dict(sorted(self.refused_by_verifier.items())),
            "failures": dict(sorted(self.failures.items())),
            "faults": dict(sorted(self.faults.items())),
            "moves": dict(sorted(self.moves.items())),
            "memory_growth_bytes": self.memory_end - self.memory_middle,
            "memory_middle_bytes": self.memory_middle,
            "memory_end_bytes": self.memory_end,
            "fds": list(self.fds),
            "threads": list(self.threads),
            "seconds": round(self.seconds, 2),
        }


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _verifier() -> Verifier:
    pki = simulator_pki()
    now = dt.datetime.now(dt.UTC)
    trust = TrustStore(
        cps_roots=(pki.cps_root.certificate,),
        vitale_roots=(pki.vitale_root.certificate,),
        profile=PkiProfile(
            {oid.dotted_string: kind.value for kind, oid in CARD_TYPE_POLICIES.items()},
            frozenset({VITALE_POLICY.dotted_string}),
            BIRTH_RANK_ATTRIBUTE.dotted_string,
        ),
        intermediates=(pki.cps_ca.certificate, pki.vitale_ca.certificate),
    )
    crls = [pki.crl(authority, now) for authority in pki.authorities]
    revocation = RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)
    return Verifier(trust=trust, revocation=revocation)


class _Soak:
    def __init__(self, *, seed: int, fault_rate: float, latency: str) -> None:
        self.random = random.Random(seed)
        self.workstation, self.readers = virtual_workstation()
        base = PRESETS[latency]
        self.cards: dict[str, VirtualCard] = {}
        for index, name in enumerate((*CPS_PERSONAS, VITALE_PERSONA)):
            card = self.workstation.card_for(load(name))
            rate = fault_rate / len(Fault)
            card.faults.configure(
                base.with_rates(seed=seed * 100 + index, **{k.value: rate for k in Fault})
            )
            self.cards[name] = card
        self.workstation.insert(0, CPS_PERSONAS[0])
        self.workstation.insert(1, VITALE_PERSONA)
        self.cps_persona = CPS_PERSONAS[0]
        self.service = CardService(self.readers, pin_idle_seconds=300).start()
        self.store = MemoryChallengeStore()
        self.verifier = _verifier()
        self.idnat = {name: str(load_cps(name).holder.idnat) for name in CPS_PERSONAS}
        self.nir = str(load_vitale(VITALE_PERSONA).holder.insured.nir)
        self.report = SoakReport()

    def close(self) -> None:
        self.service.stop()
        self.workstation.close()

    # -- the workstation moves -----------------------------------------------------

    def _cps_slot(self) -> int:
        status = self.workstation.status()
        return next(s.index for s in status if s.persona == self.cps_persona)

    def move(self) -> None:
        move = self.random.choice(("swap_card", "swap_slots", "unplug_reader"))
        self.report.moves[move] += 1
        slot = self._cps_slot()
        if move == "swap_card":
            others = [p for p in CPS_PERSONAS if p != self.cps_persona]
            self.workstation.remove(slot)
            self.cps_persona = self.random.choice(others)
            self.workstation.insert(slot, self.cps_persona)
        elif move == "swap_slots":
            self.workstation.swap()
        else:
            self.readers.unplug(slot)
            self.login()  # with the reader gone: a typed failure
            self.readers.replug(slot)

    # -- one login -----------------------------------------------------------------

    def login(self) -> None:
        report = self.report
        report.authentications += 1
        origin = self.random.choice(ORIGINS)
        with_vitale = self.random.random() < VITALE_RATE
        now = dt.datetime.now(dt.UTC)
        challenge = issue_challenge(self.store, session=SESSION, now=now)
        expected = self.idnat[self.cps_persona]
        try:
            token = self._authenticate(origin, challenge, with_vitale)
        except CardAuthError as error:
            report.failures[error.code] += 1
            self.store.take(challenge)
            return
        except Exception as error:  # what must never happen: counted, and shown
            report.crashes += 1
            if len(report.crash_samples) < 5:
                report.crash_samples.append(f"{type(error).__name__}: {error}")
            self.store.take(challenge)
            return
        report.succeeded += 1
        self._verify(token, origin, challenge, with_vitale, expected, now)

    def _authenticate(self, origin: Origin, challenge: str, with_vitale: bool) -> str:
        try:
            return self.service.authenticate(
                origin=origin, challenge=challenge, with_vitale=with_vitale
            )
        except PinRequired:
            self.report.pins_typed += 1  # the professional types the PIN when asked
            return self.service.authenticate(
                origin=origin, challenge=challenge, with_vitale=with_vitale, pin=PIN
            )

    def _verify(
        self,
        token: str,
        origin: Origin,
        challenge: str,
        with_vitale: bool,
        expected_idnat: str,
        now: dt.datetime,
    ) -> None:
        report = self.report
        try:
            login = self.verifier.verify(
                token,
                expected_origins=(origin,),
                expected_challenge=challenge,
                session=SESSION,
                challenges_store=self.store,
                now=now,
                require_vitale=with_vitale,
            )
        except AssertionRefused as refused:
            report.refused_by_verifier[refused.code] += 1
            return
        report.verified += 1
        patient = str(login.patient.nir) if login.patient is not None else None
        right = (
            login.professional.idnat == expected_idnat
            and login.origin == origin.value
            and (patient == self.nir if with_vitale else patient is None)
        )
        if not right:
            report.wrong_identities += 1

    # -- the run ---------------------------------------------------------------------

    def run(self, *, count: int, seconds: float) -> SoakReport:
        report = self.report
        started = time.monotonic()
        deadline = started + seconds
        fds_start, threads_start = open_fds(), threading.active_count()
        planned = count or 10**9
        warm_up = max(1, int(min(planned, 20_000) * WARM_UP))
        middle: int | None = None
        middle_at, middle_count = deadline, planned
        while report.authentications < planned and time.monotonic() < deadline:
            if report.authentications == warm_up:
                tracemalloc.start()
                half = (deadline - time.monotonic()) / 2
                middle_at = time.monotonic() + half
                middle_count = warm_up + (planned - warm_up) // 2
            past_middle = report.authentications > warm_up and (
                time.monotonic() >= middle_at or report.authentications >= middle_count
            )
            if past_middle and middle is None:
                middle = report.authentications
                gc.collect()
                report.memory_middle = tracemalloc.get_traced_memory()[0]
                report.fds = (fds_start, open_fds(), 0)
                report.threads = (threads_start, threading.active_count(), 0)
            if self.random.random() < MOVE_RATE:
                self.move()
                time.sleep(SETTLE)  # a person does not click "log in" in the same millisecond
            self.login()
        gc.collect()
        report.memory_end = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        tracemalloc.stop()
        report.fds = (fds_start, report.fds[1], open_fds())
        report.threads = (threads_start, report.threads[1], threading.active_count())
        report.seconds = time.monotonic() - started
        for name, card in self.cards.items():
            report.faults.update({k.value: n for k, n in card.faults.counts.items()})
            if name in CPS_PERSONAS:
                report.pins_presented += card.pins_presented
                report.pin_tries_lost += 3 - card.pin(1).tries_left
        return report


def run_soak(
    *,
    count: int = 2000,
    seconds: float = 60.0,
    seed: int = 1,
    fault_rate: float = 0.02,
    latency: str = "none",
) -> SoakReport:
    soak = _Soak(seed=seed, fault_rate=fault_rate, latency=latency)
    try:
        return soak.run(count=count, seconds=seconds)
    finally:
        soak.close()


def _print(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        print(f"{key:24} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--count", type=int, default=0, help="logins at most (0: no limit)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.02, help="per command APDU")
    parser.add_argument("--latency", choices=sorted(PRESETS), default="none")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    report = run_soak(
        count=options.count,
        seconds=options.seconds,
        seed=options.seed,
        fault_rate=options.fault_rate,
        latency=options.latency,
    )
    figures = report.to_dict()
    if options.json:
        print(json.dumps(figures))
    else:
        _print(figures)
    clean = not (report.crashes or report.wrong_identities or report.pin_tries_lost)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
