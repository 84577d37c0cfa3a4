"""Command and response APDUs, instructions and status words (ISO/IEC 7816-4).

Both the card layer (which encodes commands and decodes responses) and the
simulator (which does the reverse) use these types, so the two sides agree on
every byte by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cardauth.errors import MalformedApdu

SHORT_MAX_NC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_NC = 65535
EXTENDED_MAX_NE = 65536


class Ins(IntEnum):
    """Instruction bytes used by cardauth (ISO 7816-4 § 5.3, § 11)."""

    VERIFY = 0x20
    MANAGE_SECURITY_ENVIRONMENT = 0x22
    CHANGE_REFERENCE_DATA = 0x24
    PERFORM_SECURITY_OPERATION = 0x2A
    RESET_RETRY_COUNTER = 0x2C
    GET_CHALLENGE = 0x84
    INTERNAL_AUTHENTICATE = 0x88
    SELECT = 0xA4
    READ_BINARY = 0xB0
    GET_RESPONSE = 0xC0
    GET_DATA = 0xCB  # odd INS: data field in BER-TLV (ISO 7816-4 § 11.4.3)


class StatusWord(IntEnum):
    """Status words (ISO 7816-4 § 5.6). 61xx, 63Cx and 6Cxx carry a count in SW2."""

    OK = 0x9000
    END_OF_FILE = 0x6282  # fewer bytes than Le before the end of the file
    VERIFICATION_FAILED = 0x6300  # 63Cx with x = tries left is the usual form
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_CURRENT_EF = 0x6986
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1_P2 = 0x6A86
    REFERENCE_DATA_NOT_FOUND = 0x6A88
    WRONG_P1_P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


# SW1 values whose SW2 is a count rather than a qualifier.
SW1_BYTES_AVAILABLE = 0x61  # 61xx: xx more bytes to fetch with GET RESPONSE
SW1_WRONG_LE = 0x6C  # 6Cxx: re-issue the command with Le = xx
SW1_COUNTER = 0x63  # 63Cx: counter x (tries left)


def sw_bytes_available(count: int) -> int:
    """61xx: ``count`` bytes are waiting (0 means 256 or more)."""
    return (SW1_BYTES_AVAILABLE << 8) | (count & 0xFF)


def sw_wrong_le(exact: int) -> int:
    """6Cxx: the command must be re-issued with Le = ``exact`` (0 means 256)."""
    return (SW1_WRONG_LE << 8) | (exact & 0xFF)


def sw_tries_left(tries: int) -> int:
    """63Cx: verification failed or not yet done, ``tries`` tries left."""
    return 0x63C0 | (tries & 0x0F)


def tries_left_of(sw: int) -> int | None:
    """The counter of a 63Cx status word, or None for any other status word."""
    if sw & 0xFFF0 == 0x63C0:
        return sw & 0x0F
    return None


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A command APDU. ``ne`` is the number of response bytes expected (Ne), or None.

    Ne = 256 encodes as a short Le of 00, Ne = 65536 as an extended Le of 0000
    (ISO 7816-4 § 5.1). The encoding is short unless the data or Ne need extended.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise MalformedApdu(f"{name} out of range", field=name, value=value)
        if len(self.data) > EXTENDED_MAX_NC:
            raise MalformedApdu("command data too long", length=len(self.data))
        if self.ne is not None and not 1 <= self.ne <= EXTENDED_MAX_NE:
            raise MalformedApdu("Ne out of range", ne=self.ne)

    @property
    def is_extended(self) -> bool:
        return len(self.data) > SHORT_MAX_NC or (self.ne is not None and self.ne > SHORT_MAX_NE)

    def with_ne(self, ne: int | None) -> CommandApdu:
        return CommandApdu(self.cla, self.ins, self.p1, self.p2, self.data, ne)

    def to_bytes(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        nc = len(self.data)
        if not self.is_extended:
            body = bytes((nc,)) + self.data if nc else b""
            le = bytes((self.ne & 0xFF,)) if self.ne is not None else b""
            return header + body + le
        # Extended: one 00 byte, then 2-byte Lc and/or Le (ISO 7816-4 § 5.1, table 2).
        body = nc.to_bytes(2, "big") + self.data if nc else b""
        le = (self.ne & 0xFFFF).to_bytes(2, "big") if self.ne is not None else b""
        return header + b"\x00" + body + le

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandApdu:
        """Decode the four cases, short and extended (ISO 7816-3 § 12.1.3)."""
        if len(raw) < 4:
            raise MalformedApdu("command shorter than its header", length=len(raw))
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:  # case 1
            return cls(cla, ins, p1, p2)
        if len(body) == 1:  # case 2S
            return cls(cla, ins, p1, p2, ne=body[0] or SHORT_MAX_NE)
        if body[0] != 0:  # case 3S or 4S
            nc = body[0]
            if len(body) == 1 + nc:
                return cls(cla, ins, p1, p2, bytes(body[1:]))
            if len(body) == 2 + nc:
                return cls(cla, ins, p1, p2, bytes(body[1 : 1 + nc]), body[-1] or SHORT_MAX_NE)
            raise MalformedApdu("short Lc does not match the command length", length=len(raw))
        return cls._from_extended_body(cla, ins, p1, p2, body)

    @classmethod
    def _from_extended_body(cls, cla: int, ins: int, p1: int, p2: int, body: bytes) -> CommandApdu:
        if len(body) == 3:  # case 2E
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:3], "big") or EXTENDED_MAX_NE)
        if len(body) < 4:
            raise MalformedApdu("truncated extended length", length=len(body) + 4)
        nc = int.from_bytes(body[1:3], "big")
        if nc == 0:
            raise MalformedApdu("extended Lc of zero", length=len(body) + 4)
        data = bytes(body[3 : 3 + nc])
        rest = body[3 + nc :]
        if len(data) != nc or len(rest) not in (0, 2):
            raise MalformedApdu("extended Lc does not match the command length")
        if not rest:  # case 3E
            return cls(cla, ins, p1, p2, data)
        return cls(cla, ins, p1, p2, data, int.from_bytes(rest, "big") or EXTENDED_MAX_NE)


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    """A response APDU: data then the two status bytes."""

    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == StatusWord.OK

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise MalformedApdu("response shorter than a status word", length=len(raw))
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))


def describe_sw(sw: int) -> str:
    """A short English name for a status word, for messages and logs."""
    try:
        return StatusWord(sw).name
    except ValueError:
        pass
    if sw >> 8 == SW1_BYTES_AVAILABLE:
        return f"BYTES_AVAILABLE({sw & 0xFF})"
    if sw >> 8 == SW1_WRONG_LE:
        return f"WRONG_LE({sw & 0xFF})"
    tries = tries_left_of(sw)
    if tries is not None:
        return f"TRIES_LEFT({tries})"
    return f"SW_{sw:04X}"
