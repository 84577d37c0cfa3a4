"""Inputs built to break decoding rather than to pass a check: certificates in x5c
whose parts do not decode, OCSP answers tampered on the wire, CRLs that say less
than they seem to, trust settings that would quietly turn checks off. Each gets a
typed refusal (or a configuration error at load), never another exception."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ObjectIdentifier

from cardauth.errors import AssertionRefused
from cardauth.revocation import (
    RevocationChecker,
    RevocationPolicy,
    http_post,
    load_revocation_lists,
    policy_from_settings,
)
from cardauth.trust import TrustConfigError
from cardauth.verify import Verifier
from simulator.ocsp import OcspResponder
from simulator.pki import simulator_pki
from tests.hostile_der import (
    extension,
    extensions_of,
    oid,
    rebuild_certificate,
    replace_ocsp_parts,
    seq,
    tlv,
    without,
)
from tests.verifier_kit import NOW, Forge, Scene, der, trust_store

BASIC_CONSTRAINTS, KEY_USAGE, POLICIES = "2.5.29.19", "2.5.29.15", "2.5.29.32"
SUBJECT_ALT_NAME, AUTHORITY_INFO = "2.5.29.17", "1.3.6.1.5.5.7.1.1"


def _crl_scene(checker: RevocationChecker | None = None) -> Scene:
    pki = simulator_pki()
    crls = [pki.crl(authority, NOW) for authority in pki.authorities]
    checker = checker or RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=crls)
    return Scene(Verifier(trust=trust_store(), revocation=checker))


def _hostile_certificates() -> dict[str, bytes]:
    leaf = der(Forge().cps_certificate)
    kept = extensions_of(leaf)
    return {
        "a duplicate extension": rebuild_certificate(leaf, extensions=[*kept, kept[0]]),
        "an unknown key algorithm": rebuild_certificate(
            leaf, public_key_info=seq(seq(oid("1.2.3.4.5")), tlv(0x03, b"\x00\x01\x02"))
        ),
        "an unknown signature algorithm": rebuild_certificate(
            leaf, signature_algorithm=seq(oid("1.2.3.4.6"))
        ),
        "basicConstraints holding an INTEGER": rebuild_certificate(
            leaf,
            extensions=[
                *without(kept, BASIC_CONSTRAINTS),
                extension(BASIC_CONSTRAINTS, seq(tlv(0x02, b"\x05")), critical=True),
            ],
        ),
        "a keyUsage that is not a BIT STRING": rebuild_certificate(
            leaf,
            extensions=[
                *without(kept, KEY_USAGE),
                extension(KEY_USAGE, b"\x05\x00", critical=True),
            ],
        ),
        "a subjectAltName with an x400Address": rebuild_certificate(
            leaf, extensions=[*kept, extension(SUBJECT_ALT_NAME, seq(tlv(0xA3, seq())))]
        ),
        "a common name that is an INTEGER": rebuild_certificate(
            leaf, subject=seq(tlv(0x31, seq(oid("2.5.4.3"), tlv(0x02, b"\x01"))))
        ),
        "an authorityInfoAccess that does not decode": rebuild_certificate(
            leaf,
            extensions=[
                *kept,
                extension(AUTHORITY_INFO, seq(seq(oid("1.3.6.1.5.5.7.48.1"), tlv(0x02, b"\x01")))),
            ],
        ),
    }


HOSTILE = _hostile_certificates()


@pytest.mark.parametrize("position", ["card", "intermediate"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_certificate_that_does_not_decode_is_malformed(name: str, position: str) -> None:
    forge, scene = Forge(), _crl_scene()
    hostile = base64.b64encode(HOSTILE[name]).decode()
    card = base64.b64encode(der(forge.cps_certificate)).decode()
    chain = [hostile] if position == "card" else [card, hostile]
    token = forge.assertion(scene.challenge, header=forge.header(chain=chain))
    with pytest.raises(AssertionRefused) as refused:
        scene.verify(token)
    assert refused.value.code == "certificate.malformed", refused.value


def test_a_refusal_about_a_vitale_certificate_does_not_carry_the_nir() -> None:
    """A Vitale certificate offered as an intermediate: the refusal names it by its
    thumbprint; its subject (the patient's NIR) never reaches an error or a log."""
    forge, scene = Forge(), _crl_scene()
    chain = [base64.b64encode(der(c)).decode() for c in (forge.cps_certificate,)]
    chain.append(base64.b64encode(der(forge.vitale_certificate)).decode())
    with pytest.raises(AssertionRefused) as refused:
        scene.verify(forge.assertion(scene.challenge, header=forge.header(chain=chain)))
    assert refused.value.code == "certificate.not_a_ca"
    shown = str(refused.value.to_dict()) + str(refused.value)
    assert "285037511542370" not in shown
    assert "certificate" in refused.value.to_dict()


# -- OCSP answers tampered on the wire (the responder URL is plain HTTP) -------------


@pytest.fixture(scope="module")
def responder() -> OcspResponder:
    return OcspResponder(clock=lambda: NOW)  # answers in process, no server needed


def _tampering(
    responder: OcspResponder, change: Callable[[bytes], bytes]
) -> Callable[[str, bytes, float], bytes]:
    def transport(url: str, body: bytes, timeout: float) -> bytes:
        return change(responder.respond(body))

    return transport


def _ocsp_scene(transport: Callable[[str, bytes, float], bytes], url: str) -> Scene:
    pki = simulator_pki()
    checker = RevocationChecker(
        policy=RevocationPolicy(ocsp_responder=url, use_crl=True),
        crls=[pki.crl(authority, NOW) for authority in pki.authorities],
        transport=transport,
    )
    return _crl_scene(checker)


def _responder_certificate(response: bytes, change: Callable[[bytes], bytes]) -> bytes:
    basic = asn1_ocsp.OCSPResponse.load(response)["response_bytes"]["response"].parsed
    return replace_ocsp_parts(response, certificates=[change(basic["certs"][0].dump())])


TAMPERED: dict[str, tuple[Callable[[bytes], bytes], str | None]] = {
    "nothing changed (the control)": (replace_ocsp_parts, None),
    "the signature algorithm replaced": (
        lambda r: replace_ocsp_parts(r, signature_algorithm=seq(oid("1.2.3.4.7"))),
        "revocation.ocsp_signature",
    ),
    "a responder certificate with an unknown key type": (
        lambda r: _responder_certificate(
            r,
            lambda c: rebuild_certificate(
                c, public_key_info=seq(seq(oid("1.2.3.4.5")), tlv(0x03, b"\x00\x01"))
            ),
        ),
        "revocation.ocsp_responder",
    ),
    "a responder certificate with a duplicate extension": (
        lambda r: _responder_certificate(
            r, lambda c: rebuild_certificate(c, extensions=extensions_of(c) * 2)
        ),
        "revocation.ocsp_responder",
    ),
    "a non-certificate among the certificates": (
        lambda r: replace_ocsp_parts(r, certificates=[seq(tlv(0x02, b"\x01"))]),
        "revocation.ocsp_invalid",
    ),
    "an unsigned tryLater (the CRLs answer instead)": (
        lambda r: bytes.fromhex("30030a0103"),
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_a_tampered_ocsp_answer(name: str, responder: OcspResponder) -> None:
    change, code = TAMPERED[name]
    scene = _ocsp_scene(_tampering(responder, change), "http://ocsp.invalid/")
    token = Forge().assertion(scene.challenge)
    if code is None:
        assert scene.verify(token).professional.idnat == "899700420013"
        return
    with pytest.raises(AssertionRefused) as refused:
        scene.verify(token)
    assert refused.value.code == code, refused.value


@pytest.fixture
def not_http() -> Iterator[str]:
    """A loopback server that answers an OCSP request with an SSH banner."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve() -> None:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    server.close()
    thread.join(timeout=5)


def test_a_responder_that_does_not_speak_http_sends_to_the_crls(not_http: str) -> None:
    scene = _ocsp_scene(http_post, not_http)
    assert scene.verify(Forge().assertion(scene.challenge)).professional.idnat == "899700420013"


# -- CRLs that say less than they seem to --------------------------------------------


def _crl_with(
    extension_value: x509.ExtensionType | None,
    *,
    critical: bool = False,
    entry_critical: bool = False,
) -> x509.CertificateRevocationList:
    authority = simulator_pki().cps_ca
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.name)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
    )
    if extension_value is not None:
        builder = builder.add_extension(extension_value, critical=critical)
    if entry_critical:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(7)
            .revocation_date(NOW)
            .add_extension(x509.CertificateIssuer([x509.DNSName("other.example")]), critical=True)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(authority.key, hashes.SHA256())


SCOPED_CRLS: dict[str, Callable[[], x509.CertificateRevocationList]] = {
    "a delta CRL": lambda: _crl_with(x509.DeltaCRLIndicator(1), critical=True),
    "a CRL for CA certificates only": lambda: _crl_with(
        x509.IssuingDistributionPoint(None, None, False, True, None, False, False),
        critical=True,
    ),
    "a CRL with an unknown critical extension": lambda: _crl_with(
        x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.4.99"), b"\x05\x00"), critical=True
    ),
    "an indirect CRL entry": lambda: _crl_with(None, entry_critical=True),
}


@pytest.mark.parametrize("name", sorted(SCOPED_CRLS))
def test_only_complete_crls_are_accepted(name: str) -> None:
    with pytest.raises(TrustConfigError):
        RevocationChecker(policy=RevocationPolicy(use_ocsp=False), crls=[SCOPED_CRLS[name]()])


def test_a_pem_bundle_of_crls_loads_every_crl(tmp_path: Path) -> None:
    pki = simulator_pki()
    bundle = b"".join(pki.crl(a, NOW).public_bytes(Encoding.PEM) for a in pki.authorities)
    (tmp_path / "all.pem").write_bytes(bundle)
    assert len(load_revocation_lists(tmp_path)) == len(pki.authorities)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("ocsp_timeout_seconds", float("nan")),
        ("ocsp_timeout_seconds", -5),
        ("ocsp_timeout_seconds", 0),
        ("max_skew_seconds", float("nan")),
        ("crl_grace_hours", float("inf")),
        ("ocsp_max_age_hours", 1e300),
    ],
)
def test_a_revocation_setting_out_of_range_is_refused(setting: str, value: float) -> None:
    with pytest.raises(TrustConfigError) as refused:
        policy_from_settings({setting: value})
    assert refused.value.context["setting"] == setting
