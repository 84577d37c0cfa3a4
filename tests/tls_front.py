"""An https front for a loopback server, as a reverse proxy serves a teleservice in
production: TLS with a server certificate for a name, from a test CA of its own,
then the bytes passed through to the server's plain http port."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import LOOPBACK

CHUNK = 64 * 1024
START_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerCertificate:
    """A server certificate for ``name`` and its key, in PEM files, issued by a test
    CA that exists for this run only."""

    name: str
    certificate: Path
    key: Path
    spki_sha256: str  # base64, as Chromium's --ignore-certificate-errors-spki-list takes it


def issue_server_certificate(name: str, folder: Path) -> ServerCertificate:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cardauth test web CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    certificate, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    pem = serialization.Encoding.PEM
    certificate.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return ServerCertificate(name, certificate, key_file, digest)


class TlsFront:
    """Listens on ``port`` (loopback) with TLS, and passes each connection through to
    ``upstream`` (a loopback port). :meth:`start`, then :meth:`close`."""

    def __init__(self, certificate: ServerCertificate, port: int, upstream: int) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificate.certificate, certificate.key)
        self.port = port
        self._upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-front")
        self._server: asyncio.Server | None = None

    def start(self) -> TlsFront:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = started.result(timeout=START_TIMEOUT)
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._pass, LOOPBACK, self.port, ssl=self._context)

    async def _pass(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(LOOPBACK, self._upstream)
        except OSError:
            client_out.close()
            return
        try:
            await asyncio.gather(
                _copy(client_in, server_out), _copy(server_in, client_out), return_exceptions=True
            )
        except asyncio.CancelledError:  # the front closes with the connection open
            client_out.close()
            server_out.close()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            # The connections still open (a browser keeps them alive) end now.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=START_TIMEOUT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=START_TIMEOUT)
        self._loop.close()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Pass bytes from ``source`` to ``sink`` until either side closes."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    finally:
        sink.close()
