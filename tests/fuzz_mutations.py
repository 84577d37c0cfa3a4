"""Byte-level mutations of genuine inputs (a card file, a certificate, a JWS part),
shared by the fuzz tests: what a faulty card, a damaged transmission or an
attacker's editor would do to them."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def byte_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few edits: bytes flipped, ranges cut, copied or inserted,
    a length byte changed, the end cut off."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "copy", "set", "truncate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "copy" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[at:at] = data[start : start + draw(st.integers(1, 200))]
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF]))
        elif kind == "truncate":
            del data[at:]
    return bytes(data)
