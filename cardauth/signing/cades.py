"""Detached CAdES signatures (ETSI EN 319 122-1) of any file: a CMS SignedData
(RFC 5652) without the content, the ``.p7s`` beside the file. B-B, and B-T with a
time stamp on the signature (an unsigned attribute, RFC 3161 Appendix A)."""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from asn1crypto import cms
from pyhanko.sign.signers import Signer
from pyhanko.sign.timestamps.api import TimeStamper

from cardauth.signing.errors import LevelNotSupported
from cardauth.signing.levels import DIGEST_ALGORITHM, Level


def sign_detached(
    content: bytes | BinaryIO,
    signer: Signer,
    *,
    level: Level,
    time_stamper: TimeStamper | None = None,
) -> bytes:
    """The DER CMS signature of ``content`` (bytes, or a binary file read to its end)."""
    if level is Level.B_LT:
        raise LevelNotSupported("B-LT is offered for PAdES only", level=level.value)
    signature: cms.ContentInfo = asyncio.run(
        signer.async_sign_general_data(
            content,
            DIGEST_ALGORITHM,
            detached=True,
            use_cades=True,
            timestamper=time_stamper if level.time_stamped else None,
        )
    )
    der: bytes = signature.dump()
    return der
