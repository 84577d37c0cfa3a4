"""In-process virtual readers behind the same interface as PC/SC.

A :class:`VirtualReaders` backend holds reader slots named the way pcsc-lite
names them (``<reader> 00 00``, ``<reader> 00 01`` for a dual-slot reader).
Cards are inserted and removed at run time; a connection to a card that has
been removed, or replaced, fails with CardRemoved just as PC/SC does, and a card
held in a transaction by one connection makes the others wait, then CardBusy.
A card's faults (simulator/faults.py) are acted out here: a card pulled during a
command is removed and put back (CardRemoved), a card that reset makes every
connection opened before fail with CardReset, and an unplugged reader's slot
disappears (ReaderNotFound) until it is plugged in again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cardauth.cards.atr import Atr
from cardauth.errors import (
    CardBusy,
    CardMute,
    CardRemoved,
    CardReset,
    MalformedCardData,
    NoCard,
    NoReader,
    ReaderNotFound,
    TransportError,
)
from cardauth.transport.base import CardProtocol, SlotState
from simulator.card import VirtualCard
from simulator.faults import CardEvent, Fault
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
    resets: int = 0  # card resets: connections opened before one see it (SCARD_W_RESET_CARD)
    attached: bool = True  # False while the reader is unplugged

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
        self._resets = slot.resets
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
        if not slot.attached:
            raise ReaderNotFound("the reader was detached", reader=self.reader)
        if slot.card is not self._card or slot.events != self._events or self._card is None:
            raise CardRemoved("the card was removed", reader=self.reader)
        if slot.resets != self._resets:
            raise CardReset("the card was reset", reader=self.reader)
        return self._card

    def transmit(self, apdu: bytes) -> bytes:
        card = self._check_card()
        slot = self._slot
        if slot.holder is not None and slot.holder is not self:
            self._wait_for_release(self._backend.transmit_wait)
        return self._reach(lambda: card.process(apdu))

    def _reach(self, talk: Callable[[], bytes]) -> bytes:
        """``talk`` to the card, its faults (pulled out, reset) reported as the reader
        reports them, whichever way it is reached: a command, or the keypad's VERIFY."""
        try:
            return talk()
        except CardEvent as event:
            self._backend.act_out(self._slot, event.fault)
            if event.fault is Fault.RESET:
                raise CardReset("the card was reset", reader=self.reader) from None
            raise CardRemoved("the card was pulled out", reader=self.reader) from None

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
        pinpad = self._slot.pinpad
        return self._reach(lambda: pinpad.control(code, data, card))

    def close(self, *, reset: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self._backend.release_holds_of(self)
        if reset and self._slot.card is self._card and self._slot.events == self._events:
            self._backend.reset_card(self._slot)


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

    def unplug(self, slot: str | int) -> None:
        """Unplug the slot's reader: the slot disappears (the card stays in it) and
        connections to it fail with ReaderNotFound."""
        with self._changed:
            target = self._slot(slot)
            target.attached = False
            self._release(target)
            self._changed.notify_all()

    def replug(self, slot: str | int) -> None:
        """Plug the reader in again: its card, if any, is powered up afresh."""
        with self._changed:
            target = self._slot(slot)
            if target.attached:
                return
            target.attached = True
            target.events += 1
            if target.card is not None:
                target.atr = target.card.power_on()
            self._changed.notify_all()

    def act_out(self, slot: _Slot, fault: Fault) -> None:
        """What a card's fault does to its slot: pulled and put back (a new
        insertion), or reset (connections opened before see it)."""
        with self._changed:
            if fault is Fault.RESET:
                slot.resets += 1
                return
            slot.events += 2  # out, then in again
            self._release(slot)
            if slot.card is not None:
                slot.atr = slot.card.power_on()
            self._changed.notify_all()

    def reset_card(self, slot: _Slot) -> None:
        """A reset asked by a connection as it closes: the card's volatile state goes,
        and the connections opened before see the reset."""
        with self._changed:
            if slot.card is not None:
                slot.atr = slot.card.power_on()
                slot.resets += 1

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

    def _attached(self) -> dict[str, _Slot]:
        return {name: slot for name, slot in self._slots.items() if slot.attached}

    def list_readers(self) -> list[str]:
        with self._changed:
            attached = self._attached()
            if not attached:
                raise NoReader("no smart-card reader is attached")
            return list(attached)

    def connect(self, reader: str) -> VirtualLink:
        with self._changed:
            slot = self._attached().get(reader)
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
            return {name: slot.state() for name, slot in self._attached().items()}

    def wait_for_change(
        self, known: Mapping[str, SlotState], timeout: float
    ) -> dict[str, SlotState]:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._cancelled = False
            while True:
                current = {name: slot.state() for name, slot in self._attached().items()}
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
