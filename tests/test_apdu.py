"""Command and response APDU encoding (ISO 7816-3 § 12.1.3, ISO 7816-4 § 5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardauth.apdu import (
    CommandApdu,
    ResponseApdu,
    StatusWord,
    describe_sw,
    sw_tries_left,
    tries_left_of,
)
from cardauth.errors import MalformedApdu


@pytest.mark.parametrize(
    ("command", "encoded"),
    [
        (CommandApdu(0x00, 0xA4, 0x00, 0x0C), "00A4000C"),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, ne=256), "00B0000000"),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, ne=12), "00B000000C"),
        (CommandApdu(0x00, 0xA4, 0x04, 0x0C, b"\xa0\x01"), "00A4040C02A001"),
        (
            CommandApdu(0x00, 0x88, 0x00, 0x00, b"\x01\x02", ne=256),
            "008800000201020 0".replace(" ", ""),
        ),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, ne=65536), "00B00000000000"),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, ne=1300), "00B00000000514"),
        (
            CommandApdu(0x00, 0x2A, 0x9E, 0x9A, b"\xaa" * 300, ne=256),
            "002A9E9A00012C" + "AA" * 300 + "0100",
        ),
        (CommandApdu(0x00, 0x2A, 0x9E, 0x9A, b"\xaa" * 300), "002A9E9A00012C" + "AA" * 300),
    ],
)
def test_command_encodes_each_case(command: CommandApdu, encoded: str) -> None:
    assert command.to_bytes().hex().upper() == encoded.upper()
    assert CommandApdu.from_bytes(bytes.fromhex(encoded)) == command


commands = st.builds(
    CommandApdu,
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=600),
    ne=st.none() | st.integers(1, 65536),
)


@given(commands)
def test_any_command_round_trips(command: CommandApdu) -> None:
    assert CommandApdu.from_bytes(command.to_bytes()) == command


@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_is_a_command_or_a_typed_error(raw: bytes) -> None:
    try:
        command = CommandApdu.from_bytes(raw)
    except MalformedApdu:
        return
    # Decoding then encoding gives the same bytes, except where a short Le of 00
    # or an extended encoding had a shorter equivalent.
    assert CommandApdu.from_bytes(command.to_bytes()) == command


@pytest.mark.parametrize(
    "raw",
    [
        "00A4",
        "00A40000" + "05" + "0102",
        "00A400000000",
        "00A4000000000301",
        "00A40000000002AABB01",
    ],
)
def test_malformed_commands_are_refused(raw: str) -> None:
    with pytest.raises(MalformedApdu):
        CommandApdu.from_bytes(bytes.fromhex(raw))


def test_out_of_range_fields_are_refused() -> None:
    with pytest.raises(MalformedApdu):
        CommandApdu(0x100, 0, 0, 0)
    with pytest.raises(MalformedApdu):
        CommandApdu(0, 0, 0, 0, ne=0)
    with pytest.raises(MalformedApdu):
        CommandApdu(0, 0, 0, 0, b"x" * 65536)


def test_response_splits_data_and_status_word() -> None:
    response = ResponseApdu.from_bytes(bytes.fromhex("0102039000"))
    assert response == ResponseApdu(b"\x01\x02\x03", StatusWord.OK)
    assert response.ok
    assert (response.sw1, response.sw2) == (0x90, 0x00)
    with pytest.raises(MalformedApdu):
        ResponseApdu.from_bytes(b"\x90")


def test_counter_status_words() -> None:
    assert sw_tries_left(2) == 0x63C2
    assert tries_left_of(0x63C2) == 2
    assert tries_left_of(0x6983) is None
    assert describe_sw(0x63C1) == "TRIES_LEFT(1)"
    assert describe_sw(0x6A82) == "FILE_NOT_FOUND"
    assert describe_sw(0x6110) == "BYTES_AVAILABLE(16)"
    assert describe_sw(0x6C20) == "WRONG_LE(32)"
    assert describe_sw(0x6D01) == "SW_6D01"
