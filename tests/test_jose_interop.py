"""Fail closed for anyone who skips our verifier: generic JOSE libraries refuse a
cardauth assertion because of its critical ``cardauth`` header parameter
(RFC 7515 § 4.1.11), and verify the card's signature once told about it."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws as joserfc_jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from joserfc.registry import HeaderParameter
from jwcrypto import common as jwcrypto_common
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from cardauth.assertion import build_assertion
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import open_card
from simulator.workstation import simulated_readers
from tests.verifier_kit import NOW, ORIGIN


@pytest.fixture(scope="module")
def assertion() -> str:
    """A real assertion, signed by the doctor's (virtual) card."""
    readers = simulated_readers(["doctor"])
    card = open_card(readers, readers.slot_names[0])
    assert isinstance(card, CpsCard)
    card.verify_pin("1234")
    return build_assertion(card, origin=ORIGIN, challenge="D" * 43, now=NOW)


def _public_key_pem(token: str) -> bytes:
    header = json.loads(base64.urlsafe_b64decode(token.split(".", maxsplit=1)[0] + "=="))
    certificate = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    return certificate.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


class _RoomyRegistry(joserfc_jws.JWSRegistry):
    # joserfc caps headers at 512 bytes by default; an x5c needs more. Raising the cap
    # shows that the refusal below is for our critical parameter, not for the size.
    max_header_length = 8192
    max_payload_length = 16384


def test_pyjwt_refuses_by_default(assertion: str) -> None:
    with pytest.raises(jwt.InvalidTokenError, match="critical extension: cardauth"):
        jwt.decode(
            assertion,
            _public_key_pem(assertion),
            algorithms=["RS256"],
            options={"verify_aud": False},
        )


def test_joserfc_refuses_by_default(assertion: str) -> None:
    key = RSAKey.import_key(_public_key_pem(assertion))
    with pytest.raises(JoseError, match="cardauth"):
        joserfc_jws.deserialize_compact(
            assertion, key, algorithms=["RS256"], registry=_RoomyRegistry()
        )


def test_jwcrypto_refuses_by_default(assertion: str) -> None:
    key = jwcrypto_jwk.JWK.from_pem(_public_key_pem(assertion))
    token = jwcrypto_jws.JWS()
    token.deserialize(assertion)
    with pytest.raises(jwcrypto_jws.InvalidJWSSignature) as refused:
        token.verify(key, alg="RS256")
    assert "Unknown critical header" in str(refused.value)


def test_joserfc_verifies_the_card_signature_once_told(assertion: str) -> None:
    key = RSAKey.import_key(_public_key_pem(assertion))
    registry = _RoomyRegistry(
        header_registry={"cardauth": HeaderParameter("cardauth binding rules, version", "int")}
    )
    verified = joserfc_jws.deserialize_compact(
        assertion, key, algorithms=["RS256"], registry=registry
    )
    assert json.loads(verified.payload)["aud"] == ORIGIN.value


def test_jwcrypto_verifies_the_card_signature_once_told(assertion: str) -> None:
    key = jwcrypto_jwk.JWK.from_pem(_public_key_pem(assertion))
    token = jwcrypto_jws.JWS(
        header_registry={
            "cardauth": jwcrypto_common.JWSEHeaderParameter(
                "cardauth binding rules", False, True, None
            )
        }
    )
    token.deserialize(assertion)
    token.verify(key, alg="RS256")
    assert json.loads(token.payload)["nonce"] == "D" * 43
