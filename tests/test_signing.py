"""Document signatures with the CPS card's signature key, made by ``cardauth sign``
on simulated cards plugged into the real pcscd (vpcd), and checked by tools no one
here wrote: ``pdfsig`` (poppler, NSS) for the PDFs, ``openssl cms -verify`` for
CAdES and S/MIME, and pyHanko's validator (``cardauth verify-signature``), each
with the test PKI as trust; each refuses a tampered document."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader

from cardauth.cli import main
from cardauth.signing import smime
from cardauth.transport.pcsc import PcscBackend
from simulator.card import VirtualCard
from simulator.faults import Fault
from simulator.ocsp import Fault as OcspFault
from simulator.pcscd import READER_NAMES, PrivatePcscd
from simulator.personas import load
from simulator.pki import simulator_pki
from simulator.workstation import Workstation, vpcd_workstation
from tests.signing_kit import Pki, make_pdf, pdfsig, running_pki

pytestmark = pytest.mark.pcscd

PIN = "1234"
SLOT_WAIT = 10.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    with running_pki(tmp_path_factory.mktemp("signing-pki")) as running:
        yield running


@dataclass
class Reader:
    """A CPS card in the private pcscd's first vpcd slot."""

    workstation: Workstation
    backend: PcscBackend

    def insert(self, persona: str) -> VirtualCard:
        self.workstation.insert(0, persona)
        self._wait(present=True)
        card = self.workstation.card_in(0)
        assert card is not None
        return card

    def _wait(self, *, present: bool) -> None:
        deadline = dt.datetime.now() + dt.timedelta(seconds=SLOT_WAIT)
        while self.backend.slot_states()[READER_NAMES[0]].card_present != present:
            assert dt.datetime.now() < deadline, f"slot never became present={present}"


@pytest.fixture
def reader(pcscd: PrivatePcscd) -> Iterator[Reader]:
    workstation = vpcd_workstation(port=pcscd.vpcd_port)
    made = Reader(workstation, PcscBackend())
    made._wait(present=False)
    try:
        yield made
    finally:
        workstation.close()
        made.backend.close()


def cardauth(
    monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = f"{PIN}\n"
) -> tuple[int, dict[str, object]]:
    """``cardauth --json ARGS`` through PC/SC, the PIN on standard input."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    out = io.StringIO()
    status = main(["--json", *args], stream=out)
    answer: dict[str, object] = json.loads(out.getvalue())
    return status, answer


def sign(
    monkeypatch: pytest.MonkeyPatch,
    pki: Pki,
    document: Path,
    output: Path,
    *options: str,
    stdin: str = f"{PIN}\n",
) -> tuple[int, dict[str, object]]:
    return cardauth(
        monkeypatch,
        "sign",
        str(document),
        "--output",
        str(output),
        "--trust",
        str(pki.trust),
        "--tsa-url",
        pki.tsa.url,
        "--pin-stdin",
        *options,
        stdin=stdin,
    )


def error_code(answer: dict[str, object]) -> object:
    error = answer["error"]
    assert isinstance(error, dict)
    return error["code"]


def openssl_verify(pki: Pki, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "cms", "-verify", "-CAfile", str(pki.root), "-out", "/dev/null", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )


def flip(data: bytes, marker: bytes) -> bytes:
    at = data.index(marker)
    return data[:at] + bytes((data[at] ^ 0x01,)) + data[at + 1 :]


# -- PAdES, checked by pdfsig and pyHanko ----------------------------------------------------


@pytest.mark.parametrize("level", ["b-b", "b-t", "b-lt"])
def test_pdfsig_and_pyhanko_accept_each_pades_level_and_refuse_it_tampered(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path, level: str
) -> None:
    reader.insert("doctor")
    document, signed = tmp_path / "ordonnance.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed, "--level", level)
    assert status == 0, answer
    report = pdfsig(pki, signed)
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report
    assert "ETSI.CAdES.detached" in report  # PAdES, not adbe.pkcs7.detached
    status, verified = cardauth(
        monkeypatch, "verify-signature", str(signed), "--trust", str(pki.trust)
    )
    assert status == 0, verified
    signatures = verified["signatures"]
    assert isinstance(signatures, list)
    [signature] = signatures
    assert signature["level"] == level
    assert signature["idnat"] == "899700420013"
    assert (signature["timestamp"] is None) == (level == "b-b")

    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(flip(signed.read_bytes(), b"Ordonnance"))
    assert "Digest Mismatch" in pdfsig(pki, tampered)
    assert "Signature is Valid" not in pdfsig(pki, tampered)
    status, refused = cardauth(
        monkeypatch, "verify-signature", str(tampered), "--trust", str(pki.trust)
    )
    assert (status, error_code(refused)) == (1, "signature.invalid")


def test_a_long_term_pdf_carries_the_revocation_data_in_its_dss(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    assert sign(monkeypatch, pki, document, signed, "--level", "b-lt")[0] == 0
    dss = PdfFileReader(io.BytesIO(signed.read_bytes())).root["/DSS"]
    assert len(dss["/CRLs"]) >= 2  # the card's CA's, the root's (the CA, the TSA)
    assert len(dss["/OCSPs"]) >= 1  # the responder's answer about the card's certificate
    assert len(dss["/Certs"]) >= 3


# -- CAdES and S/MIME, checked by openssl cms ---------------------------------------------------


def test_openssl_verifies_a_detached_cades_signature_and_refuses_altered_content(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    content, signature = tmp_path / "compte-rendu.bin", tmp_path / "compte-rendu.p7s"
    content.write_bytes(bytes(range(256)) * 40)
    status, answer = sign(
        monkeypatch, pki, content, signature, "--format", "cades", "--level", "b-t"
    )
    assert status == 0, answer
    # -binary: the content is compared byte for byte (no S/MIME text canonicalisation);
    # no -purpose: the signature certificate's emailProtection usage is what openssl's
    # default (smimesign) asks.
    checked = openssl_verify(
        pki, "-binary", "-inform", "DER", "-in", str(signature), "-content", str(content)
    )
    assert checked.returncode == 0, checked.stderr
    assert "Verification successful" in checked.stderr
    altered = tmp_path / "altered.bin"
    altered.write_bytes(flip(content.read_bytes(), b"\x10"))
    refused = openssl_verify(
        pki, "-binary", "-inform", "DER", "-in", str(signature), "-content", str(altered)
    )
    assert refused.returncode != 0
    assert "content verify error" in refused.stderr
    status, verified = cardauth(
        monkeypatch,
        "verify-signature",
        str(signature),
        "--content",
        str(content),
        "--trust",
        str(pki.trust),
    )
    assert status == 0, verified
    status, rejected = cardauth(
        monkeypatch,
        "verify-signature",
        str(signature),
        "--content",
        str(altered),
        "--trust",
        str(pki.trust),
    )
    assert (status, error_code(rejected)) == (1, "signature.invalid")


def test_openssl_verifies_an_smime_message_and_refuses_it_altered(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    message, signed = tmp_path / "message.txt", tmp_path / "message.eml"
    message.write_text("Cher confrère,\nvoici le compte rendu de Mme Robin.\n", encoding="utf-8")
    status, answer = sign(monkeypatch, pki, message, signed, "--format", "smime")
    assert status == 0, answer
    assert b"multipart/signed" in signed.read_bytes()
    assert b"application/pkcs7-signature" in signed.read_bytes()
    checked = openssl_verify(pki, "-in", str(signed))
    assert checked.returncode == 0, checked.stderr
    entity, _signature = smime.split_signed(signed.read_bytes())
    altered = tmp_path / "altered.eml"
    altered.write_bytes(signed.read_bytes().replace(entity, flip(entity, b"Content-Transfer")))
    assert openssl_verify(pki, "-in", str(altered)).returncode != 0
    assert cardauth(monkeypatch, "verify-signature", str(signed), "--trust", str(pki.trust))[0] == 0
    status, rejected = cardauth(
        monkeypatch, "verify-signature", str(altered), "--trust", str(pki.trust)
    )
    assert (status, error_code(rejected)) == (1, "signature.invalid")


# -- which key, which PIN -------------------------------------------------------------------------


def test_the_signature_key_signed_not_the_authentication_key(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    content, signature = tmp_path / "data", tmp_path / "data.p7s"
    content.write_bytes(b"document")
    assert sign(monkeypatch, pki, content, signature, "--format", "cades")[0] == 0
    signed_data = cms.ContentInfo.load(signature.read_bytes())["content"]
    signer_id = signed_data["signer_infos"][0]["sid"].chosen
    certificates = {
        c.chosen.serial_number: x509.load_der_x509_certificate(c.chosen.dump())
        for c in signed_data["certificates"]
    }
    certificate = certificates[signer_id["serial_number"].native]
    card = simulator_pki().cps_certificates(load("doctor"))  # type: ignore[arg-type]
    assert certificate == card.signature
    assert certificate != card.authentication
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment  # nonRepudiation


def test_a_pin_left_verified_by_a_login_does_not_sign_a_document(pki: Pki, reader: Reader) -> None:
    from cardauth.cards.cps import CpsCard
    from cardauth.cards.identify import open_card
    from cardauth.cards.session import pin_session
    from cardauth.cards.signature import sign_digest
    from cardauth.errors import WrongPin

    virtual = reader.insert("doctor")
    card = open_card(reader.backend, READER_NAMES[0])
    assert isinstance(card, CpsCard)
    with pin_session(card, PIN, keep=True):  # a login the bridge keeps for a while
        card.authenticate(bytes(32))
    assert virtual.verified_codes  # the PIN stays verified on the card
    with pytest.raises(WrongPin):
        sign_digest(card, bytes(32), "9999")  # the holder did not give the PIN
    assert not virtual.verified_codes
    assert card.pin_status().tries_left == 2
    sign_digest(card, bytes(32), PIN)
    assert not virtual.verified_codes  # logged out after the signature
    card.channel.close()


def test_the_pin_is_asked_for_each_signature(pki: Pki, reader: Reader) -> None:
    from cardauth.cards.cps import CpsCard
    from cardauth.cards.identify import open_card
    from cardauth.signing.card_signer import CardSigner
    from cardauth.signing.levels import Level
    from cardauth.signing.pades import sign_pdf

    reader.insert("doctor")
    card = open_card(reader.backend, READER_NAMES[0])
    assert isinstance(card, CpsCard)
    asked: list[int] = []

    def pin() -> str:
        asked.append(1)
        return PIN

    signer = CardSigner(card, pin)
    once = sign_pdf(make_pdf(), signer, level=Level.B_B)
    sign_pdf(once, signer, level=Level.B_B)
    assert len(asked) == 2
    card.channel.close()


# -- refusals --------------------------------------------------------------------------------------


def test_a_wrong_pin_burns_one_try_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    virtual = reader.insert("doctor")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed, stdin="0000\n")
    assert (status, error_code(answer)) == (1, "pin.wrong")
    assert answer["error"]["tries_left"] == 2  # type: ignore[index]
    assert virtual.spec.pins[1].tries_left == 2
    assert list(tmp_path.iterdir()) == [document]


def test_a_pin_of_the_wrong_format_burns_no_try(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    virtual = reader.insert("doctor")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed, stdin="12\n")
    assert (status, error_code(answer)) == (1, "pin.format")
    assert virtual.spec.pins[1].tries_left == 3
    assert not signed.exists()


def test_a_blocked_pin_is_refused(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("cps-blocked")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed)
    assert (status, error_code(answer)) == (1, "pin.blocked")
    assert not signed.exists()


def test_a_card_pulled_while_it_signs_leaves_no_file(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    virtual = reader.insert("doctor")
    virtual.faults.arm(Fault.REMOVAL, ins=0x2A)  # at PSO HASH
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed)
    assert status == 1
    # Through vpcd the card drops out with the command in flight: pcscd reports no
    # answer to it (docs/simulator.md, Faults).
    assert error_code(answer) in ("transport.card_removed", "transport.card_mute")
    assert list(tmp_path.iterdir()) == [document]


def test_an_expired_certificate_is_refused_before_the_pin(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    virtual = reader.insert("cps-expired")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed, stdin="")
    assert (status, error_code(answer)) == (1, "card.expired")
    assert virtual.spec.pins[1].tries_left == 3
    assert not signed.exists()


def test_a_revoked_signer_is_refused_by_the_verification(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("cps-revoked")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    assert sign(monkeypatch, pki, document, signed)[0] == 0
    status, answer = cardauth(
        monkeypatch, "verify-signature", str(signed), "--trust", str(pki.trust)
    )
    assert (status, error_code(answer)) == (1, "signature.revoked")


def test_a_document_that_is_no_pdf_is_refused_before_the_pin(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    virtual = reader.insert("doctor")
    document, signed = tmp_path / "note.pdf", tmp_path / "signed.pdf"
    document.write_text("not a PDF at all", encoding="utf-8")
    status, answer = sign(monkeypatch, pki, document, signed, stdin="")
    assert (status, error_code(answer)) == (1, "signing.document_invalid")
    assert virtual.spec.pins[1].tries_left == 3
    assert not signed.exists()


def test_an_output_that_cannot_be_written_is_refused_before_the_pin(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    document, original = tmp_path / "doc.pdf", make_pdf()
    document.write_bytes(original)
    status, answer = sign(monkeypatch, pki, document, tmp_path / "missing" / "signed.pdf", stdin="")
    assert (status, error_code(answer)) == (1, "signing.output_not_writable")
    status, answer = sign(monkeypatch, pki, document, document, stdin="")
    assert (status, error_code(answer)) == (1, "signing.output_exists")
    assert document.read_bytes() == original


def test_an_unreachable_tsa_is_refused_and_leaves_no_file(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = cardauth(
        monkeypatch, "sign", str(document), "-o", str(signed), "--trust", str(pki.trust),
        "--level", "b-t", "--tsa-url", "http://127.0.0.1:9/", "--pin-stdin",
    )  # fmt: skip
    assert (status, error_code(answer)) == (1, "signing.tsa_unreachable")
    assert list(tmp_path.iterdir()) == [document]


def test_force_replaces_an_existing_output(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    signed.write_bytes(b"old")
    assert sign(monkeypatch, pki, document, signed, "--force")[0] == 0
    assert signed.read_bytes().startswith(b"%PDF-")
    assert shutil.disk_usage(tmp_path)  # the temporary file went with the rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.pdf", "signed.pdf"]


def test_a_long_term_pdf_is_checked_with_its_own_revocation_data(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    """Years later the day's CRLs are gone: a B-LT PDF carries them (and the OCSP
    answer), a B-T PDF does not."""
    reader.insert("doctor")
    document = tmp_path / "doc.pdf"
    document.write_bytes(make_pdf())
    long_term, timed = tmp_path / "b-lt.pdf", tmp_path / "b-t.pdf"
    assert sign(monkeypatch, pki, document, long_term, "--level", "b-lt")[0] == 0
    assert sign(monkeypatch, pki, document, timed, "--level", "b-t")[0] == 0
    roots_only = tmp_path / "roots-only"
    shutil.copytree(pki.trust, roots_only)
    shutil.rmtree(roots_only / "crls")
    settings = roots_only / "trust.toml"
    settings.write_text(
        settings.read_text(encoding="utf-8").replace("use_ocsp = true", "use_ocsp = false"),
        encoding="utf-8",
    )
    status, verified = cardauth(
        monkeypatch, "verify-signature", str(long_term), "--trust", str(roots_only)
    )
    assert status == 0, verified
    status, refused = cardauth(
        monkeypatch, "verify-signature", str(timed), "--trust", str(roots_only)
    )
    assert (status, error_code(refused)) == (1, "signature.revocation_unknown")


def test_a_revoked_signer_is_refused_before_a_long_term_signature(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("cps-revoked")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    status, answer = sign(monkeypatch, pki, document, signed, "--level", "b-lt", stdin="")
    assert (status, error_code(answer)) == (1, "signing.certificate_rejected")  # no PIN read
    assert list(tmp_path.iterdir()) == [document]


def test_a_long_term_signature_without_its_revocation_data_is_refused_before_the_pin(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, reader: Reader, tmp_path: Path
) -> None:
    reader.insert("doctor")
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    pki.ocsp.fault = OcspFault.HTTP_ERROR
    try:
        status, answer = sign(monkeypatch, pki, document, signed, "--level", "b-lt", stdin="")
    finally:
        pki.ocsp.fault = OcspFault.NONE
    assert (status, error_code(answer)) == (1, "signing.revocation_unavailable")
    assert list(tmp_path.iterdir()) == [document]
