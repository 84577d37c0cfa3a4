"""BER-TLV data objects as found in card files (ISO/IEC 7816-4 § 6.3).

Decoding leans on asn1crypto's BER parser for the tag and length arithmetic;
this module adds what card files need on top: raw tag numbers as printed in card
specifications (``5F20``, ``7F21``...), the 00/FF padding that ISO 7816-4 allows
between objects, and a refusal of the indefinite length form, which card data
never uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from asn1crypto import parser

from cardauth.errors import MalformedCardData

_PADDING = frozenset((0x00, 0xFF))
_INDEFINITE_LENGTH = 0x80


@dataclass(frozen=True, slots=True)
class Tlv:
    """One data object: its tag as written in specifications, and its value."""

    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(_first_tag_byte(self.tag) & 0x20)

    def children(self) -> tuple[Tlv, ...]:
        """The data objects inside a constructed object."""
        if not self.constructed:
            raise MalformedCardData("primitive data object has no children", tag=f"{self.tag:X}")
        return parse(self.value)

    def text(self) -> str:
        """The value as UTF-8 text (cards store names and codes as text)."""
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedCardData("text field is not UTF-8", tag=f"{self.tag:X}") from exc


def parse(data: bytes) -> tuple[Tlv, ...]:
    """Decode a sequence of data objects, skipping 00/FF padding between them."""
    return tuple(_iter_objects(bytes(data)))


def _iter_objects(data: bytes) -> Iterator[Tlv]:
    offset = 0
    while offset < len(data):
        if data[offset] in _PADDING:
            offset += 1
            continue
        try:
            class_, method, number, header, contents, trailer = parser.parse(data[offset:])
        except ValueError as exc:
            raise MalformedCardData("truncated or malformed data object", offset=offset) from exc
        if header[-1] == _INDEFINITE_LENGTH and trailer:
            raise MalformedCardData("indefinite length in card data", offset=offset)
        yield Tlv(_tag_number(class_, method, number), contents)
        offset += len(header) + len(contents) + len(trailer)


def _tag_number(class_: int, method: int, number: int) -> int:
    """The tag as its identifier bytes read as one big-endian number (X.690 § 8.1.2)."""
    first = (class_ << 6) | (method << 5)
    if number < 0x1F:
        return first | number
    subsequent = [number & 0x7F]
    number >>= 7
    while number:
        subsequent.append(0x80 | (number & 0x7F))
        number >>= 7
    return int.from_bytes(bytes([first | 0x1F, *reversed(subsequent)]), "big")


def _first_tag_byte(tag: int) -> int:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")[0]


def encode(tag: int, value: bytes) -> bytes:
    """Encode one data object with a definite, minimal length."""
    tag_bytes = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    length = len(value)
    if length < 0x80:
        length_bytes = bytes((length,))
    else:
        size = (length.bit_length() + 7) // 8
        length_bytes = bytes((0x80 | size,)) + length.to_bytes(size, "big")
    return tag_bytes + length_bytes + value


def encode_all(objects: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode(tag, value) for tag, value in objects)


def find(objects: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with this tag, or None."""
    return next((obj for obj in objects if obj.tag == tag), None)


def require(objects: Iterable[Tlv], tag: int) -> Tlv:
    """The first object with this tag; a missing one is malformed card data."""
    found = find(objects, tag)
    if found is None:
        raise MalformedCardData("mandatory data object missing", tag=f"{tag:X}")
    return found
