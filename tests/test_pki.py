"""The test PKI: shaped like IGC-Santé, TEST in every CA name, deterministic."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator import keys
from simulator.personas import load_cps, load_vitale
from simulator.pki import CARD_TYPE_POLICIES, VITALE_POLICY, simulator_pki


def _cn(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_every_ca_name_says_test() -> None:
    for authority in simulator_pki().authorities:
        assert "TEST" in _cn(authority.certificate.subject)


def test_hierarchies_are_kept_apart() -> None:
    pki = simulator_pki()
    pki.cps_ca.certificate.verify_directly_issued_by(pki.cps_root.certificate)
    pki.vitale_ca.certificate.verify_directly_issued_by(pki.vitale_root.certificate)
    assert pki.cps_root.certificate.subject != pki.vitale_root.certificate.subject
    for authority in pki.authorities:
        constraints = authority.certificate.extensions.get_extension_for_class(
            x509.BasicConstraints
        )
        assert constraints.critical
        assert constraints.value.ca


def test_cps_certificates_carry_idnat_names_profession_and_card_type() -> None:
    pki = simulator_pki()
    certificates = pki.cps_certificates(load_cps("doctor"))
    for certificate in (certificates.authentication, certificates.signature):
        certificate.verify_directly_issued_by(pki.cps_ca.certificate)
        subject = certificate.subject
        assert _cn(subject) == "899700420013"
        assert subject.get_attributes_for_oid(NameOID.TITLE)[0].value == "Médecin"
        assert subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "FONTAINE"
        policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies)
        assert [p.policy_identifier for p in policies.value] == [
            CARD_TYPE_POLICIES[load_cps("doctor").holder.card_type]
        ]


def test_key_usages_tell_authentication_from_signature() -> None:
    certificates = simulator_pki().cps_certificates(load_cps("pharmacist"))
    auth = certificates.authentication.extensions
    sign = certificates.signature.extensions
    auth_usage = auth.get_extension_for_class(x509.KeyUsage).value
    sign_usage = sign.get_extension_for_class(x509.KeyUsage).value
    assert auth_usage.digital_signature
    assert auth_usage.key_encipherment
    assert not auth_usage.content_commitment
    assert sign_usage.digital_signature
    assert sign_usage.content_commitment
    assert not sign_usage.key_encipherment
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH in auth.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        not in sign.get_extension_for_class(x509.ExtendedKeyUsage).value
    )


def test_cpe_idnat_is_finess_and_suffix() -> None:
    certificate = simulator_pki().cps_certificates(load_cps("cpe-employee")).authentication
    assert _cn(certificate.subject) == "3990000010/SEC0042"


def test_vitale_certificate_binds_the_nir() -> None:
    pki = simulator_pki()
    persona = load_vitale("parent")
    certificate = pki.vitale_certificate(persona)
    certificate.verify_directly_issued_by(pki.vitale_ca.certificate)
    assert _cn(certificate.subject) == "178016912304552"
    policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert [p.policy_identifier for p in policies.value] == [VITALE_POLICY]


def test_crl_lists_the_revoked_cards_only() -> None:
    pki = simulator_pki()
    now = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    crl = pki.crl(pki.cps_ca, now)
    assert crl.is_signature_valid(pki.cps_ca.key.public_key())
    assert crl.last_update_utc == now
    assert crl.next_update_utc == now + dt.timedelta(days=7)
    revoked = pki.cps_certificates(load_cps("cps-revoked"))
    serials = {entry.serial_number for entry in crl}
    assert serials == {revoked.authentication.serial_number, revoked.signature.serial_number}
    vitale_crl = pki.crl(pki.vitale_ca, now)
    persona = load_vitale("vitale-revoked")
    assert {e.serial_number for e in vitale_crl} == {pki.vitale_certificate(persona).serial_number}


DUMP = """
from cryptography.hazmat.primitives.serialization import Encoding
from simulator.personas import load
from simulator.pki import simulator_pki
print(simulator_pki().cps_certificates(load("nurse")).authentication.public_bytes(Encoding.DER).hex())
"""


def test_certificates_are_the_same_on_every_machine(tmp_path: Path) -> None:
    """A process with an empty key cache derives the very same certificate."""
    result = subprocess.run(
        [sys.executable, "-c", DUMP],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CARDAUTH_SIM_CACHE": str(tmp_path)},
        check=True,
    )
    here = simulator_pki().cps_certificates(load_cps("nurse")).authentication
    assert result.stdout.strip() == here.public_bytes(Encoding.DER).hex()
    assert any(tmp_path.iterdir())  # and the keys were cached there


def test_a_damaged_key_cache_is_regenerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDAUTH_SIM_CACHE", str(tmp_path))
    label = "test:damaged-cache"
    first = keys.rsa_key.__wrapped__(label)  # bypass the in-memory cache
    for cached in tmp_path.iterdir():
        cached.write_bytes(b"not a key")
    again = keys.rsa_key.__wrapped__(label)
    assert again.private_numbers() == first.private_numbers()


def test_crl_does_not_list_a_revocation_dated_after_it() -> None:
    pki = simulator_pki()
    before = pki.crl(pki.cps_ca, dt.datetime(2025, 6, 1, tzinfo=dt.UTC))  # revoked 2025-06-15
    assert list(before) == []
