"""In-process virtual readers behind the same interface as PC/SC.

A :class:`VirtualReaders` backend holds reader slots named the way pcsc-lite
names them (``<reader> 00 00``, ``<reader> 00 01`` for a dual-slot reader).
Cards are inserted and removed at run time; a connection to a card that has
been removed, or replaced, fails with CardRemoved just as PC/SC does, and a card
held in a transaction by one connection makes the others wait, then CardBusy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cardauth.cards.atr import Atr
from cardauth.errors import (
    CardBusy,
    CardMute,
    CardRemoved,
    MalformedCardData,
    NoCard,
    NoReader,
    ReaderNotFound,
    TransportError,
)
from cardauth.transport.base import CardProtocol, SlotState
from simulator.card import VirtualCard
from simulator.pinpad import PinPad

DEFAULT_READER = "cardauth Virtual Dual Reader"


@dataclass
class _Slot:
    name: str
    card: VirtualCard | None = None
    atr: bytes = b""
    events: int = 0
    holder: object | None = None  # the link holding the transaction
    hold_count: int = 0
    released: threading.Condition = field(default_factory=threading.Condition)
    pinpad: PinPad | None = None  # a keypad for secure PIN entry, if the reader has one

    def state(self) -> SlotState:
        present = self.card is not None
        return SlotState(
            reader=self.name,
            card_present=present,
            atr=self.atr,
            events=self.events,
        )


class VirtualLink:
    """A connection to the card in one virtual slot."""

    def __init__(self, backend: VirtualReaders, slot: _Slot) -> None:
        self._backend = backend
        self._slot = slot
        self._card = slot.card
        self._events = slot.events
        self._atr = slot.atr
        self._closed = False

    @property
    def reader(self) -> str:
        return self._slot.name

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> CardProtocol:
        return CardProtocol.T0 if self._card and self._card.spec.t0 else CardProtocol.T1

    def _check_card(self) -> VirtualCard:
        if self._closed:
            raise CardRemoved("the connection was closed", reader=self.reader)
        slot = self._slot
        if slot.card is not self._card or slot.events != self._events or self._card is None:
            raise CardRemoved("the card was removed", reader=self.reader)
        return self._card

    def transmit(self, apdu: bytes) -> bytes:
        card = self._check_card()
        slot = self._slot
        if slot.holder is not None and slot.holder is not self:
            self._wait_for_release(self._backend.transmit_wait)
        return card.process(apdu)

    def begin_transaction(self, timeout: float) -> None:
        self._check_card()
        slot = self._slot
        with slot.released:
            if slot.holder is self:
                slot.hold_count += 1
                return
            if not slot.released.wait_for(lambda: slot.holder is None, timeout):
                raise CardBusy("the card is held by another connection", reader=self.reader)
            slot.holder, slot.hold_count = self, 1

    def end_transaction(self) -> None:
        slot = self._slot
        with slot.released:
            if slot.holder is not self:
                return
            slot.hold_count -= 1
            if slot.hold_count == 0:
                slot.holder = None
                slot.released.notify_all()
        self._check_card()

    def _wait_for_release(self, timeout: float) -> None:
        slot = self._slot
        with slot.released:
            if not slot.released.wait_for(lambda: slot.holder is None, timeout):
                raise CardBusy("the card is held by another connection", reader=self.reader)

    def control(self, code: int, data: bytes) -> bytes:
        card = self._check_card()
        if self._slot.pinpad is None:
            raise TransportError(
                "the reader does not support this control code", control_code=f"{code:08X}"
            )
        return self._slot.pinpad.control(code, data, card)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._backend.release_holds_of(self)


class VirtualReaders:
    """In-process reader slots; by default one dual-slot reader."""

    def __init__(self, slots: list[str] | None = None, *, transmit_wait: float = 10.0) -> None:
        names = (
            slots if slots is not None else [f"{DEFAULT_READER} 00 00", f"{DEFAULT_READER} 00 01"]
        )
        self._slots: dict[str, _Slot] = {name: _Slot(name) for name in names}
        self._changed = threading.Condition()
        self._cancelled = False
        self.transmit_wait = transmit_wait

    # -- what a test or the simulator does -----------------------------------------

    @property
    def slot_names(self) -> list[str]:
        with self._changed:
            return list(self._slots)

    def insert(self, slot: str | int, card: VirtualCard) -> None:
        """Put ``card`` in a slot (by name or index), powering it up."""
        with self._changed:
            target = self._slot(slot)
            if target.card is not None:
                raise ValueError(f"slot {target.name!r} already holds a card")
            target.atr = card.power_on()
            target.card = card
            target.events += 1
            self._changed.notify_all()

    def remove(self, slot: str | int) -> VirtualCard | None:
        """Take the card out of a slot; connections to it fail from now on."""
        with self._changed:
            target = self._slot(slot)
            card, target.card, target.atr = target.card, None, b""
            if card is not None:
                target.events += 1
                self._release(target)
                self._changed.notify_all()
            return card

    def add_pinpad(self, slot: str | int) -> PinPad:
        """Give a slot's reader a keypad for secure PIN entry (and return it)."""
        with self._changed:
            target = self._slot(slot)
            if target.pinpad is None:
                target.pinpad = PinPad()
            return target.pinpad

    def card_in(self, slot: str | int) -> VirtualCard | None:
        with self._changed:
            return self._slot(slot).card

    def attach_reader(self, name: str) -> None:
        with self._changed:
            self._slots.setdefault(name, _Slot(name))
            self._changed.notify_all()

    def detach_reader(self, name: str) -> None:
        with self._changed:
            slot = self._slots.pop(name, None)
            if slot is not None:
                slot.card, slot.atr = None, b""
                slot.events += 1
                self._release(slot)
            self._changed.notify_all()

    def _slot(self, slot: str | int) -> _Slot:
        if isinstance(slot, int):
            names = list(self._slots)
            if not 0 <= slot < len(names):
                raise ReaderNotFound("no such reader slot", slot=slot)
            return self._slots[names[slot]]
        found = self._slots.get(slot)
        if found is None:
            raise ReaderNotFound("no such reader slot", reader=slot)
        return found

    @staticmethod
    def _release(slot: _Slot) -> None:
        with slot.released:
            slot.holder, slot.hold_count = None, 0
            slot.released.notify_all()

    def release_holds_of(self, link: VirtualLink) -> None:
        with self._changed:
            for slot in self._slots.values():
                if slot.holder is link:
                    self._release(slot)

    # -- ReaderBackend ---------------------------------------------------------------

    def list_readers(self) -> list[str]:
        with self._changed:
            if not self._slots:
                raise NoReader("no smart-card reader is attached")
            return list(self._slots)

    def connect(self, reader: str) -> VirtualLink:
        with self._changed:
            slot = self._slots.get(reader)
            if slot is None:
                raise ReaderNotFound("the reader is not attached", reader=reader)
            if slot.card is None:
                raise NoCard("no card in the reader", reader=reader)
            try:
                Atr.parse(slot.atr)
            except MalformedCardData:  # as pcscd: no protocol can be agreed
                raise CardMute("the card's answer to reset is unusable", reader=reader) from None
            return VirtualLink(self, slot)

    def slot_states(self) -> dict[str, SlotState]:
        with self._changed:
            return {name: slot.state() for name, slot in self._slots.items()}

    def wait_for_change(
        self, known: Mapping[str, SlotState], timeout: float
    ) -> dict[str, SlotState]:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._cancelled = False
            while True:
                current = {name: slot.state() for name, slot in self._slots.items()}
                remaining = deadline - time.monotonic()
                if current != dict(known) or self._cancelled or remaining <= 0:
                    return current
                self._changed.wait(remaining)

    def cancel(self) -> None:
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()

    def close(self) -> None:
        self.cancel()
