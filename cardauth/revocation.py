"""Is a card certificate revoked? OCSP (RFC 6960) first, CRLs (RFC 5280 § 5) next.

The verifier asks only about certificates whose signature and path already hold,
so forged tokens cost no network work. Every answer is checked before it counts:

- OCSP: the response is signed by the issuing CA itself or by a responder
  certificate that the same CA issued for OCSP signing (id-kp-OCSPSigning), valid
  now; the CertID is the one asked about; the request's nonce comes back;
  ``thisUpdate`` is not in the future and ``nextUpdate`` not in the past (or, when
  absent, ``thisUpdate`` is recent); ``unknown`` is a refusal.
- CRL: signed by the issuing CA, issued by it, and fresh (``nextUpdate`` not passed,
  beyond an optional grace).

When no source gives a valid answer the policy decides, and it fails closed: the
login is refused (``revocation.unavailable`` or ``revocation.stale``).
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from cardauth.errors import AssertionRefused, Refusal
from cardauth.trust import TrustConfigError

OcspTransport = Callable[[str, bytes, float], bytes]
MAX_OCSP_RESPONSE = 64 * 1024


class OcspUnreachable(Exception):
    """The responder could not be asked (network, HTTP error, timeout)."""


def http_post(url: str, body: bytes, timeout: float) -> bytes:
    """POST an OCSP request (RFC 6960 appendix A.1) and return the response body."""
    if not url.startswith(("http://", "https://")):
        raise OcspUnreachable("only http and https responders are asked")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=body, method="POST", headers={"Content-Type": "application/ocsp-request"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            data: bytes = answer.read(MAX_OCSP_RESPONSE + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise OcspUnreachable(str(exc)) from exc
    if len(data) > MAX_OCSP_RESPONSE:
        raise OcspUnreachable("OCSP response too large")
    return data


@dataclass(frozen=True, slots=True)
class RevocationPolicy:
    """Which sources to ask and how strictly. The defaults fail closed."""

    use_ocsp: bool = True
    use_crl: bool = True
    ocsp_responder: str | None = None  # a designated responder, instead of the AIA's
    ocsp_timeout: float = 3.0
    ocsp_max_age: dt.timedelta = dt.timedelta(hours=24)  # when nextUpdate is absent
    crl_grace: dt.timedelta = dt.timedelta(0)
    max_skew: dt.timedelta = dt.timedelta(minutes=2)


def policy_from_settings(settings: Mapping[str, Any]) -> RevocationPolicy:
    """The ``[revocation]`` table of trust.toml (docs/verifier.md lists its keys)."""
    known: dict[str, type | tuple[type, ...]] = {
        "use_ocsp": bool,
        "use_crl": bool,
        "ocsp_responder": str,
        "ocsp_timeout_seconds": (int, float),
        "ocsp_max_age_hours": (int, float),
        "crl_grace_hours": (int, float),
        "max_skew_seconds": (int, float),
    }
    for name, value in settings.items():
        expected = known.get(name)
        if (
            expected is None
            or isinstance(value, bool) != (expected is bool)
            or not isinstance(value, expected)
        ):
            raise TrustConfigError("unknown or mistyped revocation setting", setting=name)
    defaults = RevocationPolicy()
    return RevocationPolicy(
        use_ocsp=settings.get("use_ocsp", defaults.use_ocsp),
        use_crl=settings.get("use_crl", defaults.use_crl),
        ocsp_responder=settings.get("ocsp_responder"),
        ocsp_timeout=float(settings.get("ocsp_timeout_seconds", defaults.ocsp_timeout)),
        ocsp_max_age=dt.timedelta(hours=settings.get("ocsp_max_age_hours", 24)),
        crl_grace=dt.timedelta(hours=settings.get("crl_grace_hours", 0)),
        max_skew=dt.timedelta(seconds=settings.get("max_skew_seconds", 120)),
    )


@dataclass(frozen=True, slots=True)
class _Good:
    certificate: x509.Certificate  # held, so that the ids in the cache key stay theirs
    issuer: x509.Certificate
    until: dt.datetime  # cache the answer until then


class RevocationChecker:
    """Asks the configured sources; caches good OCSP answers until they go stale."""

    def __init__(
        self,
        *,
        policy: RevocationPolicy,
        crls: Sequence[x509.CertificateRevocationList] = (),
        transport: OcspTransport = http_post,
    ) -> None:
        self.policy = policy
        self._crls: dict[bytes, list[x509.CertificateRevocationList]] = {}
        for crl in crls:  # by issuer name, newest first
            self._crls.setdefault(crl.issuer.public_bytes(), []).append(crl)
        for candidates in self._crls.values():
            candidates.sort(key=lambda c: c.last_update_utc, reverse=True)
        self._signed_by: set[tuple[int, x509.Certificate]] = set()  # (CRL, issuer) checked
        self._transport = transport
        # Good answers, by the identity of the certificate objects (cheap to look up:
        # the verifier hands the same objects for a card it has seen), checked again.
        self._good: dict[tuple[int, int], _Good] = {}
        self._lock = threading.Lock()

    def check(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        *,
        now: dt.datetime,
        jws: str,
    ) -> None:
        """Return if ``certificate`` is known good now; refuse otherwise."""
        key = (id(certificate), id(issuer))
        cached = self._good.get(key)  # a dict read needs no lock
        if (
            cached is not None
            and cached.certificate is certificate
            and cached.issuer is issuer
            and now <= cached.until
        ):
            return
        until = self._ask_ocsp(certificate, issuer, now, jws) if self.policy.use_ocsp else None
        if until is None and self.policy.use_crl:  # no OCSP answer: the CRL, if any
            until = self._crl_says_good(certificate, issuer, now, jws)
        if until is None:
            raise AssertionRefused(
                Refusal.REVOCATION_UNAVAILABLE, "no revocation source could answer", jws=jws
            )
        with self._lock:
            self._good[key] = _Good(certificate, issuer, until)

    def _ask_ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, jws: str
    ) -> dt.datetime | None:
        """Until when the responder says the certificate is good; None when there is
        no responder to ask or it cannot be reached."""
        url = self.policy.ocsp_responder or _aia_responder(certificate)
        if url is None:
            return None
        try:
            return self._ocsp(certificate, issuer, url, now, jws)
        except OcspUnreachable:
            return None

    # -- OCSP --------------------------------------------------------------------------

    def _ocsp(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        url: str,
        now: dt.datetime,
        jws: str,
    ) -> dt.datetime:
        nonce = secrets.token_bytes(16)
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - CertID's usual hash
            .add_extension(x509.OCSPNonce(nonce), critical=False)
            .build()
        )
        data = self._transport(url, request.public_bytes(Encoding.DER), self.policy.ocsp_timeout)
        try:
            response = ocsp.load_der_ocsp_response(data)
        except ValueError:
            raise AssertionRefused(
                Refusal.OCSP_INVALID, "the OCSP response does not parse", jws=jws
            ) from None
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise OcspUnreachable(f"responder answered {response.response_status.name}")
        _check_ocsp_signer(response, issuer, now, jws)
        single = _matching_single(response, request, jws)
        _check_nonce(response, nonce, jws)
        until = self._check_ocsp_times(single, now, jws)
        if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            raise AssertionRefused(
                Refusal.REVOKED, "the certificate is revoked (OCSP)", jws=jws, source="ocsp"
            )
        if single.certificate_status is not ocsp.OCSPCertStatus.GOOD:
            raise AssertionRefused(
                Refusal.REVOCATION_UNKNOWN,
                "the OCSP responder does not know the certificate",
                jws=jws,
            )
        return until

    def _check_ocsp_times(self, single: Any, now: dt.datetime, jws: str) -> dt.datetime:
        skew = self.policy.max_skew
        this_update: dt.datetime = single.this_update_utc
        next_update: dt.datetime | None = single.next_update_utc
        if this_update > now + skew:
            raise AssertionRefused(Refusal.OCSP_TIME, "OCSP thisUpdate is in the future", jws=jws)
        until = next_update if next_update is not None else this_update + self.policy.ocsp_max_age
        if now > until + skew:
            raise AssertionRefused(Refusal.OCSP_TIME, "the OCSP response is stale", jws=jws)
        return until

    # -- CRL -----------------------------------------------------------------------------

    def _crl_says_good(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, jws: str
    ) -> dt.datetime | None:
        """Until when a fresh CRL of ``issuer`` says the certificate is not revoked;
        refuses if it is listed; None if there is no CRL of that issuer."""
        candidates = self._crls.get(issuer.subject.public_bytes())
        if not candidates:
            return None
        crl = candidates[0]
        if (id(crl), issuer) not in self._signed_by:
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise AssertionRefused(
                    Refusal.CRL_INVALID, "the CRL's signature is not its issuer's", jws=jws
                )
            with self._lock:
                self._signed_by.add((id(crl), issuer))
        if crl.last_update_utc > now + self.policy.max_skew:
            raise AssertionRefused(Refusal.CRL_INVALID, "the CRL is dated in the future", jws=jws)
        if crl.next_update_utc is None or now > crl.next_update_utc + self.policy.crl_grace:
            raise AssertionRefused(Refusal.REVOCATION_STALE, "the CRL is out of date", jws=jws)
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            raise AssertionRefused(
                Refusal.REVOKED, "the certificate is revoked (CRL)", jws=jws, source="crl"
            )
        return crl.next_update_utc + self.policy.crl_grace


def _aia_responder(certificate: x509.Certificate) -> str | None:
    try:
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        if description.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            description.access_location, x509.UniformResourceIdentifier
        ):
            return str(description.access_location.value)
    return None


def _check_ocsp_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime, jws: str
) -> None:
    """The CA itself, or a responder certificate it issued for OCSP signing."""
    signer = _responder_certificate(response, issuer, jws)
    if signer is not issuer:
        try:
            signer.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise AssertionRefused(
                Refusal.OCSP_RESPONDER,
                "the OCSP responder was not issued by the card's CA",
                jws=jws,
            ) from None
        try:
            purposes = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            purposes = None
        if purposes is None or ExtendedKeyUsageOID.OCSP_SIGNING not in purposes:
            raise AssertionRefused(
                Refusal.OCSP_RESPONDER,
                "the OCSP responder certificate is not for OCSP signing",
                jws=jws,
            )
        if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
            raise AssertionRefused(
                Refusal.OCSP_RESPONDER,
                "the OCSP responder certificate is not valid now",
                jws=jws,
            )
    if not _signature_valid(signer.public_key(), response):
        raise AssertionRefused(
            Refusal.OCSP_SIGNATURE, "the OCSP response's signature is wrong", jws=jws
        )


def _responder_certificate(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, jws: str
) -> x509.Certificate:
    candidates = [issuer, *response.certificates]
    for candidate in candidates:
        if response.responder_name is not None and candidate.subject == response.responder_name:
            return candidate
        if response.responder_key_hash is not None:
            key_hash = x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest
            if key_hash == response.responder_key_hash:
                return candidate
    raise AssertionRefused(Refusal.OCSP_RESPONDER, "the OCSP responder is unknown", jws=jws)


def _signature_valid(key: Any, response: ocsp.OCSPResponse) -> bool:
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _matching_single(response: ocsp.OCSPResponse, request: ocsp.OCSPRequest, jws: str) -> Any:
    for single in response.responses:
        if (
            single.serial_number == request.serial_number
            and single.issuer_key_hash == request.issuer_key_hash
            and single.issuer_name_hash == request.issuer_name_hash
            and single.hash_algorithm.name == request.hash_algorithm.name
        ):
            return single
    raise AssertionRefused(
        Refusal.OCSP_CERT_ID, "the OCSP response is about another certificate", jws=jws
    )


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes, jws: str) -> None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed != nonce:
        raise AssertionRefused(
            Refusal.OCSP_NONCE, "the OCSP response does not echo our nonce", jws=jws
        )
