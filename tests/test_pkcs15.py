"""The PKCS#15 directories of a card, decoded: what a hostile card may put in them
becomes card.bad_data, never a value no APDU can carry."""

from __future__ import annotations

import dataclasses

import pytest

from cardauth.cards import pkcs15
from cardauth.errors import MalformedCardData
from simulator import pkcs15_files

PIN = pkcs15_files.PinEntry(
    "PIN",
    auth_id=b"\x01",
    protected_by=b"\x02",
    reference=1,
    min_length=4,
    stored_length=8,
    max_length=8,
    flags=frozenset({"initialized", "needs-padding"}),
)
KEY = pkcs15_files.KeyEntry(
    "CPS_PRIV_AUT",
    b"\x02",
    frozenset({"sign"}),
    0x82,
    2048,
    b"\x01",
    ("int_auth",),
    frozenset({"private"}),
)


def test_a_pin_object_decodes_with_the_code_that_unblocks_it() -> None:
    (pin,) = pkcs15.parse_aodf(pkcs15_files.aodf([PIN]))
    assert (pin.reference, pin.stored_length, pin.pad_char) == (1, 8, 0xFF)
    assert pin.protected_by == b"\x02"
    assert pin.needs_padding


@pytest.mark.parametrize(
    "hostile",
    [
        dataclasses.replace(PIN, reference=300),  # no P2 byte holds it
        dataclasses.replace(PIN, stored_length=2**40),  # a terabyte of padding to send
        dataclasses.replace(PIN, min_length=70),
        dataclasses.replace(PIN, max_length=2**70),
    ],
    ids=["reference", "stored length", "min length", "max length"],
)
def test_pin_references_and_lengths_out_of_range_are_bad_data(
    hostile: pkcs15_files.PinEntry,
) -> None:
    with pytest.raises(MalformedCardData):
        pkcs15.parse_aodf(pkcs15_files.aodf([hostile]))


def test_a_key_reference_out_of_range_is_bad_data() -> None:
    (key,) = pkcs15.parse_prkdf(pkcs15_files.prkdf([KEY]))
    assert key.key_reference == 0x82
    with pytest.raises(MalformedCardData):
        pkcs15.parse_prkdf(pkcs15_files.prkdf([dataclasses.replace(KEY, key_reference=300)]))


def test_the_end_of_a_directory_file_is_its_padding() -> None:
    assert len(pkcs15.parse_aodf(pkcs15_files.aodf([PIN]) + b"\x00" * 40)) == 1
    assert pkcs15.parse_cdf(b"\xff" * 16) == ()
