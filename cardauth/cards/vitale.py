"""The Vitale card (the insured person's card), Vitale 2 style.

Recognition follows the real cards (ATRs, application AID). The holder data use
the public Vitale 2 BER-TLV layout (template ``65`` per person with ``80``
surname, ``81`` given name, ``82`` birth date, ``93`` NIR; validity in ``66``),
completed with our own fields (``83`` birth rank, ``84`` relationship, insurer
template ``67``). Real Vitale 2 cards authenticate with card-verifiable
certificates; ours carry an X.509 certificate that binds the insured's NIR, so
one verifier handles both cards (docs/simulator.md).

Layout of the Vitale application (AID ``D2 50 00 00 02 56 49 54 41 4C 45``):

- SFI 01 (EF D001): holder data, one ``65`` per person (the insured first);
- SFI 02 (EF D002): card certificate (DER);
- key 81: card authentication key, usable without PIN (INTERNAL AUTHENTICATE).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509

from cardauth import tlv
from cardauth.cards import files, security
from cardauth.cards.algorithms import SignatureScheme
from cardauth.cards.application import CardApplication, CardKind
from cardauth.cards.atr import AtrPattern
from cardauth.errors import MalformedCardData
from cardauth.identifiers import Nir

ATR_PATTERNS = tuple(
    AtrPattern.exact(f"3B75130000{xx}09EA9000")
    for xx in ("43", "44", "45", "47", "48", "49", "4B", "4C")
)
VITALE_AID = bytes.fromhex("D250000002564954414C45")

SFI_HOLDER = 0x01
SFI_CERTIFICATE = 0x02
FID_HOLDER = 0xD001
FID_CERTIFICATE = 0xD002
KEY_AUTHENTICATION = 0x81

TAG_PERSON = 0x65
TAG_VALIDITY = 0x66
TAG_INSURER = 0x67


class Relationship(StrEnum):
    """How a person on the card relates to the insured (the "qualité" code)."""

    INSURED = "0"
    SPOUSE = "2"
    CHILD = "6"
    OTHER = "9"


def _date(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise MalformedCardData("date field is not YYYYMMDD") from None


@dataclass(frozen=True, slots=True)
class Person:
    """The insured person or one of the beneficiaries on the card."""

    nir: Nir
    surname: str
    given_name: str
    birth_date: dt.date
    rank: int = 1
    relationship: Relationship = Relationship.INSURED

    def to_tlv(self) -> bytes:
        return tlv.encode(
            TAG_PERSON,
            tlv.encode_all(
                (
                    (0x80, self.surname.encode()),
                    (0x81, self.given_name.encode()),
                    (0x82, self.birth_date.strftime("%Y%m%d").encode()),
                    (0x83, str(self.rank).encode()),
                    (0x84, self.relationship.value.encode()),
                    (0x93, self.nir.value.encode()),
                )
            ),
        )

    @classmethod
    def from_tlv(cls, template: tlv.Tlv) -> Person:
        objects = template.children()
        rank = tlv.find(objects, 0x83)
        relationship = tlv.find(objects, 0x84)
        try:
            return cls(
                nir=Nir(tlv.require(objects, 0x93).text()),
                surname=tlv.require(objects, 0x80).text(),
                given_name=tlv.require(objects, 0x81).text(),
                birth_date=_date(tlv.require(objects, 0x82).text()),
                rank=int(rank.text()) if rank else 1,
                relationship=Relationship(relationship.text())
                if relationship
                else Relationship.INSURED,
            )
        except ValueError as exc:  # rank or relationship code out of range
            raise MalformedCardData("person record does not parse") from exc

    def to_dict(self) -> dict[str, object]:
        return {
            "nir": self.nir.value,
            "surname": self.surname,
            "given_name": self.given_name,
            "birth_date": self.birth_date.isoformat(),
            "rank": self.rank,
            "relationship": self.relationship.name.lower(),
        }


@dataclass(frozen=True, slots=True)
class Insurer:
    regime: str
    fund: str
    centre: str

    def to_tlv(self) -> bytes:
        return tlv.encode(
            TAG_INSURER,
            tlv.encode_all(
                (
                    (0x80, self.regime.encode()),
                    (0x81, self.fund.encode()),
                    (0x82, self.centre.encode()),
                )
            ),
        )

    @classmethod
    def from_tlv(cls, template: tlv.Tlv) -> Insurer:
        objects = template.children()
        return cls(*(tlv.require(objects, tag).text() for tag in (0x80, 0x81, 0x82)))


@dataclass(frozen=True, slots=True)
class VitaleHolder:
    """Everything the Vitale card says of the people it covers."""

    insured: Person
    beneficiaries: tuple[Person, ...] = ()
    insurer: Insurer | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    people: tuple[Person, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "people", (self.insured, *self.beneficiaries))

    def to_tlv(self) -> bytes:
        data = b"".join(p.to_tlv() for p in self.people)
        if self.valid_from and self.valid_until:
            data += tlv.encode(
                TAG_VALIDITY,
                tlv.encode_all(
                    (
                        (0x80, self.valid_from.strftime("%Y%m%d").encode()),
                        (0x81, self.valid_until.strftime("%Y%m%d").encode()),
                    )
                ),
            )
        if self.insurer is not None:
            data += self.insurer.to_tlv()
        return data

    @classmethod
    def from_tlv(cls, data: bytes) -> VitaleHolder:
        objects = tlv.parse(data)
        people = [Person.from_tlv(o) for o in objects if o.tag == TAG_PERSON]
        if not people:
            raise MalformedCardData("the Vitale card holds no person")
        validity = tlv.find(objects, TAG_VALIDITY)
        insurer = tlv.find(objects, TAG_INSURER)
        valid_from = valid_until = None
        if validity is not None:
            parts = validity.children()
            valid_from = _date(tlv.require(parts, 0x80).text())
            valid_until = _date(tlv.require(parts, 0x81).text())
        return cls(
            insured=people[0],
            beneficiaries=tuple(people[1:]),
            insurer=Insurer.from_tlv(insurer) if insurer else None,
            valid_from=valid_from,
            valid_until=valid_until,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "insured": self.insured.to_dict(),
            "beneficiaries": [p.to_dict() for p in self.beneficiaries],
            "insurer": None
            if self.insurer is None
            else {
                "regime": self.insurer.regime,
                "fund": self.insurer.fund,
                "centre": self.insurer.centre,
            },
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
        }


class VitaleCard(CardApplication):
    """Commands to a Vitale card."""

    KIND = CardKind.VITALE
    AID = VITALE_AID
    ATR_PATTERNS = ATR_PATTERNS

    def holder(self) -> VitaleHolder:
        with self.channel.transaction():
            self._select()
            return VitaleHolder.from_tlv(files.read_file(self.channel, SFI_HOLDER))

    def certificate_der(self) -> bytes:
        with self.channel.transaction():
            self._select()
            return files.read_der_file(self.channel, SFI_CERTIFICATE)

    def certificate(self) -> x509.Certificate:
        return self.parse_certificate(self.certificate_der())

    def authenticate(self, digest: bytes, scheme: SignatureScheme = SignatureScheme.ES256) -> bytes:
        """Sign a SHA-256 digest with the card key (no PIN)."""
        data = scheme.card_input(digest)
        with self.channel.transaction():
            self._select()
            return security.authenticate(
                self.channel, KEY_AUTHENTICATION, scheme.card_algorithm, data
            )
