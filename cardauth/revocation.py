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
import http.client
import itertools
import math
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from cardauth.errors import AssertionRefused, Refusal
from cardauth.trust import TrustConfigError

OcspTransport = Callable[[str, bytes, float], bytes]
MAX_OCSP_RESPONSE = 64 * 1024
GOOD_CACHE_SIZE = 4096
OCSP_BACKOFF_SECONDS = 10.0
_OCSP_CALLS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ocsp")


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
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
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
    # Sensible ranges: a NaN or a negative timeout would turn OCSP off quietly.
    limits: dict[str, tuple[float, float]] = {
        "ocsp_timeout_seconds": (0.1, 60.0),
        "ocsp_max_age_hours": (0.0, 24.0 * 31),
        "crl_grace_hours": (0.0, 24.0 * 31),
        "max_skew_seconds": (0.0, 3600.0),
    }
    for name, value in settings.items():
        expected = known.get(name)
        if (
            expected is None
            or isinstance(value, bool) != (expected is bool)
            or not isinstance(value, expected)
        ):
            raise TrustConfigError("unknown or mistyped revocation setting", setting=name)
    for name, (low, high) in limits.items():
        number = float(settings.get(name, low))
        if not (math.isfinite(number) and low <= number <= high):
            raise TrustConfigError(
                "revocation setting out of range", setting=name, range=f"{low} to {high}"
            )
    defaults = RevocationPolicy()
    return RevocationPolicy(
        use_ocsp=settings.get("use_ocsp", defaults.use_ocsp),
        use_crl=settings.get("use_crl", defaults.use_crl),
        ocsp_responder=settings.get("ocsp_responder"),
        ocsp_timeout=float(settings.get("ocsp_timeout_seconds", defaults.ocsp_timeout)),
        ocsp_max_age=_hours(settings, "ocsp_max_age_hours", defaults.ocsp_max_age),
        crl_grace=_hours(settings, "crl_grace_hours", defaults.crl_grace),
        max_skew=(
            dt.timedelta(seconds=settings["max_skew_seconds"])
            if "max_skew_seconds" in settings
            else defaults.max_skew
        ),
    )


def _hours(settings: Mapping[str, Any], name: str, default: dt.timedelta) -> dt.timedelta:
    return dt.timedelta(hours=settings[name]) if name in settings else default


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
            _require_complete(crl)
            self._crls.setdefault(crl.issuer.public_bytes(), []).append(crl)
        for candidates in self._crls.values():
            candidates.sort(key=lambda c: c.last_update_utc, reverse=True)
        self._signed_by: set[tuple[int, x509.Certificate]] = set()  # (CRL, issuer) checked
        self._transport = transport
        # Good answers, valid until the source's next update, the oldest dropped beyond
        # GOOD_CACHE_SIZE: by certificate (equal DER), for every caller; and by the
        # identity of the path, a cheaper look-up for the verifier, which hands the
        # same path object for a card it has seen (held, so the id stays its own).
        self._good: OrderedDict[tuple[x509.Certificate, x509.Certificate], dt.datetime] = (
            OrderedDict()
        )
        self._recent: OrderedDict[int, _Recent] = OrderedDict()
        # Responders that did not answer, left alone until then (monotonic seconds):
        # one dead responder costs one timeout, not one per certificate and login.
        self._quiet_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def check_path(
        self, chain: tuple[x509.Certificate, ...], *, now: dt.datetime, jws: str
    ) -> None:
        """Return if every certificate of ``chain`` (leaf first, root last) but the
        root is known good now, each against the next; refuse otherwise. (A trust
        anchor is withdrawn from the trust directory, not revoked.)"""
        recent = self._recent.get(id(chain))  # dict reads need no lock
        if recent is not None and recent.chain is chain and now <= recent.until:
            return
        if len(chain) < 2:  # a card certificate is never its own root: nothing to vouch
            raise AssertionRefused(
                Refusal.REVOCATION_UNAVAILABLE, "a path has a card and a root", jws=jws
            )
        until = min(
            self._good_until(certificate, issuer, now, jws)
            for certificate, issuer in itertools.pairwise(chain)
        )
        with self._lock:
            _remember(self._recent, id(chain), _Recent(chain, until))

    def _good_until(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, jws: str
    ) -> dt.datetime:
        until = self._good.get((certificate, issuer))
        if until is None or now > until:
            until = self._ask_sources(certificate, issuer, now, jws)
            with self._lock:
                _remember(self._good, (certificate, issuer), until)
        return until

    def _ask_sources(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, jws: str
    ) -> dt.datetime:
        """Until when OCSP, or else the CRL, says the certificate is good."""
        until = self._ask_ocsp(certificate, issuer, now, jws) if self.policy.use_ocsp else None
        if until is None and self.policy.use_crl:  # no OCSP answer: the CRL, if any
            until = self._crl_says_good(certificate, issuer, now, jws)
        if until is None:
            raise AssertionRefused(
                Refusal.REVOCATION_UNAVAILABLE, "no revocation source could answer", jws=jws
            )
        return until

    def _ask_ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, jws: str
    ) -> dt.datetime | None:
        """Until when the responder says the certificate is good; None when there is
        no responder to ask or it cannot be reached."""
        url = self.policy.ocsp_responder or _aia_responder(certificate)
        if url is None or time.monotonic() < self._quiet_until.get(url, 0.0):
            return None
        try:
            return self._ocsp(certificate, issuer, url, now, jws)
        except OcspUnreachable:
            with self._lock:
                self._quiet_until[url] = time.monotonic() + OCSP_BACKOFF_SECONDS
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
        data = self._ask(url, request.public_bytes(Encoding.DER))
        try:
            response = ocsp.load_der_ocsp_response(data)
            if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
                # tryLater, internalError...: unsigned (RFC 6960 § 2.3), so no verdict
                # either way; the CRLs decide, if the policy has them.
                raise OcspUnreachable(f"responder answered {response.response_status.name}")
            _check_ocsp_signer(response, issuer, now, jws)
            single = _matching_single(response, request, jws)
            _check_nonce(response, nonce, jws)
            until = self._check_ocsp_times(single, now, jws)
            status = single.certificate_status
        except (AssertionRefused, OcspUnreachable):
            raise
        except Exception:  # any part of a hostile response that does not decode
            raise AssertionRefused(
                Refusal.OCSP_INVALID, "the OCSP response does not parse", jws=jws
            ) from None
        if status is ocsp.OCSPCertStatus.REVOKED:
            raise AssertionRefused(
                Refusal.REVOKED, "the certificate is revoked (OCSP)", jws=jws, source="ocsp"
            )
        if status is not ocsp.OCSPCertStatus.GOOD:
            raise AssertionRefused(
                Refusal.REVOCATION_UNKNOWN,
                "the OCSP responder does not know the certificate",
                jws=jws,
            )
        return until

    def _ask(self, url: str, body: bytes) -> bytes:
        """The transport under one overall deadline: a responder that answers a byte
        at a time cannot hold a login past ``ocsp_timeout``."""
        timeout = self.policy.ocsp_timeout
        future = _OCSP_CALLS.submit(self._transport, url, body, timeout)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            raise OcspUnreachable("the OCSP responder did not answer in time") from None

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


@dataclass(frozen=True, slots=True)
class _Recent:
    chain: tuple[x509.Certificate, ...]
    until: dt.datetime


def _remember(cache: OrderedDict[Any, Any], key: object, value: object) -> None:
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > GOOD_CACHE_SIZE:
        cache.popitem(last=False)


def _require_complete(crl: x509.CertificateRevocationList) -> None:
    """Only complete CRLs say that a certificate they do not list is not revoked: a
    delta CRL, a CRL scoped by an issuing distribution point (CA certificates only,
    some reasons, a partition) or one with a critical extension we do not know cannot
    (RFC 5280 § 5.2.4, § 5.2.5, § 6.3.3). Such files are refused at configuration."""
    for extension in crl.extensions:
        if isinstance(extension.value, (x509.DeltaCRLIndicator, x509.IssuingDistributionPoint)):
            raise TrustConfigError(
                "only complete CRLs are supported (no delta, no scope)",
                issuer=crl.issuer.rfc4514_string(),
            )
        if extension.critical:
            raise TrustConfigError(
                "CRL with a critical extension we do not know", oid=extension.oid.dotted_string
            )
    if any(extension.critical for entry in crl for extension in entry.extensions):
        raise TrustConfigError(
            "CRL entry with a critical extension (an indirect CRL?)",
            issuer=crl.issuer.rfc4514_string(),
        )


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
            try:
                key = candidate.public_key()
            except (ValueError, UnsupportedAlgorithm):
                continue  # a certificate we cannot use cannot be the responder
            if x509.SubjectKeyIdentifier.from_public_key(key).digest == response.responder_key_hash:
                return candidate
    raise AssertionRefused(Refusal.OCSP_RESPONDER, "the OCSP responder is unknown", jws=jws)


def _signature_valid(key: Any, response: ocsp.OCSPResponse) -> bool:
    try:
        algorithm = response.signature_hash_algorithm
        if algorithm is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm):
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
