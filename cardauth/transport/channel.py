"""APDU exchange with one card, above a byte-moving :class:`CardLink`.

The channel turns :class:`CommandApdu` into :class:`ResponseApdu`, and hides the
protocol details a caller should never see: 61xx answers are collected with GET
RESPONSE, a 6Cxx answer re-issues the command with the exact Le (ISO 7816-3
§ 12.2 and ISO 7816-4 § 5.3.4), and command data longer than a short APDU go
with command chaining unless the card takes extended lengths. Transactions keep
one operation at a time on the card: a re-entrant lock for the threads of this
process, and the link's transaction (PC/SC SCardBeginTransaction) for others.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from cardauth.apdu import (
    SHORT_MAX_NC,
    SHORT_MAX_NE,
    SW1_BYTES_AVAILABLE,
    SW1_WRONG_LE,
    CommandApdu,
    Ins,
    ResponseApdu,
)
from cardauth.errors import CardBusy, CardMute, MalformedCardData, TransportError
from cardauth.transport.base import CardLink

# A response longer than the largest extended APDU is a card gone wrong.
MAX_RESPONSE = 65536 + 2
DEFAULT_TRANSACTION_TIMEOUT = 10.0


class CardChannel:
    """Commands to one card through one link."""

    def __init__(
        self,
        link: CardLink,
        *,
        extended_length: bool = False,
        transaction_timeout: float = DEFAULT_TRANSACTION_TIMEOUT,
    ) -> None:
        self.link = link
        self.extended_length = extended_length
        self.transaction_timeout = transaction_timeout
        self.apdus_sent = 0  # every APDU, GET RESPONSE and re-issues included
        self._lock = threading.RLock()
        self._depth = 0
        self._holder: int | None = None  # the thread inside the outermost transaction
        self._transactions = 0

    @property
    def reader(self) -> str:
        return self.link.reader

    @property
    def atr(self) -> bytes:
        return self.link.atr

    @property
    def transaction_number(self) -> int:
        """Counts outermost transactions; card state cached under an older number (the
        selected application, say) may have been changed by another process since."""
        return self._transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the card for the duration of the block. Nested blocks share the hold."""
        if not self._lock.acquire(timeout=self.transaction_timeout):
            raise CardBusy("the card is busy with another operation", reader=self.reader)
        try:
            if self._depth == 0:
                self.link.begin_transaction(self.transaction_timeout)
                self._transactions += 1
                self._holder = threading.get_ident()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._holder = None
                    self._end_link_transaction()
        finally:
            self._lock.release()

    def _end_link_transaction(self) -> None:
        try:
            self.link.end_transaction()
        except TransportError:  # the card is gone, and the hold with it
            return

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send a command and return its complete response (in a transaction of its
        own unless the calling thread already holds one)."""
        if self._holder == threading.get_ident():
            return self._transmit_held(command)
        with self.transaction():
            return self._transmit_held(command)

    def _transmit_held(self, command: CommandApdu) -> ResponseApdu:
        if not self.extended_length:
            if command.ne is not None and command.ne > SHORT_MAX_NE:
                command = command.with_ne(SHORT_MAX_NE)  # the rest comes through 61xx
            if len(command.data) > SHORT_MAX_NC:
                return self._transmit_chained(command)
        return self._exchange(command)

    def _transmit_chained(self, command: CommandApdu) -> ResponseApdu:
        """Command chaining (ISO 7816-4 § 5.3.3): all parts but the last with CLA bit 10."""
        data = command.data
        while len(data) > SHORT_MAX_NC:
            part = CommandApdu(
                command.cla | 0x10, command.ins, command.p1, command.p2, data[:SHORT_MAX_NC]
            )
            response = self._exchange(part)
            if not response.ok:
                return response
            data = data[SHORT_MAX_NC:]
        last = CommandApdu(command.cla, command.ins, command.p1, command.p2, data, command.ne)
        return self._exchange(last)

    def _exchange(self, command: CommandApdu) -> ResponseApdu:
        response = self._send(command)
        if response.sw1 == SW1_WRONG_LE:
            response = self._send(command.with_ne(response.sw2 or SHORT_MAX_NE))
        if response.sw1 != SW1_BYTES_AVAILABLE:
            return response
        return self._collect(command.cla, response)

    def _collect(self, cla: int, first: ResponseApdu) -> ResponseApdu:
        """Gather a response the card hands out in parts (61xx, then GET RESPONSE)."""
        parts = [first.data]
        total = len(first.data)
        response = first
        while response.sw1 == SW1_BYTES_AVAILABLE:
            get_response = CommandApdu(
                cla & 0x03, Ins.GET_RESPONSE, 0, 0, ne=response.sw2 or SHORT_MAX_NE
            )
            response = self._send(get_response)
            if response.sw1 == SW1_WRONG_LE:
                response = self._send(get_response.with_ne(response.sw2 or SHORT_MAX_NE))
            if not response.data and response.sw1 == SW1_BYTES_AVAILABLE:
                # Announcing more data and giving none would go on for ever.
                raise MalformedCardData("GET RESPONSE gave no data", reader=self.reader)
            parts.append(response.data)
            total += len(response.data)
            if total > MAX_RESPONSE:
                raise MalformedCardData("the card's response does not end", reader=self.reader)
        return ResponseApdu(b"".join(parts), response.sw)

    def _send(self, command: CommandApdu) -> ResponseApdu:
        self.apdus_sent += 1
        raw = self.link.transmit(command.to_bytes())
        if not raw:
            raise CardMute("the card does not answer", reader=self.reader, ins=f"{command.ins:02X}")
        return ResponseApdu.from_bytes(raw)

    def close(self, *, reset: bool = False) -> None:
        """Disconnect; ``reset`` resets the card on the way (a verified PIN is gone)."""
        self.link.close(reset=reset)
