"""CRLs are read once and indexed: the revoked serial numbers in a set, the signed
part hashed. The index must say exactly what the CRL says (cryptography's own
look-up is the oracle), for every serial number a CA may write, and the
signature must be checked as cryptography checks it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cardauth.errors import AssertionRefused
from cardauth.revocation import (
    RevocationChecker,
    RevocationList,
    RevocationPolicy,
    load_revocation_lists,
)
from cardauth.trust import TrustConfigError
from cardauth.verify import Verifier
from simulator import keys
from simulator.pki import Authority, simulator_pki
from tests.verifier_kit import NOW, Forge, Scene, card_like, trust_store, x5c

# Serial numbers at the edges of their DER encoding: zero, the one-byte and two-byte
# limits (128 needs a leading 00), RFC 5280's 20 octets and beyond, and negative
# ones, which non-conforming CAs have issued (RFC 5280 § 4.1.2.2).
EDGE_SERIALS = (
    0,
    1,
    127,
    128,
    255,
    256,
    2**63,
    2**159 - 1,
    2**159,
    2**160 - 1,
    2**160 + 5,
    2**256 - 1,
    -1,
    -128,
    -(2**159),
)


def _signed_crl_der(authority: Authority, serials: list[int]) -> bytes:
    """A CRL of ``authority`` listing ``serials`` as written (cryptography's builder
    refuses serial numbers outside 1 to 2**159 - 1: asn1crypto writes any INTEGER)."""
    tbs = asn1_crl.TbsCertList(
        {
            "version": "v2",
            "signature": {"algorithm": "sha256_rsa"},
            "issuer": asn1_x509.Name.load(authority.name.public_bytes()),
            "this_update": asn1_x509.Time({"utc_time": NOW}),
            "next_update": asn1_x509.Time({"utc_time": NOW + dt.timedelta(days=7)}),
            "revoked_certificates": [
                {
                    "user_certificate": serial,
                    "revocation_date": asn1_x509.Time({"utc_time": NOW - dt.timedelta(days=1)}),
                }
                for serial in serials
            ],
        }
    )
    signature = authority.key.sign(tbs.dump(), padding.PKCS1v15(), hashes.SHA256())
    return bytes(
        asn1_crl.CertificateList(
            {
                "tbs_cert_list": tbs,
                "signature_algorithm": {"algorithm": "sha256_rsa"},
                "signature": signature,
            }
        ).dump()
    )


def _crl(
    authority: Authority | tuple[x509.Name, ec.EllipticCurvePrivateKey],
    serials: list[int],
    **sign: object,
) -> x509.CertificateRevocationList:
    """A CRL listing ``serials`` (each with a reason code), signed by ``authority``
    (or by a name and an ECDSA key)."""
    name, key = (authority.name, authority.key) if isinstance(authority, Authority) else authority
    entries = [
        x509.RevokedCertificateBuilder()
        .serial_number(serial)
        .revocation_date(NOW - dt.timedelta(days=1))
        .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        .build()
        for serial in serials
    ]
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=name,
        last_update=NOW,
        next_update=NOW + dt.timedelta(days=7),
        revoked_certificates=entries,
    )
    return builder.sign(key, hashes.SHA256(), **sign)  # type: ignore[arg-type]


def test_edge_serial_numbers_are_found_as_the_crl_lists_them() -> None:
    der = _signed_crl_der(simulator_pki().cps_ca, list(EDGE_SERIALS))
    index = RevocationList.from_der(der)
    oracle = x509.load_der_x509_crl(der)  # (its look-up takes no negative number)
    assert {entry.serial_number for entry in oracle} == set(EDGE_SERIALS) == index.revoked
    for serial in EDGE_SERIALS:
        assert index.lists(serial)
    for serial in {s + d for s in EDGE_SERIALS for d in (-1, 1)} - set(EDGE_SERIALS):
        assert not index.lists(serial), serial
        if serial >= 0:
            assert oracle.get_revoked_certificate_by_serial_number(serial) is None


def test_an_index_of_thousands_agrees_with_the_crl() -> None:
    rng = random.Random(12)
    listed = [rng.getrandbits(159) | 1 for _ in range(3000)]
    crl = _crl(simulator_pki().cps_ca, listed)
    index = RevocationList.from_crl(crl)
    assert index.revoked == frozenset(listed)
    for serial in [rng.getrandbits(159) for _ in range(300)]:
        expected = crl.get_revoked_certificate_by_serial_number(serial) is not None
        assert index.lists(serial) is expected


def test_a_card_among_thousands_of_revoked_is_refused_and_one_outside_is_not() -> None:
    pki, forge = simulator_pki(), Forge()
    issuer = pki.cps_ca
    listed, kept = (card_like(forge.cps_certificate, issuer.key) for _ in range(2))
    rng = random.Random(7)
    serials = [rng.getrandbits(159) | 1 for _ in range(5000)] + [listed.serial_number]
    crls = [_crl(issuer, serials), pki.crl(pki.cps_root, NOW)]
    checker = RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)
    scene = Scene(Verifier(trust=trust_store(), revocation=checker))
    with pytest.raises(AssertionRefused) as refused:
        scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=x5c(listed))))
    assert refused.value.code == "revocation.revoked"
    scene = Scene(scene.verifier)
    login = scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=x5c(kept))))
    assert login.professional.certificate_serial == f"{kept.serial_number:X}"


def test_a_serial_holding_the_bytes_of_a_critical_flag_takes_the_full_check() -> None:
    """Entries are read for critical extensions only when the bytes of a critical
    flag (01 01 FF) appear in the CRL: here they do, in a serial number, and the
    CRL is complete all the same."""
    serial = int.from_bytes(b"\x11\x01\x01\xff\x22" + os.urandom(8), "big")
    index = RevocationList.from_crl(_crl(simulator_pki().cps_ca, [serial, 5]))
    assert index.lists(serial)
    assert index.lists(5)


def test_an_indirect_entry_hidden_among_thousands_is_refused() -> None:
    authority = simulator_pki().cps_ca
    entries = [
        x509.RevokedCertificateBuilder().serial_number(n).revocation_date(NOW).build()
        for n in range(1, 2000)
    ]
    entries.insert(
        1000,
        x509.RevokedCertificateBuilder()
        .serial_number(99_999)
        .revocation_date(NOW)
        .add_extension(x509.CertificateIssuer([x509.DNSName("other.example")]), critical=True)
        .build(),
    )
    crl = x509.CertificateRevocationListBuilder(
        issuer_name=authority.name,
        last_update=NOW,
        next_update=NOW + dt.timedelta(days=7),
        revoked_certificates=entries,
    ).sign(authority.key, hashes.SHA256())
    with pytest.raises(TrustConfigError):
        RevocationList.from_crl(crl)


@pytest.mark.parametrize(
    "scheme",
    [padding.PKCS1v15(), padding.PSS(padding.MGF1(hashes.SHA256()), 32)],
    ids=["pkcs1v15", "pss"],
)
def test_an_rsa_signature_is_checked_against_the_issuer_only(
    scheme: padding.PKCS1v15 | padding.PSS,
) -> None:
    pki = simulator_pki()
    index = RevocationList.from_crl(_crl(pki.cps_ca, [3], rsa_padding=scheme))
    assert index.signed_by(pki.cps_ca.certificate)
    assert index.signed_by(pki.cps_ca.certificate)  # remembered, still true
    assert not index.signed_by(pki.vitale_ca.certificate)
    assert not index.signed_by(pki.cps_root.certificate)


def test_an_ecdsa_signature_is_checked_against_the_issuer_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST AC ECDSA")])
    crl = _crl((name, key), [3])
    index = RevocationList.from_crl(crl)
    assert index.signed_by(_self_signed(name, key))
    assert not index.signed_by(_self_signed(name, other))
    assert crl.is_signature_valid(key.public_key())  # cryptography agrees


def _self_signed(name: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_a_crl_signed_by_another_key_is_refused_at_verification() -> None:
    """A CRL bearing the CA's name but another key's signature: the login is refused
    (revocation.crl_invalid), never cleared by that CRL."""
    pki = simulator_pki()
    impostor = dataclasses.replace(pki.cps_ca, key=keys.rsa_key("test:crl-impostor"))
    crls = [_crl(impostor, [3]), pki.crl(pki.cps_root, NOW)]
    checker = RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)
    scene = Scene(Verifier(trust=trust_store(), revocation=checker))
    with pytest.raises(AssertionRefused) as refused:
        scene.verify(Forge().assertion(scene.challenge))
    assert refused.value.code == "revocation.crl_invalid"


def test_the_newest_crl_of_an_issuer_is_the_one_used() -> None:
    pki = simulator_pki()
    older = pki.crl(pki.cps_ca, NOW - dt.timedelta(days=1))
    newer = pki.crl(pki.cps_ca, NOW)
    for order in ([older, newer], [newer, older]):
        checker = RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=order)
        kept = checker.crls.by_issuer[pki.cps_ca.name]
        assert kept.last_update == newer.last_update_utc


def test_pem_files_with_several_crls_and_der_files_load(tmp_path: Path) -> None:
    pki = simulator_pki()
    pem = b"".join(pki.crl(a, NOW).public_bytes(Encoding.PEM) for a in pki.authorities[:2])
    (tmp_path / "bundle.pem").write_bytes(pem.replace(b"\n", b"\r\n"))
    (tmp_path / "one.crl").write_bytes(pki.crl(pki.vitale_ca, NOW).public_bytes(Encoding.DER))
    lists = load_revocation_lists(tmp_path)
    assert sorted(str(rl.issuer) for rl in lists) == sorted(
        str(a.name) for a in (*pki.authorities[:2], pki.vitale_ca)
    )


@pytest.mark.parametrize(
    "content",
    [
        b"-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n",
        b"-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        b"\x30\x03\x02\x01\x00",
        b"",
    ],
    ids=["bad-base64", "truncated", "no-crl-block", "not-a-crl", "empty"],
)
def test_a_bad_crl_file_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.crl").write_bytes(content)
    with pytest.raises(TrustConfigError) as refused:
        load_revocation_lists(tmp_path)
    assert str(refused.value.context["file"]).endswith("bad.crl")


def test_a_crl_not_signed_with_rsa_or_ecdsa_is_refused_at_load() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "TEST AC ED25519")]))
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .sign(key, None)
    )
    with pytest.raises(TrustConfigError):
        RevocationList.from_crl(crl)


def test_rsa_keys_of_the_simulator_are_rsa() -> None:
    """(The helpers above lean on the simulator's CA keys being RSA.)"""
    assert isinstance(simulator_pki().cps_ca.key, rsa.RSAPrivateKey)
