"""Card layer benchmark: the card layer over raw pyscard, for the card transactions a
login really makes, and the APDUs each operation costs.

Runs a private pcscd with the vpcd driver, plugs the doctor's CPS card and the
patient's Vitale card into it (in a ``cardauth-sim --vpcd`` process of their own,
as real cards run on their own chip), then measures, side by side in one run,
each transaction a login or a signature makes (4 to 7 APDUs): the card layer doing
it (transaction, T=0 handling, parsing and all) against raw pyscard replaying the
very APDUs the card layer sent, in a PC/SC transaction of its own
(``SCardBeginTransaction``, the APDUs, ``SCardEndTransaction``). Rounds alternate
which side goes first; the figure is the median of the per-round ratios, against
the goal (<= 1.10). It also counts the APDUs of each operation, cold (the card's
PKCS#15 application not read yet) and warm.

Usage: .venv/bin/python bench/card_layer.py [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smartcard import scard

from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import connect_channel, identify, identify_with_facts
from cardauth.cards.session import pin_session
from cardauth.transport.base import CardLink
from cardauth.transport.channel import CardChannel
from cardauth.transport.pcsc import PcscBackend
from simulator.pcscd import READER_NAMES, PrivatePcscd

GOAL_RATIO = 1.10
DIGEST = hashlib.sha256(b"challenge").digest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir, PrivatePcscd(Path(workdir)) as pcscd:
        os.environ.update(pcscd.environment)  # before this process first talks to PC/SC
        simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator.cli",
                "--vpcd",
                "--vpcd-port",
                str(pcscd.vpcd_port),
                "--control",
                str(Path(workdir) / "control.sock"),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_for_cards(READER_NAMES)
            counts = _apdu_counts(READER_NAMES[0])
            transactions = _transactions(READER_NAMES[0], args.rounds)
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)
    if args.json:
        print(json.dumps({"transactions": transactions, "apdus": counts}, indent=2))
    else:
        _report(transactions, counts)
    return 0


def _wait_for_cards(readers: tuple[str, ...]) -> None:
    backend = PcscBackend()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = backend.slot_states()
        if all(states.get(r) and states[r].card_present for r in readers):
            backend.close()
            return
        time.sleep(0.05)
    raise SystemExit("the virtual cards did not appear in pcscd")


def _raw_connection(reader: str) -> tuple[int, int]:
    _context, handle, protocol = _raw_open(reader)
    return handle, protocol


def _raw_open(reader: str) -> tuple[int, int, int]:
    """A context and a connection, and the card's status (its ATR), as a raw client."""
    _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    result, handle, protocol = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    )
    if result != 0:
        raise SystemExit(f"raw SCardConnect failed: {result:#x}")
    scard.SCardStatus(handle)
    return context, handle, protocol


def _alternate(
    first: Callable[[], float], second: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    """Run both measurements ``rounds`` times, alternating which goes first."""
    a: list[float] = []
    b: list[float] = []
    for index in range(rounds):
        if index % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return a, b


def _ratios(measured: list[float], reference: list[float]) -> list[float]:
    return [m / r for m, r in zip(measured, reference, strict=True)]


class _Recorder:
    """A link that records the APDUs a card operation sends, to replay them raw."""

    def __init__(self, link: CardLink) -> None:
        self._link = link
        self.sent: list[bytes] = []
        self.reader = link.reader
        self.atr = link.atr
        self.protocol = link.protocol
        self.begin_transaction = link.begin_transaction
        self.end_transaction = link.end_transaction
        self.control = link.control
        self.close = link.close

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self._link.transmit(apdu)


def _operations(
    card: CpsCard, backend: PcscBackend, reader: str
) -> dict[str, Callable[[], object]]:
    """The card transactions of a login and of a signature, each one call of the card
    layer: a card's insertion (on a connection of its own, so read in full), then the
    logins and a signature on the card read once."""

    def insertion() -> object:
        channel = connect_channel(backend, reader)
        try:
            known, facts = identify_with_facts(channel)
            assert isinstance(known, CpsCard)
            return facts, known.pin_status()
        finally:
            channel.close()

    def login_on_kept_pin() -> object:
        with pin_session(card, None, keep=True):
            return card.authenticate(DIGEST)

    def login_with_pin() -> object:
        with pin_session(card, "1234"):
            return card.authenticate(DIGEST)

    def document_signature() -> object:
        with pin_session(card, "1234"):
            return card.sign(DIGEST)

    return {
        "insertion: serial, PKCS#15 objects, certificate, tries left": insertion,
        "login on the kept PIN (bridge fast path)": login_on_kept_pin,
        "login with the PIN, then log out": login_with_pin,
        "document signature with the PIN, then log out": document_signature,
    }


def _transactions(reader: str, rounds: int) -> dict[str, dict[str, Any]]:
    backend = PcscBackend()
    recorder = _Recorder(backend.connect(reader))
    card = identify(CardChannel(recorder))
    assert isinstance(card, CpsCard)
    with pin_session(card, "1234", keep=True):  # read what a login reads, once
        card.certificate_der()
        card.authenticate(DIGEST)
    handle, protocol = _raw_connection(reader)
    results = {}
    for name, operation in _operations(card, backend, reader).items():
        recorder.sent.clear()
        operation()
        sequence = [list(apdu) for apdu in recorder.sent]
        recorded = bool(sequence)
        if not recorded:  # the insertion runs on a connection of its own: record it there
            sequence = _recorded_insertion(backend, reader)

        def raw(sequence: list[list[int]] = sequence, connects: bool = not recorded) -> float:
            started = time.perf_counter()
            if connects:  # as the card layer does for a card put in the reader
                context, card_handle, card_protocol = _raw_open(reader)
            else:
                context, card_handle, card_protocol = 0, handle, protocol
            scard.SCardBeginTransaction(card_handle)
            for apdu in sequence:
                scard.SCardTransmit(card_handle, card_protocol, apdu)
            scard.SCardEndTransaction(card_handle, scard.SCARD_LEAVE_CARD)
            if connects:
                scard.SCardDisconnect(card_handle, scard.SCARD_LEAVE_CARD)
                scard.SCardReleaseContext(context)
            return time.perf_counter() - started

        def layer(operation: Callable[[], object] = operation) -> float:
            started = time.perf_counter()
            operation()
            return time.perf_counter() - started

        raw(), layer()  # warm up both paths
        raw_times, layer_times = _alternate(raw, layer, rounds)
        ratios = _ratios(layer_times, raw_times)
        quartiles = statistics.quantiles(ratios, n=4)
        results[name] = {
            "apdus": len(sequence),
            "raw_pyscard_ms": statistics.median(raw_times) * 1e3,
            "card_layer_ms": statistics.median(layer_times) * 1e3,
            "ratio": statistics.median(ratios),
            "ratio_quartiles": (quartiles[0], quartiles[2]),
            "goal": GOAL_RATIO,
        }
    card.log_out()
    card.channel.close()
    return results


def _recorded_insertion(backend: PcscBackend, reader: str) -> list[list[int]]:
    recorder = _Recorder(backend.connect(reader))
    channel = CardChannel(recorder)
    known, _facts = identify_with_facts(channel)
    assert isinstance(known, CpsCard)
    known.pin_status()
    channel.close()
    return [list(apdu) for apdu in recorder.sent]


def _apdu_counts(reader: str) -> dict[str, int]:
    """APDUs sent to the CPS card (every one: GET RESPONSE and re-issues included),
    from the card's insertion (nothing of it read yet) to a login on a kept PIN."""
    backend = PcscBackend()
    channel = connect_channel(backend, reader)

    def counted(action: Callable[[], object]) -> int:
        before = channel.apdus_sent
        with channel.transaction():
            action()
        return channel.apdus_sent - before

    found: list[CpsCard] = []

    def first_sight() -> None:
        card, _facts = identify_with_facts(channel)
        assert isinstance(card, CpsCard)
        card.identity()
        card.pin_status()
        found.append(card)

    counts = {"first sight: serial, certificate, identity, tries left": counted(first_sight)}
    card = found[0]

    def first_login() -> None:
        with pin_session(card, "1234", keep=True):
            card.authenticate(DIGEST)

    def kept_pin_login() -> None:
        with pin_session(card, None, keep=True):
            card.authenticate(DIGEST)

    def signature() -> None:
        with pin_session(card, "1234"):
            card.sign(DIGEST)

    counts["first login with the PIN (PIN object read)"] = counted(first_login)
    counts["login on the kept PIN"] = counted(kept_pin_login)
    counts["document signature with the PIN, then log out"] = counted(signature)
    channel.close()
    backend.close()
    return counts


def _report(transactions: dict[str, dict[str, Any]], counts: dict[str, int]) -> None:
    print("Card layer over raw pyscard replaying its APDUs, same card, same pcscd")
    for name, figures in transactions.items():
        verdict = "meets" if figures["ratio"] <= GOAL_RATIO else "MISSES"
        low, high = figures["ratio_quartiles"]
        print(
            f"  {name}: {int(figures['apdus'])} APDUs, raw {figures['raw_pyscard_ms']:.3f} ms, "
            f"card layer {figures['card_layer_ms']:.3f} ms, ratio {figures['ratio']:.3f} "
            f"[quartiles {low:.3f}-{high:.3f}] ({verdict} the goal <= {GOAL_RATIO})"
        )
    print("APDUs per operation (counted by the card layer)")
    for name, value in counts.items():
        print(f"  {name:52} {value}")


if __name__ == "__main__":
    sys.exit(main())
