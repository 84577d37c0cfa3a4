"""What a signature is checked against, and what a long-term signature embeds: the
roots of professional cards, the intermediate CAs, the CRLs and the OCSP responder
of a trust directory (the layout of :mod:`cardauth.trust`; ``cardauth-sim
export-trust`` writes the test PKI's), as a pyHanko validation context.

Nothing is fetched from the addresses certificates name (the test PKI's never
resolve, and a verifier decides its sources): revocation comes from the
directory's CRLs and, where trust.toml names a responder, from OCSP answers asked
of it here, before validation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from pyhanko_certvalidator import ValidationContext

from cardauth.revocation import OcspUnreachable, crl_files, http_post, policy_from_settings
from cardauth.signing.errors import RevocationDataUnavailable
from cardauth.trust import TrustConfigError, TrustStore

OCSP_TIMEOUT = 10.0


def to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def is_signature_certificate(certificate: x509.Certificate) -> bool:
    """Key usage nonRepudiation: a CPS card's signature certificate (key ``81``),
    never its authentication certificate."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bool(usage.content_commitment)


@dataclass(frozen=True, slots=True)
class SigningTrust:
    """Roots, intermediates, CRLs (DER) and the OCSP responder to ask, if any."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[bytes, ...] = ()
    ocsp_responder: str | None = None

    @classmethod
    def from_directory(cls, directory: Path) -> SigningTrust:
        """The professional cards' side of a trust directory (the Vitale roots play
        no part in document signatures)."""
        store = TrustStore.load(directory)
        settings = store.settings.get("revocation", {})
        if not isinstance(settings, dict):
            raise TrustConfigError("[revocation] must be a table", file=str(directory))
        policy = policy_from_settings(settings)  # the verifier's rules and defaults
        return cls(
            roots=store.cps_roots,
            intermediates=store.intermediates,
            crls=tuple(der for _, ders in crl_files(directory / "crls") for der in ders),
            ocsp_responder=policy.ocsp_responder if policy.use_ocsp else None,
        )

    def issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        for candidate in (*self.intermediates, *self.roots):
            if candidate.subject == certificate.issuer:
                try:
                    certificate.verify_directly_issued_by(candidate)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                return candidate
        return None

    def chain_of(self, certificate: x509.Certificate) -> tuple[x509.Certificate, ...]:
        """The CA certificates above ``certificate``, up to its root (excluded)."""
        chain: list[x509.Certificate] = []
        current = certificate
        while (issuer := self.issuer_of(current)) is not None and issuer not in self.roots:
            if issuer in chain:
                break
            chain.append(issuer)
            current = issuer
        return tuple(chain)

    def ocsp_answers(self, certificates: Iterable[x509.Certificate]) -> tuple[bytes, ...]:
        """The responder's answers about ``certificates`` (none without a responder).
        A responder that cannot be reached fails: a B-LT signature would then carry
        less than asked for."""
        if self.ocsp_responder is None:
            return ()
        answers = []
        for certificate in certificates:
            issuer = self.issuer_of(certificate)
            if issuer is None:
                continue
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(certificate, issuer, hashes.SHA256())
                .build()
                .public_bytes(Encoding.DER)
            )
            try:
                answers.append(http_post(self.ocsp_responder, request, OCSP_TIMEOUT))
            except OcspUnreachable as exc:
                raise RevocationDataUnavailable(
                    "the OCSP responder cannot be reached", url=self.ocsp_responder
                ) from exc
        return tuple(answers)

    def validation_context(
        self,
        *,
        moment: dt.datetime | None = None,
        ocsps: Iterable[bytes] = (),
        crls: Iterable[bytes] = (),
    ) -> ValidationContext:
        """A pyHanko validation context that fetches nothing and requires revocation
        data for every certificate below a root: the directory's CRLs, and the CRLs
        and OCSP answers given (a document's own, from its DSS: each counts only
        once its signature is checked against the CA, as any other)."""
        return ValidationContext(
            trust_roots=[to_asn1(c) for c in self.roots],
            other_certs=[to_asn1(c) for c in self.intermediates],
            crls=[*self.crls, *crls],
            ocsps=list(ocsps),
            allow_fetching=False,
            revocation_mode="require",
            moment=moment,
        )
