"""The signature formats, the ETSI baseline levels offered (ETSI EN 319 142-1
for PAdES, EN 319 122-1 for CAdES)."""

from __future__ import annotations

from enum import StrEnum

# What the CPS card's signature key does: RSASSA-PKCS1-v1_5 over a SHA-256 hash.
DIGEST_ALGORITHM = "sha256"
SIGNATURE_MECHANISM = "sha256_rsa"


class Format(StrEnum):
    PADES = "pades"  # a signed PDF
    CADES = "cades"  # a detached CMS signature (.p7s) of any file
    SMIME = "smime"  # a multipart/signed message (RFC 8551)


class Level(StrEnum):
    B_B = "b-b"  # the signature and the signer's certificate
    B_T = "b-t"  # and a time stamp on the signature, from a time-stamping authority
    B_LT = "b-lt"  # and the revocation data to check it later (PAdES: in the DSS)

    @property
    def time_stamped(self) -> bool:
        return self is not Level.B_B
