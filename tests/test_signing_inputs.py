"""What a signature's verification and the time-stamping authority do with bytes
they should not trust: every damaged signature, message or PDF is a refusal with a
code, never a traceback; the authority's failures are typed refusals of the signer.
On in-process virtual cards (the pcscd path is in test_signing.py)."""

from __future__ import annotations

import datetime as dt
import io
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import keys, tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import open_card
from cardauth.cards.session import Keypad
from cardauth.cli import main
from cardauth.errors import CardAuthError
from cardauth.signing import cades, pades, smime, verification
from cardauth.signing.card_signer import CardSigner
from cardauth.signing.commands import pin_source
from cardauth.signing.errors import (
    SignatureMalformed,
    SignatureMissing,
    SignatureUntrusted,
    SignatureWrongKey,
    TsaAnswerInvalid,
    TsaUnreachable,
)
from cardauth.signing.levels import Level
from cardauth.signing.timestamps import HttpTimeStamper
from cardauth.signing.trust import SigningTrust, to_asn1
from simulator.personas import load_cps
from simulator.pki import TEST_ARC, cps_key, simulator_pki
from simulator.post_service import PostService
from simulator.readers import VirtualReaders
from simulator.trust_export import export_trust
from simulator.tsa import Fault, TimeStampAuthority
from tests.signing_kit import make_pdf
from tests.support import card_for

PIN = "1234"
FLIPS = 120


@pytest.fixture(scope="module")
def trust_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trust")
    export_trust(folder, now=dt.datetime.now(dt.UTC))
    return folder


@pytest.fixture(scope="module")
def trust(trust_folder: Path) -> SigningTrust:
    return SigningTrust.from_directory(trust_folder)


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(args), stream=out)
    return status, out.getvalue()


@pytest.fixture
def signer(trust: SigningTrust) -> CardSigner:
    readers = VirtualReaders()
    readers.insert(0, card_for("doctor"))
    card = open_card(readers, readers.slot_names[0])
    assert isinstance(card, CpsCard)
    return CardSigner(card, lambda: PIN, chain=trust.intermediates)


@pytest.fixture
def tsa() -> Iterator[TimeStampAuthority]:
    authority = TimeStampAuthority().start()
    try:
        yield authority
    finally:
        authority.stop()


def flipped(data: bytes, seed: int) -> list[bytes]:
    """``data`` with one bit flipped, at random places (seeded: the same each run)."""
    chooser = random.Random(seed)
    out = []
    for _ in range(FLIPS):
        at = chooser.randrange(len(data))
        out.append(data[:at] + bytes((data[at] ^ 1 << chooser.randrange(8),)) + data[at + 1 :])
    return out


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_damaged_signatures_are_refusals_with_codes(
    signer: CardSigner, trust: SigningTrust, tsa: TimeStampAuthority
) -> None:
    stamper = HttpTimeStamper(tsa.url)
    content = b"content\n"
    detached = cades.sign_detached(content, signer, level=Level.B_T, time_stamper=stamper)
    message = smime.sign_message(content, signer, level=Level.B_B)
    pdf = pades.sign_pdf(make_pdf(), signer, level=Level.B_T, time_stamper=stamper)
    codes: set[str] = set()
    for damaged in flipped(detached, 1):
        try:
            verification.verify_detached(damaged, content, trust, now=now())
        except CardAuthError as refused:
            codes.add(refused.code)
    for damaged in flipped(message, 2):
        try:
            verification.verify_smime(damaged, trust, now=now())
        except CardAuthError as refused:
            codes.add(refused.code)
    for damaged in flipped(pdf, 3):
        try:
            verification.verify_pdf(damaged, trust, now=now())
        except CardAuthError as refused:
            codes.add(refused.code)
    assert {"signature.invalid", "signature.malformed"} <= codes


def test_what_is_not_a_signature_is_said_so(trust: SigningTrust) -> None:
    with pytest.raises(SignatureMalformed):
        verification.verify_detached(b"\x30\x03abc", b"x", trust, now=now())
    with pytest.raises(SignatureMalformed):
        verification.verify_smime(b"Subject: hello\r\n\r\nno signature", trust, now=now())
    with pytest.raises(SignatureMissing):
        verification.verify_pdf(make_pdf(), trust, now=now())
    with pytest.raises(SignatureMalformed):
        verification.verify_pdf(b"%PDF-1.7\nnothing", trust, now=now())


def test_a_signature_by_a_card_of_another_pki_is_untrusted(
    signer: CardSigner, tmp_path: Path
) -> None:
    """Trust only the Vitale root as if it were the professionals' (another PKI)."""
    other = SigningTrust(roots=(simulator_pki().vitale_root.certificate,))
    signed = pades.sign_pdf(make_pdf(), signer, level=Level.B_B)
    with pytest.raises(SignatureUntrusted):
        verification.verify_pdf(signed, other, now=now())


@pytest.mark.parametrize(
    ("fault", "refusal"),
    [
        (Fault.HTTP_ERROR, TsaUnreachable),
        (Fault.GARBAGE, TsaAnswerInvalid),
        (Fault.REJECTED, TsaAnswerInvalid),
    ],
)
def test_a_failing_tsa_is_a_typed_refusal(
    signer: CardSigner, tsa: TimeStampAuthority, fault: Fault, refusal: type[CardAuthError]
) -> None:
    tsa.fault = fault
    with pytest.raises(refusal):
        cades.sign_detached(b"x", signer, level=Level.B_T, time_stamper=HttpTimeStamper(tsa.url))


class ReplayingAuthority(PostService):
    """A time-stamping authority that answers every request with one answer it
    recorded for another request (another nonce, another imprint)."""

    def __init__(self, recorded: bytes) -> None:
        super().__init__("replaying-tsa", "application/timestamp-reply")
        self.recorded = recorded

    def answer_post(self, body: bytes) -> bytes | None:
        return self.recorded


def test_a_tsa_answer_to_another_request_is_a_typed_refusal(
    signer: CardSigner, tsa: TimeStampAuthority
) -> None:
    """pyHanko's own check of the nonce fails with its own error (or a bare one as
    it describes it): cardauth says what the authority did wrong, with a code."""
    request = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": bytes(32),
            },
            "nonce": 1,
            "cert_req": True,
        }
    )
    recorded = tsa.respond(request.dump())
    replaying = ReplayingAuthority(recorded).start()
    try:
        with pytest.raises(TsaAnswerInvalid):
            cades.sign_detached(
                b"x", signer, level=Level.B_T, time_stamper=HttpTimeStamper(replaying.url)
            )
    finally:
        replaying.stop()


def test_the_tsa_stamps_under_the_test_pki_as_openssl_checks(
    tsa: TimeStampAuthority, tmp_path: Path
) -> None:
    certificate = simulator_pki().time_stamping_unit().certificate
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical  # RFC 3161 § 2.3
    assert list(usage.value) == [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]
    data = tmp_path / "data"
    data.write_bytes(b"stamped")
    query = tmp_path / "query.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)],
        check=True,
        capture_output=True,
    )
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(tsa.respond(query.read_bytes()))
    token = tsp.TimeStampResp.load(reply.read_bytes())["time_stamp_token"]
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["policy"].dotted == f"{TEST_ARC}.4.1"
    root = tmp_path / "root.pem"
    root.write_bytes(simulator_pki().cps_root.certificate.public_bytes(Encoding.PEM))
    checked = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(reply), "-queryfile", str(query),
         "-CAfile", str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Verification: OK" in checked.stdout


def test_sign_and_verify_on_simulated_cards_in_french_and_english(
    trust_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document, signed = tmp_path / "doc.pdf", tmp_path / "signed.pdf"
    document.write_bytes(make_pdf())
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PIN}\n"))
    status, said = run(
        "--simulate", "sign", str(document), "-o", str(signed), "--trust", str(trust_folder),
        "--pin-stdin",
    )  # fmt: skip
    assert status == 0
    assert said.startswith(f"Document signé : {signed}\n")
    status, said = run("verify-signature", str(signed), "--trust", str(trust_folder))
    assert status == 0
    assert "Signature valide" in said
    assert "Signataire : Élise FONTAINE" in said
    assert "IdNat 899700420013" in said
    status, said = run(
        "--lang", "en", "verify-signature", str(signed), "--trust", str(trust_folder)
    )
    assert "Valid signature" in said
    assert "Signer: Élise FONTAINE" in said


def test_refusals_are_said_in_french_by_default_and_in_english_when_asked(
    trust_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = tmp_path / "doc.pdf"
    unsigned.write_bytes(make_pdf())
    assert run("verify-signature", str(unsigned), "--trust", str(trust_folder))[0] == 1
    assert capsys.readouterr().err.startswith(
        "Erreur [signature.missing] : Ce document ne porte aucune signature."
    )
    run("--lang", "en", "verify-signature", str(unsigned), "--trust", str(trust_folder))
    assert capsys.readouterr().err.startswith(
        "Error [signature.missing]: This document carries no signature."
    )
    status, _ = run(
        "--simulate", "sign", str(unsigned), "-o", str(tmp_path / "x.pdf"), "--trust",
        str(trust_folder), "--level", "b-t",
    )  # fmt: skip
    assert status == 1
    assert "[signing.tsa_required]" in capsys.readouterr().err


def test_the_pin_typed_on_the_reader_s_keypad_signs_a_document(trust: SigningTrust) -> None:
    readers = VirtualReaders()
    readers.insert(0, card_for("doctor"))
    keypad = readers.add_pinpad(0)
    card = open_card(readers, readers.slot_names[0])
    assert isinstance(card, CpsCard)
    ask = pin_source(card, False, "never shown")  # what cardauth sign does without --pin-stdin
    assert ask() is Keypad.ENTRY
    keypad.type(PIN)
    signed = pades.sign_pdf(
        make_pdf(), CardSigner(card, ask, chain=trust.intermediates), level=Level.B_B
    )
    [verified] = verification.verify_pdf(signed, trust, now=now())
    assert verified.idnat == "899700420013"


def test_a_document_signed_by_the_authentication_key_is_refused(
    trust: SigningTrust, tmp_path: Path
) -> None:
    """pyHanko signing with the doctor's authentication key (derived by the simulator):
    cardauth's verification refuses it, and so does openssl's default purpose."""
    persona = load_cps("doctor")
    certificate = to_asn1(simulator_pki().cps_certificates(persona).authentication)
    key = keys.PrivateKeyInfo.load(
        cps_key(persona, "authentication").private_bytes(
            Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    intermediate = to_asn1(simulator_pki().cps_ca.certificate)
    signer = SimpleSigner(
        certificate,
        key,
        SimpleCertificateStore.from_certs([certificate, intermediate]),  # type: ignore[no-untyped-call]
    )
    signature = cades.sign_detached(b"data", signer, level=Level.B_B)
    with pytest.raises(SignatureWrongKey):
        verification.verify_detached(signature, b"data", trust, now=now())
    (tmp_path / "data").write_bytes(b"data")
    (tmp_path / "data.p7s").write_bytes(signature)
    root = tmp_path / "root.pem"
    root.write_bytes(simulator_pki().cps_root.certificate.public_bytes(Encoding.PEM))
    checked = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
         str(tmp_path / "data.p7s"), "-content", str(tmp_path / "data"), "-CAfile", str(root),
         "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode != 0
    assert "unsuitable certificate purpose" in checked.stderr


def test_a_mime_entity_is_signed_as_given_and_openssl_agrees(
    signer: CardSigner, trust: SigningTrust, tmp_path: Path
) -> None:
    entity = (
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n\n"
        b"R\xc3\xa9sultats de Mme Robin : normaux.\n"
    )
    message = smime.sign_message(entity, signer, level=Level.B_B)
    signed_entity, _signature = smime.split_signed(message)
    assert signed_entity == smime.canonical(entity)  # CRLF line ends, nothing else changed
    (tmp_path / "message.eml").write_bytes(message)
    root = tmp_path / "root.pem"
    root.write_bytes(simulator_pki().cps_root.certificate.public_bytes(Encoding.PEM))
    checked = subprocess.run(
        ["openssl", "cms", "-verify", "-in", str(tmp_path / "message.eml"), "-CAfile",
         str(root), "-out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "normaux" in (tmp_path / "out").read_text(encoding="utf-8")
    assert verification.verify_smime(message, trust, now=now()).format.value == "smime"


def test_what_cannot_be_read_or_offered_is_said_before_any_card(
    trust_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run(
        "--lang", "en", "verify-signature", str(tmp_path / "none.pdf"), "--trust",
        str(trust_folder),
    )  # fmt: skip
    assert status == 1
    assert capsys.readouterr().err.startswith("Error [signing.file_unreadable]: The file ")
    content = tmp_path / "data"
    content.write_bytes(b"data")
    status, _ = run(
        "sign",
        str(content),
        "-o",
        str(tmp_path / "data.p7s"),
        "--format",
        "cades",
        "--level",
        "b-lt",
        "--tsa-url",
        "http://127.0.0.1:9/",
        "--trust",
        str(trust_folder),
    )  # fmt: skip  (no --simulate: no reader is ever asked)
    assert status == 1
    assert "[signing.level_unsupported]" in capsys.readouterr().err
