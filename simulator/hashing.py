"""The last step of SHA-256 from an intermediate state, as an IAS-ECC card does it
for PSO HASH: the host hashes every whole block, sends the state and the number
of bits hashed so far, and the card hashes the last block (FIPS 180-4 § 6.2).

hashlib cannot resume from a given state, so the compression function is
written here (the simulator's only hand-written hashing; tests check it against
hashlib).
"""

from __future__ import annotations

import struct

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip
_MASK = 0xFFFFFFFF
BLOCK = 64


def finish_sha256(state: bytes, bits_hashed: bytes, last: bytes) -> bytes:
    """The SHA-256 digest of a message whose whole blocks gave ``state`` (32 bytes,
    big-endian words) after ``bits_hashed`` bits (8 bytes, big-endian, a multiple of
    512), and whose remaining bytes are ``last`` (fewer than 64). ValueError when the
    parts do not fit together."""
    if len(state) != 32 or len(bits_hashed) != 8 or len(last) >= BLOCK:
        raise ValueError("state, count or last block of the wrong size")
    count = int.from_bytes(bits_hashed, "big")
    if count % (BLOCK * 8):
        raise ValueError("the bits hashed are not whole blocks")
    words = list(struct.unpack(">8I", state))
    total_bits = (count + len(last) * 8) & 0xFFFFFFFFFFFFFFFF
    tail = last + b"\x80" + b"\x00" * ((55 - len(last)) % BLOCK) + total_bits.to_bytes(8, "big")
    for offset in range(0, len(tail), BLOCK):
        words = _compress(words, tail[offset : offset + BLOCK])
    return struct.pack(">8I", *words)


def _rotate(value: int, bits: int) -> int:
    return ((value >> bits) | (value << (32 - bits))) & _MASK


def _compress(state: list[int], block: bytes) -> list[int]:
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotate(w[i - 15], 7) ^ _rotate(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotate(w[i - 2], 17) ^ _rotate(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & _MASK)
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        t1 = (
            h
            + (_rotate(e, 6) ^ _rotate(e, 11) ^ _rotate(e, 25))
            + ((e & f) ^ (~e & g))
            + _K[i]
            + w[i]
        )
        t2 = (_rotate(a, 2) ^ _rotate(a, 13) ^ _rotate(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        a, b, c, d, e, f, g, h = (t1 + t2) & _MASK, a, b, c, (d + t1) & _MASK, e, f, g
    return [(x + y) & _MASK for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True)]
