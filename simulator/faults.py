"""Faults a virtual card can suffer, configurable per card, drawn from a seeded
random source so that a failing run can be replayed.

A card's :class:`CardFaults` is asked once per command APDU. It may delay the
command (a real card is slow), and it may inject one fault:

- ``removal``: the card is pulled in the middle of the command (and put back at
  once: a new insertion); the reader reports it gone and the command fails;
- ``mute``: the card gives no answer to the command;
- ``garbage``: the answer is random bytes (1 to 300 of them);
- ``truncated``: the answer loses some of its data, its status word kept (a
  reader that dropped bytes: the status says all went well);
- ``wrong_status``: the data are kept, the status word is replaced by another
  one a card may give (63C0, 6982, 6983, 6A82, 6F00...);
- ``reset``: the card resets (its volatile state, the verified PIN included, is
  gone) and the command is lost; every connection opened before sees the reset
  on its next call (PC/SC ``SCARD_W_RESET_CARD``) until it reconnects.

Faults are on the card's side only: a command reaches the card as the host sent
it, so no fault can make the card see a PIN that nobody typed. ``removal`` and
``reset`` are physical events the card cannot answer with bytes: the card raises
:class:`CardEvent` and the reader that holds it (in-process readers, or the vpcd
link) acts them out.

Latency: ``CPS3_LATENCY`` uses 20-60 ms per APDU and 150-400 ms per RSA-2048
signature. These are estimates, not measurements of a CPS3 card: the CPS3 ATR
(``3B AC 00 40 ...``) has no TA1, so it runs at ISO 7816-3's default rate
(Fi = 372, Di = 1: about 1.1 ms per character at a 4 MHz clock); a short APDU
and its status word take about 10 ms on the wire before the card computes
anything, and a 256-byte READ BINARY about 0.3 s (``byte_time``, 0 in the
preset, adds that part when wanted).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class Fault(StrEnum):
    REMOVAL = "removal"
    MUTE = "mute"
    GARBAGE = "garbage"
    TRUNCATED = "truncated"
    WRONG_STATUS = "wrong_status"
    RESET = "reset"


# Status words a card may give instead of the right one (ISO 7816-4 § 5.6).
WRONG_STATUS_WORDS = (
    0x6281,  # part of the data may be corrupted
    0x6300,  # verification failed, no counter
    0x63C0,  # no tries left
    0x63C1,
    0x6581,  # memory failure
    0x6700,
    0x6982,
    0x6983,
    0x6985,
    0x6A82,
    0x6A88,
    0x6D00,
    0x6F00,  # no precise diagnosis
    0x9000,
)
MAX_GARBAGE = 300


class CardEvent(Exception):
    """Internal: the card was pulled or reset during a command. Raised by the card
    to the reader holding it, never past it (the reader turns it into what PC/SC
    reports: CardRemoved, CardReset)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.value)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """What may go wrong with one card: rates are probabilities per command APDU;
    latencies are (lowest, highest) in seconds, drawn uniformly."""

    seed: int = 0
    apdu_latency: tuple[float, float] = (0.0, 0.0)
    signature_latency: tuple[float, float] = (0.0, 0.0)
    byte_time: float = 0.0  # seconds per byte on the wire (command and response)
    removal: float = 0.0
    mute: float = 0.0
    garbage: float = 0.0
    truncated: float = 0.0
    wrong_status: float = 0.0
    reset: float = 0.0

    def __post_init__(self) -> None:
        for kind in Fault:
            if not 0.0 <= self.rate(kind) <= 1.0:
                raise ValueError(f"the {kind.value} rate must be between 0 and 1")
        if sum(self.rate(kind) for kind in Fault) > 1.0:
            raise ValueError("the fault rates add up to more than 1")
        for low, high in (self.apdu_latency, self.signature_latency):
            if not 0.0 <= low <= high <= 60.0:
                raise ValueError("a latency is (lowest, highest), 0 to 60 seconds")
        if not 0.0 <= self.byte_time <= 0.1:
            raise ValueError("byte_time must be 0 to 0.1 seconds")

    def rate(self, kind: Fault) -> float:
        return float(getattr(self, kind.value))

    @property
    def quiet(self) -> bool:
        return not any(self.rate(kind) for kind in Fault) and not self.slow

    @property
    def slow(self) -> bool:
        return bool(self.apdu_latency[1] or self.signature_latency[1] or self.byte_time)

    def with_rates(self, **rates: float) -> FaultSettings:
        return replace(self, **rates)  # type: ignore[arg-type]

    @classmethod
    def uniform(cls, rate: float, *, seed: int = 0) -> FaultSettings:
        """Every fault kind at ``rate`` per command."""
        return cls(seed=seed, **{kind.value: rate for kind in Fault})  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> FaultSettings:
        """From a persona's ``[faults]`` table (latencies in milliseconds); ValueError
        naming the key at fault."""
        rates = {kind.value for kind in Fault}
        unknown = set(table) - {"latency", "seed", *_MS_KEYS, *rates}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]} (latencies end in _ms)")
        preset = table.get("latency", "none")
        base = PRESETS.get(preset) if isinstance(preset, str) else None
        if base is None:
            raise ValueError(f"latency must be one of {', '.join(sorted(PRESETS))}")
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key == "latency":
                continue
            if key in _MS_KEYS:
                values[_MS_KEYS[key]] = _milliseconds(key, value)
            elif key == "seed":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError("seed must be an integer")
                values[key] = value
            else:
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise ValueError(f"{key} must be a number (a probability per command)")
                values[key] = float(value)
        return replace(base, **values)


_MS_KEYS = {
    "apdu_latency_ms": "apdu_latency",
    "signature_latency_ms": "signature_latency",
    "byte_time_ms": "byte_time",
}


def _milliseconds(key: str, value: object) -> float | tuple[float, float]:
    def seconds(number: object) -> float:
        if not isinstance(number, int | float) or isinstance(number, bool) or number < 0:
            raise ValueError(f"{key} must be a number of milliseconds")
        return float(number) / 1000

    if key == "byte_time_ms":
        return seconds(value)
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"{key} must be [lowest, highest] in milliseconds")
    return (seconds(value[0]), seconds(value[1]))


NO_FAULTS = FaultSettings()
CPS3_LATENCY = FaultSettings(apdu_latency=(0.020, 0.060), signature_latency=(0.150, 0.400))
PRESETS = {"none": NO_FAULTS, "cps3": CPS3_LATENCY}


class CardFaults:
    """The faults of one card at run time: its settings, its seeded random source,
    the faults armed by a test for a given command, and counts of what happened."""

    def __init__(
        self,
        settings: FaultSettings = NO_FAULTS,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self._sleep = sleep
        self.counts: Counter[Fault] = Counter()
        self._armed: list[_Armed] = []
        self._status: int | None = None  # the status word of the armed fault under way
        self.settings = settings
        self._random = random.Random(settings.seed)  # noqa: S311 - replayable faults, no secret

    def configure(self, settings: FaultSettings) -> None:
        """New settings, and the random source seeded again from them."""
        with self._lock:
            self.settings = settings
            self._random = random.Random(settings.seed)  # noqa: S311 - replayable faults, no secret

    def arm(self, fault: Fault, *, ins: int | None = None, status: int | None = None) -> None:
        """Inject ``fault`` once: at the next command, or the next with INS ``ins``;
        ``status`` is the status word a WRONG_STATUS fault gives (else drawn)."""
        with self._lock:
            self._armed.append(_Armed(fault, ins, status))

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    # -- what the card asks -------------------------------------------------------

    def before(self, command: bytes) -> Fault | None:
        """Delay the command as the card's speed says, and draw its fault, if any."""
        with self._lock:
            fault = self._take_armed(command) or self._draw()
            delay = self._uniform(self.settings.apdu_latency)
            delay += self.settings.byte_time * len(command)
            if fault is not None:
                self.counts[fault] += 1
        if delay:
            self._sleep(delay)
        return fault

    def signing(self) -> None:
        with self._lock:
            delay = self._uniform(self.settings.signature_latency)
        if delay:
            self._sleep(delay)

    def after(self, fault: Fault | None, response: bytes) -> bytes:
        """The response as it reaches the reader."""
        if self.settings.byte_time:
            self._sleep(self.settings.byte_time * len(response))
        if fault is None:
            return response
        with self._lock:
            return self._corrupt(fault, response)

    def executes_before_removal(self) -> bool:
        """A card pulled during a command may or may not have carried it out."""
        with self._lock:
            return self._random.random() < 0.5

    # -- internals ------------------------------------------------------------------

    def _take_armed(self, command: bytes) -> Fault | None:
        self._status = None
        for index, armed in enumerate(self._armed):
            if armed.ins is None or (len(command) > 1 and command[1] == armed.ins):
                del self._armed[index]
                self._status = armed.status
                return armed.fault
        return None

    def _draw(self) -> Fault | None:
        settings = self.settings
        if settings.quiet:
            return None
        point = self._random.random()
        for kind in Fault:
            point -= settings.rate(kind)
            if point < 0:
                return kind
        return None

    def _uniform(self, bounds: tuple[float, float]) -> float:
        low, high = bounds
        return self._random.uniform(low, high) if high else 0.0

    def _corrupt(self, fault: Fault, response: bytes) -> bytes:
        rng = self._random
        if fault is Fault.MUTE:
            return b""
        if fault is Fault.GARBAGE:
            return rng.randbytes(rng.randint(1, MAX_GARBAGE))
        data, sw = response[:-2], response[-2:]
        if fault is Fault.TRUNCATED:
            return data[: rng.randrange(len(data))] + sw if data else sw[:1]
        wrong = [w for w in WRONG_STATUS_WORDS if w.to_bytes(2, "big") != sw]
        status = self._status if self._status is not None else rng.choice(wrong)
        return data + status.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class _Armed:
    fault: Fault
    ins: int | None
    status: int | None
