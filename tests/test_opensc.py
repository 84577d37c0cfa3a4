"""OpenSC as an oracle: middleware written and fixed against real CPS3 cards (its
IAS-ECC "CPx" driver) reads and uses the simulated CPS card through the private
pcscd, with Debian's OpenSC 0.23 tools (``opensc-tool``, ``pkcs15-tool``,
``pkcs11-tool`` and its PKCS#11 module), and ``openssl`` checks the signatures.
Then cardauth uses the very same card: one card, one PIN counter.

What OpenSC prints is compared with what it printed for a real CPS3 where that is
public (OpenSC issue #2267): the keys' usages, access rules, references and path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cardauth.apdu import Ins
from cardauth.cards.algorithms import digest_info
from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.session import pin_session
from simulator.card import VirtualCard
from simulator.personas import load_cps
from simulator.pki import simulator_pki
from simulator.profiles import PKCS15_KEY_ID
from tests.conftest import Station

pytestmark = pytest.mark.pcscd

OPENSC_MODULE = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
AUTHENTICATION_ID = (PKCS15_KEY_ID + b"\x02").hex()
SIGNATURE_ID = (PKCS15_KEY_ID + b"\x01").hex()
MESSAGE = b"a document, or a teleservice's challenge"


@pytest.fixture
def opensc(pcscd_station: Station, tmp_path: Path) -> Iterator[tuple[Station, VirtualCard]]:
    """The doctor's CPS card in slot 0 (OpenSC's reader 0), the patient's Vitale card
    in slot 1; OpenSC configured with no file cache, so every run reads the card."""
    for tool in ("opensc-tool", "pkcs15-tool", "pkcs11-tool", "openssl"):
        assert shutil.which(tool), f"{tool} is missing: scripts/setup.sh installs it"
    assert OPENSC_MODULE.exists(), "OpenSC's PKCS#11 module is missing (Debian opensc-pkcs11)"
    config = tmp_path / "opensc.conf"
    config.write_text("app default {\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n")
    os.environ["OPENSC_CONF"] = str(config)
    card = pcscd_station.insert(0, "doctor")
    pcscd_station.insert(1, "patient")
    try:
        yield pcscd_station, card
    finally:
        os.environ.pop("OPENSC_CONF", None)


def run(
    *command: str, stdin: bytes = b"", check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CARDAUTH_LANG", "LC_ALL")}
    done = subprocess.run(
        command, input=stdin, capture_output=True, timeout=60, env=clean, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{command[0]} failed: {done.stdout!r} {done.stderr!r}")
    return done


def pkcs11(*arguments: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return run(
        "pkcs11-tool", "--module", str(OPENSC_MODULE), "--slot-index", "0", *arguments, check=check
    )


def read_certificate(identifier: str) -> x509.Certificate:
    pem = run("pkcs15-tool", "--reader", "0", "--read-certificate", identifier).stdout
    return x509.load_pem_x509_certificate(pem)


def cardauth_pin() -> dict[str, object]:
    """What ``cardauth cards`` says of the CPS card's PIN."""
    reports = json.loads(run(sys.executable, "-m", "cardauth.cli", "cards", "--json").stdout)
    cps = next(r for r in reports["readers"] if r["kind"] == "cps")
    pin = cps["pin"]
    assert isinstance(pin, dict)
    return pin


def openssl_verifies(certificate: x509.Certificate, signature: bytes, tmp: Path) -> bool:
    (tmp / "message").write_bytes(MESSAGE)
    (tmp / "signature").write_bytes(signature)
    (tmp / "certificate.pem").write_bytes(certificate.public_bytes(Encoding.PEM))
    key = run("openssl", "x509", "-in", str(tmp / "certificate.pem"), "-pubkey", "-noout").stdout
    (tmp / "key.pem").write_bytes(key)
    verdict = run(
        *("openssl", "dgst", "-sha256", "-verify", str(tmp / "key.pem")),
        *("-signature", str(tmp / "signature"), str(tmp / "message")),
        check=False,
    )
    return verdict.returncode == 0 and b"Verified OK" in verdict.stdout


# -- OpenSC reads the card ---------------------------------------------------------------


def test_opensc_names_the_ias_ecc_driver(opensc: tuple[Station, VirtualCard]) -> None:
    assert run("opensc-tool", "--reader", "0", "--name").stdout.strip() == b"IAS-ECC"


def test_pkcs15_tool_dumps_the_application_as_a_real_cps3s(
    opensc: tuple[Station, VirtualCard],
) -> None:
    dump = run("pkcs15-tool", "--reader", "0", "--dump").stdout.decode()
    for line in (
        "PIN [Code porteur de la carte CPX]",
        "Flags          : [0x31], case-sensitive, initialized, needs-padding",
        "Length         : min_len:4, max_len:8, stored_len:8",
        "Pad char       : 0xFF",
        "Reference      : 1 (0x01)",
        # As OpenSC printed them for a real CPS3 (issue #2267):
        "Private RSA Key [CPS_PRIV_SIG]",
        "Usage          : [0x200], nonRepudiation",
        "Access Rules   : pso_cds:01;",
        "Key ref        : 129 (0x81)",
        "Private RSA Key [CPS_PRIV_AUT]",
        "Usage          : [0x06], decrypt, sign",
        "Access Rules   : pso_decrypt:01; int_auth:01;",
        "Algo_refs      : 6, 5",
        "Key ref        : 130 (0x82)",
        "Path           : e828bd080f8025000001ff0010::",
        f"ID             : {SIGNATURE_ID}",
        f"ID             : {AUTHENTICATION_ID}",
        "Data object 'CPS_ID_CARD'",
    ):
        assert line in dump, line
    assert dump.count("X.509 Certificate [") == 2


def test_both_certificates_list_and_read_with_the_personas_subject(
    opensc: tuple[Station, VirtualCard],
) -> None:
    listed = run("pkcs15-tool", "--reader", "0", "--list-certificates").stdout.decode()
    assert listed.count("X.509 Certificate [") == 2
    expected = simulator_pki().cps_certificates(load_cps("doctor"))
    for identifier, certificate in (
        (AUTHENTICATION_ID, expected.authentication),
        (SIGNATURE_ID, expected.signature),
    ):
        read = read_certificate(identifier)
        assert read == certificate
        subject = read.subject
        assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "899700420013"
        assert subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "FONTAINE"


def test_the_pkcs11_module_lists_both_keys_after_login(opensc: tuple[Station, VirtualCard]) -> None:
    slots = pkcs11("--list-slots").stdout.decode()
    assert "token label        : Code porteur de la carte CPX" in slots
    objects = pkcs11("--login", "--pin", "1234", "--list-objects").stdout.decode()
    assert objects.count("Private Key Object; RSA") == 2
    assert "label:      CPS_PRIV_AUT" in objects
    assert "label:      CPS_PRIV_SIG" in objects
    assert "Usage:      sign, non-repudiation" in objects


# -- signatures ------------------------------------------------------------------------------


def test_opensc_signs_with_the_authentication_key_and_openssl_verifies(
    opensc: tuple[Station, VirtualCard], tmp_path: Path
) -> None:
    """OpenSC's RSA-PKCS over a SHA-256 DigestInfo: MSE SET AT, INTERNAL AUTHENTICATE.
    The result is exactly a SHA256-RSA-PKCS signature of the message."""
    (tmp_path / "digest-info").write_bytes(
        digest_info(hashes.SHA256(), hashlib.sha256(MESSAGE).digest())
    )
    pkcs11(
        *("--login", "--pin", "1234", "--sign", "-m", "RSA-PKCS", "--id", AUTHENTICATION_ID),
        *("-i", str(tmp_path / "digest-info"), "-o", str(tmp_path / "opensc-signature")),
    )
    signature = (tmp_path / "opensc-signature").read_bytes()
    assert openssl_verifies(read_certificate(AUTHENTICATION_ID), signature, tmp_path)


def test_opensc_023_cannot_sign_sha256_rsa_pkcs_under_openssl3(
    opensc: tuple[Station, VirtualCard], tmp_path: Path
) -> None:
    """Debian's OpenSC 0.23 hashes for IAS-ECC cards with OpenSSL internals it cannot
    reach under OpenSSL 3 (iasecc_qsign_data_sha256 returns "not supported", commit
    ca1bf057f): with the signature key it sets the hash and signature templates (the
    card accepts them) and stops before PSO HASH; for the authentication key its table
    of algorithms has RSA-PKCS only. No PIN try is spent either way."""
    _station, card = opensc
    (tmp_path / "message").write_bytes(MESSAGE)
    common = ("--login", "--pin", "1234", "--sign", "-m", "SHA256-RSA-PKCS")
    signature_key = pkcs11(
        *common, "--id", SIGNATURE_ID, "-i", str(tmp_path / "message"), check=False
    )
    assert b"CKR_FUNCTION_NOT_SUPPORTED" in signature_key.stderr
    # HT and DST, both accepted (OpenSC tries twice: it selects the application again
    # and retries once), and never a PSO.
    assert card.commands[Ins.MANAGE_SECURITY_ENVIRONMENT] in (2, 4)
    assert card.commands[Ins.PERFORM_SECURITY_OPERATION] == 0
    authentication_key = pkcs11(
        *common, "--id", AUTHENTICATION_ID, "-i", str(tmp_path / "message"), check=False
    )
    assert b"CKR_MECHANISM_INVALID" in authentication_key.stderr
    assert card.pin(0x01).tries_left == 3


def test_the_signature_key_signs_through_cardauth_and_openssl_verifies(
    opensc: tuple[Station, VirtualCard], tmp_path: Path
) -> None:
    """The non-repudiation sequence OpenSC cannot send here (hash template, MSE SET DST,
    PSO HASH, PSO CDS), sent by cardauth; the certificate comes from OpenSC, the
    verdict from openssl."""
    station, _card = opensc
    cps = station.open(0)
    assert isinstance(cps, CpsCard)
    with pin_session(cps, "1234"):
        signature = cps.sign(hashlib.sha256(MESSAGE).digest())
    assert openssl_verifies(read_certificate(SIGNATURE_ID), signature, tmp_path)
    assert cps.certificate_der(KeyRole.SIGNATURE) == read_certificate(SIGNATURE_ID).public_bytes(
        Encoding.DER
    )


# -- one card, one PIN counter ------------------------------------------------------------


def test_a_wrong_pin_given_to_opensc_is_a_try_cardauth_sees_then_cardauth_logs_in(
    opensc: tuple[Station, VirtualCard], tmp_path: Path
) -> None:
    refused = pkcs11("--login", "--pin", "9999", "--list-objects", check=False)
    assert b"CKR_PIN_INCORRECT" in refused.stderr
    assert cardauth_pin() == {"verified": False, "tries_left": 2, "blocked": False}
    trust = tmp_path / "trust"
    run(sys.executable, "-m", "simulator.cli", "export-trust", str(trust))
    challenge = "A" * 43
    origin = "https://teleservice.example"
    login = run(
        *(sys.executable, "-m", "cardauth.cli", "login"),
        *("--origin", origin, "--challenge", challenge, "--pin-stdin"),
        stdin=b"1234\n",
    )
    verified = run(
        *(sys.executable, "-m", "cardauth.cli", "verify", "--origin", origin),
        *("--challenge", challenge, "--trust", str(trust), "--json"),
        stdin=login.stdout,
    )
    assert json.loads(verified.stdout)["professional"]["surname"] == "FONTAINE"
    assert cardauth_pin() == {"verified": False, "tries_left": 3, "blocked": False}


def test_a_pin_blocked_through_opensc_is_unblocked_by_opensc_as_ias_ecc_does(
    opensc: tuple[Station, VirtualCard],
) -> None:
    """Three wrong PINs, then OpenSC's unblock: VERIFY of the unblocking code (reference
    02), then RESET RETRY COUNTER 02 with the new PIN (the card refuses other forms)."""
    for _ in range(3):
        pkcs11("--login", "--pin", "9999", "--list-objects", check=False)
    assert cardauth_pin() == {"verified": False, "tries_left": 0, "blocked": True}
    run("pkcs15-tool", "--reader", "0", "--unblock-pin", "--puk", "12345678", "--new-pin", "1234")
    assert cardauth_pin()["tries_left"] == 3
    pkcs11("--login", "--pin", "1234", "--list-objects")
