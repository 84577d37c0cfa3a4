"""What the signing tests share: the doctor's certificates as the test PKI made
them, and two independent checks of a raw signature over a SHA-256 hash
(cryptography, and ``openssl pkeyutl``, an oracle nobody here wrote)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from simulator.personas import load_cps
from simulator.pki import simulator_pki

DOCTOR_CERTIFICATES = simulator_pki().cps_certificates(load_cps("doctor"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rsa_key(certificate: x509.Certificate) -> rsa.RSAPublicKey:
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def verifies(certificate: x509.Certificate, signature: bytes, digest: bytes) -> bool:
    """Whether ``signature`` is RSASSA-PKCS1-v1_5 with SHA-256 over ``digest``
    (cryptography's verdict)."""
    try:
        rsa_key(certificate).verify(
            signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
        )
    except InvalidSignature:
        return False
    return True


def openssl(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *arguments], capture_output=True, check=False, timeout=30)


def openssl_verifies(certificate_der: bytes, signature: bytes, digest: bytes, tmp: Path) -> bool:
    """``openssl pkeyutl -verify`` of the raw signature over the digest, with the
    public key openssl reads itself from the DER certificate."""
    (tmp / "certificate.der").write_bytes(certificate_der)
    (tmp / "digest").write_bytes(digest)
    (tmp / "signature").write_bytes(signature)
    key = openssl("x509", "-inform", "DER", "-in", str(tmp / "certificate.der"), "-pubkey")
    assert key.returncode == 0, key.stderr
    (tmp / "key.pem").write_bytes(key.stdout)
    verdict = openssl(
        *("pkeyutl", "-verify", "-pubin", "-inkey", str(tmp / "key.pem")),
        *("-pkeyopt", "digest:sha256", "-in", str(tmp / "digest")),
        *("-sigfile", str(tmp / "signature")),
    )
    return verdict.returncode == 0 and b"Signature Verified Successfully" in verdict.stdout
