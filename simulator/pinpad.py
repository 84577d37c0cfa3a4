"""A virtual reader keypad for secure PIN entry (PC/SC part 10,
FEATURE_VERIFY_PIN_DIRECT), so that the host's secure-entry path is tested.

A test "types" on the keypad with
:meth:`PinPad.type` or cancels with :meth:`PinPad.cancel`; when the host asks for
a verification, the keypad waits for the next entry (up to the structure's
timeout), writes the digits into the VERIFY command template as the structure
says, and sends it to the card. The host never sees the PIN.
"""

from __future__ import annotations

import struct
import threading
from collections import deque

from cardauth.cards.pinpad import (
    CM_IOCTL_GET_FEATURE_REQUEST,
    FEATURE_VERIFY_PIN_DIRECT,
    SCARD_CTL_CODE_BASE,
    SW_ENTRY_CANCELLED,
    SW_ENTRY_TIMEOUT,
)
from cardauth.errors import TransportError
from simulator.card import VirtualCard

# As the CCID driver does: control codes for features in a class of their own.
VERIFY_PIN_DIRECT_CODE = SCARD_CTL_CODE_BASE + 0x330000 + FEATURE_VERIFY_PIN_DIRECT
_HEADER = struct.Struct("<BBBBBHBBHB3sI")
_CANCEL = object()
_ASCII_LEFT_BYTES = 0x82  # bmFormatString our keypad understands
_SW_WRONG_FORMAT = b"\x6b\x80"  # "invalid parameter" of part 10


class PinPad:
    """The keypad of one reader slot."""

    def __init__(self) -> None:
        self._entries: deque[object] = deque()
        self._typed = threading.Condition()
        self.requests = 0  # verifications the host asked for

    def type(self, digits: str) -> None:
        """The holder types ``digits`` and presses the validation key."""
        with self._typed:
            self._entries.append(digits)
            self._typed.notify_all()

    def cancel(self) -> None:
        """The holder presses the cancel key."""
        with self._typed:
            self._entries.append(_CANCEL)
            self._typed.notify_all()

    def control(self, code: int, data: bytes, card: VirtualCard) -> bytes:
        if code == CM_IOCTL_GET_FEATURE_REQUEST:
            return bytes((FEATURE_VERIFY_PIN_DIRECT, 4)) + VERIFY_PIN_DIRECT_CODE.to_bytes(4, "big")
        if code == VERIFY_PIN_DIRECT_CODE:
            return self._verify(data, card)
        raise TransportError(
            "the reader does not support this control code", control_code=f"{code:08X}"
        )

    def _verify(self, structure: bytes, card: VirtualCard) -> bytes:
        if len(structure) < _HEADER.size:
            return _SW_WRONG_FORMAT
        fields = _HEADER.unpack_from(structure)
        timeout, format_string, block, length = fields[0], fields[2], fields[3], fields[11]
        template = structure[_HEADER.size :]
        if format_string != _ASCII_LEFT_BYTES or len(template) != length or length < 5 + block:
            return _SW_WRONG_FORMAT
        self.requests += 1
        entry = self._next_entry(timeout or 30)
        if entry is None:
            return SW_ENTRY_TIMEOUT.to_bytes(2, "big")
        if entry is _CANCEL or not isinstance(entry, str):
            return SW_ENTRY_CANCELLED.to_bytes(2, "big")
        digits = entry.encode("ascii")[:block]
        apdu = template[:5] + digits + template[5 + len(digits) :]
        return card.process(apdu)[-2:]

    def _next_entry(self, timeout: float) -> object | None:
        with self._typed:
            if not self._typed.wait_for(lambda: bool(self._entries), timeout):
                return None
            return self._entries.popleft()
