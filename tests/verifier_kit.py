"""What the verifier tests share: a fixed clock, the test PKI's trust, and a forge
that signs any header and payload with the personas' card keys (or with keys and
certificates made up for an attack)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardauth import jose
from cardauth.challenges import MemoryChallengeStore, issue_challenge
from cardauth.origins import Origin
from cardauth.protocol import ASSERTION_TYPE, BINDING_PARAMETER, VITALE_TYPE, thumbprint
from cardauth.revocation import RevocationChecker, RevocationPolicy
from cardauth.trust import PkiProfile, TrustStore
from cardauth.verify import VerifiedLogin, Verifier
from simulator import keys
from simulator.personas import load_cps, load_vitale
from simulator.pki import (
    BIRTH_RANK_ATTRIBUTE,
    CARD_TYPE_POLICIES,
    VITALE_POLICY,
    SimulatorPki,
    cps_key,
    simulator_pki,
    vitale_key,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
ORIGIN = Origin.parse("https://teleservice.example")
SESSION = "browser-session-A"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def profile() -> PkiProfile:
    return PkiProfile(
        {oid.dotted_string: card_type.value for card_type, oid in CARD_TYPE_POLICIES.items()},
        frozenset({VITALE_POLICY.dotted_string}),
        BIRTH_RANK_ATTRIBUTE.dotted_string,
    )


def trust_store(pki: SimulatorPki | None = None) -> TrustStore:
    pki = pki or simulator_pki()
    return TrustStore(
        cps_roots=(pki.cps_root.certificate,),
        vitale_roots=(pki.vitale_root.certificate,),
        profile=profile(),
        intermediates=(pki.cps_ca.certificate, pki.vitale_ca.certificate),
    )


def crl_checker(now: dt.datetime = NOW) -> RevocationChecker:
    pki = simulator_pki()
    crls = [pki.crl(authority, now) for authority in pki.authorities]
    return RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def x5c(*certificates: x509.Certificate) -> list[str]:
    return [base64.b64encode(der(c)).decode() for c in certificates]


def sign(key: PrivateKey, alg: str, data: bytes) -> bytes:
    """Sign as a card would for ``alg`` (ES256 as r || s)."""
    if isinstance(key, rsa.RSAPrivateKey):
        if alg == "PS256":
            return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def compact(
    header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes]
) -> str:
    return jose.serialize(header, payload, signer)


@dataclass
class Forge:
    """Builds assertions the way the cards do, with every part open to tampering."""

    pki: SimulatorPki = field(default_factory=simulator_pki)
    cps_persona: str = "doctor"
    vitale_persona: str = "patient"
    origin: str = ORIGIN.value
    now: dt.datetime = NOW

    @property
    def cps_certificate(self) -> x509.Certificate:
        return self.pki.cps_certificates(load_cps(self.cps_persona)).authentication

    @property
    def cps_key(self) -> rsa.RSAPrivateKey:
        return cps_key(load_cps(self.cps_persona), "authentication")

    @property
    def vitale_certificate(self) -> x509.Certificate:
        return self.pki.vitale_certificate(load_vitale(self.vitale_persona))

    @property
    def vitale_key(self) -> ec.EllipticCurvePrivateKey:
        return vitale_key(load_vitale(self.vitale_persona))

    def header(
        self, typ: str = ASSERTION_TYPE, alg: str = "RS256", chain: list[str] | None = None
    ) -> dict[str, Any]:
        return {
            "alg": alg,
            "typ": typ,
            "x5c": chain if chain is not None else x5c(self.cps_certificate),
            "crit": [BINDING_PARAMETER],
            BINDING_PARAMETER: 1,
        }

    def payload(self, challenge: str, **changes: Any) -> dict[str, Any]:
        issued = int(self.now.timestamp())
        payload = {
            "aud": self.origin,
            "nonce": challenge,
            "iat": issued,
            "exp": issued + 120,
            "card": "80250000010000100001",
        }
        payload.update(changes)
        return {k: v for k, v in payload.items() if v is not None}

    def vitale(
        self,
        challenge: str,
        *,
        header: dict[str, Any] | None = None,
        key: PrivateKey | None = None,
        **changes: Any,
    ) -> str:
        issued = int(self.now.timestamp())
        payload = {
            "aud": self.origin,
            "nonce": challenge,
            "iat": issued,
            "exp": issued + 120,
            "card": "80250000020000200001",
            "cps": thumbprint(der(self.cps_certificate)),
        }
        payload.update(changes)
        header = header or self.header(VITALE_TYPE, "ES256", x5c(self.vitale_certificate))
        signer = key or self.vitale_key
        return compact(
            header,
            {k: v for k, v in payload.items() if v is not None},
            lambda data: sign(signer, header["alg"], data),
        )

    def assertion(
        self,
        challenge: str,
        *,
        header: dict[str, Any] | None = None,
        key: PrivateKey | None = None,
        alg_for_signature: str | None = None,
        **changes: Any,
    ) -> str:
        header = header or self.header()
        signer = key or self.cps_key
        algorithm = alg_for_signature or header.get("alg", "RS256")
        return compact(
            header, self.payload(challenge, **changes), lambda data: sign(signer, algorithm, data)
        )


@dataclass
class Scene:
    """A teleservice about to verify: its store, a challenge for SESSION, a verifier."""

    verifier: Verifier
    store: MemoryChallengeStore = field(default_factory=MemoryChallengeStore)
    now: dt.datetime = NOW
    challenge: str = ""

    def __post_init__(self) -> None:
        self.challenge = issue_challenge(self.store, session=SESSION, now=self.now)

    def verify(
        self,
        assertion: str,
        *,
        expected_challenge: str | None = None,
        session: str = SESSION,
        origins: tuple[Origin, ...] = (ORIGIN,),
        now: dt.datetime | None = None,
        require_vitale: bool = False,
    ) -> VerifiedLogin:
        return self.verifier.verify(
            assertion,
            expected_origins=origins,
            expected_challenge=expected_challenge or self.challenge,
            session=session,
            challenges_store=self.store,
            now=now or self.now,
            require_vitale=require_vitale,
        )


def rogue_ca(
    label: str, *, name: str = "TEST AC IGC-SANTE FORT PERSONNES"
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-made CA that borrows a real CA's name but no trusted root signed."""
    key = keys.rsa_key(f"test:{label}")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big"))
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def card_certificate(
    template: x509.Certificate,
    issuer_name: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    ca: bool = False,
    client_auth: bool = True,
) -> x509.Certificate:
    """A copy of a card certificate's subject and policies, issued by whoever we like."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or template.not_valid_before_utc)
        .not_valid_after(not_after or template.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, ca, ca, False, False), critical=True
        )
    )
    for extension in template.extensions:
        if isinstance(extension.value, x509.CertificatePolicies):
            builder = builder.add_extension(extension.value, critical=False)
    if client_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def card_like(template: x509.Certificate, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """Another card of the same holder and key: ``template`` with a serial number of
    its own, issued again by the same CA (every extension kept): a card that no
    verifier has seen."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(template.issuer)
        .public_key(template.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(template.not_valid_before_utc)
        .not_valid_after(template.not_valid_after_utc)
    )
    for extension in template.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(issuer_key, hashes.SHA256())


def header_json(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode()


def _ca_certificate(
    name: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
    path_length: int,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ASIP-SANTE"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class DeepHierarchy:
    """A TEST hierarchy with two intermediate CAs, root → upper → lower → card (the
    simulator's has one), to show the order of ``x5c``. Its trust store holds no
    intermediates: the path is the one the token carries."""

    root: x509.Certificate
    upper: x509.Certificate
    lower: x509.Certificate
    keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, rsa.RSAPrivateKey]

    @classmethod
    def make(cls) -> DeepHierarchy:
        root_key, upper_key, lower_key = (
            keys.rsa_key(f"test:deep-{level}") for level in ("root", "upper", "lower")
        )
        root = _ca_certificate("TEST AC RACINE PROFONDE", root_key, None, 2)
        upper = _ca_certificate("TEST AC PROFONDE HAUTE", upper_key, (root, root_key), 1)
        lower = _ca_certificate("TEST AC PROFONDE BASSE", lower_key, (upper, upper_key), 0)
        return cls(root, upper, lower, (root_key, upper_key, lower_key))

    def card_certificate(self, template: x509.Certificate) -> x509.Certificate:
        """``template`` (a card's certificate: its subject, key and extensions) issued
        by the lower CA instead."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(template.subject)
            .issuer_name(self.lower.subject)
            .public_key(template.public_key())
            .serial_number(template.serial_number)
            .not_valid_before(template.not_valid_before_utc)
            .not_valid_after(template.not_valid_after_utc)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.keys[2].public_key()),
                critical=False,
            )
        )
        for extension in template.extensions:
            if not isinstance(extension.value, x509.AuthorityKeyIdentifier):
                builder = builder.add_extension(extension.value, extension.critical)
        return builder.sign(self.keys[2], hashes.SHA256())

    def verifier(self, intermediates: tuple[x509.Certificate, ...] = ()) -> Verifier:
        """A verifier trusting this hierarchy's root (and the simulator's Vitale root),
        with ``intermediates`` in its trust directory."""
        pki = simulator_pki()
        trust = TrustStore(
            cps_roots=(self.root,),
            vitale_roots=(pki.vitale_root.certificate,),
            profile=profile(),
            intermediates=intermediates,
        )
        crls = [pki.crl(pki.vitale_root, NOW), pki.crl(pki.vitale_ca, NOW)]
        for issuer, key in zip((self.root, self.upper, self.lower), self.keys, strict=True):
            crls.append(
                x509.CertificateRevocationListBuilder()
                .issuer_name(issuer.subject)
                .last_update(NOW - dt.timedelta(hours=1))
                .next_update(NOW + dt.timedelta(days=7))
                .sign(key, hashes.SHA256())
            )
        checker = RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)
        return Verifier(trust=trust, revocation=checker)


def reissued_cps_ca(not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    """The CPS CA's certificate issued again by its root (same name, key and
    extensions; another serial and validity), as a CA renewed without a new key."""
    pki = simulator_pki()
    ca = pki.cps_ca.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.issuer)
        .public_key(pki.cps_ca.key.public_key())
        .serial_number(ca.serial_number + 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension in ca.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(pki.cps_root.key, hashes.SHA256())
