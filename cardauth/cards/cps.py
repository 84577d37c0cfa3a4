"""The CPS card (Carte de Professionnel de Santé), CPS3 generation, IAS-ECC based,
read as real middleware reads it (docs/card-layer.md).

Recognition follows the real cards (ATRs of ../shared/DOMAIN.md): the ATR, then
a SELECT of the card's PKCS#15 application, "CPX IAS". Everything else is found
through that application's objects (:mod:`cardauth.cards.pkcs15`), never by file
ids of our own: the PIN (its reference, lengths and padding, in the AODF), the
authentication and signature keys (their references, by usage, in the PrKDF),
their certificates (same ids, in the CDF) and the holder's data objects (by
label, in the DODF). What the application says cannot change while the card stays
in the reader, so each directory and file is read once per insertion (the card
object keeps them), the first time an operation needs it. They are not shared
between insertions by serial number: a card chooses the serial it reports, and a
card claiming another's serial must not plant, say, the unblocking code's reference
where the genuine card's PIN reference would be read.

The holder data objects (``CPS_ID_CARD``, ``CPS_ACTIVITY_nn_PS``) carry the
labels the card's own middleware gives them; their contents are encoded as
:class:`CpsHolder` and :class:`Situation` say (ours: the real CPS2ter encoding is
not public). Identity is taken from the certificate wherever it matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from typing import Any, ClassVar

from cryptography import x509

from cardauth import tlv
from cardauth.apdu import CommandApdu, Ins
from cardauth.cards import files, pin, pinpad, pkcs15, security
from cardauth.cards.algorithms import CardAlgorithm, HashReference, SignatureScheme
from cardauth.cards.application import CardApplication, CardKind
from cardauth.cards.atr import AtrPattern
from cardauth.errors import InvalidIdentifier, MalformedCardData, UnexpectedStatus
from cardauth.identifiers import IdNat
from cardauth.professions import profession_label
from cardauth.transport.channel import CardChannel

ATR_PATTERNS = (
    # CPS3 (two ATRs seen, both match this mask), and CPS4.
    AtrPattern.masked("3BAC00402A001225006480000310009000", "FF00000000FFFFFFFFFFFF000000FFFFFF"),
    AtrPattern.exact("3B9B188001001225006480040100009044"),
)
ROOT_AID = bytes.fromhex("8025000001FF0100")  # the IAS-ECC root: the MF's DF name
PKCS15_AID = bytes.fromhex("E828BD080F8025000001FF0010")  # "CPX IAS", the contact application
PKCS15_CONTACTLESS_AID = bytes.fromhex("E828BD080F8025000001FF0020")  # "CPX IAS CL"

AUTHENTICATION_KEY_LABEL = "CPS_PRIV_AUT"
SIGNATURE_KEY_LABEL = "CPS_PRIV_SIG"
IDENTITY_LABEL = "CPS_ID_CARD"
ACTIVITY_LABEL_PREFIX = "CPS_ACTIVITY_"
DATA_APPLICATION = "CPS"
PIN_TRIES = 3

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
    """The two key pairs of a CPS card, told apart by their PKCS#15 usage."""

    AUTHENTICATION = "authentication"  # usage sign: logins (INTERNAL AUTHENTICATE)
    SIGNATURE = "signature"  # usage nonRepudiation: documents (PSO CDS)


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
    def from_tlv(cls, data: bytes) -> Situation:
        objects = tlv.require(tlv.parse(data), TAG_SITUATION).children()
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
        return tlv.encode(TAG_HOLDER, tlv.encode_all(fields))

    @classmethod
    def from_tlv(cls, data: bytes, situations: tuple[Situation, ...] = ()) -> CpsHolder:
        """The holder from the identity object, with the situations read beside it."""
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
            situations=situations,
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


def _key_for(keys: tuple[pkcs15.PrivateKey, ...], role: KeyRole) -> pkcs15.PrivateKey:
    """The key of ``role``, by its PKCS#15 usage: nonRepudiation for the signature key,
    sign (without nonRepudiation) for the authentication key; by label among several."""
    if role is KeyRole.SIGNATURE:
        candidates = [k for k in keys if "nonRepudiation" in k.usage]
    else:
        candidates = [k for k in keys if "sign" in k.usage and "nonRepudiation" not in k.usage]
    if not candidates:
        raise MalformedCardData("the card's PrKDF has no key for this use", role=role.value)
    label = AUTHENTICATION_KEY_LABEL if role is KeyRole.AUTHENTICATION else SIGNATURE_KEY_LABEL
    return next((k for k in candidates if k.label == label), candidates[0])


_PARSERS = {
    pkcs15.DirectoryKind.AUTH_OBJECTS: pkcs15.parse_aodf,
    pkcs15.DirectoryKind.PRIVATE_KEYS: pkcs15.parse_prkdf,
    pkcs15.DirectoryKind.CERTIFICATES: pkcs15.parse_cdf,
    pkcs15.DirectoryKind.DATA_OBJECTS: pkcs15.parse_dodf,
}


@dataclass(slots=True)
class _CardRecord:
    """What was read of one card's PKCS#15 application while it stays in: its files by
    path, and its directories decoded. Each is read the first time an operation needs
    it."""

    files: dict[bytes, bytes] = field(default_factory=dict)
    directories: dict[pkcs15.DirectoryKind, tuple[Any, ...]] = field(default_factory=dict)


class CpsCard(CardApplication):
    """Commands to a CPS card. Each public method runs in one card transaction."""

    KIND = CardKind.CPS
    AID = PKCS15_AID
    ATR_PATTERNS = ATR_PATTERNS

    def __init__(self, channel: CardChannel, *, serial: str | None = None) -> None:
        super().__init__(channel, serial=serial)
        self._record = _CardRecord()

    def key(self, role: KeyRole) -> pkcs15.PrivateKey:
        """The private key of ``role``, as the card's PrKDF describes it."""
        with self.transaction():
            return _key_for(self._directory(pkcs15.DirectoryKind.PRIVATE_KEYS), role)

    def user_pin(self) -> pkcs15.Pin:
        """The holder's PIN object: the AODF's PIN that is not an unblocking code (the
        one that guards the authentication key, if the AODF has several)."""
        with self.transaction():
            objects = self._directory(pkcs15.DirectoryKind.AUTH_OBJECTS)
            codes = {p.reference for p in objects if p.unblocking}
            pins = [p for p in objects if not p.unblocking and p.reference not in codes]
            if len(pins) > 1:
                auth_id = self.key(KeyRole.AUTHENTICATION).auth_id
                pins = [p for p in pins if p.auth_id == auth_id]
            if not pins:
                raise MalformedCardData("the card's AODF has no PIN")
            found: pkcs15.Pin = pins[0]
            return found

    def identity(self) -> CpsHolder:
        """The holder's identity object (card type, names, profession), without the
        practice situations."""
        with self.transaction():
            return CpsHolder.from_tlv(self._content(self._data_object(IDENTITY_LABEL)))

    def holder(self) -> CpsHolder:
        """The holder data objects: identity and practice situations."""
        with self.transaction():
            situations = tuple(
                Situation.from_tlv(self._content(d.path))
                for d in sorted(self._data_objects(), key=lambda d: d.label)
                if d.label.startswith(ACTIVITY_LABEL_PREFIX)
            )
            return replace(self.identity(), situations=situations)

    def certificate_der(self, role: KeyRole = KeyRole.AUTHENTICATION) -> bytes:
        """The certificate of the key of ``role``: the CDF entry with the key's id."""
        with self.transaction():
            key = self.key(role)
            certificates = self._directory(pkcs15.DirectoryKind.CERTIFICATES)
            certificate = next((c for c in certificates if c.id == key.id), None)
            if certificate is None:
                raise MalformedCardData(
                    "the card's CDF has no certificate for its key", key=key.label
                )
            return self._content(certificate.path, der=True)

    def certificate(self, role: KeyRole = KeyRole.AUTHENTICATION) -> x509.Certificate:
        """The certificate, decoded in full (a damaged one is read again next time)."""
        with self.transaction():
            return self.parse_certificate(self.certificate_der(role))

    def pin_status(self) -> pin.PinStatus:
        with self.transaction():
            return pin.pin_status(self.channel, self.user_pin().reference)

    def verify_pin(self, value: str) -> None:
        """Present the PIN the holder typed, once."""
        with self.transaction():
            user_pin = self.user_pin()
            pin.verify_pin(self.channel, user_pin.reference, value, pin.PinFormat.of(user_pin))

    def has_pinpad(self) -> bool:
        """Whether the reader has a keypad for secure PIN entry (PC/SC part 10)."""
        return pinpad.has_pinpad(self.channel)

    def verify_pin_on_pinpad(self, *, timeout: int = pinpad.DEFAULT_TIMEOUT_SECONDS) -> None:
        """Have the holder type the PIN on the reader's keypad, once."""
        with self.transaction():
            user_pin = self.user_pin()
            pinpad.verify_pin_on_pinpad(
                self.channel, user_pin.reference, pin.PinFormat.of(user_pin), timeout=timeout
            )

    def log_out(self) -> None:
        """Forget the verified PIN on the card, as OpenSC logs out of an IAS-ECC card:
        by selecting the root application again (its security status is reset). A
        verified PIN stays verified until then, and any connection may use the keys
        meanwhile: :mod:`cardauth.cards.session` does this when a session ends."""
        with self.transaction():
            select = CommandApdu(
                0x00, Ins.SELECT, files.SELECT_BY_AID, files.SELECT_NO_DATA, ROOT_AID
            )
            files.expect_ok(self.channel.transmit(select), "SELECT (log out)")
            self.forget_selection()

    def change_pin(self, old: str, new: str) -> None:
        """Change the PIN, then log out: the card counts the change as a verification,
        which must not outlive the command."""
        with self.transaction():
            user_pin = self.user_pin()
            try:
                pin.change_pin(
                    self.channel, user_pin.reference, old, new, pin.PinFormat.of(user_pin)
                )
            finally:
                self.log_out()

    def unblock_pin(self, puk: str, new_pin: str | None = None) -> None:
        """Unblock the PIN with the unblocking code (and set a new PIN), then log out,
        so that the code's verified state does not outlive the command."""
        with self.transaction():
            user_pin = self.user_pin()
            code = self._unblocking_code(user_pin)
            try:
                pin.unblock_pin(
                    self.channel,
                    user_pin.reference,
                    new_pin,
                    pin.PinFormat.of(user_pin),
                    code_reference=code.reference,
                    code=puk,
                    code_format=pin.PinFormat.of(code),
                )
            finally:
                self.log_out()

    def authenticate(self, digest: bytes, scheme: SignatureScheme = SignatureScheme.RS256) -> bytes:
        """Sign a SHA-256 digest with the authentication key (needs the PIN verified):
        MSE SET AT and INTERNAL AUTHENTICATE with its DigestInfo."""
        if scheme is not SignatureScheme.RS256:
            raise MalformedCardData("a CPS card's keys sign RS256 only", scheme=scheme.value)
        with self.transaction():
            key = self.key(KeyRole.AUTHENTICATION)
            self._select()
            return security.authenticate(
                self.channel, key.key_reference, CardAlgorithm.RSA_PKCS1, scheme.card_input(digest)
            )

    def sign(self, digest: bytes) -> bytes:
        """Sign a SHA-256 digest (computed on the host) with the non-repudiation key:
        MSE SET HT and DST, PSO HASH with the hash, PSO CDS. The card wants the PIN
        verified again before each signature."""
        with self.transaction():
            key = self.key(KeyRole.SIGNATURE)
            self._select()
            return security.sign_hash(
                self.channel,
                key.key_reference,
                HashReference.SHA256,
                CardAlgorithm.SHA256_RSA_PKCS1,
                digest,
            )

    # -- reading the application ----------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The card held for one operation. When the operation finds the card's data
        or answers wrong, what was read of the card is dropped: an answer damaged on
        the way is read again next time rather than kept while the card stays in."""
        with self.channel.transaction():
            try:
                yield
            except (MalformedCardData, UnexpectedStatus, InvalidIdentifier):
                self._record = _CardRecord()
                raise

    def _directory(self, kind: pkcs15.DirectoryKind) -> tuple[Any, ...]:
        """A directory file the card's EF.ODF names, decoded, read once per insertion."""
        record = self._record
        decoded = record.directories.get(kind)
        if decoded is None:
            odf = pkcs15.parse_odf(self._content(pkcs15.FilePath(_fid(pkcs15.PKCS15_ODF))))
            path = odf.get(kind)
            if path is None:
                if kind is pkcs15.DirectoryKind.DATA_OBJECTS:
                    return ()  # data objects are optional
                raise MalformedCardData("the card's EF.ODF lacks a directory", kind=kind.name)
            decoded = record.directories[kind] = _PARSERS[kind](self._content(path))
        return decoded

    def _unblocking_code(self, user_pin: pkcs15.Pin) -> pkcs15.Pin:
        """The code that unblocks ``user_pin``: the one its own authId names (PKCS#15
        § 6.8), or the AODF's only unblocking code; never the PIN itself."""
        codes = [
            p
            for p in self._directory(pkcs15.DirectoryKind.AUTH_OBJECTS)
            if p.unblocking and p.reference != user_pin.reference
        ]
        named = [c for c in codes if c.auth_id == user_pin.protected_by]
        if named or len(codes) == 1:
            found: pkcs15.Pin = (named or codes)[0]
            return found
        raise MalformedCardData("the card's AODF names no unblocking code for its PIN")

    def _data_objects(self) -> tuple[pkcs15.DataObject, ...]:
        objects = self._directory(pkcs15.DirectoryKind.DATA_OBJECTS)
        return tuple(d for d in objects if d.application_name == DATA_APPLICATION)

    def _data_object(self, label: str) -> pkcs15.FilePath:
        found = next((d for d in self._data_objects() if d.label == label), None)
        if found is None:
            raise MalformedCardData("the card has no such data object", label=label)
        return found.path

    def _content(self, path: pkcs15.FilePath, *, der: bool = False) -> bytes:
        """A file the application names, read once per insertion."""
        record = self._record
        key = (path.aid or b"") + path.value
        content = record.files.get(key)
        if content is None:
            content = record.files[key] = self._read(path, der=der)
        return content

    def _read(self, path: pkcs15.FilePath, *, der: bool = False) -> bytes:
        """Select a file by a PKCS#15 path (relative to the application unless it
        starts with 3F00) and read it whole."""
        with self.transaction():
            if path.aid is not None and path.aid != self.AID:
                raise MalformedCardData(
                    "a PKCS#15 path into another application", aid=path.aid.hex()
                )
            self._select()
            files.select_file(self.channel, path.value)
            if path.absolute or len(path.value) > 2:
                self.forget_selection()  # the path may have left the application
            return files.read_der_file(self.channel) if der else files.read_file(self.channel)


def _fid(value: int) -> bytes:
    return value.to_bytes(2, "big")
