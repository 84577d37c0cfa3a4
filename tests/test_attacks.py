"""The attack corpus: each named attack is refused, with its own stable code.

Every case builds what an attacker would send (or the situation a stolen, expired,
revoked or misused card creates) and checks the verifier's exact refusal. The
corpus follows Web eID's validator tests and the issue's list: structure,
algorithms, certificate purpose and policy, validity of card and CA certificates,
revocation by CRL and OCSP with every OCSP fault, origin, challenge and the
Vitale co-assertion's bindings.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import re
import string
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from cardauth import jose
from cardauth.errors import AssertionRefused
from cardauth.jose import b64url_encode
from cardauth.origins import Origin
from cardauth.protocol import VITALE_TYPE
from cardauth.revocation import OcspUnreachable, RevocationChecker, RevocationPolicy
from cardauth.verify import Verifier
from simulator import keys
from simulator.ocsp import Fault, OcspResponder
from simulator.personas import load_cps
from simulator.pki import cps_key, simulator_pki
from tests.verifier_kit import (
    NOW,
    ORIGIN,
    DeepHierarchy,
    Forge,
    Scene,
    card_certificate,
    crl_checker,
    der,
    reissued_cps_ca,
    rogue_ca,
    trust_store,
    x5c,
)

Attack = Callable[[Scene, Forge], Callable[[], object]]
ATTACKS: dict[str, tuple[str, Attack]] = {}


def attack(name: str, code: str) -> Callable[[Attack], Attack]:
    def register(case: Attack) -> Attack:
        assert name not in ATTACKS
        ATTACKS[name] = (code, case)
        return case

    return register


@pytest.fixture(scope="module")
def responder() -> Iterator[OcspResponder]:
    started = OcspResponder(clock=lambda: NOW).start()
    yield started
    started.stop()


def _verifier(checker: RevocationChecker | None = None) -> Verifier:
    return Verifier(trust=trust_store(), revocation=checker or crl_checker())


def _scene(checker: RevocationChecker | None = None) -> Scene:
    return Scene(_verifier(checker))


def _ocsp_scene(url: str, *, use_crl: bool = False) -> Scene:
    pki = simulator_pki()
    crls = [pki.crl(a, NOW) for a in pki.authorities] if use_crl else []
    policy = RevocationPolicy(ocsp_responder=url, use_crl=use_crl)
    return _scene(RevocationChecker(policy=policy, crls=crls))


def _replace_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


# -- replay and challenges ---------------------------------------------------------


@attack("replay of a used assertion", "challenge.unknown")
def _replay(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    scene.verify(token)
    return lambda: scene.verify(token)


@attack("challenge never issued", "challenge.unknown")
def _unknown_challenge(scene: Scene, forge: Forge) -> Callable[[], object]:
    invented = b64url_encode(b"\x01" * 32)
    return lambda: scene.verify(forge.assertion(invented), expected_challenge=invented)


@attack("assertion answers another challenge", "challenge.unknown")
def _other_challenge(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(b64url_encode(b"\x02" * 32)))


@attack("expired challenge", "challenge.expired")
def _expired_challenge(scene: Scene, forge: Forge) -> Callable[[], object]:
    later = NOW + dt.timedelta(minutes=6)
    token = dataclasses.replace(forge, now=later).assertion(scene.challenge)
    return lambda: scene.verify(token, now=later)


@attack("challenge issued to another browser session (login CSRF)", "challenge.session")
def _other_session(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge), session="browser-session-B")


@attack("malformed challenge", "challenge.malformed")
def _malformed_challenge(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion("short"), expected_challenge="short")


# -- origins -----------------------------------------------------------------------


def _origin_attack(origin: str) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        return lambda: scene.verify(forge.assertion(scene.challenge, aud=origin))

    return case


for _name, _origin, _code in (
    ("another site", "https://evil.example", "origin.mismatch"),
    ("plain http", "http://teleservice.example", "origin.invalid"),
    ("another port", "https://teleservice.example:8443", "origin.mismatch"),
    ("upper case", "https://Teleservice.example", "origin.invalid"),
    ("trailing dot", "https://teleservice.example.", "origin.invalid"),
    ("userinfo", "https://teleservice.example@evil.example", "origin.invalid"),
    ("IDN look-alike (Cyrillic e)", "https://t\u0435leservice.example", "origin.invalid"),
    ("punycode look-alike", "https://xn--tleservice-q7a.example", "origin.mismatch"),
    ("path appended", "https://teleservice.example/login", "origin.invalid"),
    ("default port spelled out", "https://teleservice.example:443", "origin.invalid"),
):
    attack(f"origin: {_name}", _code)(_origin_attack(_origin))


# -- algorithms and signatures -----------------------------------------------------


@attack("alg none", "assertion.algorithm")
def _alg_none(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "alg": "none"}
    token = jose.serialize(header, forge.payload(scene.challenge), lambda _: b"")
    return lambda: scene.verify(token)


@attack("HS256 keyed with the certificate", "assertion.algorithm")
def _hs256(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "alg": "HS256"}
    secret = der(forge.cps_certificate)
    token = jose.serialize(
        header,
        forge.payload(scene.challenge),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )
    return lambda: scene.verify(token)


@attack("ES256 claimed for an RSA certificate", "assertion.algorithm_mismatch")
def _alg_mismatch(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(
        scene.challenge, header=forge.header(alg="ES256"), alg_for_signature="RS256"
    )
    return lambda: scene.verify(token)


@attack("PS256 signature under an RS256 header", "assertion.signature")
def _pss_as_pkcs1(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, alg_for_signature="PS256"))


@attack("tampered header (re-encoded)", "assertion.signature")
def _tampered_header(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    header = json.dumps(forge.header(), indent=1).encode()  # same meaning, other bytes
    return lambda: scene.verify(_replace_part(token, 0, b64url_encode(header)))


@attack("tampered payload (origin changed)", "assertion.signature")
def _tampered_payload(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge, aud="https://evil.example")
    payload = jose.canonical_json(forge.payload(scene.challenge))
    return lambda: scene.verify(_replace_part(token, 1, b64url_encode(payload)))


@attack("tampered signature", "assertion.signature")
def _tampered_signature(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    signature = bytearray(jose.b64url_decode(token.split(".")[2]))
    signature[10] ^= 0x01
    return lambda: scene.verify(_replace_part(token, 2, b64url_encode(bytes(signature))))


@attack("signed with another card's key", "assertion.signature")
def _other_key(scene: Scene, forge: Forge) -> Callable[[], object]:
    other = dataclasses.replace(forge, cps_persona="pharmacist").cps_key
    return lambda: scene.verify(forge.assertion(scene.challenge, key=other))


@attack("RSA key too small", "assertion.algorithm_mismatch")
def _small_rsa(scene: Scene, forge: Forge) -> Callable[[], object]:
    ca, ca_key = rogue_ca("small-rsa-ca")
    small = keys.rsa_key("test:rsa-1024", 1024)
    leaf = card_certificate(forge.cps_certificate, ca.subject, ca_key, small.public_key())
    token = forge.assertion(scene.challenge, header=forge.header(chain=x5c(leaf)), key=small)
    return lambda: scene.verify(token)


# -- structure ---------------------------------------------------------------------


@attack("oversized token", "assertion.too_large")
def _oversized(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, card="x" * 40_000))


@attack("only two parts", "assertion.malformed")
def _two_parts(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify(token.rsplit(".", 1)[0])


@attack("malformed base64", "assertion.malformed")
def _bad_base64(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify("*" + token[1:])


@attack("base64 with padding", "assertion.malformed")
def _padded_base64(scene: Scene, forge: Forge) -> Callable[[], object]:
    header, payload, signature = forge.assertion(scene.challenge).split(".")
    return lambda: scene.verify(f"{header}=.{payload}.{signature}")


@attack("malformed JSON", "assertion.malformed")
def _bad_json(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify(_replace_part(token, 1, b64url_encode(b'{"aud": ')))


@attack("NaN in JSON", "assertion.malformed")
def _nan(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify(_replace_part(token, 1, b64url_encode(b'{"iat": NaN}')))


@attack("duplicate JSON keys", "assertion.duplicate_key")
def _duplicate_keys(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = jose.canonical_json(forge.header())
    doubled = header[:-1] + b',"alg":"none"}'
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify(_replace_part(token, 0, b64url_encode(doubled)))


@attack("payload is a JSON array", "assertion.malformed")
def _array_payload(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify(_replace_part(token, 1, b64url_encode(b"[1,2]")))


for _parameter in ("jku", "x5u", "jwk", "kid"):

    def _pointer(scene: Scene, forge: Forge, parameter: str = _parameter) -> Callable[[], object]:
        header = {**forge.header(), parameter: "https://evil.example/keys"}
        return lambda: scene.verify(forge.assertion(scene.challenge, header=header))

    attack(f"header parameter {_parameter} (keys from elsewhere)", "assertion.forbidden_header")(
        _pointer
    )


@attack("crit missing", "assertion.crit")
def _no_crit(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {k: v for k, v in forge.header().items() if k != "crit"}
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("crit naming an unknown extension too", "assertion.crit")
def _crit_extra(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "crit": ["cardauth", "b64"]}
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("protocol version 2", "assertion.crit")
def _version(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "cardauth": 2}
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("wrong typ", "assertion.type")
def _typ(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "typ": "JWT"}
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("Vitale co-assertion presented as the assertion", "assertion.type")
def _vitale_as_assertion(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.vitale(scene.challenge))


@attack("expired assertion", "assertion.expired")
def _expired(scene: Scene, forge: Forge) -> Callable[[], object]:
    token = forge.assertion(scene.challenge)
    return lambda: scene.verify(token, now=NOW + dt.timedelta(minutes=3))


@attack("assertion issued in the future", "assertion.issued_in_future")
def _future(scene: Scene, forge: Forge) -> Callable[[], object]:
    later = dataclasses.replace(forge, now=NOW + dt.timedelta(minutes=2))
    return lambda: scene.verify(later.assertion(scene.challenge))


@attack("lifetime of a day", "assertion.lifetime")
def _lifetime(scene: Scene, forge: Forge) -> Callable[[], object]:
    issued = int(NOW.timestamp())
    return lambda: scene.verify(forge.assertion(scene.challenge, exp=issued + 86_400))


@attack("unexpected claim", "assertion.claims")
def _extra_claim(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, sub="899700420062"))


@attack("iat as a string", "assertion.claims")
def _string_iat(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, iat=str(int(NOW.timestamp()))))


@attack("iat as a float", "assertion.claims")
def _float_iat(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, iat=NOW.timestamp()))


@attack("exp as a boolean", "assertion.claims")
def _bool_exp(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, exp=True))


@attack("protocol version true", "assertion.crit")
def _version_true(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "cardauth": True}
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("protocol version 1.0", "assertion.crit")
def _version_float(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = {**forge.header(), "cardauth": 1.0}
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


for _typ_text in ("CARDAUTH+JWS", "application/cardauth+jws", "cardauth+jws "):

    def _typ_spelling(scene: Scene, forge: Forge, typ: str = _typ_text) -> Callable[[], object]:
        header = {**forge.header(), "typ": typ}
        return lambda: scene.verify(forge.assertion(scene.challenge, header=header))

    attack(f"typ spelled {_typ_text!r}", "assertion.type")(_typ_spelling)


@attack("nonce spelling the challenge's bytes another way", "challenge.unknown")
def _nonce_other_spelling(scene: Scene, forge: Forge) -> Callable[[], object]:
    spelled = _other_spelling(jose.b64url_decode(scene.challenge))
    return lambda: scene.verify(forge.assertion(scene.challenge, nonce=spelled))


def _raw_payload_token(forge: Forge, payload_text: str) -> str:
    """A token whose payload is exactly ``payload_text`` (JSON can escape what
    Python cannot encode, such as a lone surrogate)."""
    signing_input = (
        b64url_encode(jose.canonical_json(forge.header()))
        + "."
        + b64url_encode(payload_text.encode())
    )
    signature = forge.cps_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url_encode(signature)


@attack("nonce holding a lone surrogate", "assertion.claims")
def _surrogate_nonce(scene: Scene, forge: Forge) -> Callable[[], object]:
    text = json.dumps(forge.payload(scene.challenge, nonce="@")).replace('"@"', '"\\ud800"')
    return lambda: scene.verify(_raw_payload_token(forge, text))


@attack("card serial with non-ASCII letters", "assertion.claims")
def _unicode_card(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, card="80250000é"))


# The card claim is handed back as the card serial, and teleservices log it as text:
# whatever a host gets the card to sign there, only a chip serial comes out (the 10
# bytes of EF.SN.ICC in upper-case hexadecimal, as the card layer reads them).


def _card_serial_attack(serial: str, *, vitale: bool = False) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        if vitale:
            co = forge.vitale(scene.challenge, card=serial)
            return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))
        return lambda: scene.verify(forge.assertion(scene.challenge, card=serial))

    return case


for _name, _serial, _on_vitale in (
    ("a NUL", "8025000001\x000000100001", False),
    ("a newline (a fake log line)", "8025000001\n2026-06-01 login ok idnat=899700420062", False),
    ("a carriage return", "80250000010000100001\r", False),
    ("terminal escapes", "\x1b[2J\x1b[1;31m8025000001", False),
    ("a space", "8025000001 0000100001", False),
    ("lower-case hexadecimal", "80250000010000abcdef", False),
    ("letters beyond hexadecimal", "8025000001000010000G", False),
    ("one digit short", "8025000001000010000", False),
    ("one digit more", "802500000100001000010", False),
    ("the issuer only", "8025000001", False),
    ("a host's text", "a host's claim", False),
    ("a newline, in the Vitale co-assertion", "8025000002\nlogin ok", True),
    ("a NUL, in the Vitale co-assertion", "80250000020000200001\x00", True),
):
    attack(f"card serial with {_name}", "assertion.card_serial")(
        _card_serial_attack(_serial, vitale=_on_vitale)
    )


# The nonce is the teleservice's challenge (43 base64url characters) and cps the CPS
# certificate's SHA-256 thumbprint (43 base64url characters, canonical): a value of
# another form is refused as such, before it is compared.


def _nonce_attack(spell: Callable[[str], str], *, vitale: bool = False) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        nonce = spell(scene.challenge)
        if vitale:
            co = forge.vitale(scene.challenge, nonce=nonce)
            return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))
        return lambda: scene.verify(forge.assertion(scene.challenge, nonce=nonce))

    return case


for _name, _spell, _on_vitale in (
    ("a line break", lambda c: c[:42] + "\n", False),
    ("a NUL after it", lambda c: c + "\x00", False),
    ("padding", lambda c: c + "=", False),
    ("the base64 alphabet", lambda c: c[:41] + "+/", False),
    ("its bytes in hexadecimal", lambda c: jose.b64url_decode(c).hex(), False),
    ("a line break, in the Vitale co-assertion", lambda c: c[:42] + "\n", True),
):
    attack(f"nonce with {_name}", "challenge.malformed")(_nonce_attack(_spell, vitale=_on_vitale))


def _thumbprint_attack(spell: Callable[[bytes], str]) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        digest = hashlib.sha256(der(forge.cps_certificate)).digest()
        co = forge.vitale(scene.challenge, cps=spell(digest))
        return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))

    return case


BASE64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def _other_spelling(digest: bytes) -> str:
    """The same 32 bytes, with the last character's two unused bits set."""
    text = b64url_encode(digest)
    return text[:-1] + BASE64URL[BASE64URL.index(text[-1]) | 3]


for _name, _thumb in (
    ("in hexadecimal", lambda d: d.hex()),
    ("with padding", lambda d: b64url_encode(d) + "="),
    ("in the base64 alphabet", lambda d: base64.b64encode(d).decode().rstrip("=")),
    ("spelled another way (unused bits set)", _other_spelling),
    ("of SHA-1", lambda d: b64url_encode(d[:20])),
    ("with a line break", lambda d: b64url_encode(d)[:42] + "\n"),
):
    attack(f"Vitale co-assertion's CPS thumbprint {_name}", "assertion.claims")(
        _thumbprint_attack(_thumb)
    )


@attack("card serial as a number", "assertion.claims")
def _number_card(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge, card=80250000010000100001))


@attack("Vitale co-assertion for a non-ASCII origin", "origin.invalid")
def _vitale_unicode_origin(scene: Scene, forge: Forge) -> Callable[[], object]:
    co = forge.vitale(scene.challenge, aud="https://téléservice.example")
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


@attack("Vitale co-assertion bound by a non-ASCII thumbprint", "assertion.claims")
def _vitale_unicode_binding(scene: Scene, forge: Forge) -> Callable[[], object]:
    co = forge.vitale(scene.challenge, cps="é" * 43)
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


# -- certificates ------------------------------------------------------------------


@attack("x5c with too many certificates", "certificate.chain_too_long")
def _long_chain(scene: Scene, forge: Forge) -> Callable[[], object]:
    chain = x5c(forge.cps_certificate) * 5
    return lambda: scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=chain)))


@attack("x5c entry that is not a certificate", "certificate.malformed")
def _garbage_x5c(scene: Scene, forge: Forge) -> Callable[[], object]:
    chain = [base64.b64encode(b"\x30\x03\x02\x01\x00").decode()]
    return lambda: scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=chain)))


@attack("huge x5c entry", "certificate.malformed")
def _huge_x5c(scene: Scene, forge: Forge) -> Callable[[], object]:
    chain = [base64.b64encode(b"\x00" * 9_000).decode()]
    return lambda: scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=chain)))


def _spelled_otherwise(certificate_der: bytes) -> str:
    """The certificate in standard base64 with the unused bits of its last
    character set: the same bytes for a lax decoder, another spelling."""
    text = base64.b64encode(certificate_der).decode().rstrip("=")
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    last = alphabet[alphabet.index(text[-1]) | (0x0F if len(certificate_der) % 3 == 1 else 0x03)]
    return text[:-1] + last + "=" * (-len(text) % 4)


def _x5c_spelling_attack(
    spell: Callable[[list[str], Forge], list[str]], *, vitale: bool = False
) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        if vitale:
            chain = spell(x5c(forge.vitale_certificate), forge)
            header = forge.header(VITALE_TYPE, "ES256", chain)
            co = forge.vitale(scene.challenge, header=header)
            return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))
        chain = spell(x5c(forge.cps_certificate), forge)
        return lambda: scene.verify(
            forge.assertion(scene.challenge, header=forge.header(chain=chain))
        )

    return case


for _name, _x5c_of, _on_vitale in (
    ("padding after it", lambda chain, _: [chain[0] + "=="], False),
    (
        "its last character's unused bits set (Vitale)",
        lambda _, f: [_spelled_otherwise(der(f.vitale_certificate))],
        True,
    ),
    (
        "an intermediate's last character's unused bits set",
        lambda chain, _: [chain[0], _spelled_otherwise(der(simulator_pki().cps_ca.certificate))],
        False,
    ),
    (
        "the base64url alphabet",
        lambda chain, _: [chain[0].replace("+", "-").replace("/", "_")],
        False,
    ),
    (
        "line breaks (PEM style)",
        lambda chain, _: ["\n".join(chain[0][i : i + 64] for i in range(0, len(chain[0]), 64))],
        False,
    ),
    (
        "no padding",
        lambda _, f: [base64.b64encode(der(f.vitale_certificate)).decode().rstrip("=")],
        True,
    ),
):
    attack(f"x5c entry with {_name}", "certificate.malformed")(
        _x5c_spelling_attack(_x5c_of, vitale=_on_vitale)
    )


# x5c is the card's certificate, then optionally its issuing CAs in order, each the
# issuer of the one before (RFC 7515 § 4.1.6), and never the root (docs/protocol.md):
# the path builder would find its way through anything else, so it is refused first.


def _chain_attack(chain_of: Callable[[Forge], list[x509.Certificate]]) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        header = forge.header(chain=x5c(*chain_of(forge)))
        return lambda: scene.verify(forge.assertion(scene.challenge, header=header))

    return case


def _vitale_chain_attack(chain_of: Callable[[Forge], list[x509.Certificate]]) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        header = forge.header(VITALE_TYPE, "ES256", x5c(*chain_of(forge)))
        co = forge.vitale(scene.challenge, header=header)
        return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))

    return case


def _deep_chain_attack(order: Callable[[DeepHierarchy], list[x509.Certificate]]) -> Attack:
    def case(scene: Scene, forge: Forge) -> Callable[[], object]:
        deep = DeepHierarchy.make()
        deep_scene = Scene(deep.verifier())
        leaf = deep.card_certificate(forge.cps_certificate)
        header = forge.header(chain=x5c(leaf, *order(deep)))
        token = forge.assertion(deep_scene.challenge, header=header)
        return lambda: deep_scene.verify(token)

    return case


def _unknown_ca() -> x509.Certificate:
    """A CA under a root nobody trusts: not self-signed, just unrelated."""
    root, root_key = rogue_ca("unrelated-root", name="TEST AC RACINE INCONNUE")
    ca_key = keys.rsa_key("test:unrelated-ca")
    return card_certificate(
        simulator_pki().cps_ca.certificate, root.subject, root_key, ca_key.public_key(), ca=True
    )


_PKI = simulator_pki()
_CPS_CA, _CPS_ROOT = _PKI.cps_ca.certificate, _PKI.cps_root.certificate
_VITALE_CA, _VITALE_ROOT = _PKI.vitale_ca.certificate, _PKI.vitale_root.certificate
for _name, _code, _case in (
    (
        "x5c carrying the root after the CA",
        "certificate.chain_root",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_CA, _CPS_ROOT]),
    ),
    (
        "x5c carrying the root without the CA",
        "certificate.chain_root",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_ROOT]),
    ),
    (
        "x5c carrying the root before the CA",
        "certificate.chain_root",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_ROOT, _CPS_CA]),
    ),
    (
        "x5c carrying a self-signed CA after the path",
        "certificate.chain_root",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_CA, rogue_ca("after-the-path")[0]]),
    ),
    (
        "Vitale x5c carrying its root",
        "certificate.chain_root",
        _vitale_chain_attack(lambda f: [f.vitale_certificate, _VITALE_CA, _VITALE_ROOT]),
    ),
    (
        "x5c with the intermediate twice",
        "certificate.chain_repeated",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_CA, _CPS_CA]),
    ),
    (
        "Vitale x5c with the intermediate twice",
        "certificate.chain_repeated",
        _vitale_chain_attack(lambda f: [f.vitale_certificate, _VITALE_CA, _VITALE_CA]),
    ),
    (
        "x5c with the Vitale hierarchy's CA after the path",
        "certificate.chain_order",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_CA, _VITALE_CA]),
    ),
    (
        "x5c with an unrelated CA after the path",
        "certificate.chain_order",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_CA, _unknown_ca()]),
    ),
    (
        "x5c with an unrelated CA in place of the issuer",
        "certificate.chain_order",
        _chain_attack(lambda f: [f.cps_certificate, _unknown_ca()]),
    ),
    (
        "x5c with an unrelated CA before the issuer",
        "certificate.chain_order",
        _chain_attack(lambda f: [f.cps_certificate, _unknown_ca(), _CPS_CA]),
    ),
    (
        "Vitale x5c carrying the CPS hierarchy's CA",
        "certificate.chain_order",
        _vitale_chain_attack(lambda f: [f.vitale_certificate, _CPS_CA]),
    ),
    (
        "x5c with two intermediates in the wrong order",
        "certificate.chain_order",
        _deep_chain_attack(lambda deep: [deep.upper, deep.lower]),
    ),
    (
        "x5c with the upper intermediate only (the lower from nowhere)",
        "certificate.untrusted",
        _deep_chain_attack(lambda deep: [deep.upper]),
    ),
    (
        "x5c with the lower intermediate only (the upper from nowhere)",
        "certificate.untrusted",
        _deep_chain_attack(lambda deep: [deep.lower]),
    ),
    (
        "x5c of five real certificates",
        "certificate.chain_too_long",
        _chain_attack(lambda f: [f.cps_certificate, _CPS_CA, _CPS_ROOT, _VITALE_CA, _VITALE_ROOT]),
    ),
):
    attack(_name, _code)(_case)


DeepChain = Callable[[Forge, DeepHierarchy], list[x509.Certificate]]


def _reissued_ca() -> x509.Certificate:
    ca = simulator_pki().cps_ca.certificate
    return reissued_cps_ca(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), ca.not_valid_after_utc)


@pytest.mark.parametrize(
    ("chain_of", "verifier_of"),
    [
        pytest.param(
            lambda f, deep: [f.cps_certificate],
            lambda deep: _verifier(),
            id="the card's only, its CA from the trust directory",
        ),
        pytest.param(
            lambda f, deep: [f.cps_certificate, _CPS_CA],
            lambda deep: _verifier(),
            id="the card's and its CA",
        ),
        pytest.param(
            lambda f, deep: [f.cps_certificate, _reissued_ca()],
            lambda deep: _verifier(),
            id="the card's and its CA issued again, not the trust directory's copy",
        ),
        pytest.param(
            lambda f, deep: [deep.card_certificate(f.cps_certificate), deep.lower, deep.upper],
            lambda deep: deep.verifier(),
            id="two intermediates in order",
        ),
        pytest.param(
            lambda f, deep: [deep.card_certificate(f.cps_certificate), deep.lower],
            lambda deep: deep.verifier((deep.upper,)),
            id="the lower intermediate, the upper from the trust directory",
        ),
    ],
)
def test_x5c_that_is_the_start_of_the_path_is_accepted(
    chain_of: DeepChain, verifier_of: Callable[[DeepHierarchy], Verifier]
) -> None:
    """What the protocol allows: the card's certificate, then none, some or all of its
    CAs in order, short of the root; the trust directory's intermediates complete
    the path."""
    forge, deep = Forge(), DeepHierarchy.make()
    chain = chain_of(forge, deep)
    scene = Scene(verifier_of(deep))
    login = scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=x5c(*chain))))
    assert login.professional.idnat == "899700420013"
    assert login.cps_chain[: len(chain)] == tuple(chain)


@attack("untrusted root (a look-alike CA)", "certificate.untrusted")
def _untrusted(scene: Scene, forge: Forge) -> Callable[[], object]:
    ca, ca_key = rogue_ca("look-alike")
    leaf = card_certificate(forge.cps_certificate, ca.subject, ca_key, forge.cps_key.public_key())
    header = forge.header(chain=x5c(leaf, ca))
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("self-signed card certificate", "certificate.self_signed")
def _self_signed(scene: Scene, forge: Forge) -> Callable[[], object]:
    key = forge.cps_key
    leaf = card_certificate(
        forge.cps_certificate, forge.cps_certificate.subject, key, key.public_key()
    )
    return lambda: scene.verify(
        forge.assertion(scene.challenge, header=forge.header(chain=x5c(leaf)))
    )


@attack("chain through a non-CA intermediate", "certificate.not_a_ca")
def _non_ca_intermediate(scene: Scene, forge: Forge) -> Callable[[], object]:
    pharmacist = dataclasses.replace(forge, cps_persona="pharmacist")
    leaf = card_certificate(
        forge.cps_certificate,
        pharmacist.cps_certificate.subject,
        pharmacist.cps_key,
        forge.cps_key.public_key(),
    )
    header = forge.header(chain=x5c(leaf, pharmacist.cps_certificate))
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("expired intermediate CA", "certificate.ca_expired")
def _expired_intermediate(scene: Scene, forge: Forge) -> Callable[[], object]:
    pki = simulator_pki()
    expired = card_certificate(
        pki.cps_ca.certificate,
        pki.cps_root.name,
        pki.cps_root.key,
        pki.cps_ca.key.public_key(),
        ca=True,
        not_before=dt.datetime(2010, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
    )
    header = forge.header(chain=x5c(forge.cps_certificate, expired))
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header))


@attack("expired card certificate", "certificate.expired")
def _expired_card(scene: Scene, forge: Forge) -> Callable[[], object]:
    expired = dataclasses.replace(forge, cps_persona="cps-expired")
    return lambda: scene.verify(expired.assertion(scene.challenge))


@attack("card certificate not yet valid", "certificate.not_yet_valid")
def _not_yet_valid(scene: Scene, forge: Forge) -> Callable[[], object]:
    student = dataclasses.replace(forge, cps_persona="cpf-student")  # valid from 2025-09-01
    early = NOW.replace(year=2025, month=8)
    token = dataclasses.replace(student, now=early).assertion(scene.challenge)
    return lambda: scene.verify(token, now=early)


@attack("signature certificate used to log in", "certificate.usage")
def _signature_certificate(scene: Scene, forge: Forge) -> Callable[[], object]:
    persona = load_cps("doctor")
    certificate = simulator_pki().cps_certificates(persona).signature
    key = cps_key(persona, "signature")
    header = forge.header(chain=x5c(certificate))
    return lambda: scene.verify(forge.assertion(scene.challenge, header=header, key=key))


@attack("certificate without clientAuth", "certificate.usage")
def _no_client_auth(scene: Scene, forge: Forge) -> Callable[[], object]:
    pki = simulator_pki()
    leaf = card_certificate(
        forge.cps_certificate,
        pki.cps_ca.name,
        pki.cps_ca.key,
        forge.cps_key.public_key(),
        client_auth=False,
    )
    return lambda: scene.verify(
        forge.assertion(scene.challenge, header=forge.header(chain=x5c(leaf)))
    )


@attack("CA certificate as the card's", "certificate.usage")
def _ca_as_leaf(scene: Scene, forge: Forge) -> Callable[[], object]:
    pki = simulator_pki()
    leaf = card_certificate(
        forge.cps_certificate, pki.cps_ca.name, pki.cps_ca.key, forge.cps_key.public_key(), ca=True
    )
    return lambda: scene.verify(
        forge.assertion(scene.challenge, header=forge.header(chain=x5c(leaf)))
    )


@attack("Vitale certificate used as a CPS", "certificate.wrong_card")
def _vitale_as_cps(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = forge.header(alg="ES256", chain=x5c(forge.vitale_certificate))
    return lambda: scene.verify(
        forge.assertion(scene.challenge, header=header, key=forge.vitale_key)
    )


@attack("CPS certificate used as the Vitale card", "certificate.wrong_card")
def _cps_as_vitale(scene: Scene, forge: Forge) -> Callable[[], object]:
    header = forge.header(typ=VITALE_TYPE)
    co = forge.vitale(scene.challenge, header=header, key=forge.cps_key)
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


# -- revocation --------------------------------------------------------------------


@attack("card revoked (CRL)", "revocation.revoked")
def _revoked_crl(scene: Scene, forge: Forge) -> Callable[[], object]:
    revoked = dataclasses.replace(forge, cps_persona="cps-revoked")
    return lambda: scene.verify(revoked.assertion(scene.challenge))


@attack("Vitale card revoked (CRL)", "revocation.revoked")
def _vitale_revoked(scene: Scene, forge: Forge) -> Callable[[], object]:
    revoked = dataclasses.replace(forge, vitale_persona="vitale-revoked")
    return lambda: scene.verify(
        forge.assertion(scene.challenge, vitale=revoked.vitale(scene.challenge))
    )


@attack("CRL out of date", "revocation.stale")
def _stale_crl(scene: Scene, forge: Forge) -> Callable[[], object]:
    stale = _scene(crl_checker(NOW - dt.timedelta(days=8)))
    return lambda: stale.verify(forge.assertion(stale.challenge))


@attack("no revocation source answers", "revocation.unavailable")
def _no_source(scene: Scene, forge: Forge) -> Callable[[], object]:
    def unreachable(url: str, body: bytes, timeout: float) -> bytes:
        raise OcspUnreachable("connection refused")

    checker = RevocationChecker(
        policy=RevocationPolicy(ocsp_responder="http://127.0.0.1:9/", use_crl=True),
        transport=unreachable,
    )
    lonely = _scene(checker)
    return lambda: lonely.verify(forge.assertion(lonely.challenge))


@attack("intermediate CA revoked by its root (CRL)", "revocation.revoked")
def _revoked_ca(scene: Scene, forge: Forge) -> Callable[[], object]:
    pki = simulator_pki()
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(pki.cps_ca.certificate.serial_number)
        .revocation_date(NOW - dt.timedelta(days=1))
        .build()
    )
    root_crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.cps_root.name)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(entry)
        .sign(pki.cps_root.key, hashes.SHA256())
    )
    crls = [pki.crl(pki.cps_ca, NOW), root_crl]
    checker = RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)
    under_revoked_ca = _scene(checker)
    return lambda: under_revoked_ca.verify(forge.assertion(under_revoked_ca.challenge))


@attack("no CRL from the root for the intermediate CA", "revocation.unavailable")
def _no_root_crl(scene: Scene, forge: Forge) -> Callable[[], object]:
    pki = simulator_pki()
    checker = RevocationChecker(
        policy=RevocationPolicy(use_ocsp=False), crls=[pki.crl(pki.cps_ca, NOW)]
    )
    half_known = _scene(checker)
    return lambda: half_known.verify(forge.assertion(half_known.challenge))


def _ocsp_attack(fault: Fault, persona: str = "doctor") -> Callable[..., Callable[[], object]]:
    def case(scene: Scene, forge: Forge, responder: OcspResponder) -> Callable[[], object]:
        ocsp_scene = _ocsp_scene(responder.url)
        token = dataclasses.replace(forge, cps_persona=persona).assertion(ocsp_scene.challenge)

        def run() -> object:
            responder.fault = fault
            try:
                return ocsp_scene.verify(token)
            finally:
                responder.fault = Fault.NONE

        return run

    return case


OCSP_ATTACKS = {
    "card revoked (OCSP)": ("revocation.revoked", _ocsp_attack(Fault.NONE, "cps-revoked")),
    "OCSP answers unknown": ("revocation.unknown", _ocsp_attack(Fault.UNKNOWN)),
    "OCSP response stale": ("revocation.ocsp_time", _ocsp_attack(Fault.STALE)),
    "OCSP thisUpdate in the future": ("revocation.ocsp_time", _ocsp_attack(Fault.FUTURE)),
    "OCSP response about another certificate": (
        "revocation.ocsp_cert_id",
        _ocsp_attack(Fault.WRONG_CERT_ID),
    ),
    "OCSP response with a bad signature": (
        "revocation.ocsp_signature",
        _ocsp_attack(Fault.BAD_SIGNATURE),
    ),
    "OCSP response from an untrusted responder": (
        "revocation.ocsp_responder",
        _ocsp_attack(Fault.UNTRUSTED_RESPONDER),
    ),
    "OCSP response with another nonce": ("revocation.ocsp_nonce", _ocsp_attack(Fault.WRONG_NONCE)),
    "OCSP response without nonce": ("revocation.ocsp_nonce", _ocsp_attack(Fault.NO_NONCE)),
    "OCSP responder down, no CRL": ("revocation.unavailable", _ocsp_attack(Fault.HTTP_ERROR)),
}


# -- the Vitale co-assertion -------------------------------------------------------


@attack("Vitale co-assertion from another challenge", "vitale.binding")
def _vitale_other_challenge(scene: Scene, forge: Forge) -> Callable[[], object]:
    co = forge.vitale(b64url_encode(b"\x03" * 32))
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


@attack("Vitale co-assertion bound to another CPS", "vitale.binding")
def _vitale_other_cps(scene: Scene, forge: Forge) -> Callable[[], object]:
    other = dataclasses.replace(forge, cps_persona="pharmacist")
    co = forge.vitale(
        scene.challenge, cps=jose.b64url_encode(hashlib.sha256(der(other.cps_certificate)).digest())
    )
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


@attack("Vitale co-assertion for another origin", "vitale.binding")
def _vitale_other_origin(scene: Scene, forge: Forge) -> Callable[[], object]:
    co = forge.vitale(scene.challenge, aud="https://evil.example")
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


@attack("Vitale co-assertion with a forged signature", "assertion.signature")
def _vitale_forged(scene: Scene, forge: Forge) -> Callable[[], object]:
    other = dataclasses.replace(forge, vitale_persona="parent")
    co = forge.vitale(scene.challenge, key=other.vitale_key)
    return lambda: scene.verify(forge.assertion(scene.challenge, vitale=co))


@attack("Vitale card required but absent", "vitale.missing")
def _vitale_missing(scene: Scene, forge: Forge) -> Callable[[], object]:
    return lambda: scene.verify(forge.assertion(scene.challenge), require_vitale=True)


@attack("Vitale card certificate expired", "certificate.expired")
def _vitale_expired(scene: Scene, forge: Forge) -> Callable[[], object]:
    expired = dataclasses.replace(forge, vitale_persona="vitale-expired")
    return lambda: scene.verify(
        forge.assertion(scene.challenge, vitale=expired.vitale(scene.challenge))
    )


# -- what is tolerated (docs/protocol.md, "How strictly each member is read") ------------


def _spelled_json(value: dict[str, object]) -> bytes:
    """The same JSON object in another spelling: members reversed, spaces and line
    breaks, the first letter of every string and member name escaped (\\u0041)."""
    text = json.dumps(dict(reversed(value.items())), indent=2, ensure_ascii=True)
    return re.sub(r"(?<=[\"])[A-Za-z]", lambda m: f"\\u{ord(m[0]):04x}", text).encode()


def test_the_json_spelling_is_free() -> None:
    scene, forge = _scene(), Forge()
    header, payload = forge.header(), forge.payload(scene.challenge)
    signing_input = (
        f"{b64url_encode(_spelled_json(header))}.{b64url_encode(_spelled_json(payload))}"
    )
    signature = forge.cps_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert b"\\u00" in jose.b64url_decode(signing_input.split(".")[1])
    login = scene.verify(f"{signing_input}.{b64url_encode(signature)}")
    assert login.card_serial == payload["card"]


def test_the_card_serials_issuer_number_is_not_checked() -> None:
    """A chip serial with another issuer number than a CPS3's logs in: the serial is
    for logs, and its form is what makes it safe to log."""
    scene, forge = _scene(), Forge()
    login = scene.verify(forge.assertion(scene.challenge, card="80250000990000100001"))
    assert login.card_serial == "80250000990000100001"


# -- the test ------------------------------------------------------------------------


def test_the_corpus_is_large_enough() -> None:
    assert len(ATTACKS) + len(OCSP_ATTACKS) >= 40


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_refused_with_its_code(name: str) -> None:
    code, case = ATTACKS[name]
    scene = _scene()
    run = case(scene, Forge())
    with pytest.raises(AssertionRefused) as refused:
        run()
    assert refused.value.code == code, refused.value


@pytest.mark.parametrize("name", sorted(OCSP_ATTACKS))
def test_ocsp_attack_is_refused_with_its_code(name: str, responder: OcspResponder) -> None:
    code, case = OCSP_ATTACKS[name]
    run = case(None, Forge(), responder)
    with pytest.raises(AssertionRefused) as refused:
        run()
    assert refused.value.code == code, refused.value


def test_a_forged_token_costs_no_revocation_request(responder: OcspResponder) -> None:
    scene = _ocsp_scene(responder.url)
    forge = Forge()
    before = responder.requests
    with pytest.raises(AssertionRefused):
        scene.verify(
            forge.assertion(
                scene.challenge, key=dataclasses.replace(forge, cps_persona="pharmacist").cps_key
            )
        )
    assert responder.requests == before


def test_the_honest_login_passes_both_revocation_sources(responder: OcspResponder) -> None:
    forge = Forge()
    for scene in (_scene(), _ocsp_scene(responder.url)):
        co = forge.vitale(scene.challenge)
        login = scene.verify(forge.assertion(scene.challenge, vitale=co))
        assert login.professional.idnat == "899700420013"
        assert login.patient is not None
        assert login.patient.nir.value == "285037511542370"
    assert Origin.parse(login.origin) == ORIGIN
