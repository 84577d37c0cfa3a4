"""Deferred signing for a teleservice (cardauth.signing.deferred): the server
prepares, the card signs the hash elsewhere (here, the simulated card through the
real pcscd, as the bridge would have it sign), the server finishes. The results
are checked by pdfsig, openssl cms and pyHanko; what comes back from the
workstation is untrusted input and is refused with a code when it is wrong."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.identify import open_card
from cardauth.cards.signature import sign_digest
from cardauth.signing import deferred, verification
from cardauth.signing.errors import (
    CertificateNotForSigning,
    DeferredStateInvalid,
    DocumentInvalid,
    SignatureValueInvalid,
)
from cardauth.signing.levels import Level
from cardauth.signing.timestamps import HttpTimeStamper
from cardauth.signing.trust import SigningTrust
from simulator.pcscd import READER_NAMES
from tests.conftest import Station
from tests.signing_kit import Pki, make_pdf, pdfsig, running_pki

pytestmark = pytest.mark.pcscd

PIN = "1234"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    with running_pki(tmp_path_factory.mktemp("signing-pki")) as running:
        yield running


@pytest.fixture
def card(pcscd_station: Station) -> Iterator[CpsCard]:
    pcscd_station.insert(0, "doctor")
    opened = open_card(pcscd_station.backend, READER_NAMES[0])
    assert isinstance(opened, CpsCard)
    try:
        yield opened
    finally:
        opened.channel.close()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.mark.parametrize("level", list(Level))
def test_a_deferred_pdf_signature_is_accepted_by_pdfsig_and_pyhanko(
    pki: Pki,
    card: CpsCard,
    tmp_path: Path,
    level: Level,
) -> None:
    trust = SigningTrust.from_directory(pki.trust)
    certificate = card.certificate(KeyRole.SIGNATURE)
    # On the teleservice's server: the card's certificate, as the bridge reports it.
    prepared = deferred.prepare_pdf(
        make_pdf(), certificate.public_bytes(Encoding.DER), chain=trust.chain_of(certificate)
    )
    assert len(prepared.digest) == 32
    # On the workstation: the bridge has the card sign the hash (PKCS#1 v1.5).
    raw = sign_digest(card, prepared.digest, PIN).signature
    # Back on the server.
    signed = deferred.finish_pdf(
        prepared.state,
        raw,
        time_stamper=HttpTimeStamper(pki.tsa.url) if level.time_stamped else None,
        validation_context=(
            trust.validation_context(ocsps=trust.ocsp_answers([certificate]))
            if level is Level.B_LT
            else None
        ),
    )
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    report = pdfsig(pki, path)
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report
    [verified] = verification.verify_pdf(signed, trust, now=now())
    assert verified.level is level
    assert verified.certificate == certificate


def test_a_deferred_cms_signature_is_accepted_by_openssl(
    pki: Pki,
    card: CpsCard,
    tmp_path: Path,
) -> None:
    trust = SigningTrust.from_directory(pki.trust)
    certificate = card.certificate(KeyRole.SIGNATURE)
    content = b"Compte rendu d'hospitalisation\n"
    prepared = deferred.prepare_cms(content, certificate, chain=trust.chain_of(certificate))
    signature = deferred.finish_cms(
        prepared.state,
        sign_digest(card, prepared.digest, PIN).signature,
        time_stamper=HttpTimeStamper(pki.tsa.url),
    )
    (tmp_path / "content").write_bytes(content)
    (tmp_path / "content.p7s").write_bytes(signature)
    checked = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-CAfile", str(pki.root),
         "-in", str(tmp_path / "content.p7s"), "-content", str(tmp_path / "content"),
         "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert verification.verify_detached(signature, content, trust, now=now()).level is Level.B_T


def test_a_signature_that_is_not_over_the_prepared_hash_is_refused(
    pki: Pki,
    card: CpsCard,
) -> None:
    certificate = card.certificate(KeyRole.SIGNATURE)
    prepared = deferred.prepare_pdf(make_pdf(), certificate)
    other = sign_digest(card, bytes(32), PIN).signature  # the card's, over another hash
    with pytest.raises(SignatureValueInvalid):
        deferred.finish_pdf(prepared.state, other)
    with pytest.raises(SignatureValueInvalid):
        deferred.finish_pdf(prepared.state, b"\x00" * 7)


def test_the_authentication_certificate_cannot_prepare_a_signature(card: CpsCard) -> None:
    authentication = card.certificate(KeyRole.AUTHENTICATION)
    with pytest.raises(CertificateNotForSigning):
        deferred.prepare_pdf(make_pdf(), authentication)
    with pytest.raises(CertificateNotForSigning):
        deferred.prepare_cms(b"data", b"not a certificate")


def test_a_damaged_or_foreign_state_is_refused(card: CpsCard) -> None:
    certificate = card.certificate(KeyRole.SIGNATURE)
    prepared = deferred.prepare_cms(b"data", certificate)
    raw = sign_digest(card, prepared.digest, PIN).signature
    with pytest.raises(DeferredStateInvalid):
        deferred.finish_pdf(prepared.state, raw)  # a CMS state given to finish a PDF
    with pytest.raises(DeferredStateInvalid):
        deferred.finish_cms(b"{not json", raw)
    state = json.loads(prepared.state)
    state["signed_attributes"] = "!!"
    with pytest.raises(DeferredStateInvalid):
        deferred.finish_cms(json.dumps(state).encode(), raw)
    pdf = json.loads(deferred.prepare_pdf(make_pdf(), certificate).state)
    pdf["reserved"] = [10**9, 10**9 + 5]
    with pytest.raises((DeferredStateInvalid, SignatureValueInvalid)):
        deferred.finish_pdf(json.dumps(pdf).encode(), raw)


def test_a_document_that_is_no_pdf_cannot_be_prepared(card: CpsCard) -> None:
    with pytest.raises(DocumentInvalid):
        deferred.prepare_pdf(b"%PDF-1.7 but nothing else", card.certificate(KeyRole.SIGNATURE))


def test_the_deferred_api_imports_no_pyscard() -> None:
    """A teleservice's server has no pyscard: preparing and finishing never load it."""
    probe = (
        "import sys, cardauth.signing.deferred, cardauth.signing.verification; "
        "print('smartcard' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
