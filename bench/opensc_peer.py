"""Peer benchmark: cardauth against OpenSC on the same simulated CPS3 card.

A private pcscd with the vpcd driver holds the doctor's CPS card (and the
patient's Vitale card), with the ``cps3`` latency preset (20-60 ms per APDU,
150-400 ms per signature: simulator/faults.py). Each side runs as a process of its
own, started fresh for each cold run (nothing cached), and the card itself measures
what matters: the commands it receives and the time from the first to the last of
them (process start-up is not counted, on either side). Rounds alternate which side
goes first; times are medians.

- **read the authentication certificate, cold**: OpenSC's ``pkcs15-tool
  --read-certificate``; cardauth's card layer (identify the card, read its PKCS#15
  application, read the certificate);
- **log in and sign, cold**: OpenSC's ``pkcs11-tool --login --sign -m RSA-PKCS``
  with the authentication key (over a SHA-256 DigestInfo: OpenSC 0.23 cannot sign
  with ``-m SHA256-RSA-PKCS`` under OpenSSL 3, see docs/card-layer.md); cardauth's
  ``cardauth login`` (PIN, assertion signed by the card, log out);
- **warm** (cardauth only; OpenSC keeps nothing between processes): the card read
  once and kept in the reader, a login with the PIN, then a login with the PIN state
  kept, as the bridge's fast path.

Goals: cardauth at most half of OpenSC's commands and time, cold; 4 commands or
fewer for a warm login.

Usage: .venv/bin/python bench/opensc_peer.py [--rounds 5] [--latency cps3|none] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes

from cardauth.cards.algorithms import digest_info
from simulator.card import VirtualCard
from simulator.faults import PRESETS
from simulator.pcscd import PrivatePcscd
from simulator.personas import load
from simulator.profiles import PKCS15_KEY_ID, build_card
from simulator.vpcd import VpcdSlot

OPENSC_MODULE = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
AUTHENTICATION_ID = (PKCS15_KEY_ID + b"\x02").hex()
ORIGIN = "https://teleservice.example"
CHALLENGE = "A" * 43
HALF = 0.5
WARM_GOAL = 4

# The card layer's cold certificate read, in a process of its own, as the bridge reads
# a card put in the reader: its serial, then the application, then the certificate.
CARDAUTH_READ = """
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import connect_channel, identify_with_facts
from cardauth.transport.pcsc import PcscBackend
backend = PcscBackend()
card, facts = identify_with_facts(connect_channel(backend, backend.list_readers()[0]))
assert isinstance(card, CpsCard) and facts.certificate_der
"""

# Warm, in one process while the card stays in: a login with the PIN after the card was
# read (its PKCS#15 application and certificate), then a login on the kept PIN state.
CARDAUTH_WARM = """
import hashlib, sys
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import connect_channel, identify_with_facts
from cardauth.cards.session import pin_session
from cardauth.transport.pcsc import PcscBackend
backend = PcscBackend()
card, _ = identify_with_facts(connect_channel(backend, backend.list_readers()[0]))
assert isinstance(card, CpsCard)
card.pin_status()
digest = hashlib.sha256(b"challenge").digest()
sys.stdout.write("read\\n"); sys.stdout.flush(); sys.stdin.readline()
with pin_session(card, "1234", keep=True):
    card.authenticate(digest)
sys.stdout.write("logged in\\n"); sys.stdout.flush(); sys.stdin.readline()
with pin_session(card, None, keep=True):
    card.authenticate(digest)
sys.stdout.write("signed again\\n"); sys.stdout.flush()
card.log_out()
"""


@dataclass
class CardWatch:
    """What the card sees: how many commands, and when the first and last came."""

    card: VirtualCard
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        process = self.card.process

        def watched(raw: bytes) -> bytes:
            started = time.perf_counter()
            answer = process(raw)
            with self.lock:
                if not self.count:
                    self.first = started
                self.count += 1
                self.last = time.perf_counter()
            return answer

        self.card.process = watched  # type: ignore[method-assign]

    def reset(self) -> None:
        with self.lock:
            self.count, self.first, self.last = 0, 0.0, 0.0

    def measure(self, run: Callable[[], None]) -> tuple[int, float]:
        self.reset()
        run()
        with self.lock:
            return self.count, (self.last - self.first) if self.count else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", choices=sorted(PRESETS), default="cps3")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for tool in ("pkcs15-tool", "pkcs11-tool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: install OpenSC (scripts/setup.sh)")
    with tempfile.TemporaryDirectory() as workdir, PrivatePcscd(Path(workdir)) as pcscd:
        environment = {
            **os.environ,
            **pcscd.environment,
            "OPENSC_CONF": _opensc_conf(workdir),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        card = build_card(load("doctor"))
        card.faults.configure(PRESETS[args.latency])
        watch = CardWatch(card)
        slot, other = VpcdSlot(pcscd.vpcd_port), VpcdSlot(pcscd.vpcd_port + 1)
        slot.insert(card)
        other.insert(build_card(load("patient")))
        try:
            _wait_for_cards(environment)
            figures = _measure(watch, environment, Path(workdir), args.rounds)
        finally:
            slot.remove()
            other.remove()
    figures["latency"] = args.latency
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _report(figures)
    return 0


def _opensc_conf(workdir: str) -> str:
    """OpenSC with no file cache, as a first use: every run reads the card."""
    path = Path(workdir) / "opensc.conf"
    path.write_text("app default {\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n")
    return str(path)


def _wait_for_cards(environment: dict[str, str], count: int = 2) -> None:
    """Until pcscd shows ``count`` cards in the readers."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["opensc-tool", "--list-readers"],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.stdout.count("Yes") == count:
            return
        time.sleep(0.1)
    raise SystemExit(f"pcscd did not show {count} cards")


def _run(command: list[str], environment: dict[str, str], stdin: str = "") -> None:
    done = subprocess.run(
        command,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def _measure(
    watch: CardWatch, environment: dict[str, str], workdir: Path, rounds: int
) -> dict[str, Any]:
    python = sys.executable
    digest_file = workdir / "digest-info"
    digest_file.write_bytes(digest_info_of(b"challenge"))
    cardauth = str(Path(python).parent / "cardauth")
    sides: dict[str, Callable[[], None]] = {
        "opensc_read": lambda: _run(
            ["pkcs15-tool", "--reader", "0", "--read-certificate", AUTHENTICATION_ID],
            environment,
        ),
        "cardauth_read": lambda: _run([python, "-c", CARDAUTH_READ], environment),
        "opensc_sign": lambda: _run(
            [
                "pkcs11-tool",
                "--module",
                OPENSC_MODULE,
                "--slot-index",
                "0",
                "--login",
                "--pin",
                "1234",
                "--sign",
                "-m",
                "RSA-PKCS",
                "--id",
                AUTHENTICATION_ID,
                "-i",
                str(digest_file),
                "-o",
                str(workdir / "signature"),
            ],
            environment,
        ),
        "cardauth_sign": lambda: _run(
            [cardauth, "login", "--origin", ORIGIN, "--challenge", CHALLENGE, "--pin-stdin"],
            environment,
            stdin="1234\n",
        ),
    }
    samples: dict[str, list[tuple[int, float]]] = {name: [] for name in sides}
    for index in range(rounds):
        for task in ("read", "sign"):
            order = ("opensc", "cardauth") if index % 2 == 0 else ("cardauth", "opensc")
            for side in order:
                name = f"{side}_{task}"
                samples[name].append(watch.measure(sides[name]))
    figures: dict[str, Any] = {"rounds": rounds}
    for name, values in samples.items():
        figures[name] = {
            "apdus": max(count for count, _ in values),
            "seconds": statistics.median(seconds for _, seconds in values),
        }
    for task in ("read", "sign"):
        opensc, ours = figures[f"opensc_{task}"], figures[f"cardauth_{task}"]
        figures[f"{task}_ratio"] = {
            "apdus": ours["apdus"] / opensc["apdus"],
            "seconds": ours["seconds"] / opensc["seconds"] if opensc["seconds"] else 0.0,
        }
    figures["warm"] = _warm(watch, environment)
    return figures


def digest_info_of(message: bytes) -> bytes:
    return digest_info(hashes.SHA256(), hashlib.sha256(message).digest())


def _warm(watch: CardWatch, environment: dict[str, str]) -> dict[str, int]:
    """Commands of the warm steps, one process, the card read once: a login with the
    PIN, then a login on the kept PIN state."""
    process = subprocess.Popen(
        [sys.executable, "-c", CARDAUTH_WARM],
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    counts: dict[str, int] = {}
    try:
        process.stdout.readline()  # the card read
        for step in ("login_with_pin", "login_pin_kept"):
            watch.reset()
            process.stdin.write("\n")
            process.stdin.flush()
            process.stdout.readline()
            counts[step] = watch.count
    except BrokenPipeError:
        assert process.stderr is not None
        raise SystemExit(f"the warm run failed: {process.stderr.read()[-800:]}") from None
    finally:
        process.wait(timeout=30)
    return counts


def _report(figures: dict[str, Any]) -> None:
    print(f"cardauth and OpenSC on the same simulated CPS3 (latency {figures['latency']})")
    for task, label in (("read", "read the certificate, cold"), ("sign", "log in and sign, cold")):
        opensc, ours = figures[f"opensc_{task}"], figures[f"cardauth_{task}"]
        ratio = figures[f"{task}_ratio"]
        verdict = "meets" if ratio["apdus"] <= HALF and ratio["seconds"] <= HALF else "MISSES"
        print(
            f"  {label:28} OpenSC {opensc['apdus']:3} APDUs {opensc['seconds'] * 1000:7.0f} ms"
            f"   cardauth {ours['apdus']:3} APDUs {ours['seconds'] * 1000:7.0f} ms"
            f"   ratio {ratio['apdus']:.2f} / {ratio['seconds']:.2f} ({verdict} the goal <= 0.5)"
        )
    warm = figures["warm"]
    verdict = "meets" if warm["login_pin_kept"] <= WARM_GOAL else "MISSES"
    print(
        f"  warm (the card read once): login with the PIN {warm['login_with_pin']} APDUs, "
        f"login on the kept PIN {warm['login_pin_kept']} ({verdict} the goal <= {WARM_GOAL})"
    )


if __name__ == "__main__":
    sys.exit(main())
