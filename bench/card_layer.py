"""Card layer benchmark: overhead over raw pyscard, and APDUs per operation.

Runs a private pcscd with the vpcd driver, plugs the doctor's CPS card and the
patient's Vitale card into it, then measures, side by side in one run:

1. per-APDU time of the card layer (``CardChannel.transmit`` inside a
   transaction, as card operations run) against raw pyscard
   (``scard.SCardTransmit`` on its own connection) sending the same APDU to the
   same virtual card through the same pcscd; rounds alternate which goes first,
   and the median of the per-round ratios is printed against the goal (<= 1.10);
2. the same for a whole operation (read the CPS holder data and authentication
   certificate) against raw pyscard replaying the very same APDUs;
3. the APDUs each operation costs (all of them: GET RESPONSE and re-issued
   commands included).

The virtual cards run in a separate ``cardauth-sim --vpcd`` process, as real cards
run on their own chip.

Usage: .venv/bin/python bench/card_layer.py [--rounds N] [--apdus N] [--json]
"""

from __future__ import annotations

import argparse
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

from smartcard import scard  # noqa: TID251 - raw pyscard is the baseline

from cardauth.apdu import CommandApdu, Ins
from cardauth.cards.cps import IAS_AID, CpsCard
from cardauth.cards.identify import open_card
from cardauth.transport.base import CardLink
from cardauth.transport.channel import CardChannel
from cardauth.transport.pcsc import PcscBackend
from simulator.pcscd import READER_NAMES, PrivatePcscd

GOAL_RATIO = 1.10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--apdus", type=int, default=100, help="APDUs per round and side")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir, PrivatePcscd(Path(workdir)) as pcscd:
        os.environ.update(pcscd.environment)  # before this process first talks to PC/SC
        # The cards run in a process of their own, as real cards run on their own chip:
        # the measuring process shares its interpreter with nothing but itself.
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
            per_apdu = _per_apdu(READER_NAMES[0], args.rounds, args.apdus)
            operation = _operation(READER_NAMES[0], args.rounds)
            counts = _apdu_counts(READER_NAMES)
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)
    if args.json:
        results = {"per_apdu": per_apdu, "read_holder_and_certificate": operation, "apdus": counts}
        print(json.dumps(results, indent=2))
    else:
        _report(per_apdu, operation, counts)
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

    _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    result, handle, protocol = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    )
    if result != 0:
        raise SystemExit(f"raw SCardConnect failed: {result:#x}")
    return handle, protocol


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


def _paired_ratio(measured: list[float], reference: list[float]) -> float:
    """The median of the per-round ratios: each round's two sides ran back to back,
    so a slow spell of the machine weighs on both and cancels out."""
    return statistics.median(_ratios(measured, reference))


def _ratios(measured: list[float], reference: list[float]) -> list[float]:
    return [m / r for m, r in zip(measured, reference, strict=True)]


def _quartiles(measured: list[float], reference: list[float]) -> tuple[float, float]:
    first, _median, third = statistics.quantiles(_ratios(measured, reference), n=4)
    return first, third


def _per_apdu(reader: str, rounds: int, count: int) -> dict[str, Any]:

    command = CommandApdu(0x00, Ins.SELECT, 0x04, 0x0C, IAS_AID)
    raw_bytes = list(command.to_bytes())
    handle, protocol = _raw_connection(reader)
    channel = CardChannel(PcscBackend().connect(reader))

    def raw() -> float:
        started = time.perf_counter()
        for _ in range(count):
            result, response = scard.SCardTransmit(handle, protocol, raw_bytes)
            if result != 0 or bytes(response[-2:]) != b"\x90\x00":
                raise SystemExit("raw transmit failed")
        return (time.perf_counter() - started) / count

    def layer() -> float:
        started = time.perf_counter()
        with channel.transaction():
            for _ in range(count):
                if not channel.transmit(command).ok:
                    raise SystemExit("card layer transmit failed")
        return (time.perf_counter() - started) / count

    raw(), layer()  # warm up both paths
    raw_times, layer_times = _alternate(raw, layer, rounds)
    channel.close()
    return {
        "raw_pyscard_us": statistics.median(raw_times) * 1e6,
        "card_layer_us": statistics.median(layer_times) * 1e6,
        "ratio": _paired_ratio(layer_times, raw_times),
        "ratio_quartiles": _quartiles(layer_times, raw_times),
        "goal": GOAL_RATIO,
    }


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


def _operation(reader: str, rounds: int) -> dict[str, float]:

    link = PcscBackend().connect(reader)
    recorder = _Recorder(link)
    channel = CardChannel(recorder)
    card = CpsCard(channel)

    def read() -> None:
        with channel.transaction():
            card.holder()
            card.certificate()

    read()
    sequence = [list(apdu) for apdu in recorder.sent]
    handle, protocol = _raw_connection(reader)
    repeat = 20

    def raw() -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            for apdu in sequence:
                scard.SCardTransmit(handle, protocol, apdu)
        return (time.perf_counter() - started) / repeat

    def layer() -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            read()
        return (time.perf_counter() - started) / repeat

    raw_times, layer_times = _alternate(raw, layer, rounds)
    channel.close()
    return {
        "apdus": len(sequence),
        "raw_pyscard_ms": statistics.median(raw_times) * 1e3,
        "card_layer_ms": statistics.median(layer_times) * 1e3,
        "ratio": _paired_ratio(layer_times, raw_times),
    }


def _apdu_counts(readers: tuple[str, ...]) -> dict[str, int]:
    """APDUs sent to the cards (every one: GET RESPONSE and re-issues included)."""
    backend = PcscBackend()
    cards = [open_card(backend, reader) for reader in readers]
    identify = sum(card.channel.apdus_sent for card in cards)
    cps = next(c for c in cards if isinstance(c, CpsCard))

    def counted(action: Callable[[], object]) -> int:
        before = cps.channel.apdus_sent
        with cps.channel.transaction():
            action()
        return cps.channel.apdus_sent - before

    def read_holder_and_certificate() -> None:
        cps.holder()
        cps.certificate()

    def pin_and_sign() -> None:
        cps.verify_pin("1234")
        cps.authenticate(bytes(32))

    counts = {
        "identify_both_cards": identify,
        "read_cps_holder_and_certificate": counted(read_holder_and_certificate),
        "pin_and_sign": counted(pin_and_sign),
    }
    for card in cards:
        card.channel.close()
    backend.close()
    return counts


def _report(per_apdu: dict[str, Any], operation: dict[str, float], counts: dict[str, int]) -> None:
    verdict = "meets" if per_apdu["ratio"] <= GOAL_RATIO else "MISSES"
    low, high = per_apdu["ratio_quartiles"]
    print("Card layer over raw pyscard, same virtual card through the same pcscd")
    print(
        f"  per APDU     raw {per_apdu['raw_pyscard_us']:7.1f} us   card layer "
        f"{per_apdu['card_layer_us']:7.1f} us   ratio {per_apdu['ratio']:.3f} "
        f"[quartiles {low:.3f}-{high:.3f}] ({verdict} the goal <= {GOAL_RATIO})"
    )
    print(
        f"  holder+cert  raw {operation['raw_pyscard_ms']:7.2f} ms   card layer "
        f"{operation['card_layer_ms']:7.2f} ms   ratio {operation['ratio']:.3f} "
        f"({int(operation['apdus'])} APDUs, transaction included)"
    )
    print("APDUs per operation (counted by the cards)")
    for name, value in counts.items():
        print(f"  {name:34} {value}")


if __name__ == "__main__":
    sys.exit(main())
