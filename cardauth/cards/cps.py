"""The CPS card (Carte de Professionnel de Santé), CPS3 style, IAS-ECC based.

Recognition follows the real cards (ATRs and AIDs of docs/simulator.md and
../shared/DOMAIN.md). Holder data layout, file identifiers and the PIN
reference are ours where the real ones are not public; they are written down
in docs/simulator.md and kept here, in one place, for both the card layer
(``from_tlv``) and the simulator (``to_tlv``).

Layout of the IAS application (AID ``80 25 00 00 01 FF 01 00``, DF 3F00/0001):

- SFI 01 (EF C001): holder data, BER-TLV, template ``70``;
- SFI 02 (EF C002): authentication certificate (DER);
- SFI 03 (EF C003): signature (non-repudiation) certificate (DER);
- PIN reference 01 (4 digits, 3 tries), PUK reference 02 (8 digits);
- key 82: authentication (INTERNAL AUTHENTICATE, PIN once per session);
- key 81: signature (PSO COMPUTE DIGITAL SIGNATURE, PIN before each signature).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import ClassVar

from cryptography import x509

from cardauth import tlv
from cardauth.cards import files, pin, pinpad, security
from cardauth.cards.algorithms import SignatureScheme
from cardauth.cards.application import CardApplication, CardKind
from cardauth.cards.atr import AtrPattern
from cardauth.errors import MalformedCardData
from cardauth.identifiers import IdNat
from cardauth.professions import profession_label

ATR_PATTERNS = (
    # CPS3 (two ATRs seen, both match this mask), and CPS4.
    AtrPattern.masked("3BAC00402A001225006480000310009000", "FF00000000FFFFFFFFFFFF000000FFFFFF"),
    AtrPattern.exact("3B9B188001001225006480040100009044"),
)
IAS_AID = bytes.fromhex("8025000001FF0100")
PKCS15_AID = bytes.fromhex("E828BD080F8025000001FF0010")
IAS_DF = 0x0001

SFI_HOLDER = 0x01
SFI_AUTHENTICATION_CERTIFICATE = 0x02
SFI_SIGNATURE_CERTIFICATE = 0x03
FID_HOLDER = 0xC001
FID_AUTHENTICATION_CERTIFICATE = 0xC002
FID_SIGNATURE_CERTIFICATE = 0xC003

PIN_REFERENCE = 0x01
PUK_REFERENCE = 0x02
PIN_FORMAT = pin.PinFormat(min_digits=4, max_digits=4, encoded_length=8)
PUK_FORMAT = pin.PinFormat(min_digits=8, max_digits=8, encoded_length=8)
PIN_TRIES = 3

KEY_SIGNATURE = 0x81
KEY_AUTHENTICATION = 0x82

# Holder data: template 70 and its fields (ours; see the module docstring).
TAG_HOLDER = 0x70
TAG_SITUATION = 0xA0


class CardType(StrEnum):
    """The kinds of professional card."""

    CPS = "CPS"  # licensed health professional
    CPE = "CPE"  # staff of a health structure
    CPF = "CPF"  # professional in training
    CPA = "CPA"  # authorised staff of a structure


class KeyRole(Enum):
    """The two key pairs of a CPS card."""

    AUTHENTICATION = KEY_AUTHENTICATION
    SIGNATURE = KEY_SIGNATURE


@dataclass(frozen=True, slots=True)
class Situation:
    """One practice situation ("situation d'exercice") of the holder."""

    practice_mode: str = ""
    sector: str = ""
    structure_id: str = ""
    structure_name: str = ""
    specialty: str = ""
    billing_number: str = ""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "practice_mode",
        "sector",
        "structure_id",
        "structure_name",
        "specialty",
        "billing_number",
    )

    def to_tlv(self) -> bytes:
        fields = [(0x80 + i, getattr(self, name).encode()) for i, name in enumerate(self.FIELDS)]
        return tlv.encode(TAG_SITUATION, tlv.encode_all((t, v) for t, v in fields if v))

    @classmethod
    def from_tlv(cls, template: tlv.Tlv) -> Situation:
        objects = template.children()
        values = {}
        for i, name in enumerate(cls.FIELDS):
            found = tlv.find(objects, 0x80 + i)
            values[name] = found.text() if found else ""
        return cls(**values)

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True, slots=True)
class CpsHolder:
    """The holder data of a CPS card, as written on the card (the host's view: a
    verifier takes identity from the certificate, never from here)."""

    card_type: CardType
    idnat: IdNat
    civility: str
    surname: str
    given_name: str
    profession_code: str | None = None
    situations: tuple[Situation, ...] = ()

    @property
    def profession(self) -> str | None:
        return profession_label(self.profession_code)

    @property
    def specialty(self) -> str | None:
        return next((s.specialty for s in self.situations if s.specialty), None)

    def to_tlv(self) -> bytes:
        fields = [
            (0x80, self.card_type.value.encode()),
            (0x81, str(self.idnat).encode()),
            (0x82, self.civility.encode()),
            (0x83, self.surname.encode()),
            (0x84, self.given_name.encode()),
        ]
        if self.profession_code is not None:
            fields.append((0x85, self.profession_code.encode()))
        body = tlv.encode_all(fields) + b"".join(s.to_tlv() for s in self.situations)
        return tlv.encode(TAG_HOLDER, body)

    @classmethod
    def from_tlv(cls, data: bytes) -> CpsHolder:
        template = tlv.require(tlv.parse(data), TAG_HOLDER)
        objects = template.children()
        try:
            card_type = CardType(tlv.require(objects, 0x80).text())
        except ValueError:
            raise MalformedCardData("unknown card type in holder data") from None
        profession = tlv.find(objects, 0x85)
        return cls(
            card_type=card_type,
            idnat=IdNat.parse(tlv.require(objects, 0x81).text()),
            civility=tlv.require(objects, 0x82).text(),
            surname=tlv.require(objects, 0x83).text(),
            given_name=tlv.require(objects, 0x84).text(),
            profession_code=profession.text() if profession else None,
            situations=tuple(Situation.from_tlv(o) for o in objects if o.tag == TAG_SITUATION),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "card_type": self.card_type.value,
            "idnat": str(self.idnat),
            "identifier_type": self.idnat.type.name,
            "identifier": self.idnat.identifier,
            "civility": self.civility,
            "surname": self.surname,
            "given_name": self.given_name,
            "profession_code": self.profession_code,
            "profession": self.profession,
            "situations": [s.to_dict() for s in self.situations],
        }


class CpsCard(CardApplication):
    """Commands to a CPS card."""

    KIND = CardKind.CPS
    AID = IAS_AID
    ATR_PATTERNS = ATR_PATTERNS

    def holder(self) -> CpsHolder:
        with self.channel.transaction():
            self._select()
            return CpsHolder.from_tlv(files.read_file(self.channel, SFI_HOLDER))

    def certificate_der(self, role: KeyRole = KeyRole.AUTHENTICATION) -> bytes:
        sfi = (
            SFI_AUTHENTICATION_CERTIFICATE
            if role is KeyRole.AUTHENTICATION
            else SFI_SIGNATURE_CERTIFICATE
        )
        return self._certificate_der(sfi)

    def certificate(self, role: KeyRole = KeyRole.AUTHENTICATION) -> x509.Certificate:
        return self.parse_certificate(self.certificate_der(role))

    def pin_status(self) -> pin.PinStatus:
        with self.channel.transaction():
            self._select()
            return pin.pin_status(self.channel, PIN_REFERENCE)

    def verify_pin(self, value: str) -> None:
        """Present the PIN the holder typed, once."""
        with self.channel.transaction():
            self._select()
            pin.verify_pin(self.channel, PIN_REFERENCE, value, PIN_FORMAT)

    def has_pinpad(self) -> bool:
        """Whether the reader has a keypad for secure PIN entry (PC/SC part 10)."""
        return pinpad.has_pinpad(self.channel)

    def verify_pin_on_pinpad(self, *, timeout: int = pinpad.DEFAULT_TIMEOUT_SECONDS) -> None:
        """Have the holder type the PIN on the reader's keypad, once."""
        with self.channel.transaction():
            self._select()
            pinpad.verify_pin_on_pinpad(self.channel, PIN_REFERENCE, PIN_FORMAT, timeout=timeout)

    def reset_pin_status(self) -> None:
        """Forget the verified PIN on the card. A verified PIN stays verified until the
        card is reset or removed, and any connection may use the authentication key
        meanwhile: callers that do not keep a PIN session call this when done."""
        with self.channel.transaction():
            self._select()
            pin.reset_pin_status(self.channel, PIN_REFERENCE)

    def change_pin(self, old: str, new: str) -> None:
        with self.channel.transaction():
            self._select()
            pin.change_pin(self.channel, PIN_REFERENCE, old, new, PIN_FORMAT)

    def unblock_pin(self, puk: str, new_pin: str | None = None) -> None:
        with self.channel.transaction():
            self._select()
            pin.unblock_pin(self.channel, PIN_REFERENCE, puk, PUK_FORMAT, new_pin, PIN_FORMAT)

    def authenticate(self, digest: bytes, scheme: SignatureScheme = SignatureScheme.RS256) -> bytes:
        """Sign a SHA-256 digest with the authentication key (needs the PIN verified)."""
        return self._sign(KeyRole.AUTHENTICATION, digest, scheme)

    def sign(self, digest: bytes, scheme: SignatureScheme = SignatureScheme.RS256) -> bytes:
        """Sign a SHA-256 digest with the non-repudiation key (PIN before each use)."""
        return self._sign(KeyRole.SIGNATURE, digest, scheme)

    def _sign(self, role: KeyRole, digest: bytes, scheme: SignatureScheme) -> bytes:
        data = scheme.card_input(digest)
        template = (
            security.CRT_AUTHENTICATION
            if role is KeyRole.AUTHENTICATION
            else security.CRT_DIGITAL_SIGNATURE
        )
        with self.channel.transaction():
            self._select()
            return security.compute_signature(self.channel, template, role.value, scheme, data)
