"""The simulator's test PKI, shaped like IGC-Santé, with TEST in every CA name.

Two hierarchies, kept apart so that a verifier can never take a Vitale card for
a professional's card:

- ``TEST AC RACINE IGC-SANTE FORT`` → ``TEST AC IGC-SANTE FORT PERSONNES`` →
  the two certificates of each CPS card (authentication, signature);
- ``TEST AC RACINE VITALE`` → ``TEST AC VITALE CARTES`` → one certificate per
  Vitale card, binding the insured's NIR.

Everything but the CRL dates is deterministic: keys come from labels
(:mod:`simulator.keys`), serial numbers from hashes, dates from the personas,
and RSA PKCS#1 v1.5 signatures are deterministic, so the same certificates come
out on every machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from cardauth.cards.cps import CardType
from simulator import keys
from simulator.personas import CpsPersona, Persona, VitalePersona, bundled

# Our own OID arc for test certificate policies (2.25: an OID made from a UUID,
# ITU-T X.667), so that no test certificate carries a real IGC-Santé policy.
TEST_ARC = "2.25.23347487087807277118926035616116502579"
CARD_TYPE_POLICIES: dict[CardType, x509.ObjectIdentifier] = {
    CardType.CPS: x509.ObjectIdentifier(f"{TEST_ARC}.1.1"),
    CardType.CPE: x509.ObjectIdentifier(f"{TEST_ARC}.1.2"),
    CardType.CPF: x509.ObjectIdentifier(f"{TEST_ARC}.1.3"),
    CardType.CPA: x509.ObjectIdentifier(f"{TEST_ARC}.1.4"),
}
VITALE_POLICY = x509.ObjectIdentifier(f"{TEST_ARC}.2.1")
# A subject attribute of our own for the Vitale holder's birth rank (our X.509 profile
# for Vitale cards; real Vitale 2 cards carry card-verifiable certificates).
BIRTH_RANK_ATTRIBUTE = x509.ObjectIdentifier(f"{TEST_ARC}.3.1")

# Where the certificates say revocation is published. ".invalid" never resolves
# (RFC 6761): a verifier is configured with local CRLs and a designated responder.
PUBLICATION_BASE = "http://pki.cardauth-test.invalid"

CA_NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
ROOT_NOT_AFTER = dt.datetime(2045, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
INTERMEDIATE_NOT_AFTER = dt.datetime(2040, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
CRL_LIFETIME = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Authority:
    """A certification authority of the test PKI."""

    slug: str
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject


@dataclass(frozen=True, slots=True)
class Responder:
    """An OCSP responder certificate, issued by a CA for signing its OCSP answers."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class TimeStampingUnit:
    """The time-stamping authority's certificate (RFC 3161 § 2.3: extended key usage
    id-kp-timeStamping alone, critical) and key."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class CpsCertificates:
    authentication: x509.Certificate
    signature: x509.Certificate


def _serial(label: str) -> int:
    """A positive 127-bit serial number derived from the label (RFC 5280 § 4.1.2.2)."""
    digest = hashlib.sha256(f"cardauth-sim serial\x00{label}".encode()).digest()
    return int.from_bytes(digest[:16], "big") >> 1 | 1 << 120


def _at_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _at_end(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=dt.UTC)


def _ca_name(common_name: str, organization: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    slug: str,
    subject: x509.Name,
    issuer: Authority | None,
    path_length: int,
    not_after: dt.datetime,
) -> Authority:
    key = keys.rsa_key(f"ca:{slug}")
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name if issuer else subject)
        .public_key(key.public_key())
        .serial_number(_serial(f"ca:{slug}"))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        ).add_extension(_crl_distribution(issuer.slug), critical=False)
    certificate = builder.sign(signer_key, hashes.SHA256())
    return Authority(slug=slug, certificate=certificate, key=key)


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_distribution(issuer_slug: str) -> x509.CRLDistributionPoints:
    uri = x509.UniformResourceIdentifier(f"{PUBLICATION_BASE}/crl/{issuer_slug}.crl")
    return x509.CRLDistributionPoints([x509.DistributionPoint([uri], None, None, None)])


def _ocsp_access(issuer_slug: str) -> x509.AuthorityInformationAccess:
    uri = x509.UniformResourceIdentifier(f"{PUBLICATION_BASE}/ocsp/{issuer_slug}")
    return x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, uri)]
    )


class SimulatorPki:
    """The four authorities and what they issue. Use :func:`simulator_pki` for the
    shared, cached instance."""

    def __init__(self) -> None:
        self.cps_root = _ca_certificate(
            "cps-root",
            _ca_name("TEST AC RACINE IGC-SANTE FORT", "ASIP-SANTE", "IGC-SANTE TEST"),
            None,
            1,
            ROOT_NOT_AFTER,
        )
        self.cps_ca = _ca_certificate(
            "cps-personnes",
            _ca_name("TEST AC IGC-SANTE FORT PERSONNES", "ASIP-SANTE", "IGC-SANTE TEST"),
            self.cps_root,
            0,
            INTERMEDIATE_NOT_AFTER,
        )
        self.vitale_root = _ca_certificate(
            "vitale-root",
            _ca_name("TEST AC RACINE VITALE", "GIE SESAM-VITALE", "VITALE TEST"),
            None,
            1,
            ROOT_NOT_AFTER,
        )
        self.vitale_ca = _ca_certificate(
            "vitale-cartes",
            _ca_name("TEST AC VITALE CARTES", "GIE SESAM-VITALE", "VITALE TEST"),
            self.vitale_root,
            0,
            INTERMEDIATE_NOT_AFTER,
        )

    @property
    def authorities(self) -> tuple[Authority, ...]:
        return (self.cps_root, self.cps_ca, self.vitale_root, self.vitale_ca)

    @property
    def issuing_authorities(self) -> tuple[Authority, ...]:
        """The CAs that issue card certificates (every authority publishes a CRL and
        answers OCSP for what it issued: the roots for the intermediates)."""
        return (self.cps_ca, self.vitale_ca)

    def responder(self, authority: Authority) -> Responder:
        """The OCSP responder of ``authority``: its own certificate, id-kp-OCSPSigning,
        with id-pkix-ocsp-nocheck (RFC 6960 § 4.2.2.2.1)."""
        return _responder(self, authority.slug)

    def time_stamping_unit(self) -> TimeStampingUnit:
        """The test PKI's time-stamping authority, issued by the CPS root (its
        revocation is published with the root's CRL and OCSP answers)."""
        return _time_stamping_unit(self)

    # -- card certificates -----------------------------------------------------------

    def cps_certificates(self, persona: CpsPersona) -> CpsCertificates:
        return _cps_certificates(self, persona)

    def vitale_certificate(self, persona: VitalePersona) -> x509.Certificate:
        return _vitale_certificate(self, persona)

    def _card_builder(
        self,
        label: str,
        subject: x509.Name,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        issuer: Authority,
        not_before: dt.date,
        not_after: dt.date,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.name)
            .public_key(public_key)
            .serial_number(_serial(label))
            .not_valid_before(_at_start(not_before))
            .not_valid_after(_at_end(not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                critical=False,
            )
            .add_extension(_crl_distribution(issuer.slug), critical=False)
            .add_extension(_ocsp_access(issuer.slug), critical=False)
        )

    # -- revocation ------------------------------------------------------------------

    def revoked(
        self, authority: Authority, personas: Iterable[Persona]
    ) -> list[tuple[x509.Certificate, dt.date]]:
        """The certificates of ``personas`` that ``authority`` has revoked, with dates."""
        found: list[tuple[x509.Certificate, dt.date]] = []
        for persona in personas:
            if isinstance(persona, CpsPersona) and authority is self.cps_ca:
                when = persona.certificate.revoked_on
                if when is not None:
                    certificates = self.cps_certificates(persona)
                    found += [(certificates.authentication, when), (certificates.signature, when)]
            elif isinstance(persona, VitalePersona) and authority is self.vitale_ca:
                when = persona.certificate.revoked_on
                if when is not None:
                    found.append((self.vitale_certificate(persona), when))
        return found

    def crl(
        self,
        authority: Authority,
        now: dt.datetime,
        personas: Iterable[Persona] | None = None,
    ) -> x509.CertificateRevocationList:
        """The CRL of ``authority`` as published at ``now`` (valid for 7 days), listing
        the revoked certificates of ``personas`` (by default the bundled ones)."""
        if personas is None:
            personas = bundled().values()
        this_update = now.replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(authority.name)
            .last_update(this_update)
            .next_update(this_update + CRL_LIFETIME)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
                critical=False,
            )
            .add_extension(x509.CRLNumber(int(this_update.timestamp())), critical=False)
        )
        for certificate, when in self.revoked(authority, personas):
            if when > this_update.date():
                continue  # not revoked yet at the CRL's date
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(certificate.serial_number)
                .revocation_date(_at_start(when))
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(authority.key, hashes.SHA256())


@functools.cache
def simulator_pki() -> SimulatorPki:
    return SimulatorPki()


@functools.cache
def _responder(pki: SimulatorPki, slug: str) -> Responder:
    authority = next(a for a in pki.authorities if a.slug == slug)
    label = f"ocsp:{slug}"
    key = keys.rsa_key(label)
    name = _ca_name(f"TEST OCSP {_common_name(authority)}", "ASIP-SANTE", "IGC-SANTE TEST")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(authority.name)
        .public_key(key.public_key())
        .serial_number(_serial(label))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(INTERMEDIATE_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return Responder(certificate, key)


@functools.cache
def _time_stamping_unit(pki: SimulatorPki) -> TimeStampingUnit:
    issuer = pki.cps_root
    label = "tsa:cps-root"
    key = keys.rsa_key(label)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_ca_name("TEST HORODATAGE IGC-SANTE", "ASIP-SANTE", "IGC-SANTE TEST"))
        .issuer_name(issuer.name)
        .public_key(key.public_key())
        .serial_number(_serial(label))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(INTERMEDIATE_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .add_extension(_crl_distribution(issuer.slug), critical=False)
        .add_extension(_ocsp_access(issuer.slug), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return TimeStampingUnit(certificate, key)


def _common_name(authority: Authority) -> str:
    return str(authority.name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value).removeprefix(
        "TEST "
    )


def _cps_subject(persona: CpsPersona) -> x509.Name:
    holder = persona.holder
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if persona.certificate.organization:
        attributes.append(
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, persona.certificate.organization)
        )
    if holder.profession:
        attributes.append(x509.NameAttribute(NameOID.TITLE, holder.profession))
    attributes += [
        x509.NameAttribute(NameOID.SURNAME, holder.surname),
        x509.NameAttribute(NameOID.GIVEN_NAME, holder.given_name),
        x509.NameAttribute(NameOID.COMMON_NAME, str(holder.idnat)),
    ]
    return x509.Name(attributes)


@functools.cache
def _cps_certificates(pki: SimulatorPki, persona: CpsPersona) -> CpsCertificates:
    subject = _cps_subject(persona)
    policy = x509.CertificatePolicies(
        [x509.PolicyInformation(CARD_TYPE_POLICIES[persona.holder.card_type], None)]
    )
    spec = persona.certificate
    made = {}
    for role, usage, purpose in (
        (
            "authentication",
            _key_usage(digital_signature=True, key_encipherment=True),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
        (
            "signature",
            _key_usage(digital_signature=True, content_commitment=True),
            ExtendedKeyUsageOID.EMAIL_PROTECTION,
        ),
    ):
        label = f"cps:{persona.id}:{persona.card.serial}:{role}"
        key = keys.rsa_key(label)
        builder = (
            pki._card_builder(
                label, subject, key.public_key(), pki.cps_ca, spec.not_before, spec.not_after
            )
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
            .add_extension(policy, critical=False)
        )
        made[role] = builder.sign(pki.cps_ca.key, hashes.SHA256())
    return CpsCertificates(authentication=made["authentication"], signature=made["signature"])


def cps_key(persona: CpsPersona, role: str) -> rsa.RSAPrivateKey:
    """The private key of a CPS persona's card, for ``role`` authentication or signature."""
    return keys.rsa_key(f"cps:{persona.id}:{persona.card.serial}:{role}")


def vitale_key(persona: VitalePersona) -> ec.EllipticCurvePrivateKey:
    return keys.ec_key(f"vitale:{persona.id}:{persona.card.serial}")


@functools.cache
def _vitale_certificate(pki: SimulatorPki, persona: VitalePersona) -> x509.Certificate:
    insured = persona.holder.insured
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GIE SESAM-VITALE"),
            x509.NameAttribute(NameOID.SURNAME, insured.surname),
            x509.NameAttribute(NameOID.GIVEN_NAME, insured.given_name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, persona.card.serial),
            x509.NameAttribute(BIRTH_RANK_ATTRIBUTE, str(insured.rank)),
            x509.NameAttribute(NameOID.COMMON_NAME, insured.nir.value),
        ]
    )
    key = vitale_key(persona)
    spec = persona.certificate
    label = f"vitale:{persona.id}:{persona.card.serial}"
    builder = (
        pki._card_builder(
            label, subject, key.public_key(), pki.vitale_ca, spec.not_before, spec.not_after
        )
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(VITALE_POLICY, None)]),
            critical=False,
        )
    )
    return builder.sign(pki.vitale_ca.key, hashes.SHA256())
