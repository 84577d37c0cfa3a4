"""The test PKI's OCSP responder (RFC 6960), on loopback, with faults on demand.

It answers for the two card-issuing CAs, signing with each CA's responder
certificate: ``good`` for the certificates of the personas, ``revoked`` for those
revoked at the time asked, ``unknown`` for anything else. For tests, ``fault``
makes it answer wrongly in one precise way (wrong CertID, bad signature, untrusted
responder, stale or future times, missing or wrong nonce, unknown, HTTP error), so
that each of the verifier's OCSP checks can be seen to bite.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator import keys
from simulator.personas import CpsPersona, Persona, VitalePersona, bundled
from simulator.pki import Authority, SimulatorPki, simulator_pki
from simulator.post_service import PostService

RESPONSE_LIFETIME = dt.timedelta(hours=4)


class Fault(StrEnum):
    NONE = "none"
    UNKNOWN = "unknown"  # every certificate unknown
    WRONG_CERT_ID = "wrong_cert_id"  # the answer is about another serial number
    BAD_SIGNATURE = "bad_signature"  # the signature altered after signing
    UNTRUSTED_RESPONDER = "untrusted_responder"  # a responder no CA issued
    STALE = "stale"  # nextUpdate in the past
    FUTURE = "future"  # thisUpdate tomorrow
    NO_NONCE = "no_nonce"
    WRONG_NONCE = "wrong_nonce"
    HTTP_ERROR = "http_error"  # the responder is down (HTTP 503)


class OcspResponder(PostService):
    """Answers OCSP requests for the simulator's card certificates, and the roots'
    answers for the intermediate CAs and the time-stamping authority."""

    def __init__(
        self,
        pki: SimulatorPki | None = None,
        personas: Iterable[Persona] | None = None,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        super().__init__("ocsp", "application/ocsp-response")
        self.pki = pki or simulator_pki()
        self.fault = Fault.NONE
        self.requests = 0
        self._clock = clock
        self._index = self._index_certificates(personas or bundled().values())

    def _index_certificates(
        self, personas: Iterable[Persona]
    ) -> dict[tuple[str, int], dt.date | None]:
        tsa = self.pki.time_stamping_unit().certificate
        index: dict[tuple[str, int], dt.date | None] = {
            (self.pki.cps_root.slug, self.pki.cps_ca.certificate.serial_number): None,
            (self.pki.vitale_root.slug, self.pki.vitale_ca.certificate.serial_number): None,
            (self.pki.cps_root.slug, tsa.serial_number): None,
        }
        for persona in personas:
            if isinstance(persona, CpsPersona):
                issuer = self.pki.cps_ca
                certificates = self.pki.cps_certificates(persona)
                issued = [certificates.authentication, certificates.signature]
            elif isinstance(persona, VitalePersona):
                issuer = self.pki.vitale_ca
                issued = [self.pki.vitale_certificate(persona)]
            else:
                continue
            for certificate in issued:
                index[(issuer.slug, certificate.serial_number)] = persona.certificate.revoked_on
        return index

    # -- OCSP --------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """The DER response to one DER request."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(Encoding.DER)
        self.requests += 1
        authority = self._authority_for(request)
        if authority is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(Encoding.DER)
        response = self._answer(request, authority)
        data = response.public_bytes(Encoding.DER)
        if self.fault is Fault.BAD_SIGNATURE:  # one bit of the signature flipped
            at = data.index(response.signature) + len(response.signature) // 2
            data = data[:at] + bytes((data[at] ^ 0x01,)) + data[at + 1 :]
        return data

    def _authority_for(self, request: ocsp.OCSPRequest) -> Authority | None:
        for authority in self.pki.authorities:
            if request.issuer_key_hash == _key_hash(authority, request.hash_algorithm):
                return authority
        return None

    def _answer(self, request: ocsp.OCSPRequest, authority: Authority) -> ocsp.OCSPResponse:
        now = self._clock().replace(microsecond=0)
        this_update, next_update = now, now + RESPONSE_LIFETIME
        if self.fault is Fault.STALE:
            this_update, next_update = now - dt.timedelta(days=3), now - dt.timedelta(days=1)
        elif self.fault is Fault.FUTURE:
            this_update, next_update = now + dt.timedelta(days=1), now + dt.timedelta(days=2)
        serial = request.serial_number
        key = (authority.slug, serial)
        status, revoked_at = ocsp.OCSPCertStatus.UNKNOWN, None
        if key in self._index and self.fault is not Fault.UNKNOWN:
            revoked_on = self._index[key]
            if revoked_on is not None and revoked_on <= now.date():
                status = ocsp.OCSPCertStatus.REVOKED
                revoked_at = dt.datetime(
                    revoked_on.year, revoked_on.month, revoked_on.day, tzinfo=dt.UTC
                )
            else:
                status = ocsp.OCSPCertStatus.GOOD
        responder = self.pki.responder(authority)
        signer_certificate, signer_key = responder.certificate, responder.key
        if self.fault is Fault.UNTRUSTED_RESPONDER:
            signer_certificate, signer_key = _rogue_responder()
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial + 1 if self.fault is Fault.WRONG_CERT_ID else serial,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=revoked_at,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer_certificate)
        builder = builder.certificates([signer_certificate])
        nonce = _nonce(request)
        if self.fault is Fault.WRONG_NONCE:
            nonce = secrets.token_bytes(16)
        if nonce is not None and self.fault is not Fault.NO_NONCE:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.sign(signer_key, hashes.SHA256())

    # -- HTTP --------------------------------------------------------------------------

    def answer_post(self, body: bytes) -> bytes | None:
        if self.fault is Fault.HTTP_ERROR:
            return None
        return self.respond(body)


def _key_hash(authority: Authority, algorithm: hashes.HashAlgorithm) -> bytes:
    """The CertID issuerKeyHash: the hash of the CA's public key bits (RFC 6960 § 4.1.1);
    for an RSA key, its PKCS#1 RSAPublicKey."""
    digest = hashes.Hash(algorithm)
    digest.update(authority.key.public_key().public_bytes(Encoding.DER, PublicFormat.PKCS1))
    return digest.finalize()


def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _rogue_responder() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-made responder certificate that no CA of the PKI issued."""
    key = keys.rsa_key("ocsp:rogue")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ROGUE OCSP")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key
