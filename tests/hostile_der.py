"""DER surgery for hostile inputs: certificates and OCSP responses re-assembled from
a genuine one's raw parts, with some parts replaced by what an attacker would put
there. The signatures are left as they are (or zeroed): what is tested is that the
verifier refuses what it cannot decode, with its own code, before trusting it."""

from __future__ import annotations

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from asn1crypto.core import ObjectIdentifier

OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1"


def tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        length = bytes((size,))
    else:
        digits = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes((0x80 | len(digits),)) + digits
    return bytes((tag,)) + length + body


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def oid(dotted: str) -> bytes:
    return bytes(ObjectIdentifier(dotted).dump())


def extension(dotted: str, value: bytes, *, critical: bool = False) -> bytes:
    flag = tlv(0x01, b"\xff") if critical else b""
    return seq(oid(dotted), flag, tlv(0x04, value))


def extensions_of(certificate_der: bytes) -> list[bytes]:
    tbs = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]
    return [item.dump() for item in tbs["extensions"]]


def without(extensions: list[bytes], dotted: str) -> list[bytes]:
    """``extensions`` less the one whose OID is ``dotted``."""
    return [item for item in extensions if oid(dotted) not in item]


def rebuild_certificate(
    certificate_der: bytes,
    *,
    extensions: list[bytes] | None = None,
    subject: bytes | None = None,
    public_key_info: bytes | None = None,
    signature_algorithm: bytes | None = None,
) -> bytes:
    """The certificate with some of its to-be-signed parts replaced (the signature
    is zeroed: it no longer covers them anyway)."""
    certificate = asn1_x509.Certificate.load(certificate_der)
    tbs = certificate["tbs_certificate"]
    algorithm = signature_algorithm or certificate["signature_algorithm"].dump()
    fields = [
        tbs["version"].dump(),
        tbs["serial_number"].dump(),
        signature_algorithm or tbs["signature"].dump(),
        tbs["issuer"].dump(),
        tbs["validity"].dump(),
        subject or tbs["subject"].dump(),
        public_key_info or tbs["subject_public_key_info"].dump(),
        tlv(0xA3, seq(*(extensions if extensions is not None else extensions_of(certificate_der)))),
    ]
    return seq(seq(*fields), algorithm, tlv(0x03, b"\x00" + bytes(256)))


def replace_ocsp_parts(
    response_der: bytes,
    *,
    signature_algorithm: bytes | None = None,
    certificates: list[bytes] | None = None,
) -> bytes:
    """A successful OCSP response with its unsigned parts (the signature algorithm,
    the certificates that come with it) replaced; the signed part is untouched."""
    basic = asn1_ocsp.OCSPResponse.load(response_der)["response_bytes"]["response"].parsed
    if certificates is None:
        certificates = [item.dump() for item in basic["certs"]]
    body = (
        basic["tbs_response_data"].dump()
        + (signature_algorithm or basic["signature_algorithm"].dump())
        + basic["signature"].dump()
        + tlv(0xA0, seq(*certificates))
    )
    response_bytes = seq(oid(OCSP_BASIC), tlv(0x04, seq(body)))
    return seq(tlv(0x0A, b"\x00"), tlv(0xA0, response_bytes))
