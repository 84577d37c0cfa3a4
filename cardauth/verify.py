"""The relying party's verification of a card assertion.

One public function, :func:`verify_assertion`, whose checks run in this order,
each refusal with its own code (:class:`cardauth.errors.Refusal`):

1. structure: size, three base64url parts, JSON objects without duplicate names;
2. header: our type, our critical parameter and version, nothing else (no ``jku``,
   ``jwk``, ``x5u``: keys come from ``x5c`` only), an allowed ``alg``;
3. claims: exactly the expected ones with their types and forms (``nonce`` a
   challenge, ``card`` a chip serial, ``cps`` a thumbprint), times within the
   lifetime and skew;
4. certificate: ``alg`` matches its key, it is an authentication certificate of
   the right kind of card, valid now, with a path to a root of that kind (CPS and
   Vitale roots never mix), of which ``x5c`` is the start (no root, no repeat, in
   order);
5. the signature, under the certified key;
6. origin, in its canonical form, equal to an expected origin; challenge equal to
   the one expected (constant time);
7. the Vitale co-assertion, when there is one (or required): the same checks, plus
   the same origin and challenge and the CPS certificate's thumbprint;
8. the challenge is taken out of the store, atomically: known, unexpired, issued
   to this browser session, and never again (a refusal at an earlier step takes
   it out too: one try per challenge);
9. revocation of every certificate of each path but the root, last: no network
   work for a forged token.

Identity comes from the certificates only. No pyscard here: teleservices import
this module alone.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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
    check_x5c_is_the_path,
    parse_x5c,
    patient_from,
    professional_from,
)
from cardauth.challenges import ChallengeStore
from cardauth.errors import AssertionRefused, InvalidOrigin, Refusal
from cardauth.jose import CompactJws, signature_verifier
from cardauth.origins import Origin
from cardauth.protocol import (
    ASSERTION_TYPE,
    BINDING_PARAMETER,
    MAX_LIFETIME,
    PROTOCOL_VERSION,
    VITALE_TYPE,
    is_card_serial,
    is_thumbprint,
    thumbprint,
)
from cardauth.revocation import RevocationChecker, load_revocation_lists, policy_from_settings
from cardauth.trust import TrustConfigError, TrustStore
from cardauth.verdict_cache import DEFAULT_MAX_ENTRIES, VerdictCache

DEFAULT_SKEW = dt.timedelta(seconds=30)
MIN_RSA_BITS = 2048
HEADER_NAMES = frozenset(("alg", "typ", "x5c", "crit", BINDING_PARAMETER))
CPS_CLAIMS = frozenset(("aud", "nonce", "iat", "exp", "card", "vitale"))
VITALE_CLAIMS = frozenset(("aud", "nonce", "iat", "exp", "card", "cps"))
REQUIRED_CPS_CLAIMS = CPS_CLAIMS - {"vitale"}
MAX_LIFETIME_SECONDS = MAX_LIFETIME.total_seconds()
# alg -> the key type it needs (RFC 7518 § 3.1): never "none", never HMAC.
ALGORITHMS = {
    "RS256": rsa.RSAPublicKey,
    "PS256": rsa.RSAPublicKey,
    "ES256": ec.EllipticCurvePublicKey,
}


class VerifiedLogin(NamedTuple):
    """A verified assertion: who logged in, for which origin, and the patient whose
    Vitale card co-signed, if any. (Immutable; a named tuple because one is made for
    every login and costs less than a frozen dataclass.)"""

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
class _HeaderVerdict:
    header_b64: str
    leaf: x509.Certificate
    path: ValidatedPath
    verify_signature: Callable[[bytes, bytes], None]  # (signature, data); InvalidSignature
    professional: Professional | None  # for a CPS card
    patient: Patient | None  # for a Vitale card
    not_before: dt.datetime  # when every certificate offered and on the path is valid
    not_after: dt.datetime

    @property
    def thumbprint(self) -> str:
        """The leaf's, for the Vitale binding: computed when a co-assertion asks
        (encoding the certificate again costs more than the rest of the hash)."""
        return thumbprint(self.leaf.public_bytes(Encoding.DER))


class _Token(NamedTuple):
    """One verified JWS (the assertion or the co-assertion) and what it certifies."""

    claims: dict[str, Any]
    verdict: _HeaderVerdict
    key: tuple[CardRole, str]  # its verdict's key in the cache: (role, exact header)
    cached: bool  # the verdict came from the cache (revocation included)

    @property
    def leaf(self) -> x509.Certificate:
        return self.verdict.leaf

    @property
    def path(self) -> ValidatedPath:
        return self.verdict.path


class Verifier:
    """The parts of verification that do not change between logins: trust, paths,
    revocation sources, and the one cache of verdicts by exact header
    (:mod:`cardauth.verdict_cache` says what it keeps and for how long).
    :meth:`verify` runs one verification."""

    def __init__(
        self,
        *,
        trust: TrustStore,
        revocation: RevocationChecker,
        cache_size: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.trust = trust
        self.revocation = revocation
        self._paths = Paths(trust)
        self._known = {  # the trust directory's certificates by their DER
            c.public_bytes(Encoding.DER): c
            for c in (*trust.cps_roots, *trust.vitale_roots, *trust.intermediates)
        }
        self.cache: VerdictCache[_HeaderVerdict] = VerdictCache(cache_size)  # the one cache
        self._checked_origins: (
            tuple[tuple[Origin, ...] | frozenset[Origin], frozenset[Origin]] | None
        ) = None

    def _origins(self, expected: Collection[Origin]) -> frozenset[Origin]:
        """The expected origins, checked once for an equal tuple or frozenset passed
        again (only an immutable collection: a list could have changed since)."""
        checked = self._checked_origins
        if checked is not None and type(expected) is type(checked[0]) and expected == checked[0]:
            return checked[1]
        origins = _origins(expected)
        if isinstance(expected, (tuple, frozenset)):
            self._checked_origins = (expected, origins)
        return origins

    @classmethod
    def from_directory(cls, directory: Path) -> Verifier:
        """A verifier configured by a trust directory (docs/verifier.md)."""
        trust = TrustStore.load(directory)
        revocation_settings = trust.settings.get("revocation", {})
        if not isinstance(revocation_settings, dict):
            raise TrustConfigError("[revocation] must be a table", file=str(directory))
        checker = RevocationChecker(
            policy=policy_from_settings(revocation_settings),
            crls=load_revocation_lists(directory / "crls"),
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
        origins = self._origins(expected_origins)
        expected = challenges.check_format(expected_challenge)
        taken = False
        try:
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
            taken = True
            challenges.take_checked_challenge(challenges_store, expected, session=session, now=now)
        finally:
            if not taken:  # one try per challenge: a refused attempt burns it too
                challenges.discard_challenge(challenges_store, expected)
        self._check_revocation(cps, now, "cps")
        if vitale is not None:
            self._check_revocation(vitale, now, "vitale")
        professional = cps.verdict.professional
        patient = vitale.verdict.patient if vitale else None
        assert professional is not None  # the CPS role always has one
        return VerifiedLogin(
            professional=professional,
            patient=patient,
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
        if not hmac.compare_digest(str(vitale.claims["cps"]), cps.verdict.thumbprint):
            raise AssertionRefused(
                Refusal.VITALE_BINDING,
                "the Vitale co-assertion is bound to another CPS card",
                jws="vitale",
                claim="cps",
            )
        return vitale

    def _check_revocation(self, token: _Token, now: dt.datetime, jws: str) -> None:
        """Revocation of the token's path, unless its verdict came from the cache
        (checked then, still within that answer's window and CRLs); a path found
        good is cached with its verdict, for the windows where both hold."""
        if token.cached:
            return
        verdict = token.verdict
        clearance = self.revocation.check_path(verdict.path.chain, now=now, jws=jws)
        self.cache.put(
            token.key,
            verdict,
            not_before=max(verdict.not_before, clearance.not_before),
            not_after=min(verdict.not_after, clearance.not_after),
            crls=clearance.crls,
        )

    def _verify_token(
        self, text: object, name: str, role: CardRole, now: dt.datetime, max_skew: dt.timedelta
    ) -> _Token:
        token = CompactJws.split(text, name=name)
        key = (role, token.header_b64)
        verdict = self.cache.get(key, now=now, crls=self.revocation.crls)
        header = None
        if verdict is None:
            header = token.header()
            _check_header(header, role, name)
        claims = _check_claims(token.payload(), role, name, now, max_skew)
        cached = verdict is not None
        if verdict is None:
            assert header is not None
            verdict = self._header_verdict(header, token.header_b64, role, name, now)
        try:
            verdict.verify_signature(token.signature(), token.signing_input)
        except InvalidSignature:
            raise AssertionRefused(
                Refusal.SIGNATURE, "the signature does not verify", jws=name
            ) from None
        return _Token(claims, verdict, key, cached)

    def _header_verdict(
        self, header: dict[str, Any], header_b64: str, role: CardRole, name: str, now: dt.datetime
    ) -> _HeaderVerdict:
        """Everything the header alone decides: the algorithm, the certificate, the kind
        of card, the path to a root, the identity. Cached by the header's exact bytes
        once a whole verification under it succeeded (revocation included); the
        signature, which covers the payload, is checked every time."""
        algorithm = header["alg"]
        offered = parse_x5c(header.get("x5c"), jws=name, known=self._known)  # absent: refused
        certificates = offered.certificates
        leaf = certificates[0]
        _check_key(algorithm, leaf, name)
        card_type = check_leaf(leaf, role, self.trust.profile, now, jws=name)
        check_intermediates(certificates[1:], now, jws=name)
        path = self._paths.for_role(role).validate(leaf, certificates[1:], now, jws=name)
        check_x5c_is_the_path(offered, path, jws=name)
        cps = role is CardRole.CPS
        every = (*path.chain, *certificates[1:])  # the card is the path's first
        return _HeaderVerdict(
            header_b64=header_b64,
            leaf=leaf,
            path=path,
            verify_signature=signature_verifier(algorithm, leaf.public_key()),
            professional=professional_from(leaf, card_type, jws=name) if cps else None,
            patient=None if cps else patient_from(leaf, self.trust.profile, jws=name),
            not_before=max(c.not_valid_before_utc for c in every),
            not_after=min(c.not_valid_after_utc for c in every),
        )


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


_CLAIM_TYPES = {
    "aud": str,
    "nonce": str,
    "iat": int,
    "exp": int,
    "card": str,
    "vitale": str,
    "cps": str,
}


def _check_claims(
    payload: dict[str, Any], role: CardRole, jws: str, now: dt.datetime, max_skew: dt.timedelta
) -> dict[str, Any]:
    allowed = CPS_CLAIMS if role is CardRole.CPS else VITALE_CLAIMS
    required = REQUIRED_CPS_CLAIMS if role is CardRole.CPS else VITALE_CLAIMS
    if not (required <= payload.keys() <= allowed):
        raise AssertionRefused(Refusal.CLAIMS, "unexpected or missing claims", jws=jws)
    for claim, value in payload.items():
        if type(value) is not _CLAIM_TYPES[claim]:  # exact types: no bool for int
            raise AssertionRefused(Refusal.CLAIMS, f"{claim} has the wrong type", jws=jws)
        if type(value) is str and not value.isascii():  # nor a lone surrogate
            if claim == "aud":
                raise AssertionRefused(
                    Refusal.ORIGIN_INVALID, "aud is not an origin in its ASCII form", jws=jws
                )
            raise AssertionRefused(Refusal.CLAIMS, f"{claim} is not ASCII", jws=jws)
    _check_forms(payload, jws)
    issued, expires = payload["iat"], payload["exp"]
    if not 0 < expires - issued <= MAX_LIFETIME_SECONDS:
        raise AssertionRefused(Refusal.LIFETIME, "assertion lifetime out of bounds", jws=jws)
    moment, skew = now.timestamp(), max_skew.total_seconds()
    if issued > moment + skew:
        raise AssertionRefused(Refusal.ISSUED_IN_FUTURE, "assertion issued in the future", jws=jws)
    if moment > expires + skew:
        raise AssertionRefused(Refusal.EXPIRED, "assertion expired", jws=jws)
    return payload


def _check_forms(payload: dict[str, Any], jws: str) -> None:
    """Each string claim in its stated form (docs/protocol.md), before it is compared
    or handed on. ``aud`` is checked as an origin against the expected ones
    (:func:`_check_origin`, or equal to the assertion's for the co-assertion), and
    ``vitale`` is verified as a JWS of its own."""
    challenges.check_format(payload["nonce"], jws=jws)  # 43 base64url characters
    if not is_card_serial(payload["card"]):
        # handed back as VerifiedLogin.card_serial, and logged as text by teleservices:
        # a chip serial and nothing else, never a line break or a terminal escape
        raise AssertionRefused(
            Refusal.CARD_SERIAL, "card is not a chip serial (20 upper-case hex digits)", jws=jws
        )
    if "cps" in payload and not is_thumbprint(payload["cps"]):
        raise AssertionRefused(
            Refusal.CLAIMS, "cps is not a SHA-256 thumbprint in base64url", jws=jws, claim="cps"
        )


def _check_origin(claimed: str, expected: frozenset[Origin], jws: str) -> Origin:
    for origin in expected:  # expected origins are canonical: equal means valid
        if claimed == origin.value:
            return origin
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
    """The claimed challenge must be the expected one (whose format is checked, so
    equal means well formed too); compared in constant time."""
    if not hmac.compare_digest(claimed.encode(), expected.encode()):
        raise AssertionRefused(
            Refusal.CHALLENGE_UNKNOWN, "the assertion answers another challenge", jws=jws
        )


def _check_key(algorithm: str, leaf: x509.Certificate, jws: str) -> None:
    """``alg`` must fit the certificate's key (RFC 7518 § 3.1), which must be strong."""
    key = leaf.public_key()
    if not isinstance(key, ALGORITHMS[algorithm]):
        raise AssertionRefused(
            Refusal.ALGORITHM_MISMATCH,
            "alg does not fit the certificate's key",
            jws=jws,
            alg=algorithm,
        )
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise AssertionRefused(Refusal.ALGORITHM_MISMATCH, "RSA key too small", jws=jws)
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise AssertionRefused(Refusal.ALGORITHM_MISMATCH, "ES256 needs a P-256 key", jws=jws)
