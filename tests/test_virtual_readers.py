"""In-process readers: what PC/SC readers do that the shared card-layer tests cannot
show on vpcd (readers coming and going), and the monitor's event logic."""

from __future__ import annotations

import pytest

from cardauth.apdu import CommandApdu, Ins
from cardauth.cards.inventory import inventory
from cardauth.errors import CardRemoved, NoReader, ReaderNotFound
from cardauth.transport.base import SlotState
from cardauth.transport.channel import CardChannel
from cardauth.transport.monitor import CardMonitor, EventType, diff_states
from simulator.readers import VirtualReaders
from tests.support import card_for


def test_no_reader_is_a_typed_error() -> None:
    readers = VirtualReaders(slots=[])
    with pytest.raises(NoReader):
        readers.list_readers()
    with pytest.raises(NoReader):
        inventory(readers)


def test_detached_reader(readers: VirtualReaders) -> None:
    name = readers.slot_names[0]
    readers.insert(0, card_for("doctor"))
    channel = CardChannel(readers.connect(name))
    readers.detach_reader(name)
    with pytest.raises(CardRemoved):
        channel.transmit(CommandApdu(0x00, Ins.SELECT, 0x00, 0x0C))
    with pytest.raises(ReaderNotFound):
        readers.connect(name)


def test_monitor_sees_a_reader_come_and_go(readers: VirtualReaders) -> None:
    with CardMonitor(readers, wait_timeout=1.0) as monitor:
        assert [e.type for e in monitor.events(timeout=0.3)] == [
            EventType.READER_ATTACHED,
            EventType.READER_ATTACHED,
        ]
        readers.attach_reader("Extra Reader 00 00")
        readers.insert("Extra Reader 00 00", card_for("nurse"))
        kinds = [(e.type, e.reader) for e in monitor.events(timeout=0.3)]
        assert (EventType.READER_ATTACHED, "Extra Reader 00 00") in kinds
        assert (EventType.CARD_INSERTED, "Extra Reader 00 00") in kinds
        readers.detach_reader("Extra Reader 00 00")
        kinds = [(e.type, e.reader) for e in monitor.events(timeout=0.3)]
        assert kinds == [
            (EventType.CARD_REMOVED, "Extra Reader 00 00"),
            (EventType.READER_DETACHED, "Extra Reader 00 00"),
        ]


def test_a_card_swapped_between_two_looks_is_removed_then_inserted() -> None:
    before = {"r": SlotState("r", card_present=True, atr=b"\x3b", events=1)}
    after = {"r": SlotState("r", card_present=True, atr=b"\x3b", events=3)}
    assert [e.type for e in diff_states(before, after)] == [
        EventType.CARD_REMOVED,
        EventType.CARD_INSERTED,
    ]


def test_no_change_no_event() -> None:
    states = {"r": SlotState("r", card_present=True, atr=b"\x3b", events=1)}
    assert diff_states(states, dict(states)) == []
