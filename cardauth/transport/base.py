"""The interface between the card layer and whatever holds the cards.

Two implementations exist: PC/SC through pyscard (:mod:`cardauth.transport.pcsc`)
and the simulator's in-process virtual readers. Both move bytes only; what the
bytes mean is the business of :mod:`cardauth.transport.channel` and above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol


class CardProtocol(IntEnum):
    """Transmission protocols, with their PC/SC values."""

    T0 = 0x0001
    T1 = 0x0002


@dataclass(frozen=True, slots=True)
class SlotState:
    """What one reader slot holds. ``events`` counts insertions and removals, so that a
    card pulled and put back between two looks is still seen as a change."""

    reader: str
    card_present: bool = False
    atr: bytes = b""
    mute: bool = False
    events: int = 0


class CardLink(Protocol):
    """A connection to the card in one reader slot."""

    @property
    def reader(self) -> str: ...

    @property
    def atr(self) -> bytes: ...

    @property
    def protocol(self) -> CardProtocol: ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU, return the response APDU (data and status word)."""
        ...

    def begin_transaction(self, timeout: float) -> None:
        """Take the card for this connection alone, waiting at most ``timeout`` seconds
        for other holders (in any process) to let go; CardBusy after that."""
        ...

    def end_transaction(self) -> None: ...

    def control(self, code: int, data: bytes) -> bytes:
        """A reader control command (SCardControl), e.g. secure PIN entry."""
        ...

    def close(self, *, reset: bool = False) -> None:
        """Disconnect; with ``reset`` the card is reset on the way (PC/SC
        SCARD_RESET_CARD): its volatile state, a verified PIN included, is gone."""
        ...


class ReaderBackend(Protocol):
    """Lists reader slots, connects to cards and reports what changes."""

    def list_readers(self) -> list[str]:
        """Names of the reader slots present, in a stable order; NoReader if none."""
        ...

    def connect(self, reader: str) -> CardLink:
        """Connect to the card in ``reader`` (shared mode)."""
        ...

    def slot_states(self) -> dict[str, SlotState]:
        """The current state of every slot, without waiting."""
        ...

    def wait_for_change(
        self, known: Mapping[str, SlotState], timeout: float
    ) -> dict[str, SlotState]:
        """Block until some slot differs from ``known`` (a reader came or went, a card
        was inserted or removed) or ``timeout`` seconds pass; return the states then."""
        ...

    def cancel(self) -> None:
        """Wake a thread blocked in ``wait_for_change``."""
        ...

    def close(self) -> None: ...
