"""The relying party's verification of a card assertion.

One public function, :func:`verify_assertion`, whose checks run in this order,
each refusal with its own code (:class:`cardauth.errors.Refusal`):

1. structure: size, three base64url parts, JSON objects without duplicate names;
2. header: our type, our critical parameter and version, nothing else (no ``jku``,
   ``jwk``, ``x5u``: keys come from ``x5c`` only), an allowed ``alg``;
3. claims: types, origin in its canonical form and equal to an expected origin,
   challenge equal to the one expected, times within the lifetime and skew;
4. certificate: ``alg`` matches its key, the signature holds, it is an
   authentication certificate of the right kind of card, valid now, with a path to
   a root of that kind (CPS and Vitale roots never mix);
5. the Vitale co-assertion, when there is one (or required): the same checks, plus
   the same origin and challenge and the CPS certificate's thumbprint;
6. the challenge is taken out of the store, atomically: known, unexpired, issued
   to this browser session, and never again;
7. revocation of every card certificate, last: no network work for a forged token.

Identity comes from the certificates only. No pyscard here: teleservices import
this module alone.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding

from cardauth import challenges
from cardauth.certificates import (
    CardRole,
    Paths,
    Patient,
    Professional,
    ValidatedPath,
    check_intermediates,
    check_leaf,
    parse_x5c,
    patient_from,
    professional_from,
)
from cardauth.challenges import ChallengeStore
from cardauth.errors import AssertionRefused, InvalidOrigin, Refusal
from cardauth.jose import CompactJws
from cardauth.origins import Origin
from cardauth.protocol import (
    ASSERTION_TYPE,
    BINDING_PARAMETER,
    MAX_LIFETIME,
    PROTOCOL_VERSION,
    VITALE_TYPE,
    thumbprint,
)
from cardauth.revocation import RevocationChecker, policy_from_settings
from cardauth.trust import TrustConfigError, TrustStore, load_crls

DEFAULT_SKEW = dt.timedelta(seconds=30)
MIN_RSA_BITS = 2048
HEADER_NAMES = frozenset(("alg", "typ", "x5c", "crit", BINDING_PARAMETER))
CPS_CLAIMS = frozenset(("aud", "nonce", "iat", "exp", "card", "vitale"))
VITALE_CLAIMS = frozenset(("aud", "nonce", "iat", "exp", "card", "cps"))
# alg -> the key type it needs (RFC 7518 § 3.1): never "none", never HMAC.
ALGORITHMS = {
    "RS256": rsa.RSAPublicKey,
    "PS256": rsa.RSAPublicKey,
    "ES256": ec.EllipticCurvePublicKey,
}


@dataclass(frozen=True, slots=True)
class VerifiedLogin:
    """A verified assertion: who logged in, for which origin, and the patient whose
    Vitale card co-signed, if any."""

    professional: Professional
    patient: Patient | None
    origin: str
    card_serial: str
    issued_at: dt.datetime
    cps_chain: tuple[x509.Certificate, ...]
    vitale_chain: tuple[x509.Certificate, ...] | None

    def to_dict(self) -> dict[str, object]:
        return {
            "professional": self.professional.to_dict(),
            "patient": self.patient.to_dict() if self.patient else None,
            "origin": self.origin,
            "card_serial": self.card_serial,
            "issued_at": self.issued_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class _Token:
    """One verified JWS (the assertion or the co-assertion) and what it certifies."""

    claims: dict[str, Any]
    leaf: x509.Certificate
    path: ValidatedPath
    card_type: str


class Verifier:
    """The parts of verification that do not change between logins: trust, paths
    (with their cache), revocation sources. :meth:`verify` runs one verification."""

    def __init__(self, *, trust: TrustStore, revocation: RevocationChecker) -> None:
        self.trust = trust
        self.revocation = revocation
        self._paths = Paths(trust)

    @classmethod
    def from_directory(cls, directory: Path) -> Verifier:
        """A verifier configured by a trust directory (docs/verifier.md)."""
        trust = TrustStore.load(directory)
        revocation_settings = trust.settings.get("revocation", {})
        if not isinstance(revocation_settings, dict):
            raise TrustConfigError("[revocation] must be a table", file=str(directory))
        checker = RevocationChecker(
            policy=policy_from_settings(revocation_settings), crls=load_crls(directory / "crls")
        )
        return cls(trust=trust, revocation=checker)

    def verify(
        self,
        assertion: str,
        *,
        expected_origins: Collection[Origin],
        expected_challenge: str,
        session: str,
        challenges_store: ChallengeStore,
        now: dt.datetime,
        require_vitale: bool = False,
        max_skew: dt.timedelta = DEFAULT_SKEW,
    ) -> VerifiedLogin:
        origins = _origins(expected_origins)
        expected = challenges.check_format(expected_challenge)
        cps = self._verify_token(assertion, "cps", CardRole.CPS, now, max_skew)
        origin = _check_origin(cps.claims["aud"], origins, "cps")
        _check_challenge(cps.claims["nonce"], expected, "cps")
        vitale = None
        if "vitale" in cps.claims:
            vitale = self._verify_vitale(cps, now, max_skew)
        elif require_vitale:
            raise AssertionRefused(
                Refusal.VITALE_MISSING, "the patient's Vitale card must co-sign", jws="vitale"
            )
        challenges.consume_challenge(
            challenges_store, cps.claims["nonce"], session=session, now=now
        )
        for token, name in ((cps, "cps"), (vitale, "vitale")):
            if token is not None:
                self.revocation.check(token.leaf, token.path.issuer, now=now, jws=name)
        return VerifiedLogin(
            professional=professional_from(cps.leaf, cps.card_type, jws="cps"),
            patient=patient_from(vitale.leaf, self.trust.profile, jws="vitale") if vitale else None,
            origin=origin.value,
            card_serial=cps.claims["card"],
            issued_at=dt.datetime.fromtimestamp(cps.claims["iat"], dt.UTC),
            cps_chain=cps.path.chain,
            vitale_chain=vitale.path.chain if vitale else None,
        )

    def _verify_vitale(self, cps: _Token, now: dt.datetime, max_skew: dt.timedelta) -> _Token:
        vitale = self._verify_token(cps.claims["vitale"], "vitale", CardRole.VITALE, now, max_skew)
        for claim in ("aud", "nonce"):
            if not hmac.compare_digest(str(vitale.claims[claim]), str(cps.claims[claim])):
                raise AssertionRefused(
                    Refusal.VITALE_BINDING,
                    f"the Vitale co-assertion has another {claim}",
                    jws="vitale",
                    claim=claim,
                )
        cps_thumbprint = thumbprint(cps.leaf.public_bytes(Encoding.DER))
        if not hmac.compare_digest(str(vitale.claims["cps"]), cps_thumbprint):
            raise AssertionRefused(
                Refusal.VITALE_BINDING,
                "the Vitale co-assertion is bound to another CPS card",
                jws="vitale",
                claim="cps",
            )
        return vitale

    def _verify_token(
        self, text: object, name: str, role: CardRole, now: dt.datetime, max_skew: dt.timedelta
    ) -> _Token:
        token = CompactJws.parse(text, name=name)
        algorithm = _check_header(token.header, role, name)
        claims = _check_claims(token.payload, role, name, now, max_skew)
        certificates = parse_x5c(token.header["x5c"], jws=name)
        leaf = certificates[0]
        _check_signature(algorithm, leaf, token.signing_input, token.signature, name)
        card_type = check_leaf(leaf, role, self.trust.profile, now, jws=name)
        check_intermediates(certificates[1:], now, jws=name)
        path = self._paths.for_role(role).validate(leaf, certificates[1:], now, jws=name)
        return _Token(claims, leaf, path, card_type)


def verify_assertion(
    assertion: str,
    *,
    expected_origins: Collection[Origin],
    expected_challenge: str,
    session: str,
    challenges_store: ChallengeStore,
    trust: TrustStore,
    revocation: RevocationChecker,
    now: dt.datetime,
    require_vitale: bool = False,
    max_skew: dt.timedelta = DEFAULT_SKEW,
) -> VerifiedLogin:
    """Verify ``assertion`` for a login; every argument but the token is required and
    keyword-only, so that no caller can forget the origin, the challenge or the
    session. Raises :class:`~cardauth.errors.AssertionRefused` with the reason."""
    return Verifier(trust=trust, revocation=revocation).verify(
        assertion,
        expected_origins=expected_origins,
        expected_challenge=expected_challenge,
        session=session,
        challenges_store=challenges_store,
        now=now,
        require_vitale=require_vitale,
        max_skew=max_skew,
    )


def _origins(expected: Collection[Origin]) -> frozenset[Origin]:
    if isinstance(expected, (str, bytes)) or not expected:
        raise InvalidOrigin("expected origins are a non-empty collection of Origin")
    if not all(isinstance(o, Origin) for o in expected):
        raise InvalidOrigin("expected origins must be parsed with Origin.parse")
    return frozenset(expected)


def _check_header(header: dict[str, Any], role: CardRole, jws: str) -> str:
    unknown = set(header) - HEADER_NAMES
    if unknown:
        raise AssertionRefused(
            Refusal.FORBIDDEN_HEADER,
            "header parameter not allowed",
            jws=jws,
            parameters=sorted(unknown)[:8],
        )
    expected_type = ASSERTION_TYPE if role is CardRole.CPS else VITALE_TYPE
    if header.get("typ") != expected_type:
        raise AssertionRefused(Refusal.TYPE, "not a cardauth assertion of this kind", jws=jws)
    if header.get("crit") != [BINDING_PARAMETER]:
        raise AssertionRefused(Refusal.CRITICAL, f'crit must be ["{BINDING_PARAMETER}"]', jws=jws)
    version = header.get(BINDING_PARAMETER)
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise AssertionRefused(Refusal.CRITICAL, "unsupported protocol version", jws=jws)
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise AssertionRefused(
            Refusal.ALGORITHM, "algorithm not allowed", jws=jws, alg=str(algorithm)[:16]
        )
    return algorithm


def _check_claims(
    payload: dict[str, Any], role: CardRole, jws: str, now: dt.datetime, max_skew: dt.timedelta
) -> dict[str, Any]:
    allowed = CPS_CLAIMS if role is CardRole.CPS else VITALE_CLAIMS
    required = allowed - {"vitale"}
    if set(payload) - allowed or required - set(payload):
        raise AssertionRefused(Refusal.CLAIMS, "unexpected or missing claims", jws=jws)
    for claim in ("iat", "exp"):
        if type(payload[claim]) is not int:
            raise AssertionRefused(Refusal.CLAIMS, f"{claim} must be an integer", jws=jws)
    for claim in allowed - {"iat", "exp"}:
        if claim in payload and not isinstance(payload[claim], str):
            raise AssertionRefused(Refusal.CLAIMS, f"{claim} must be a string", jws=jws)
    issued, expires = payload["iat"], payload["exp"]
    if not 0 < expires - issued <= MAX_LIFETIME.total_seconds():
        raise AssertionRefused(Refusal.LIFETIME, "assertion lifetime out of bounds", jws=jws)
    moment = now.timestamp()
    if issued > moment + max_skew.total_seconds():
        raise AssertionRefused(Refusal.ISSUED_IN_FUTURE, "assertion issued in the future", jws=jws)
    if moment > expires + max_skew.total_seconds():
        raise AssertionRefused(Refusal.EXPIRED, "assertion expired", jws=jws)
    if not 0 < len(payload["card"]) <= 64:
        raise AssertionRefused(Refusal.CLAIMS, "card serial out of bounds", jws=jws)
    return payload


def _check_origin(claimed: str, expected: frozenset[Origin], jws: str) -> Origin:
    try:
        origin = Origin.parse(claimed)
    except InvalidOrigin as exc:
        raise AssertionRefused(
            Refusal.ORIGIN_INVALID, f"aud is not an origin: {exc.message}", jws=jws
        ) from None
    if origin not in expected:
        raise AssertionRefused(
            Refusal.ORIGIN_MISMATCH,
            "the assertion is for another origin",
            jws=jws,
            origin=claimed,
        )
    return origin


def _check_challenge(claimed: str, expected: str, jws: str) -> None:
    challenges.check_format(claimed, jws=jws)
    if not hmac.compare_digest(claimed, expected):
        raise AssertionRefused(
            Refusal.CHALLENGE_UNKNOWN, "the assertion answers another challenge", jws=jws
        )


def _check_signature(
    algorithm: str, leaf: x509.Certificate, data: bytes, signature: bytes, jws: str
) -> None:
    key = leaf.public_key()
    if not isinstance(key, ALGORITHMS[algorithm]):
        raise AssertionRefused(
            Refusal.ALGORITHM_MISMATCH,
            "alg does not fit the certificate's key",
            jws=jws,
            alg=algorithm,
        )
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                raise AssertionRefused(Refusal.ALGORITHM_MISMATCH, "RSA key too small", jws=jws)
            scheme: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if algorithm == "RS256"
                else padding.PSS(padding.MGF1(hashes.SHA256()), 32)  # RFC 7518 § 3.5
            )
            key.verify(signature, data, scheme, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1) or len(signature) != 64:
                raise AssertionRefused(
                    Refusal.ALGORITHM_MISMATCH,
                    "ES256 needs P-256 and a 64-byte signature",
                    jws=jws,
                )
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionRefused(
            Refusal.SIGNATURE, "the signature does not verify", jws=jws
        ) from None
