"""The PKCS#15 files of a simulated CPS3 card, encoded as real cards encode them.

Where a real card's bytes are public (the PrKDF entry of CPS_PRIV_AUT, the
TokenInfo's algorithms, the labels and references: docs/simulator.md gives the
sources), the encoding follows them, quirks included: the common object flags
of the PIN and certificate entries are a one-octet BIT STRING that strict
decoders refuse and OpenSC (since 0.22) and cardauth accept. Where nothing is
public (certificate labels, the holder data objects), the choice is ours and
marked so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import core

from cardauth import tlv
from cardauth.cards.pkcs15 import (
    AccessControlRule,
    CommonAuthenticationObjectAttributes,
    CommonCertificateAttributes,
    CommonDataObjectAttributes,
    CommonKeyAttributes,
    CommonObjectAttributes,
    DirectoryKind,
    Path,
    PinAttributes,
    PrivateRsaKeyAttributes,
    X509CertificateAttributes,
)

# The flags as real CPS3 cards store them in their AODF and CDF: a one-octet BIT
# STRING whose octet is not a count of unused bits (X.690 § 8.6.2.2 and § 8.6.2.3;
# OpenSC issue #2224). The exact octet is not public; OpenSC's lenient decoder, which
# reads real cards, accepts such an octet only when its low three bits are zero (it
# reads it as no flag at all): 80 here, the "private" flag written without its count.
QUIRKY_EMPTY_FLAGS = b"\x03\x01\x80"

# PKCS#11 mechanisms (PKCS#11 v2.40 § 2) and operations of AlgorithmInfo (PKCS#15 § 6.9).
CKM_RSA_PKCS = 0x0001
CKM_SHA1_RSA_PKCS = 0x0006
CKM_SHA256_RSA_PKCS = 0x0040
CKM_SHA_1 = 0x0220
CKM_SHA256 = 0x0250


class AlgorithmInfo(core.Sequence):
    _fields = [
        ("reference", core.Integer),
        ("algorithm", core.Integer),  # a PKCS#11 mechanism
        ("parameters", core.Any),
        ("supported_operations", core.Any),
        ("alg_id", core.ObjectIdentifier, {"optional": True}),
        ("alg_ref", core.Integer, {"optional": True}),
    ]


class SupportedAlgorithms(core.SequenceOf):
    _child_spec = AlgorithmInfo


class TokenInfo(core.Sequence):
    """EF.TokenInfo (PKCS#15 § 6.9), the fields a CPS3 fills."""

    _fields = [
        ("version", core.Integer),
        ("serial_number", core.OctetString),
        ("manufacturer_id", core.UTF8String, {"optional": True}),
        ("label", core.UTF8String, {"implicit": 0, "optional": True}),
        ("token_flags", core.Any),
        ("supported_algorithms", SupportedAlgorithms, {"implicit": 2, "optional": True}),
        ("last_update", core.GeneralizedTime, {"implicit": 5, "optional": True}),
    ]


class AlgorithmOperations(core.BitString):
    _map = {1: "compute-signature", 5: "decipher", 6: "hash"}


class TokenFlags(core.BitString):
    _map = {0: "readonly", 1: "loginRequired", 2: "prnGeneration", 3: "eidCompliant"}


class AccessModes(core.BitString):
    """OpenSC's access modes of an AccessControlRule (as pkcs15-tool prints them)."""

    _map = {5: "pso_cds", 7: "pso_decrypt", 9: "int_auth"}


class CommonFlags(core.BitString):
    _map = {0: "private", 1: "modifiable", 2: "internal"}


@dataclass(frozen=True, slots=True)
class Algorithm:
    reference: int
    mechanism: int
    operation: str
    oid: str
    alg_ref: int


# The supported algorithms of a real CPS3's EF.TokenInfo (OpenSC issue #2267): their
# references and algRef bytes; 5 and 6 are those OpenSC finds for the keys' uses.
CPS3_ALGORITHMS = (
    Algorithm(1, CKM_SHA_1, "hash", "1.3.14.3.2.26", 0x10),
    Algorithm(2, CKM_SHA256, "hash", "2.16.840.1.101.3.4.2.1", 0x40),
    Algorithm(3, CKM_SHA1_RSA_PKCS, "compute-signature", "1.2.840.113549.1.1.5", 0x12),
    Algorithm(4, CKM_SHA256_RSA_PKCS, "compute-signature", "1.2.840.113549.1.1.11", 0x42),
    Algorithm(5, CKM_RSA_PKCS, "compute-signature", "1.2.840.113549.1.1.1", 0x02),
    Algorithm(6, CKM_RSA_PKCS, "decipher", "1.2.840.113549.1.1.1", 0x1A),
)


def odf(directories: dict[DirectoryKind, int]) -> bytes:
    """EF.ODF: for each kind of directory, ``[kind] { Path { file id } }``."""
    return b"".join(_explicit(kind, _path(fid).dump()) for kind, fid in directories.items())


def token_info(*, serial: bytes, label: str, manufacturer: str) -> bytes:
    infos = [
        AlgorithmInfo(
            {
                "reference": algorithm.reference,
                "algorithm": algorithm.mechanism,
                "parameters": core.Null(),
                "supported_operations": AlgorithmOperations({algorithm.operation}),
                "alg_id": algorithm.oid,
                "alg_ref": algorithm.alg_ref,
            }
        )
        for algorithm in CPS3_ALGORITHMS
    ]
    info = TokenInfo(
        {
            "version": 0,
            "serial_number": serial,
            "manufacturer_id": manufacturer,
            "label": label,
            "token_flags": TokenFlags({"readonly", "loginRequired"}),
            "supported_algorithms": infos,
        }
    )
    return bytes(info.dump())


@dataclass(frozen=True, slots=True)
class PinEntry:
    label: str
    auth_id: bytes  # this object's own identifier
    protected_by: bytes | None  # the authId of the code that unblocks it
    reference: int
    min_length: int
    stored_length: int
    max_length: int
    flags: frozenset[str]


def aodf(pins: Iterable[PinEntry]) -> bytes:
    return b"".join(_pin(entry) for entry in pins)


def _pin(entry: PinEntry) -> bytes:
    common: dict[str, object] = {"label": entry.label, "flags": _quirky_flags()}
    if entry.protected_by is not None:
        common["auth_id"] = entry.protected_by
    attributes = PinAttributes(
        {
            "pin_flags": set(entry.flags),
            "pin_type": "ascii-numeric",
            "min_length": entry.min_length,
            "stored_length": entry.stored_length,
            "max_length": entry.max_length,
            "pin_reference": entry.reference,
            "pad_char": b"\xff",
        }
    )
    return _object(
        CommonObjectAttributes(common),
        CommonAuthenticationObjectAttributes({"auth_id": entry.auth_id}),
        attributes,
    )


@dataclass(frozen=True, slots=True)
class KeyEntry:
    label: str
    id: bytes
    usage: frozenset[str]
    key_reference: int
    modulus_length: int
    auth_id: bytes
    access_modes: tuple[str, ...]  # each an access rule conditioned on ``auth_id``
    flags: frozenset[str]


def prkdf(keys: Iterable[KeyEntry]) -> bytes:
    """The PrKDF, each entry shaped as a real CPS3's CPS_PRIV_AUT entry: no algorithm
    references, the key's value "in the application" (an empty path)."""
    return b"".join(_private_key(entry) for entry in keys)


def _private_key(entry: KeyEntry) -> bytes:
    rules = [
        AccessControlRule(
            {
                "access_mode": core.Any.load(AccessModes({mode}).dump()),
                "security_condition": entry.auth_id,
            }
        )
        for mode in entry.access_modes
    ]
    common = CommonObjectAttributes(
        {
            "label": entry.label,
            "flags": core.Any.load(CommonFlags(set(entry.flags)).dump()),
            "auth_id": entry.auth_id,
            "access_control_rules": rules,
        }
    )
    key = CommonKeyAttributes(
        {
            "id": entry.id,
            "usage": set(entry.usage),
            "native": True,
            "access_flags": {"sensitive", "alwaysSensitive", "neverExtractable"},
            "key_reference": entry.key_reference,
        }
    )
    rsa = PrivateRsaKeyAttributes(
        {"value": Path({"efid_or_path": b""}), "modulus_length": entry.modulus_length}
    )
    return _object(common, key, rsa)


def cdf(certificates: Iterable[tuple[str, bytes, int]]) -> bytes:
    """The CDF: (label, id, file id) per certificate."""
    return b"".join(
        _object(
            CommonObjectAttributes({"label": label, "flags": _quirky_flags()}),
            CommonCertificateAttributes({"id": identifier}),
            X509CertificateAttributes({"value": _path(fid)}),
        )
        for label, identifier, fid in certificates
    )


def dodf(objects: Iterable[tuple[str, str, int]]) -> bytes:
    """The DODF: (label, application name, file id) per opaque data object."""
    return b"".join(
        _object(
            CommonObjectAttributes({"label": label}),
            CommonDataObjectAttributes({"application_name": application}),
            _path(fid),
        )
        for label, application, fid in objects
    )


def _object(common: core.Sequence, class_attributes: core.Sequence, typed: core.Sequence) -> bytes:
    """A PKCS#15 object (PKCS#15 § 6.3): common and class attributes, then the type
    attributes in an explicit [1]."""
    body = common.dump() + class_attributes.dump() + _explicit(1, typed.dump())
    return tlv.encode(0x30, body)


def _path(fid: int) -> Path:
    return Path({"efid_or_path": fid.to_bytes(2, "big")})


def _quirky_flags() -> core.Any:
    return core.Any.load(QUIRKY_EMPTY_FLAGS)


def _explicit(tag: int, contents: bytes) -> bytes:
    """A context-specific constructed tag around ``contents`` (X.690 § 8.14)."""
    return tlv.encode(0xA0 | tag, contents)
