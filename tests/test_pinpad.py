"""Secure PIN entry on the reader's keypad: the PIN never reaches the host, one
VERIFY per entry, timeouts and cancels cost no try."""

from __future__ import annotations

import hashlib
import threading

import pytest

from cardauth.apdu import Ins
from cardauth.cards import pinpad
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import open_card
from cardauth.cards.pin import PinFormat
from cardauth.errors import (
    CardRemoved,
    CardReset,
    PinBlocked,
    PinEntryCancelled,
    PinEntryTimeout,
    TransportError,
    WrongPin,
)
from simulator.faults import Fault
from simulator.readers import VirtualReaders
from tests.support import card_for


@pytest.fixture
def readers() -> VirtualReaders:
    return VirtualReaders()


def _cps(readers: VirtualReaders) -> CpsCard:
    card = open_card(readers, readers.slot_names[0])
    assert isinstance(card, CpsCard)
    return card


def test_a_reader_without_keypad_says_so(readers: VirtualReaders) -> None:
    readers.insert(0, card_for("doctor"))
    card = _cps(readers)
    assert not card.has_pinpad()
    with pytest.raises(TransportError):
        card.verify_pin_on_pinpad(timeout=1)


def test_pin_typed_on_the_keypad_unlocks_the_key(readers: VirtualReaders) -> None:
    virtual = card_for("doctor")
    readers.insert(0, virtual)
    keypad = readers.add_pinpad(0)
    card = _cps(readers)
    assert card.has_pinpad()
    keypad.type("1234")
    card.verify_pin_on_pinpad(timeout=5)
    assert card.pin_status().verified
    card.authenticate(hashlib.sha256(b"x").digest())
    assert virtual.commands[Ins.VERIFY] == 2  # the keypad's VERIFY, and the status query


def test_wrong_pin_on_the_keypad_reports_tries_left(readers: VirtualReaders) -> None:
    virtual = card_for("doctor")
    readers.insert(0, virtual)
    keypad = readers.add_pinpad(0)
    card = _cps(readers)
    for expected in (2, 1):
        keypad.type("0000")
        with pytest.raises(WrongPin) as wrong:
            card.verify_pin_on_pinpad(timeout=5)
        assert wrong.value.tries_left == expected
    keypad.type("0000")
    with pytest.raises(PinBlocked):
        card.verify_pin_on_pinpad(timeout=5)


def test_timeout_and_cancel_cost_no_try(readers: VirtualReaders) -> None:
    virtual = card_for("doctor")
    readers.insert(0, virtual)
    keypad = readers.add_pinpad(0)
    card = _cps(readers)
    with pytest.raises(PinEntryTimeout):
        card.verify_pin_on_pinpad(timeout=1)
    keypad.cancel()
    with pytest.raises(PinEntryCancelled):
        card.verify_pin_on_pinpad(timeout=5)
    assert virtual.pin(0x01).tries_left == 3
    assert virtual.commands[Ins.VERIFY] == 0


def test_the_holder_may_type_while_the_host_waits(readers: VirtualReaders) -> None:
    readers.insert(0, card_for("doctor"))
    keypad = readers.add_pinpad(0)
    card = _cps(readers)
    threading.Timer(0.2, keypad.type, args=("1234",)).start()
    card.verify_pin_on_pinpad(timeout=5)
    assert keypad.requests == 1


def test_the_structure_follows_part_10() -> None:
    structure = pinpad.verify_structure(0x01, PinFormat(4, 4, 8), timeout=30)
    assert structure[:5] == bytes((30, 30, 0x82, 0x08, 0x00))
    assert structure[5:7] == bytes((4, 4))  # wPINMaxExtraDigit: min 4, max 4
    assert structure[-13:] == bytes.fromhex("0020000108") + b"\xff" * 8
    assert int.from_bytes(structure[15:19], "little") == 13  # ulDataLength


@pytest.mark.parametrize(
    ("fault", "error"), [(Fault.REMOVAL, CardRemoved), (Fault.RESET, CardReset)]
)
def test_a_card_fault_during_the_keypads_verify_is_the_readers_error(
    readers: VirtualReaders, fault: Fault, error: type[TransportError]
) -> None:
    virtual = card_for("doctor")
    readers.insert(0, virtual)
    keypad = readers.add_pinpad(0)
    card = _cps(readers)
    virtual.faults.arm(fault, ins=Ins.VERIFY)  # the card goes while the keypad talks to it
    keypad.type("1234")
    with pytest.raises(error):
        card.verify_pin_on_pinpad(timeout=5)
