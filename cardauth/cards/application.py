"""What every card application (CPS, Vitale) has in common: recognition by ATR
and by application probe, selection once per transaction, the chip serial and
certificate reading."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from cryptography import x509

from cardauth.cards import files
from cardauth.cards.atr import AtrPattern
from cardauth.der import decode_certificate
from cardauth.errors import MalformedCardData
from cardauth.transport.channel import CardChannel


class CardKind(StrEnum):
    CPS = "cps"
    VITALE = "vitale"


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What does not change while a card stays in the reader and what an assertion
    needs of it: the chip serial and the authentication certificate (DER)."""

    serial: str
    certificate_der: bytes


class CardApplication:
    """Base of the card applications. Each public method of a subclass runs in one
    card transaction, and selects the application at most once per transaction."""

    KIND: ClassVar[CardKind]
    AID: ClassVar[bytes]
    ATR_PATTERNS: ClassVar[tuple[AtrPattern, ...]]

    def __init__(self, channel: CardChannel, *, serial: str | None = None) -> None:
        self.channel = channel
        self._selected_in: int | None = None
        self._serial = serial  # read once: a card that goes away ends this object's link

    @classmethod
    def matches_atr(cls, atr: bytes) -> bool:
        return any(pattern.matches(atr) for pattern in cls.ATR_PATTERNS)

    @classmethod
    def probe(cls, channel: CardChannel) -> bool:
        """True if the card has this application (it is then selected)."""
        return files.select_application(channel, cls.AID)

    def mark_selected(self) -> None:
        """The application was just selected (by a probe) in the current transaction."""
        self._selected_in = self.channel.transaction_number

    def forget_selection(self) -> None:
        """Another file or application was selected: select the application again."""
        self._selected_in = None

    def adopt_serial(self, serial: str) -> None:
        """The serial, read by the caller in this card's transaction (identify_with_facts)."""
        self._serial = serial

    def _select(self) -> None:
        if self._selected_in == self.channel.transaction_number:
            return
        if not files.select_application(self.channel, self.AID):
            raise MalformedCardData(
                f"the card has no {self.KIND.name} application", reader=self.channel.reader
            )
        self._selected_in = self.channel.transaction_number

    def serial(self) -> str:
        """The chip serial number (EF.SN.ICC), as hexadecimal digits."""
        if self._serial is None:
            with self.channel.transaction():
                self._selected_in = None  # selecting EF.SN.ICC leaves the application
                self._serial = files.read_chip_serial(self.channel)
        return self._serial

    def facts(self) -> CardFacts:
        """The serial and the authentication certificate, in one transaction."""
        with self.channel.transaction():
            serial = self.serial()
            return CardFacts(serial, self.certificate_der())

    def certificate_der(self) -> bytes:
        """The authentication certificate (DER), as the card holds it."""
        raise NotImplementedError

    @staticmethod
    def parse_certificate(der: bytes) -> x509.Certificate:
        try:
            return decode_certificate(der)
        except ValueError as exc:
            raise MalformedCardData("the card's certificate does not parse") from exc
