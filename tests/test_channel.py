"""The APDU channel against scripted links: what a misbehaving card or reader does
to the host, and that the host always ends with a typed error."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cardauth.apdu import CommandApdu, Ins
from cardauth.errors import CardMute, MalformedApdu, MalformedCardData
from cardauth.transport.base import CardProtocol
from cardauth.transport.channel import CardChannel


class ScriptedLink:
    """A link whose card answers with ``answer(apdu)``; it records what it was sent."""

    reader = "scripted"
    atr = b"\x3b\x00"
    protocol = CardProtocol.T1

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self._answer = answer
        self.sent: list[bytes] = []
        self.transactions = 0

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self._answer(apdu)

    def begin_transaction(self, timeout: float) -> None:
        self.transactions += 1

    def end_transaction(self) -> None:
        pass

    def control(self, code: int, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self, *, reset: bool = False) -> None:
        pass


SELECT = CommandApdu(0x00, Ins.SELECT, 0x04, 0x00, b"\xa0\x00", ne=256)


def test_get_response_collects_every_part() -> None:
    parts = iter([b"\x61\x03", b"abc\x61\x02", b"de\x90\x00"])
    link = ScriptedLink(lambda _: next(parts))
    response = CardChannel(link).transmit(SELECT)
    assert (response.data, response.sw) == (b"abcde", 0x9000)
    assert link.sent[1] == bytes.fromhex("00C0000003")
    assert link.sent[2] == bytes.fromhex("00C0000002")


def test_wrong_le_is_reissued_with_the_exact_length() -> None:
    parts = iter([b"\x6c\x0c", b"x" * 12 + b"\x90\x00"])
    link = ScriptedLink(lambda _: next(parts))
    command = CommandApdu(0x00, Ins.READ_BINARY, 0, 0, ne=256)
    assert CardChannel(link).transmit(command).data == b"x" * 12
    assert link.sent[1] == bytes.fromhex("00B000000C")


def test_a_card_announcing_data_it_never_gives_is_stopped() -> None:
    link = ScriptedLink(lambda _: b"\x61\x10")
    channel = CardChannel(link)
    with pytest.raises(MalformedCardData):
        channel.transmit(SELECT)
    assert len(link.sent) == 2  # the command and one GET RESPONSE, not an endless loop
    with channel.transaction():  # the hold ended: a new one starts
        pass
    assert link.transactions == 2


def test_a_response_that_never_ends_is_stopped() -> None:
    link = ScriptedLink(lambda apdu: b"x" * 256 + b"\x61\x00")
    with pytest.raises(MalformedCardData):
        CardChannel(link).transmit(SELECT)
    assert len(link.sent) < 300


def test_empty_answer_is_a_mute_card() -> None:
    with pytest.raises(CardMute):
        CardChannel(ScriptedLink(lambda _: b"")).transmit(SELECT)


def test_one_byte_answer_is_malformed() -> None:
    with pytest.raises(MalformedApdu):
        CardChannel(ScriptedLink(lambda _: b"\x90")).transmit(SELECT)


def test_chaining_keeps_every_part_short() -> None:
    link = ScriptedLink(lambda _: b"\x90\x00")
    command = CommandApdu(0x00, 0x2A, 0x9E, 0x9A, b"\x01" * 300, ne=1000)
    CardChannel(link).transmit(command)
    first, last = link.sent
    assert first[0] == 0x10  # CLA with the chaining bit
    assert len(first) == 5 + 255
    assert last == bytes.fromhex("002A9E9A2D") + b"\x01" * 45 + b"\x00"  # Le 00 = 256


def test_one_transaction_per_outermost_block() -> None:
    link = ScriptedLink(lambda _: b"\x90\x00")
    channel = CardChannel(link)
    with channel.transaction():
        channel.transmit(SELECT)
        with channel.transaction():
            channel.transmit(SELECT)
    channel.transmit(SELECT)
    assert link.transactions == 2
    assert channel.transaction_number == 2
