"""The PKCS#15 application of a card (ISO/IEC 7816-15, PKCS#15 v1.1): how real
middleware finds a card's PIN, keys, certificates and data objects.

The card's object directory (EF.ODF, 5031 in the application) names the
directory files: the authentication objects (AODF: the PIN, its reference,
length and padding), the private keys (PrKDF: key reference, usage), the
certificates (CDF) and the data objects (DODF), each with the path of its
value. This module holds the ASN.1 types (asn1crypto) and decodes the files
into frozen objects; :mod:`cardauth.cards.cps` reads them from the card.

Real CPS3 cards encode the flags of some common object attributes as a BIT
STRING of one octet that is not a valid count of unused bits (X.690 § 8.6.2.2
and § 8.6.2.3). OpenSC decodes such flags leniently since 0.22 (issue #2224);
cardauth does not need them and leaves them undecoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from asn1crypto import core, parser

from cardauth.errors import MalformedCardData

PKCS15_ODF = 0x5031  # EF.ODF, in the application DF (PKCS#15 v1.1 § 5.5.1)
MAX_PIN_LENGTH = 64  # a PIN's stored length fits one short APDU many times over


# -- ASN.1 types -------------------------------------------------------------------


class Path(core.Sequence):
    """Path (PKCS#15 § 6.1.5, ISO 7816-15 § 8.4.2): a file id or a path, relative to
    the application unless it starts with 3F00, optionally inside another
    application named by its AID."""

    _fields = [
        ("efid_or_path", core.OctetString),
        ("index", core.Integer, {"optional": True}),
        ("length", core.Integer, {"implicit": 0, "optional": True}),
        ("aid", core.OctetString, {"implicit": ("application", 15), "optional": True}),
    ]


class AccessControlRule(core.Sequence):
    _fields = [
        ("access_mode", core.Any, {"optional": True}),
        ("security_condition", core.OctetString, {"optional": True}),  # an authId
    ]


class AccessControlRules(core.SequenceOf):
    _child_spec = AccessControlRule


class CommonObjectAttributes(core.Sequence):
    # ``flags`` as Any: real cards encode it in a form strict BER decoders refuse.
    _fields = [
        ("label", core.UTF8String, {"optional": True}),
        ("flags", core.Any, {"optional": True}),
        ("auth_id", core.OctetString, {"optional": True}),
        ("user_consent", core.Integer, {"optional": True}),
        ("access_control_rules", AccessControlRules, {"optional": True}),
    ]


class CommonAuthenticationObjectAttributes(core.Sequence):
    _fields = [("auth_id", core.OctetString)]


class PinType(IntEnum):
    BCD = 0
    ASCII_NUMERIC = 1
    UTF8 = 2


class PinTypeEnumerated(core.Enumerated):
    _map = {0: "bcd", 1: "ascii-numeric", 2: "utf8"}


class PinFlags(core.BitString):
    _map = {
        0: "case-sensitive",
        1: "local",
        2: "change-disabled",
        3: "unblock-disabled",
        4: "initialized",
        5: "needs-padding",
        6: "unblockingPin",
        7: "soPin",
        8: "disable-allowed",
        9: "integrity-protected",
        10: "confidentiality-protected",
        11: "exchangeRefData",
    }


class PinAttributes(core.Sequence):
    _fields = [
        ("pin_flags", PinFlags),
        ("pin_type", PinTypeEnumerated),
        ("min_length", core.Integer),
        ("stored_length", core.Integer),
        ("max_length", core.Integer, {"optional": True}),
        ("pin_reference", core.Integer, {"implicit": 0, "optional": True}),
        ("pad_char", core.OctetString, {"optional": True}),
        ("last_pin_change", core.GeneralizedTime, {"optional": True}),
        ("path", Path, {"optional": True}),
    ]


class KeyUsageFlags(core.BitString):
    _map = {
        0: "encrypt",
        1: "decrypt",
        2: "sign",
        3: "signRecover",
        4: "wrap",
        5: "unwrap",
        6: "verify",
        7: "verifyRecover",
        8: "derive",
        9: "nonRepudiation",
    }


class KeyAccessFlags(core.BitString):
    _map = {
        0: "sensitive",
        1: "extractable",
        2: "alwaysSensitive",
        3: "neverExtractable",
        4: "local",
    }


class CommonKeyAttributes(core.Sequence):
    _fields = [
        ("id", core.OctetString),
        ("usage", KeyUsageFlags),
        ("native", core.Boolean, {"optional": True}),  # TRUE by default; CPS3 cards write it
        ("access_flags", KeyAccessFlags, {"optional": True}),
        ("key_reference", core.Integer, {"optional": True}),
        ("start_date", core.GeneralizedTime, {"optional": True}),
        ("end_date", core.GeneralizedTime, {"implicit": 0, "optional": True}),
    ]


class PrivateRsaKeyAttributes(core.Sequence):
    _fields = [("value", Path), ("modulus_length", core.Integer)]


class CommonCertificateAttributes(core.Sequence):
    _fields = [("id", core.OctetString), ("authority", core.Boolean, {"default": False})]


class X509CertificateAttributes(core.Sequence):
    _fields = [("value", Path)]


class CommonDataObjectAttributes(core.Sequence):
    _fields = [
        ("application_name", core.UTF8String, {"optional": True}),
        ("application_oid", core.ObjectIdentifier, {"optional": True}),
    ]


class DirectoryKind(IntEnum):
    """The context tags of PKCS15Objects in EF.ODF (PKCS#15 § 6.2)."""

    PRIVATE_KEYS = 0
    PUBLIC_KEYS = 1
    TRUSTED_PUBLIC_KEYS = 2
    SECRET_KEYS = 3
    CERTIFICATES = 4
    TRUSTED_CERTIFICATES = 5
    USEFUL_CERTIFICATES = 6
    DATA_OBJECTS = 7
    AUTH_OBJECTS = 8


# -- decoded objects ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilePath:
    """Where an object's value is: a file id or path (relative to its application
    unless it starts with 3F00), in the application ``aid`` when given."""

    value: bytes
    aid: bytes | None = None

    @property
    def absolute(self) -> bool:
        return self.value[:2] == b"\x3f\x00"


@dataclass(frozen=True, slots=True)
class Pin:
    """An authentication object of type PIN."""

    label: str
    auth_id: bytes
    protected_by: bytes | None  # the authId of the code that unblocks it (PKCS#15 § 6.8)
    reference: int
    pin_type: PinType
    min_length: int
    stored_length: int
    max_length: int | None
    pad_char: int | None
    flags: frozenset[str]

    @property
    def unblocking(self) -> bool:
        return "unblockingPin" in self.flags

    @property
    def needs_padding(self) -> bool:
        return "needs-padding" in self.flags


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A private RSA key: where it is used (usage), and the reference MSE names."""

    label: str
    id: bytes
    usage: frozenset[str]
    key_reference: int
    auth_id: bytes | None


@dataclass(frozen=True, slots=True)
class Certificate:
    label: str
    id: bytes
    path: FilePath


@dataclass(frozen=True, slots=True)
class DataObject:
    label: str
    application_name: str
    path: FilePath


_PIN_TYPES = {name: PinType(value) for value, name in PinTypeEnumerated._map.items()}

# -- decoding ----------------------------------------------------------------------

_Sequence = TypeVar("_Sequence", bound=core.Sequence)


def parse_odf(data: bytes) -> dict[DirectoryKind, FilePath]:
    """EF.ODF: the path of each directory file, by kind (the first of each kind)."""
    directories: dict[DirectoryKind, FilePath] = {}
    for element in _elements(data, "EF.ODF"):
        if element.class_ != 2:  # context-specific
            continue
        try:
            kind = DirectoryKind(element.tag)
        except ValueError:
            continue  # a kind of directory cardauth does not read
        path = _decode(Path, element.contents, "EF.ODF")
        directories.setdefault(kind, _file_path(path))
    return directories


@dataclass(frozen=True, slots=True)
class _Element:
    """One BER element: its class and tag number, its encoding and its contents."""

    class_: int
    tag: int
    encoded: bytes
    contents: bytes

    @property
    def is_sequence(self) -> bool:
        return (self.class_, self.tag) == (0, 16)


@dataclass(frozen=True, slots=True)
class _Parts:
    """One PKCS#15 object (PKCS#15 § 6.3): its common attributes, its class
    attributes, and the contents of its [1] type attributes (subclass attributes,
    [0], are skipped)."""

    common: CommonObjectAttributes
    class_attributes: bytes
    type_attributes: bytes


def _entries(data: bytes, where: str) -> Iterator[_Parts]:
    """The objects of a directory file of the type cardauth reads (the PIN, the RSA
    key, the X.509 certificate, the opaque data object: each the untagged SEQUENCE
    choice of its directory); objects of other types are skipped."""
    for element in _elements(data, where):
        if element.is_sequence:
            yield _parts(element, where)


def _parts(element: _Element, where: str) -> _Parts:
    children = list(_elements(element.contents, where))
    typed = next((c for c in children[2:] if (c.class_, c.tag) == (2, 1)), None)
    if len(children) < 3 or typed is None:
        raise MalformedCardData(f"{where} entry is not a PKCS#15 object")
    common = _decode(CommonObjectAttributes, children[0].encoded, where)
    return _Parts(common, children[1].encoded, typed.contents)


def parse_aodf(data: bytes) -> tuple[Pin, ...]:
    """The PINs of an AODF (other authentication objects are skipped)."""
    pins = []
    for parts in _entries(data, "AODF"):
        auth = _decode(CommonAuthenticationObjectAttributes, parts.class_attributes, "AODF")
        attributes = _decode(PinAttributes, parts.type_attributes, "AODF")
        pin_type = _PIN_TYPES.get(str(attributes["pin_type"].native))
        if pin_type is None:
            raise MalformedCardData("AODF: unknown PIN type")
        pad = attributes["pad_char"]
        pins.append(
            Pin(
                label=_optional_text(parts.common["label"]),
                auth_id=bytes(auth["auth_id"].native),
                protected_by=_optional_bytes(parts.common["auth_id"]),
                reference=_bounded(_optional_int(attributes["pin_reference"]) or 0, 0xFF, "AODF"),
                pin_type=pin_type,
                min_length=_bounded(int(attributes["min_length"].native), MAX_PIN_LENGTH, "AODF"),
                stored_length=_bounded(
                    int(attributes["stored_length"].native), MAX_PIN_LENGTH, "AODF"
                ),
                max_length=_optional_length(attributes["max_length"]),
                pad_char=pad.native[0] if _present(pad) and len(pad.native) == 1 else None,
                flags=frozenset(_named_bits(attributes["pin_flags"])),
            )
        )
    return tuple(pins)


def parse_prkdf(data: bytes) -> tuple[PrivateKey, ...]:
    """The private RSA keys of a PrKDF (other key types are skipped)."""
    keys = []
    for parts in _entries(data, "PrKDF"):
        common_key = _decode(CommonKeyAttributes, parts.class_attributes, "PrKDF")
        _decode(PrivateRsaKeyAttributes, parts.type_attributes, "PrKDF")  # an RSA key indeed
        reference = _optional_int(common_key["key_reference"])
        if reference is None:
            raise MalformedCardData("PrKDF: a private key without a key reference")
        keys.append(
            PrivateKey(
                label=_optional_text(parts.common["label"]),
                id=bytes(common_key["id"].native),
                usage=frozenset(_named_bits(common_key["usage"])),
                key_reference=_bounded(reference, 0xFF, "PrKDF"),
                auth_id=_optional_bytes(parts.common["auth_id"]),
            )
        )
    return tuple(keys)


def parse_cdf(data: bytes) -> tuple[Certificate, ...]:
    """The X.509 certificates of a CDF (other certificate types are skipped)."""
    certificates = []
    for parts in _entries(data, "CDF"):
        common_certificate = _decode(CommonCertificateAttributes, parts.class_attributes, "CDF")
        attributes = _decode(X509CertificateAttributes, parts.type_attributes, "CDF")
        certificates.append(
            Certificate(
                label=_optional_text(parts.common["label"]),
                id=bytes(common_certificate["id"].native),
                path=_file_path(attributes["value"]),
            )
        )
    return tuple(certificates)


def parse_dodf(data: bytes) -> tuple[DataObject, ...]:
    """The opaque data objects of a DODF, each with the path of its value."""
    objects = []
    for parts in _entries(data, "DODF"):
        common_data = _decode(CommonDataObjectAttributes, parts.class_attributes, "DODF")
        objects.append(
            DataObject(
                label=_optional_text(parts.common["label"]),
                application_name=_optional_text(common_data["application_name"]),
                path=_file_path(_decode(Path, parts.type_attributes, "DODF")),
            )
        )
    return tuple(objects)


def _elements(data: bytes, where: str) -> Iterator[_Element]:
    """The elements of ``data`` up to the 00 (or FF) padding that fills the rest of a
    directory file (PKCS#15 § 6.2: "the end of the file is marked by 00")."""
    offset = 0
    while offset < len(data) and data[offset] not in (0x00, 0xFF):
        try:
            class_, _method, tag, header, contents, trailer = parser.parse(data[offset:])
        except ValueError as exc:
            raise MalformedCardData(f"{where} does not decode", offset=offset) from exc
        if trailer:
            raise MalformedCardData(f"{where}: indefinite length", offset=offset)
        size = len(header) + len(contents)
        yield _Element(class_, tag, data[offset : offset + size], contents)
        offset += size


def _decode(spec: type[_Sequence], data: bytes, where: str) -> _Sequence:
    """Decode ``data`` as ``spec`` in full (asn1crypto parses lazily: touching every
    field here turns a hostile encoding into MalformedCardData, not a later crash)."""
    try:
        value: _Sequence = spec.load(data)
        _touch(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedCardData(f"{where} entry does not decode") from exc
    return value


def _touch(value: Any) -> None:
    if isinstance(value, core.Sequence | core.SequenceOf):
        for child in value:
            _touch(value[child] if isinstance(value, core.Sequence) else child)
    elif isinstance(value, core.Any | core.Void):
        return
    else:
        _ = value.native


def _file_path(path: Path) -> FilePath:
    aid = path["aid"]
    return FilePath(
        bytes(path["efid_or_path"].native), bytes(aid.native) if _present(aid) else None
    )


def _bounded(value: int, highest: int, where: str) -> int:
    """A reference or a length, which a card's command byte must hold."""
    if not 0 <= value <= highest:
        raise MalformedCardData(f"{where}: a value out of range", value=str(value)[:12])
    return value


def _optional_length(value: core.Asn1Value) -> int | None:
    length = _optional_int(value)
    return None if length is None else _bounded(length, MAX_PIN_LENGTH, "AODF")


def _present(value: core.Asn1Value) -> bool:
    return not isinstance(value, core.Void)


def _optional_int(value: core.Asn1Value) -> int | None:
    return int(value.native) if _present(value) else None


def _optional_text(value: core.Asn1Value) -> str:
    return str(value.native) if _present(value) else ""


def _optional_bytes(value: core.Asn1Value) -> bytes | None:
    return bytes(value.native) if _present(value) else None


def _named_bits(value: core.BitString) -> set[str]:
    return {bit for bit in value.native if isinstance(bit, str)}
