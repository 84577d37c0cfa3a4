"""A simulated workstation: a dual-slot reader and the cards that go in and out.

The same cards stay "in hand" for the whole run: a card taken out and put back
keeps its PIN counter, as a real card does. Slots are backed either by the
in-process virtual readers or by vpcd slots of the real pcscd.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from simulator.card import VirtualCard
from simulator.errors import SimulatorError, SlotOccupied
from simulator.personas import DEFAULT_CPS, DEFAULT_VITALE, Persona, load
from simulator.profiles import build_card
from simulator.readers import VirtualReaders
from simulator.vpcd import DEFAULT_PORTS, VpcdSlot

SLOT_COUNT = 2
DEFAULT_PERSONAS = (DEFAULT_CPS, DEFAULT_VITALE)


class _SlotBackend(Protocol):
    def insert(self, card: VirtualCard) -> None: ...
    def remove(self) -> None: ...


class _VirtualSlot:
    def __init__(self, readers: VirtualReaders, index: int) -> None:
        self._readers = readers
        self._index = index

    def insert(self, card: VirtualCard) -> None:
        self._readers.insert(self._index, card)

    def remove(self) -> None:
        self._readers.remove(self._index)


class _VpcdSlot:
    def __init__(self, slot: VpcdSlot) -> None:
        self._slot = slot

    def insert(self, card: VirtualCard) -> None:
        self._slot.insert(card)

    def remove(self) -> None:
        self._slot.remove()


@dataclass(frozen=True, slots=True)
class SlotStatus:
    index: int
    persona: str | None
    description: str | None

    def to_dict(self) -> dict[str, object]:
        return {"slot": self.index, "persona": self.persona, "description": self.description}


class Workstation:
    """Two slots, the personas' cards, and the moves a person makes with them."""

    def __init__(self, slots: Sequence[_SlotBackend]) -> None:
        self._slots = list(slots)
        self._lock = threading.Lock()
        self._in_slot: list[Persona | None] = [None] * len(self._slots)
        self._cards: dict[str, VirtualCard] = {}

    def card_for(self, persona: Persona) -> VirtualCard:
        """The one card of this persona for the whole run."""
        card = self._cards.get(persona.id)
        if card is None:
            card = self._cards[persona.id] = build_card(persona)
        return card

    def insert(self, index: int, persona_name: str) -> None:
        persona = load(persona_name)
        with self._lock:
            self._check_index(index)
            if self._in_slot[index] is not None:
                raise SlotOccupied("the slot already holds a card", slot=index)
            if any(p is not None and p.id == persona.id for p in self._in_slot):
                raise SimulatorError("that card is already in a slot", persona=persona.id)
            self._slots[index].insert(self.card_for(persona))
            self._in_slot[index] = persona

    def remove(self, index: int) -> None:
        with self._lock:
            self._check_index(index)
            if self._in_slot[index] is not None:
                self._slots[index].remove()
                self._in_slot[index] = None

    def swap(self) -> None:
        """Exchange the cards of slots 0 and 1."""
        with self._lock:
            first, second = self._in_slot[0], self._in_slot[1]
            for index in (0, 1):
                if self._in_slot[index] is not None:
                    self._slots[index].remove()
                    self._in_slot[index] = None
            for index, persona in ((0, second), (1, first)):
                if persona is not None:
                    self._slots[index].insert(self.card_for(persona))
                    self._in_slot[index] = persona

    def status(self) -> list[SlotStatus]:
        with self._lock:
            return [
                SlotStatus(i, p.id if p else None, p.description if p else None)
                for i, p in enumerate(self._in_slot)
            ]

    def card_in(self, index: int) -> VirtualCard | None:
        with self._lock:
            self._check_index(index)
            persona = self._in_slot[index]
            return self._cards[persona.id] if persona else None

    def close(self) -> None:
        for index in range(len(self._slots)):
            self.remove(index)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._slots):
            raise SimulatorError("no such slot", slot=index, slots=len(self._slots))


def simulated_readers(personas: Sequence[str] = ()) -> VirtualReaders:
    """In-process dual-slot reader with ``personas`` inserted (default: doctor, patient).
    Declared as the entry point ``cardauth.readers:simulated``, through which
    ``cardauth --simulate`` and ``cardauth-bridge --simulate`` find it."""
    workstation, readers = virtual_workstation()
    for index, name in enumerate(personas or DEFAULT_PERSONAS):
        workstation.insert(index, name)
    return readers


def vpcd_workstation(host: str = "127.0.0.1", port: int = DEFAULT_PORTS[0]) -> Workstation:
    """A workstation whose two slots are the vpcd slots on ``port`` and ``port + 1``."""
    slots = [_VpcdSlot(VpcdSlot(port + i, host)) for i in range(SLOT_COUNT)]
    return Workstation(slots)


def virtual_workstation() -> tuple[Workstation, VirtualReaders]:
    readers = VirtualReaders()
    return Workstation([_VirtualSlot(readers, i) for i in range(SLOT_COUNT)]), readers
