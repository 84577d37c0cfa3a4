"""Deterministic test keys: the same label gives the same key on every machine.

The test PKI and the virtual cards must be the same everywhere, so that trust
exported on one machine verifies cards simulated on another, and tests are
repeatable. RSA keys come from PyCryptodome's generator fed by a SHAKE-256
stream seeded with the label (cryptography's generator cannot be seeded); EC
keys are a scalar derived from the label. Generating an RSA key takes about a
second, so keys are cached on disk (``$CARDAUTH_SIM_CACHE``, else
``$XDG_CACHE_HOME/cardauth-sim``, else ``~/.cache/cardauth-sim``) and in memory.

These keys protect nothing: anyone can derive them from the labels in this file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

from Crypto.PublicKey import RSA
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

KEYGEN_VERSION = "cardauth-sim keygen v1"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def cache_directory() -> Path:
    configured = os.environ.get("CARDAUTH_SIM_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cardauth-sim"


class _SeededStream:
    """A deterministic byte stream for a label (SHAKE-256 in counter blocks)."""

    def __init__(self, label: str) -> None:
        self._seed = f"{KEYGEN_VERSION}\x00{label}".encode()
        self._counter = 0
        self._buffer = b""

    def __call__(self, count: int) -> bytes:
        while len(self._buffer) < count:
            block = hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(4096)
            self._buffer += block
            self._counter += 1
        out, self._buffer = self._buffer[:count], self._buffer[count:]
        return out


@functools.cache
def rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """The RSA key of ``label``, from the cache or generated."""
    path = cache_directory() / f"{_cache_name(label, bits)}.pem"
    cached = _load_cached(path)
    if isinstance(cached, rsa.RSAPrivateKey) and cached.key_size == bits:
        return cached
    generated = RSA.generate(bits, randfunc=_SeededStream(label), e=65537)
    p, q, d = int(generated.p), int(generated.q), int(generated.d)
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(int(generated.e), int(generated.n)),
    )
    key = numbers.private_key()
    _store(path, key)
    return key


@functools.cache
def ec_key(label: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 key of ``label`` (cheap to derive: never cached on disk)."""
    stream = _SeededStream(label)
    scalar = int.from_bytes(stream(48), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _cache_name(label: str, bits: int) -> str:
    return hashlib.sha256(f"{KEYGEN_VERSION}\x00{label}\x00{bits}".encode()).hexdigest()[:32]


def _load_cached(path: Path) -> object | None:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None  # absent or damaged: generate again


def _store(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as out:
            out.write(pem)
    except OSError:
        return  # a cache we cannot write only costs time
    try:
        os.replace(out.name, path)
    except OSError:
        Path(out.name).unlink(missing_ok=True)
