"""Card assertions: a JWS the CPS card signs over a teleservice's challenge, bound to
the web origin, optionally carrying the Vitale card's co-assertion.

The format is written down in docs/protocol.md. In short, header::

    {"alg": "RS256", "typ": "cardauth+jws", "x5c": [leaf, intermediates...],
     "crit": ["cardauth"], "cardauth": 1}

payload::

    {"aud": origin, "nonce": challenge, "iat": ..., "exp": ..., "card": serial,
     "vitale": "<Vitale co-assertion, a compact JWS>"}

``cardauth`` is a header parameter of our own, listed in ``crit`` (RFC 7515
§ 4.1.11): a JOSE library that does not know it must refuse the token, so nobody
can check the signature alone and forget the origin and the challenge.

The Vitale co-assertion has the same shape (``typ`` ``cardauth-vitale+jws``,
signed by the Vitale card) and binds the same origin and challenge to the CPS
certificate through its SHA-256 thumbprint (``cps``, as ``x5t#S256`` is computed).
It sits inside the CPS payload, so the CPS signature covers it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from cardauth import jose
from cardauth.cards.algorithms import SignatureScheme
from cardauth.cards.application import CardFacts
from cardauth.cards.cps import CpsCard
from cardauth.cards.vitale import VitaleCard
from cardauth.errors import CardError, MalformedCardData
from cardauth.origins import Origin
from cardauth.protocol import (
    ASSERTION_TYPE,
    BINDING_PARAMETER,
    DEFAULT_LIFETIME,
    PROTOCOL_VERSION,
    VITALE_TYPE,
    thumbprint,
)


def scheme_for(certificate: x509.Certificate) -> SignatureScheme:
    """The JWS algorithm that the certificate's key type calls for: RS256 for RSA (a
    CPS card pads PKCS#1 v1.5 itself), ES256 for P-256."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return SignatureScheme.RS256
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return SignatureScheme.ES256
    raise CardError("the card's key is neither RSA nor ECDSA P-256")


def _header(
    typ: str, scheme: SignatureScheme, leaf_der: bytes, chain: Sequence[x509.Certificate]
) -> dict[str, Any]:
    x5c = [base64.b64encode(leaf_der).decode("ascii")]  # standard base64 (RFC 7515 § 4.1.6)
    x5c += [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in chain]
    return {
        "alg": scheme.value,
        "typ": typ,
        "x5c": x5c,
        "crit": [BINDING_PARAMETER],
        BINDING_PARAMETER: PROTOCOL_VERSION,
    }


def _times(now: dt.datetime, lifetime: dt.timedelta) -> dict[str, int]:
    issued = int(now.timestamp())
    return {"iat": issued, "exp": issued + int(lifetime.total_seconds())}


def build_vitale_coassertion(
    vitale: VitaleCard,
    *,
    origin: Origin,
    challenge: str,
    cps_certificate_der: bytes,
    now: dt.datetime,
    chain: Sequence[x509.Certificate] = (),
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    facts: CardFacts | None = None,
) -> str:
    """The Vitale card's co-assertion: same origin and challenge, bound to the CPS
    certificate. The Vitale card signs without PIN. ``facts``, when the caller has
    them already (read while the card stayed in), spare reading them again."""
    with vitale.channel.transaction():
        facts = facts or vitale.facts()
        certificate = vitale.parse_certificate(facts.certificate_der)
        scheme = scheme_for(certificate)
        header = _header(VITALE_TYPE, scheme, facts.certificate_der, chain)
        payload = {
            "aud": origin.value,
            "nonce": challenge,
            **_times(now, lifetime),
            "card": facts.serial,
            "cps": thumbprint(cps_certificate_der),
        }
        return jose.serialize(
            header,
            payload,
            _checked(
                lambda data: vitale.authenticate(hashlib.sha256(data).digest(), scheme),
                certificate,
                scheme,
            ),
        )


def build_assertion(
    cps: CpsCard,
    *,
    origin: Origin,
    challenge: str,
    now: dt.datetime,
    vitale: VitaleCard | None = None,
    chain: Sequence[x509.Certificate] = (),
    vitale_chain: Sequence[x509.Certificate] = (),
    lifetime: dt.timedelta = DEFAULT_LIFETIME,
    facts: CardFacts | None = None,
    vitale_facts: CardFacts | None = None,
) -> str:
    """The signed assertion. The PIN must have been verified on ``cps``; ``chain``
    and ``vitale_chain`` are intermediate certificates to carry in ``x5c``;
    ``facts`` and ``vitale_facts`` are the cards' serials and certificates when the
    caller has them already (else they are read, serial first)."""
    facts = facts or cps.facts()
    certificate_der = facts.certificate_der
    certificate = cps.parse_certificate(certificate_der)
    scheme = scheme_for(certificate)
    payload: dict[str, Any] = {
        "aud": origin.value,
        "nonce": challenge,
        **_times(now, lifetime),
        "card": facts.serial,
    }
    if vitale is not None:
        payload["vitale"] = build_vitale_coassertion(
            vitale,
            origin=origin,
            challenge=challenge,
            cps_certificate_der=certificate_der,
            now=now,
            chain=vitale_chain,
            lifetime=lifetime,
            facts=vitale_facts,
        )
    header = _header(ASSERTION_TYPE, scheme, certificate_der, chain)
    with cps.channel.transaction():
        sign = _checked(
            lambda data: cps.authenticate(hashlib.sha256(data).digest(), scheme),
            certificate,
            scheme,
        )
        return jose.serialize(header, payload, sign)


def _checked(
    sign: Callable[[bytes], bytes], certificate: x509.Certificate, scheme: SignatureScheme
) -> Callable[[bytes], bytes]:
    """``sign``, with the card's signature checked against its certificate before it
    goes anywhere: an answer damaged on the way (a reader that lost bytes) or a
    faulty signature is refused here, never handed out as an assertion. (Checking
    an RSA signature before releasing it is also the usual guard against fault
    attacks on RSA-CRT.)"""

    try:
        verify = jose.signature_verifier(scheme.value, certificate.public_key())
    except ValueError:
        raise MalformedCardData("the card's certificate has no usable key") from None

    def checked(data: bytes) -> bytes:
        signature = sign(data)
        try:
            verify(signature, data)
        except (InvalidSignature, ValueError):
            raise MalformedCardData(
                "the card's signature does not verify with its certificate", command="SIGN"
            ) from None
        return signature

    return checked
