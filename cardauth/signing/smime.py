"""S/MIME signed messages (RFC 8551 § 3.5.3): ``multipart/signed`` with the
message's MIME entity in canonical form (CRLF line ends) as its first part and the
detached CMS signature (CAdES, :mod:`.cades`) as ``application/pkcs7-signature``.

A message given without MIME headers is wrapped as a ``text/plain`` entity (UTF-8)
when it is text, else as an ``application/octet-stream`` attachment.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import secrets
from email.message import EmailMessage

from pyhanko.sign.signers import Signer
from pyhanko.sign.timestamps.api import TimeStamper

from cardauth.signing.cades import sign_detached
from cardauth.signing.errors import DocumentInvalid
from cardauth.signing.levels import Level

CRLF = b"\r\n"
PREAMBLE = b"This is an S/MIME signed message"


def canonical(entity: bytes) -> bytes:
    """Line ends as CRLF (RFC 8551 § 3.1.1), whatever the file had."""
    return CRLF.join(entity.replace(CRLF, b"\n").split(b"\n"))


def mime_entity(message: bytes) -> bytes:
    """``message`` as a canonical MIME entity: as given if it starts with MIME
    headers (a Content-Type among them), else wrapped."""
    head = message.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    if head.lower().startswith((b"content-", b"mime-version:")) and b"content-type:" in (
        head.lower()
    ):
        return canonical(message)
    part = EmailMessage(policy=email.policy.SMTP)
    try:
        part.set_content(message.decode("utf-8"), subtype="plain", charset="utf-8", cte="base64")
    except UnicodeDecodeError:
        part.set_content(message, maintype="application", subtype="octet-stream")
    del part["MIME-Version"]
    return canonical(part.as_bytes())


def sign_message(
    message: bytes,
    signer: Signer,
    *,
    level: Level,
    time_stamper: TimeStamper | None = None,
) -> bytes:
    """The ``multipart/signed`` message that carries ``message`` and its signature."""
    entity = mime_entity(message)
    signature = sign_detached(entity, signer, level=level, time_stamper=time_stamper)
    boundary = f"----cardauth-{secrets.token_hex(12)}".encode()
    if boundary in entity:  # 96 random bits: never, but the rule is the rule (RFC 2046)
        raise DocumentInvalid("the message contains the boundary")
    encoded = base64.encodebytes(signature).replace(b"\n", CRLF)
    return b"".join(
        (
            b"MIME-Version: 1.0" + CRLF,
            b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
            b'micalg=sha-256; boundary="' + boundary + b'"' + CRLF,
            CRLF,
            PREAMBLE + CRLF,
            CRLF,
            b"--" + boundary + CRLF,
            entity,
            CRLF + b"--" + boundary + CRLF,
            b'Content-Type: application/pkcs7-signature; name="smime.p7s"' + CRLF,
            b"Content-Transfer-Encoding: base64" + CRLF,
            b'Content-Disposition: attachment; filename="smime.p7s"' + CRLF,
            CRLF,
            encoded,
            b"--" + boundary + b"--" + CRLF,
        )
    )


def split_signed(message: bytes) -> tuple[bytes, bytes]:
    """The signed entity (its exact bytes) and the DER signature of a
    ``multipart/signed`` message; DocumentInvalid when it is not one."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(message)
    if headers.get_content_type() != "multipart/signed":
        raise DocumentInvalid("the message is not multipart/signed")
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise DocumentInvalid("the message has no boundary")
    delimiter = CRLF + b"--" + boundary.encode()
    body = CRLF + canonical(message).split(CRLF + CRLF, 1)[-1]
    parts = body.split(delimiter)
    # RFC 2046 § 5.1.1: preamble, the entity, the signature, then "--" and the epilogue.
    if len(parts) < 4 or not parts[3].startswith(b"--"):
        raise DocumentInvalid("the message does not have two parts")
    entity = parts[1].removeprefix(CRLF)
    signature_part = parts[2].removeprefix(CRLF)
    signature_headers, _, encoded = signature_part.partition(CRLF + CRLF)
    if b"pkcs7-signature" not in signature_headers.lower():
        raise DocumentInvalid("the second part is not application/pkcs7-signature")
    try:
        signature = base64.b64decode(b"".join(encoded.split()), validate=True)
    except ValueError as exc:
        raise DocumentInvalid("the signature part is not base64") from exc
    return entity, signature
