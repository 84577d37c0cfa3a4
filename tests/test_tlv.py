"""BER-TLV decoding of card data (ISO 7816-4 § 6.3)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardauth import tlv
from cardauth.errors import MalformedCardData


def test_primitive_and_constructed_objects() -> None:
    data = tlv.encode(0x65, tlv.encode(0x80, b"DUPONT") + tlv.encode(0x5F20, b"x"))
    (person,) = tlv.parse(data)
    assert person.tag == 0x65
    assert person.constructed
    children = person.children()
    assert [c.tag for c in children] == [0x80, 0x5F20]
    assert children[0].text() == "DUPONT"
    assert not children[0].constructed


def test_long_lengths_round_trip() -> None:
    value = bytes(range(256)) * 2
    (obj,) = tlv.parse(tlv.encode(0x7F21, value))
    assert (obj.tag, obj.value) == (0x7F21, value)


def test_padding_between_and_after_objects_is_skipped() -> None:
    data = b"\x00" + tlv.encode(0x80, b"a") + b"\xff\xff" + tlv.encode(0x81, b"b") + b"\xff" * 10
    assert [(o.tag, o.value) for o in tlv.parse(data)] == [(0x80, b"a"), (0x81, b"b")]


@pytest.mark.parametrize(
    "raw",
    [
        "8005414243",  # length beyond the data
        "5F",  # tag without length
        "9F8080",  # tag never ends
        "65800000",  # indefinite length
        "8084FFFFFFFF",  # length far beyond the data
    ],
)
def test_malformed_objects_are_refused(raw: str) -> None:
    with pytest.raises(MalformedCardData):
        tlv.parse(bytes.fromhex(raw))


def test_children_of_a_primitive_object_are_refused() -> None:
    (obj,) = tlv.parse(tlv.encode(0x80, b"abc"))
    with pytest.raises(MalformedCardData):
        obj.children()


def test_require_names_the_missing_tag() -> None:
    with pytest.raises(MalformedCardData) as caught:
        tlv.require(tlv.parse(tlv.encode(0x80, b"a")), 0x93)
    assert caught.value.context["tag"] == "93"


def test_text_must_be_utf8() -> None:
    (obj,) = tlv.parse(tlv.encode(0x80, b"\xc3("))
    with pytest.raises(MalformedCardData):
        obj.text()


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_a_typed_error(data: bytes) -> None:
    try:
        objects = tlv.parse(data)
    except MalformedCardData:
        return
    for obj in objects:
        if obj.constructed:
            with contextlib.suppress(MalformedCardData):
                obj.children()
