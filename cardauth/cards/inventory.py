"""What is in each reader slot: the card kind (:func:`identify_slots`), or the kind,
what it says of its holder, its certificates and PIN state (:func:`inventory`).
One card transaction per card, no PIN try spent."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

from cardauth.cards.application import CardApplication, CardKind
from cardauth.cards.cps import CpsCard, CpsHolder, KeyRole
from cardauth.cards.identify import open_card
from cardauth.cards.pin import PinStatus
from cardauth.cards.vitale import VitaleCard, VitaleHolder
from cardauth.errors import CardAuthError, NoReader, UnknownCard
from cardauth.transport.base import ReaderBackend, SlotState


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertificateSummary:
        return cls(
            subject=certificate.subject.rfc4514_string(_ATTRIBUTE_NAMES),
            issuer=_common_name(certificate.issuer),
            serial=f"{certificate.serial_number:X}",
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )

    def status(self, now: dt.datetime) -> str:
        if now < self.not_before:
            return "not_yet_valid"
        if now > self.not_after:
            return "expired"
        return "valid"

    def to_dict(self, now: dt.datetime) -> dict[str, object]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "status": self.status(now),
        }


_ATTRIBUTE_NAMES = {
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.TITLE: "title",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


def _common_name(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else name.rfc4514_string()


@dataclass(frozen=True, slots=True)
class SlotCard:
    """One reader slot and which card is in it: CPS or Vitale (``kind``), or else
    ``error`` says why not (``card.unknown``, a mute or busy card...)."""

    slot: SlotState
    kind: CardKind | None = None
    error: CardAuthError | None = None

    @property
    def kind_name(self) -> str | None:
        """``cps``, ``vitale``, ``unknown`` (neither), ``unreadable``; None if no card."""
        if not self.slot.card_present:
            return None
        if self.kind is not None:
            return self.kind.value
        return "unknown" if isinstance(self.error, UnknownCard) else "unreadable"

    def to_dict(self) -> dict[str, object]:
        return {
            "reader": self.slot.reader,
            "card_present": self.slot.card_present,
            "atr": self.slot.atr.hex().upper(),
            "kind": self.kind_name,
            "error": self.error.to_dict() if self.error else None,
        }


def identify_slots(backend: ReaderBackend) -> list[SlotCard]:
    """Which card is in each reader slot, in the backend's order; no slot (no
    reader) is an empty list. A card is told by its ATR and an application
    SELECT (:func:`~cardauth.cards.identify.open_card`): no PIN is presented, no
    holder data is read, and a card that cannot be told gets its error."""
    found = []
    for reader, slot in backend.slot_states().items():
        if not slot.card_present:
            found.append(SlotCard(slot))
            continue
        try:
            card = open_card(backend, reader)
        except CardAuthError as error:
            found.append(SlotCard(slot, error=error))
            continue
        card.channel.close()
        found.append(SlotCard(slot, kind=card.KIND))
    return found


@dataclass(frozen=True, slots=True)
class CardReport:
    """One reader slot and, if a card is in it, what the card says."""

    slot: SlotState
    kind: CardKind | None = None
    serial: str | None = None
    cps_holder: CpsHolder | None = None
    vitale_holder: VitaleHolder | None = None
    certificates: dict[str, CertificateSummary] = field(default_factory=dict)
    pin: PinStatus | None = None
    error: CardAuthError | None = None

    def to_dict(self, now: dt.datetime) -> dict[str, object]:
        holder = self.cps_holder or self.vitale_holder
        return {
            "reader": self.slot.reader,
            "card_present": self.slot.card_present,
            "atr": self.slot.atr.hex().upper(),
            "kind": self.kind.value if self.kind else None,
            "serial": self.serial,
            "holder": holder.to_dict() if holder else None,
            "certificates": {k: c.to_dict(now) for k, c in self.certificates.items()},
            "pin": self.pin.to_dict() if self.pin else None,
            "error": self.error.to_dict() if self.error else None,
        }


def read_card(card: CardApplication, slot: SlotState) -> CardReport:
    """Everything the card says, read in one transaction."""
    with card.channel.transaction():
        serial = card.serial()
        if isinstance(card, CpsCard):
            return CardReport(
                slot=slot,
                kind=card.KIND,
                serial=serial,
                cps_holder=card.holder(),
                certificates={
                    "authentication": CertificateSummary.of(card.certificate()),
                    "signature": CertificateSummary.of(card.certificate(KeyRole.SIGNATURE)),
                },
                pin=card.pin_status(),
            )
        if isinstance(card, VitaleCard):
            return CardReport(
                slot=slot,
                kind=card.KIND,
                serial=serial,
                vitale_holder=card.holder(),
                certificates={"card": CertificateSummary.of(card.certificate())},
            )
    raise AssertionError(f"no report for {type(card).__name__}")  # pragma: no cover


def inventory(backend: ReaderBackend) -> list[CardReport]:
    """A report per reader slot, in the backend's order. A card that cannot be read
    gets a report with its error; it never stops the others from being read."""
    states = backend.slot_states()
    if not states:
        raise NoReader("no smart-card reader is attached")
    reports = []
    for reader, slot in states.items():
        if not slot.card_present:
            reports.append(CardReport(slot=slot))
            continue
        try:
            card = open_card(backend, reader)
        except CardAuthError as error:
            reports.append(CardReport(slot=slot, error=error))
            continue
        try:
            reports.append(read_card(card, slot))
        except CardAuthError as error:
            reports.append(CardReport(slot=slot, kind=card.KIND, error=error))
        finally:
            card.channel.close()
    return reports
