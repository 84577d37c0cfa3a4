"""The test PKI's time-stamping authority (RFC 3161), on loopback, with faults on
demand.

It answers time-stamp requests (``application/timestamp-query``, RFC 3161 § 3.4)
with tokens signed by ``TEST HORODATAGE IGC-SANTE``, a certificate of the CPS root
with the extended key usage id-kp-timeStamping alone (§ 2.3). The tokens are made
by pyHanko's own time stamper for tests, under a policy of our test arc (no test
token can pass for a real TSA's). ``fault`` makes it fail in one precise way, so
that the signer's refusals can be seen: the service down (HTTP 503), bytes that are
no answer, a refusal (PKIStatus rejection).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from enum import StrEnum

from asn1crypto import keys, tsp, x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from simulator.pki import TEST_ARC, SimulatorPki, simulator_pki
from simulator.post_service import PostService

TIME_STAMP_POLICY = f"{TEST_ARC}.4.1"
DEFAULT_TSA_PORT = 35981


class Fault(StrEnum):
    NONE = "none"
    HTTP_ERROR = "http_error"  # the TSA is down (HTTP 503)
    GARBAGE = "garbage"  # an answer that is no TimeStampResp
    REJECTED = "rejected"  # PKIStatus rejection, no token


class _TestPolicyStamper(DummyTimeStamper):
    """pyHanko's time stamper for tests, stamping under our test policy."""

    def _build_tst_info(
        self, message_imprint: tsp.MessageImprint, dt: dt.datetime, req: tsp.TimeStampReq
    ) -> tsp.TSTInfo:
        info = super()._build_tst_info(message_imprint, dt, req)
        info["policy"] = tsp.ObjectIdentifier(TIME_STAMP_POLICY)
        return info


class TimeStampAuthority(PostService):
    """Answers RFC 3161 time-stamp requests at the time its clock says."""

    def __init__(
        self,
        pki: SimulatorPki | None = None,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        super().__init__("tsa", "application/timestamp-reply")
        pki = pki or simulator_pki()
        unit = pki.time_stamping_unit()
        self.fault = Fault.NONE
        self.requests = 0
        self._clock = clock
        self._certificate = x509.Certificate.load(unit.certificate.public_bytes(Encoding.DER))
        self._key = keys.PrivateKeyInfo.load(
            unit.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        )

    def respond(self, request_der: bytes) -> bytes:
        """The DER TimeStampResp to one DER TimeStampReq."""
        try:
            request = tsp.TimeStampReq.load(request_der)
            request.native  # noqa: B018 - decodes it all: a bad request fails here
        except ValueError:
            return _refusal("bad_data_format")
        self.requests += 1
        if self.fault is Fault.REJECTED:
            return _refusal("bad_request")
        stamper = _TestPolicyStamper(
            self._certificate, self._key, fixed_dt=self._clock().replace(microsecond=0)
        )
        answer: bytes = stamper.request_tsa_response(request).dump()
        return answer

    def answer_post(self, body: bytes) -> bytes | None:
        if self.fault is Fault.HTTP_ERROR:
            return None
        if self.fault is Fault.GARBAGE:
            return b"\x30\x03not a time stamp"
        return self.respond(body)


def _refusal(failure: str) -> bytes:
    """A TimeStampResp with status rejection and its failure reason, and no token
    (§ 2.4.2; asn1crypto's TimeStampResp wants the token, so the SEQUENCE is ours)."""
    status: bytes = tsp.PKIStatusInfo({"status": "rejection", "fail_info": {failure}}).dump()
    return bytes((0x30, len(status))) + status
