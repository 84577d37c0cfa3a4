"""Helpers of the signing tests: a PDF to sign; the test PKI with its OCSP responder
and time-stamping authority on loopback, and the oracles' trust (openssl's CA file,
pdfsig's NSS database); the doctor's certificates as the test PKI made them, and two
independent checks of a raw signature over a SHA-256 hash (cryptography, and
``openssl pkeyutl``, an oracle nobody here wrote)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from simulator.ocsp import OcspResponder
from simulator.personas import load_cps
from simulator.pki import simulator_pki
from simulator.trust_export import export_trust
from simulator.tsa import TimeStampAuthority

DOCTOR_CERTIFICATES = simulator_pki().cps_certificates(load_cps("doctor"))


def make_pdf(text: str = "Ordonnance du 2 decembre") -> bytes:
    """A one-page PDF, written by pyHanko's writer (an untyped API)."""
    writer = PdfFileWriter()  # type: ignore[no-untyped-call]
    stream = generic.StreamObject(stream_data=f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
    box = generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)])  # type: ignore[no-untyped-call]
    page = PageObject(contents=writer.add_object(stream), media_box=box)  # type: ignore[no-untyped-call]
    writer.insert_page(page)  # type: ignore[no-untyped-call]
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


@dataclass
class Pki:
    folder: Path
    trust: Path
    root: Path  # the CPS root, PEM: openssl's -CAfile
    nss: str  # pdfsig's NSS database, the CPS root trusted
    ocsp: OcspResponder
    tsa: TimeStampAuthority


def nss_trusting_the_test_root(folder: Path) -> str:
    """pdfsig's NSS database in ``folder``/nss, the test PKI's CPS root trusted (its
    PEM written to ``folder``/root.pem)."""
    root = folder / "root.pem"
    root.write_bytes(simulator_pki().cps_root.certificate.public_bytes(Encoding.PEM))
    nss = folder / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True)
    # Trusted to issue e-mail and object-signing certificates: NSS's use for signatures.
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{nss}", "-n", "test-root", "-t", "C,C,C", "-i", str(root)],
        check=True,
    )
    return f"sql:{nss}"


@contextmanager
def running_pki(folder: Path) -> Iterator[Pki]:
    """The test PKI's trust in ``folder``, its responder and authority running."""
    trust = folder / "trust"
    root = folder / "root.pem"
    nss = nss_trusting_the_test_root(folder)
    ocsp = OcspResponder().start()
    tsa = TimeStampAuthority().start()
    try:
        export_trust(trust, now=dt.datetime.now(dt.UTC), ocsp_url=ocsp.url)
        yield Pki(folder, trust, root, nss, ocsp, tsa)
    finally:
        ocsp.stop()
        tsa.stop()


def pdfsig(pki: Pki, path: Path) -> str:
    return pdfsig_report(pki.nss, path)


def pdfsig_report(nss: str, path: Path) -> str:
    """What pdfsig says of the PDF at ``path``, with the NSS database ``nss``."""
    # -no-ocsp: the test PKI's responder addresses never resolve (pyHanko checks
    # revocation, with the trust directory's CRLs and responder).
    done = subprocess.run(
        ["pdfsig", "-nssdir", nss, "-no-ocsp", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


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
