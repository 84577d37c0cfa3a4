"""Card certificates at the verifier: reading ``x5c``, checking that a certificate
may log in, building and checking its path to a trusted root, and reading the
identity it certifies.

Path validation uses ``cryptography.x509.verification`` (RFC 5280 path building,
signatures, validity, CA constraints, extended key usage) with an end-entity
policy fitted to the health PKI: card certificates carry no subjectAltName, so
that extension is allowed rather than required. The checks that have a reason of
their own (expired, self-signed, signature certificate, wrong kind of card...)
run first, so that each refusal has its own code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from cardauth.der import decode_certificate
from cardauth.errors import AssertionRefused, InvalidIdentifier, Refusal
from cardauth.identifiers import IdNat, Nir
from cardauth.professions import PROFESSIONS
from cardauth.protocol import thumbprint
from cardauth.trust import PkiProfile, TrustStore

MAX_CHAIN_LENGTH = 4  # leaf and up to three intermediates in x5c
MAX_CERTIFICATE_SIZE = 8 * 1024
_PROFESSION_CODES = {label: code for code, label in PROFESSIONS.items()}


class CardRole(Enum):
    CPS = "cps"
    VITALE = "vitale"


@dataclass(frozen=True, slots=True)
class OfferedChain:
    """The certificates of an ``x5c`` header, decoded, each with its DER."""

    certificates: list[x509.Certificate]
    ders: list[bytes]


def parse_x5c(
    value: object, *, jws: str, known: Mapping[bytes, x509.Certificate] | None = None
) -> OfferedChain:
    """The certificates of an ``x5c`` header: standard base64 (with its padding, in
    its one canonical spelling) of DER (RFC 7515 § 4.1.6). A certificate whose DER
    is one of ``known`` (the trust directory's, decoded when it was loaded) is that
    one, not decoded again: a card's issuing CA comes with every login."""
    if not isinstance(value, list) or not value:
        raise AssertionRefused(
            Refusal.CERTIFICATE_MALFORMED, "x5c must be a non-empty list", jws=jws
        )
    if len(value) > MAX_CHAIN_LENGTH:
        raise AssertionRefused(
            Refusal.CHAIN_TOO_LONG,
            "too many certificates in x5c",
            jws=jws,
            limit=MAX_CHAIN_LENGTH,
        )
    known = known or {}
    certificates, ders = [], []
    for entry in value:
        if not isinstance(entry, str) or len(entry) > MAX_CERTIFICATE_SIZE * 4 // 3 + 4:
            raise AssertionRefused(
                Refusal.CERTIFICATE_MALFORMED, "x5c entry too large or not text", jws=jws
            )
        try:
            der = base64.b64decode(entry, validate=True)
            certificate = known.get(der) or decode_certificate(der)
        except (binascii.Error, ValueError):
            raise AssertionRefused(
                Refusal.CERTIFICATE_MALFORMED, "x5c holds a malformed certificate", jws=jws
            ) from None
        if base64.b64encode(der).decode("ascii") != entry:
            # b64decode lets padding follow the last quantum and ignores the last
            # character's unused bits (RFC 4648 § 3.5): one spelling per certificate
            raise AssertionRefused(
                Refusal.CERTIFICATE_MALFORMED, "x5c entry not in canonical base64", jws=jws
            )
        certificates.append(certificate)
        ders.append(der)
    return OfferedChain(certificates, ders)


def _extension(certificate: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _policies(certificate: x509.Certificate) -> set[str]:
    policies = _extension(certificate, x509.CertificatePolicies)
    return {p.policy_identifier.dotted_string for p in policies or ()}


def check_leaf(
    certificate: x509.Certificate,
    role: CardRole,
    profile: PkiProfile,
    now: dt.datetime,
    *,
    jws: str,
) -> str:
    """Check that ``certificate`` is a card's authentication certificate of the kind
    ``role``, valid at ``now``; return the card type (CPS, CPE... or VITALE)."""
    if now < certificate.not_valid_before_utc:
        raise AssertionRefused(
            Refusal.CERTIFICATE_NOT_YET_VALID,
            "certificate not yet valid",
            jws=jws,
            not_before=certificate.not_valid_before_utc.isoformat(),
        )
    if now > certificate.not_valid_after_utc:
        raise AssertionRefused(
            Refusal.CERTIFICATE_EXPIRED,
            "certificate expired",
            jws=jws,
            not_after=certificate.not_valid_after_utc.isoformat(),
        )
    if certificate.issuer == certificate.subject:
        raise AssertionRefused(
            Refusal.SELF_SIGNED, "a card certificate is never self-signed", jws=jws
        )
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise AssertionRefused(Refusal.USAGE, "a CA certificate cannot log in", jws=jws)
    card_type = _card_type(certificate, role, profile, jws)
    usage = _extension(certificate, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        raise AssertionRefused(Refusal.USAGE, "certificate not for digital signatures", jws=jws)
    if role is CardRole.CPS and (usage.content_commitment or not usage.key_encipherment):
        # the authentication certificate: digitalSignature + keyEncipherment, and never
        # nonRepudiation, which belongs to the signature certificate
        raise AssertionRefused(
            Refusal.USAGE, "only the authentication certificate logs in", jws=jws
        )
    purposes = _extension(certificate, x509.ExtendedKeyUsage)
    if purposes is None or ExtendedKeyUsageOID.CLIENT_AUTH not in purposes:
        raise AssertionRefused(Refusal.USAGE, "certificate not for client authentication", jws=jws)
    return card_type


def _card_type(certificate: x509.Certificate, role: CardRole, profile: PkiProfile, jws: str) -> str:
    policies = _policies(certificate)
    card_types = {profile.card_type_policies[p] for p in policies & set(profile.card_type_policies)}
    is_vitale = bool(policies & profile.vitale_policies)
    if role is CardRole.CPS:
        if is_vitale or len(card_types) != 1:
            raise AssertionRefused(
                Refusal.WRONG_CARD, "not a professional card certificate", jws=jws
            )
        return card_types.pop()
    if card_types or not is_vitale:
        raise AssertionRefused(Refusal.WRONG_CARD, "not a Vitale card certificate", jws=jws)
    return "VITALE"


def check_intermediates(
    certificates: list[x509.Certificate], now: dt.datetime, *, jws: str
) -> None:
    """Certificates offered as intermediates must be CAs, valid now."""
    for certificate in certificates:
        constraints = _extension(certificate, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise AssertionRefused(
                Refusal.NOT_A_CA,
                "an intermediate certificate is not a CA",
                jws=jws,
                certificate=thumbprint(certificate.public_bytes(Encoding.DER)),
            )
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise AssertionRefused(
                Refusal.CA_EXPIRED,
                "an intermediate CA is not valid now",
                jws=jws,
                certificate=thumbprint(certificate.public_bytes(Encoding.DER)),
            )


@dataclass(frozen=True, slots=True)
class ValidatedPath:
    chain: tuple[x509.Certificate, ...]  # leaf first, root last

    @property
    def issuer(self) -> x509.Certificate:
        return self.chain[1]


class PathValidator:
    """Path validation against one kind of root. (Nothing is kept here: the
    verifier's one cache keeps a whole chain's verdict, cardauth.verdict_cache.)"""

    def __init__(
        self,
        roots: tuple[x509.Certificate, ...],
        extra_intermediates: tuple[x509.Certificate, ...],
    ) -> None:
        self._store = Store(list(roots))
        self._extra = list(extra_intermediates)
        self._end_entity = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )

    def validate(
        self,
        leaf: x509.Certificate,
        offered: list[x509.Certificate],
        now: dt.datetime,
        *,
        jws: str,
    ) -> ValidatedPath:
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .max_chain_depth(MAX_CHAIN_LENGTH)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=self._end_entity
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, [*offered, *self._extra])
        except VerificationError as exc:
            raise AssertionRefused(
                Refusal.UNTRUSTED,
                "no path to a trusted root",
                jws=jws,
                reason=str(exc).split(" (encountered")[0],
            ) from None
        return ValidatedPath(chain=tuple(verified.chain))


class Paths:
    """The two path validators of a trust store: CPS roots and Vitale roots apart."""

    def __init__(self, trust: TrustStore) -> None:
        self.cps = PathValidator(trust.cps_roots, trust.intermediates)
        self.vitale = PathValidator(trust.vitale_roots, trust.intermediates)

    def for_role(self, role: CardRole) -> PathValidator:
        return self.cps if role is CardRole.CPS else self.vitale


def check_x5c_is_the_path(offered: OfferedChain, path: ValidatedPath, *, jws: str) -> None:
    """``x5c`` must be the start of the path that was validated: the card's
    certificate, then none, some or all of its CAs, each the issuer of the one before
    (RFC 7515 § 4.1.6), short of the root (docs/protocol.md: intermediates only).
    The path builder finds its way through any set of certificates, in any order,
    so what the token carries is held to the path it built. (Intermediates offered
    are handed to the builder before the trust directory's: a chain that is a path
    is the path built.)"""
    ders = offered.ders
    if len(set(ders)) != len(ders):
        raise AssertionRefused(Refusal.CHAIN_REPEATED, "x5c holds a certificate twice", jws=jws)
    for certificate, der in zip(offered.certificates[1:], ders[1:], strict=True):
        if certificate.issuer == certificate.subject:  # self-issued: a root, trusted or not
            raise AssertionRefused(
                Refusal.CHAIN_ROOT,
                "x5c holds a root certificate",
                jws=jws,
                certificate=thumbprint(der),
            )
    built = path.chain[:-1]
    if len(built) < len(ders) or not all(
        # the path holds the very objects it was given: identity, else the same DER
        certificate is mine or certificate.public_bytes(Encoding.DER) == der
        for certificate, mine, der in zip(built, offered.certificates, ders, strict=False)
    ):
        raise AssertionRefused(
            Refusal.CHAIN_ORDER,
            "x5c is not the card's certificate followed by its issuing CAs in order",
            jws=jws,
        )


# -- identities --------------------------------------------------------------------


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) > 1:
        raise AssertionRefused(
            Refusal.IDENTITY, "a subject attribute appears twice", attribute=oid.dotted_string
        )
    return str(values[0].value) if values else None


def _required(name: x509.Name, oid: x509.ObjectIdentifier, what: str, jws: str) -> str:
    value = _attribute(name, oid)
    if not value:
        raise AssertionRefused(Refusal.IDENTITY, f"the certificate names no {what}", jws=jws)
    return value


@dataclass(frozen=True, slots=True)
class Professional:
    """The professional, as the CPS certificate says: never from the payload."""

    idnat: str
    identifier_type: str  # RPPS, ADELI or FINESS_STAFF
    identifier: str
    surname: str
    given_name: str
    card_type: str  # CPS, CPE, CPF, CPA
    profession: str | None
    profession_code: str | None
    certificate_serial: str

    def to_dict(self) -> dict[str, object]:
        return {
            "idnat": self.idnat,
            "identifier_type": self.identifier_type,
            "identifier": self.identifier,
            "surname": self.surname,
            "given_name": self.given_name,
            "card_type": self.card_type,
            "profession": self.profession,
            "profession_code": self.profession_code,
            "certificate_serial": self.certificate_serial,
        }


@dataclass(frozen=True, slots=True)
class Patient:
    """The Vitale card's holder, as its certificate says."""

    nir: Nir
    surname: str
    given_name: str
    birth_rank: int | None
    certificate_serial: str

    def to_dict(self) -> dict[str, object]:
        return {
            "nir": self.nir.value,
            "surname": self.surname,
            "given_name": self.given_name,
            "birth_rank": self.birth_rank,
            "certificate_serial": self.certificate_serial,
        }


def professional_from(certificate: x509.Certificate, card_type: str, *, jws: str) -> Professional:
    subject = certificate.subject
    try:
        idnat = IdNat.parse(_required(subject, NameOID.COMMON_NAME, "IdNat", jws))
    except InvalidIdentifier as exc:
        raise AssertionRefused(
            Refusal.IDENTITY, f"the certificate's IdNat is invalid: {exc.message}", jws=jws
        ) from None
    profession = _attribute(subject, NameOID.TITLE)
    return Professional(
        idnat=str(idnat),
        identifier_type=idnat.type.name,
        identifier=idnat.identifier if not idnat.suffix else f"{idnat.identifier}/{idnat.suffix}",
        surname=_required(subject, NameOID.SURNAME, "surname", jws),
        given_name=_required(subject, NameOID.GIVEN_NAME, "given name", jws),
        card_type=card_type,
        profession=profession,
        profession_code=_PROFESSION_CODES.get(profession or ""),
        certificate_serial=f"{certificate.serial_number:X}",
    )


def patient_from(certificate: x509.Certificate, profile: PkiProfile, *, jws: str) -> Patient:
    subject = certificate.subject
    try:
        nir = Nir(_required(subject, NameOID.COMMON_NAME, "NIR", jws))
    except InvalidIdentifier:
        raise AssertionRefused(
            Refusal.IDENTITY, "the certificate's NIR is invalid", jws=jws
        ) from None
    rank = None
    if profile.birth_rank_attribute is not None:
        text = _attribute(subject, x509.ObjectIdentifier(profile.birth_rank_attribute))
        if text is not None:
            if not (text.isascii() and text.isdigit() and 0 < int(text) < 100):
                raise AssertionRefused(Refusal.IDENTITY, "invalid birth rank", jws=jws)
            rank = int(text)
    return Patient(
        nir=nir,
        surname=_required(subject, NameOID.SURNAME, "surname", jws),
        given_name=_required(subject, NameOID.GIVEN_NAME, "given name", jws),
        birth_rank=rank,
        certificate_serial=f"{certificate.serial_number:X}",
    )
