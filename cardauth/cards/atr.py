"""Answer-to-reset parsing and matching (ISO/IEC 7816-3 § 8.2).

Cards are recognised by ATR with a mask, as in public ATR lists, then confirmed
by an application probe (see :mod:`cardauth.cards.identify`). The parser reads
the structure (interface bytes, protocols offered, historical bytes) and never
trusts a length byte beyond the bytes actually present.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardauth.errors import MalformedCardData

DIRECT_CONVENTION = 0x3B
INVERSE_CONVENTION = 0x3F
MAX_ATR_LENGTH = 33


@dataclass(frozen=True, slots=True)
class Atr:
    """A parsed ATR."""

    raw: bytes
    protocols: frozenset[int]
    historical: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Atr:
        if not 2 <= len(raw) <= MAX_ATR_LENGTH:
            raise MalformedCardData("ATR length out of range", length=len(raw))
        if raw[0] not in (DIRECT_CONVENTION, INVERSE_CONVENTION):
            raise MalformedCardData("ATR does not start with a convention byte", ts=f"{raw[0]:02X}")
        historical_count = raw[1] & 0x0F
        indicator = raw[1]
        offset = 2
        protocols: set[int] = set()
        while True:
            # Y(i) in the high nibble says which of TA, TB, TC, TD follow (§ 8.2.3).
            present = [bool(indicator & bit) for bit in (0x10, 0x20, 0x40, 0x80)]
            offset += sum(present[:3])
            if not present[3]:
                break
            if offset >= len(raw):
                raise MalformedCardData("ATR interface bytes are truncated")
            indicator = raw[offset]
            protocols.add(indicator & 0x0F)
            offset += 1
        end = offset + historical_count
        if end > len(raw):
            raise MalformedCardData("ATR historical bytes are truncated")
        return cls(
            raw=bytes(raw), protocols=frozenset(protocols or {0}), historical=raw[offset:end]
        )

    @property
    def extended_length(self) -> bool:
        """Whether the card announces extended Lc/Le (ISO 7816-4 § 12.1.1: card
        capabilities, compact-TLV tag 7, third byte bit 0x40)."""
        capabilities = self.compact_tlv().get(0x7)
        return capabilities is not None and len(capabilities) >= 3 and bool(capabilities[2] & 0x40)

    def compact_tlv(self) -> dict[int, bytes]:
        """Historical bytes in compact-TLV form (category indicator 00 or 80)."""
        data = self.historical
        if not data or data[0] not in (0x00, 0x80):
            return {}
        # With category 00 the last three bytes are a status indicator, not TLV.
        body = data[1:-3] if data[0] == 0x00 else data[1:]
        objects: dict[int, bytes] = {}
        offset = 0
        while offset < len(body):
            tag, length = body[offset] >> 4, body[offset] & 0x0F
            value = body[offset + 1 : offset + 1 + length]
            if len(value) != length:
                break
            objects.setdefault(tag, value)
            offset += 1 + length
        return objects


@dataclass(frozen=True, slots=True)
class AtrPattern:
    """An ATR with a mask, as published in ATR lists: bytes where the mask is 00
    may differ from card to card."""

    value: bytes
    mask: bytes

    @classmethod
    def exact(cls, hex_value: str) -> AtrPattern:
        value = bytes.fromhex(hex_value)
        return cls(value, b"\xff" * len(value))

    @classmethod
    def masked(cls, hex_value: str, hex_mask: str) -> AtrPattern:
        value, mask = bytes.fromhex(hex_value), bytes.fromhex(hex_mask)
        if len(value) != len(mask):
            raise ValueError("ATR and mask lengths differ")
        return cls(value, mask)

    def matches(self, atr: bytes) -> bool:
        if len(atr) != len(self.value):
            return False
        return all((a & m) == (v & m) for a, v, m in zip(atr, self.value, self.mask, strict=True))
