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

CRLs are read once, when loaded: each becomes a :class:`RevocationList`, whose
revoked serial numbers are a set (a look-up costs the same for 3 entries as for
100,000) and whose signed part is hashed then, so that checking its signature
against an issuer is one public-key operation. A checker's CRLs are replaced whole
(:meth:`RevocationChecker.replace_crls`, :class:`CrlRefresher` in the background):
the new lists are read and indexed before the swap, which is one assignment, so a
verification never waits for a refresh. The verifier's cache
(:mod:`cardauth.verdict_cache`) keeps a whole chain's verdict, within the window
:meth:`RevocationChecker.check_path` returns; the checker keeps, in a cache of the
same kind, the answers about the links above the card (a CA and its issuer), which
serve every card that CA issued: at national scale most logins are of a card not
seen before, and each would otherwise cost its CA's OCSP exchange too.
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import logging
import math
import secrets
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import parser as asn1_parser
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from cardauth.der import crl_blobs
from cardauth.errors import AssertionRefused, Refusal
from cardauth.trust import TrustConfigError
from cardauth.verdict_cache import VerdictCache

OcspTransport = Callable[[str, bytes, float], bytes]
MAX_OCSP_RESPONSE = 64 * 1024
OCSP_BACKOFF_SECONDS = 10.0
AUTHORITY_ANSWERS = 256  # CAs of the health PKI a verifier hears of: a few dozen
DEFAULT_CRL_REFRESH = dt.timedelta(minutes=5)
MAX_SIGNERS_KEPT = 16
# BOOLEAN TRUE in DER (X.690 § 11.1): every extension marked critical holds these
# three bytes, so a CRL whose signed part lacks them has no critical extension.
_DER_TRUE = b"\x01\x01\xff"
_log = logging.getLogger(__name__)
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
    # how often a CrlRefresher looks at the CRL files (0: never; docs/verifier.md)
    crl_refresh: dt.timedelta = DEFAULT_CRL_REFRESH


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
        "crl_refresh_seconds": (int, float),
    }
    # Sensible ranges: a NaN or a negative timeout would turn OCSP off quietly.
    limits: dict[str, tuple[float, float]] = {
        "ocsp_timeout_seconds": (0.1, 60.0),
        "ocsp_max_age_hours": (0.0, 24.0 * 31),
        "crl_grace_hours": (0.0, 24.0 * 31),
        "max_skew_seconds": (0.0, 3600.0),
        "crl_refresh_seconds": (0.0, 86400.0),
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
        crl_refresh=(
            dt.timedelta(seconds=settings["crl_refresh_seconds"])
            if "crl_refresh_seconds" in settings
            else defaults.crl_refresh
        ),
    )


def _hours(settings: Mapping[str, Any], name: str, default: dt.timedelta) -> dt.timedelta:
    return dt.timedelta(hours=settings[name]) if name in settings else default


class RevocationList:
    """One complete CRL (RFC 5280 § 5), read once when loaded: its issuer, dates,
    the serial numbers it revokes as a set, and the hash of its signed part (so
    that checking its signature against an issuer is one public-key operation,
    remembered for that issuer: a fact about this CRL, which never changes).
    Only RSA (PKCS #1 v1.5, PSS) and ECDSA signatures, those of the health PKI."""

    __slots__ = (
        "_digest",
        "_hash",
        "_padding",
        "_signature",
        "_signers",
        "issuer",
        "last_update",
        "next_update",
        "revoked",
    )

    def __init__(
        self,
        *,
        issuer: x509.Name,
        last_update: dt.datetime,
        next_update: dt.datetime | None,
        revoked: frozenset[int],
        digest: bytes,
        signature: bytes,
        hash_algorithm: hashes.HashAlgorithm,
        signature_padding: padding.PKCS1v15 | padding.PSS | ec.ECDSA,
    ) -> None:
        self.issuer = issuer
        self.last_update = last_update
        self.next_update = next_update
        self.revoked = revoked
        self._digest = digest
        self._signature = signature
        self._hash = hash_algorithm
        self._padding = signature_padding
        # issuer certificates that verified the signature, by identity: the CAs of
        # the trust store come back as the same objects in every path (held here,
        # so that their id stays theirs); a handful at most
        self._signers: dict[int, x509.Certificate] = {}

    @classmethod
    def from_der(cls, der: bytes) -> RevocationList:
        """Decode, check and index one DER CRL: a ValueError if it does not decode,
        a TrustConfigError if it is not complete (see :func:`_require_complete`)."""
        try:
            crl = x509.load_der_x509_crl(der)  # checks the whole DER structure
            issuer = crl.issuer
            extensions = list(crl.extensions)
            hash_algorithm = crl.signature_hash_algorithm
            signature_padding = crl.signature_algorithm_parameters
            last_update, next_update = crl.last_update_utc, crl.next_update_utc
            signature = crl.signature
            # The signed part as it was signed: the CRL's first element, sliced out of
            # the bytes read (cryptography's tbs_certlist_bytes encodes it again).
            outer = asn1_parser.parse(der)[4]
            _, _, _, header, contents, _ = asn1_parser.parse(outer, strict=False)
        except Exception as exc:  # whatever decoding hostile bytes raises: malformed
            raise ValueError("malformed CRL") from exc
        if hash_algorithm is None or signature_padding is None:
            raise TrustConfigError(
                "only RSA and ECDSA signed CRLs are supported", issuer=crl.issuer.rfc4514_string()
            )
        signed = header + contents
        try:
            _require_complete(crl, extensions, entries=_DER_TRUE in signed)
            revoked = frozenset(entry.serial_number for entry in crl)
        except TrustConfigError:
            raise
        except Exception as exc:  # an entry extension that does not decode
            raise ValueError("malformed CRL") from exc
        digest = hashes.Hash(hash_algorithm)
        digest.update(signed)
        return cls(
            issuer=issuer,
            last_update=last_update,
            next_update=next_update,
            revoked=revoked,
            digest=digest.finalize(),
            signature=signature,
            hash_algorithm=hash_algorithm,
            signature_padding=signature_padding,
        )

    @classmethod
    def from_crl(cls, crl: x509.CertificateRevocationList) -> RevocationList:
        return cls.from_der(crl.public_bytes(Encoding.DER))

    def lists(self, serial_number: int) -> bool:
        return serial_number in self.revoked

    def signed_by(self, issuer: x509.Certificate) -> bool:
        """Whether ``issuer``'s key made this CRL's signature."""
        if self._signers.get(id(issuer)) is issuer:
            return True
        key = issuer.public_key()
        prehashed = Prehashed(self._hash)
        scheme = self._padding
        try:
            if isinstance(key, rsa.RSAPublicKey) and not isinstance(scheme, ec.ECDSA):
                key.verify(self._signature, self._digest, scheme, prehashed)
            elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(scheme, ec.ECDSA):
                key.verify(self._signature, self._digest, ec.ECDSA(prehashed))
            else:
                return False
        except (InvalidSignature, ValueError, UnsupportedAlgorithm):
            return False
        if len(self._signers) < MAX_SIGNERS_KEPT:
            self._signers[id(issuer)] = issuer  # one assignment: no lock
        return True


def crl_files(directory: Path) -> list[tuple[Path, list[bytes]]]:
    """The DER CRLs of each file of ``directory`` (DER, or PEM with any number of
    CRLs), in the files' order; none if it is absent. A file that cannot be read or
    holds no CRL is a TrustConfigError naming it."""
    if not directory.is_dir():
        return []
    files = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        try:
            files.append((path, crl_blobs(path.read_bytes())))
        except (OSError, ValueError) as exc:
            raise TrustConfigError("not a CRL file", file=str(path)) from exc
    return files


def load_revocation_lists(directory: Path) -> tuple[RevocationList, ...]:
    """Every CRL in the files of ``directory``, read and indexed; none if it is
    absent. A bad file is a TrustConfigError naming it."""
    lists: list[RevocationList] = []
    for path, ders in crl_files(directory):
        try:
            lists += [RevocationList.from_der(der) for der in ders]
        except ValueError as exc:
            raise TrustConfigError("not a CRL file", file=str(path)) from exc
        except TrustConfigError as exc:
            raise TrustConfigError(exc.message, file=str(path), **exc.context) from exc
    return tuple(lists)


@dataclass(frozen=True, slots=True, eq=False)
class CrlSet:
    """The CRLs a checker uses, the newest of each issuer, by the issuer's name (a
    Name's hash is kept by cryptography; encoding it costs more). A
    set is never changed, only replaced whole; its identity is what a verdict kept
    in the verifier's cache was checked against."""

    by_issuer: Mapping[x509.Name, RevocationList]

    @classmethod
    def of(cls, lists: Iterable[RevocationList]) -> CrlSet:
        newest: dict[x509.Name, RevocationList] = {}
        for revocation_list in lists:
            kept = newest.get(revocation_list.issuer)
            if kept is None or revocation_list.last_update > kept.last_update:
                newest[revocation_list.issuer] = revocation_list
        return cls(newest)


@dataclass(frozen=True, slots=True)
class Clearance:
    """A path is known not revoked from ``not_before`` to ``not_after``, by answers
    that came from ``crls`` (or OCSP, whose answers are dated too)."""

    not_before: dt.datetime
    not_after: dt.datetime
    crls: CrlSet


CrlInput = x509.CertificateRevocationList | RevocationList


class RevocationChecker:
    """Asks the configured sources about each link of a path. What it keeps: its
    CRLs, replaced whole by :meth:`replace_crls`; the responders that did not answer;
    and, for the links above the card (a CA against its issuer), the answer while it
    holds (bounded, dropped with the CRLs it was checked against, as the verifier's
    verdicts are)."""

    def __init__(
        self,
        *,
        policy: RevocationPolicy,
        crls: Sequence[CrlInput] = (),
        transport: OcspTransport = http_post,
    ) -> None:
        self.policy = policy
        self._crls = CrlSet.of(_indexed(crls))
        self._transport = transport
        # Responders that did not answer, left alone until then (monotonic seconds):
        # one dead responder costs one timeout, not one per certificate and login.
        self._quiet_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._authorities: VerdictCache[tuple[dt.datetime, dt.datetime]] = VerdictCache(
            AUTHORITY_ANSWERS
        )

    @property
    def crls(self) -> CrlSet:
        return self._crls

    def replace_crls(self, crls: Sequence[CrlInput]) -> None:
        """Use these CRLs from now on. They are read and indexed first; then one
        assignment swaps them in: no lock, and a verification under way finishes
        with the set it started with. (Verdicts cached against the old set are
        not used again: see :class:`Clearance`.)"""
        self._crls = CrlSet.of(_indexed(crls))

    def check_path(
        self, chain: tuple[x509.Certificate, ...], *, now: dt.datetime, jws: str
    ) -> Clearance:
        """Return when every certificate of ``chain`` (leaf first, root last) but the
        root is known good now, each against the next, and until when; refuse
        otherwise. (A trust anchor is withdrawn from the trust directory, not
        revoked.)"""
        if len(chain) < 2:  # a card certificate is never its own root: nothing to vouch
            raise AssertionRefused(
                Refusal.REVOCATION_UNAVAILABLE, "a path has a card and a root", jws=jws
            )
        crls = self._crls  # one set for the whole path, whatever a refresh does meanwhile
        links = list(itertools.pairwise(chain))
        windows = [self._ask_sources(*links[0], crls, now, jws)]  # the card: never seen twice
        for authority, issuer in links[1:]:
            key = (authority, issuer)  # certificates hash and compare by their DER
            window = self._authorities.get(key, now=now, crls=crls)
            if window is None:
                window = self._ask_sources(authority, issuer, crls, now, jws)
                self._authorities.put(
                    key, window, not_before=window[0], not_after=window[1], crls=crls
                )
            windows.append(window)
        return Clearance(
            not_before=max(start for start, _ in windows),
            not_after=min(end for _, end in windows),
            crls=crls,
        )

    def _ask_sources(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        crls: CrlSet,
        now: dt.datetime,
        jws: str,
    ) -> tuple[dt.datetime, dt.datetime]:
        """From and until when OCSP, or else the CRL, says the certificate is good."""
        window = self._ask_ocsp(certificate, issuer, now, jws) if self.policy.use_ocsp else None
        if window is None and self.policy.use_crl:  # no OCSP answer: the CRL, if any
            window = self._crl_says_good(certificate, issuer, crls, now, jws)
        if window is None:
            raise AssertionRefused(
                Refusal.REVOCATION_UNAVAILABLE, "no revocation source could answer", jws=jws
            )
        return window

    def _ask_ocsp(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: dt.datetime, jws: str
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """From and until when the responder says the certificate is good; None when
        there is no responder to ask or it cannot be reached."""
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
    ) -> tuple[dt.datetime, dt.datetime]:
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
            window = self._check_ocsp_times(single, now, jws)
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
        return window

    def _ask(self, url: str, body: bytes) -> bytes:
        """The transport under one overall deadline: a responder that answers a byte
        at a time cannot hold a login past ``ocsp_timeout``."""
        timeout = self.policy.ocsp_timeout
        future = _OCSP_CALLS.submit(self._transport, url, body, timeout)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            raise OcspUnreachable("the OCSP responder did not answer in time") from None

    def _check_ocsp_times(
        self, single: Any, now: dt.datetime, jws: str
    ) -> tuple[dt.datetime, dt.datetime]:
        skew = self.policy.max_skew
        this_update: dt.datetime = single.this_update_utc
        next_update: dt.datetime | None = single.next_update_utc
        if this_update > now + skew:
            raise AssertionRefused(Refusal.OCSP_TIME, "OCSP thisUpdate is in the future", jws=jws)
        until = next_update if next_update is not None else this_update + self.policy.ocsp_max_age
        if now > until + skew:
            raise AssertionRefused(Refusal.OCSP_TIME, "the OCSP response is stale", jws=jws)
        return this_update - skew, until

    # -- CRL -----------------------------------------------------------------------------

    def _crl_says_good(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        crls: CrlSet,
        now: dt.datetime,
        jws: str,
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """From and until when a fresh CRL of ``issuer`` says the certificate is not
        revoked; refuses if it is listed; None if there is no CRL of that issuer."""
        crl = crls.by_issuer.get(issuer.subject)
        if crl is None:
            return None
        if not crl.signed_by(issuer):
            raise AssertionRefused(
                Refusal.CRL_INVALID, "the CRL's signature is not its issuer's", jws=jws
            )
        skew = self.policy.max_skew
        if crl.last_update > now + skew:
            raise AssertionRefused(Refusal.CRL_INVALID, "the CRL is dated in the future", jws=jws)
        if crl.next_update is None or now > crl.next_update + self.policy.crl_grace:
            raise AssertionRefused(Refusal.REVOCATION_STALE, "the CRL is out of date", jws=jws)
        if crl.lists(certificate.serial_number):
            raise AssertionRefused(
                Refusal.REVOKED, "the certificate is revoked (CRL)", jws=jws, source="crl"
            )
        return crl.last_update - skew, crl.next_update + self.policy.crl_grace


class CrlRefresher:
    """Reads a directory of CRLs again when its files change (name, size, time of
    change), in a thread of its own, and hands the new lists to a checker. Reading
    and indexing happen in this thread with no lock that a verification takes: a
    verification meanwhile uses the lists it has (it shares only the interpreter
    with the refresh; bench/README.md measures what that costs it). A file that
    does not load keeps the old lists in use (they go stale, and logins are then
    refused: fail closed) and is tried again at the next look."""

    def __init__(
        self,
        checker: RevocationChecker,
        directory: Path,
        *,
        every: dt.timedelta,
        load: Callable[[Path], Sequence[RevocationList]] = load_revocation_lists,
    ) -> None:
        self._checker = weakref.ref(checker)  # the thread ends with the checker
        self._directory = directory
        self._every = every.total_seconds()
        self._load = load
        self._seen: tuple[tuple[str, int, int], ...] | None = None  # first look: load
        self._refreshing = threading.Lock()  # one refresh at a time; never a verification's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Look at the files now; replace the checker's CRLs if they changed since
        the last look. True when they were replaced."""
        with self._refreshing:
            checker = self._checker()
            try:
                files = _files_of(self._directory)
                if checker is None or files == self._seen:
                    return False
                lists = self._load(self._directory)  # the slow part: no lock held but ours
            except (TrustConfigError, OSError) as exc:
                context = getattr(exc, "context", {})  # the file at fault, for a TrustConfigError
                _log.warning("CRLs not refreshed, the ones loaded stay in use: %s %s", exc, context)
                return False
            checker.replace_crls(lists)
            self._seen = files
            return True

    def start(self) -> CrlRefresher:
        self._thread = threading.Thread(target=self._run, name="crl-refresh", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._every) and self._checker() is not None:
            try:
                self.refresh()
            except Exception:  # never let the thread die: the next look tries again
                _log.exception("CRL refresh failed")


def refresh_in_background(checker: RevocationChecker, directory: Path) -> CrlRefresher | None:
    """Start a :class:`CrlRefresher` for ``directory`` at the policy's pace
    (``crl_refresh_seconds`` in trust.toml; 0: none)."""
    if not checker.policy.crl_refresh:
        return None
    return CrlRefresher(checker, directory, every=checker.policy.crl_refresh).start()


def _files_of(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What identifies the files' contents cheaply: names, sizes, times of change."""
    if not directory.is_dir():
        return ()  # no directory, no CRLs (load_revocation_lists says the same)
    found = [(p.name, p.stat()) for p in directory.iterdir() if p.is_file()]
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in found))


def _indexed(crls: Sequence[CrlInput]) -> list[RevocationList]:
    return [c if isinstance(c, RevocationList) else RevocationList.from_crl(c) for c in crls]


def _require_complete(
    crl: x509.CertificateRevocationList, extensions: list[x509.Extension[Any]], *, entries: bool
) -> None:
    """Only complete CRLs say that a certificate they do not list is not revoked: a
    delta CRL, a CRL scoped by an issuing distribution point (CA certificates only,
    some reasons, a partition) or one with a critical extension we do not know cannot
    (RFC 5280 § 5.2.4, § 5.2.5, § 6.3.3). Such files are refused at configuration.
    The entries are read only when ``entries`` (a critical flag may be among them):
    reading the extensions of 100,000 entries costs 0.3 s."""
    for extension in extensions:
        if isinstance(extension.value, (x509.DeltaCRLIndicator, x509.IssuingDistributionPoint)):
            raise TrustConfigError(
                "only complete CRLs are supported (no delta, no scope)",
                issuer=crl.issuer.rfc4514_string(),
            )
        if extension.critical:
            raise TrustConfigError(
                "CRL with a critical extension we do not know", oid=extension.oid.dotted_string
            )
    if entries and any(extension.critical for entry in crl for extension in entry.extensions):
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
