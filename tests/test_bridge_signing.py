"""Signing through the bridge: a site asks for the signing certificate, or for a
signature over a SHA-256 hash it prepared (deferred signing), on the bridge's own
page. Each is shown and answered there; each signature asks the PIN typed for it,
signs with the non-repudiation key only, and logs the card out. The signatures are
checked with cryptography against the card's signature certificate, as made by the
test PKI, and with ``openssl pkeyutl`` (an oracle nobody here wrote) on the raw
signature.

Every refusal is pinned: a site not approved, a malformed hash or document name, a
login's approval or PIN state taken for a signing consent, the authentication key
asked for a document, a wrong, malformed or blocked PIN, a card pulled mid-signature,
the professional or the site giving up."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardauth.apdu import Ins
from cardauth.jose import CompactJws
from simulator.faults import Fault
from simulator.pki import simulator_pki
from tests.bridge_flows import Page, answer, open_interaction, open_page, outcome, reload, start
from tests.bridge_kit import BRIDGE, TELESERVICE, BridgeScene, bridge_scene, get, post_json
from tests.signing_kit import (
    DOCTOR_CERTIFICATES,
    b64url,
    openssl,
    openssl_verifies,
    rsa_key,
    unb64url,
    verifies,
)
from webbridge.operations import MAX_DOCUMENT_NAME

PIN = "1234"
FOREIGN = "https://new-teleservice.example"
# What a teleservice hashes in deferred signing: the signed attributes of its CMS
# (here, any bytes: the card signs their digest).
PREPARED = b"signed attributes of the prescription's CMS, DER-encoded"
DIGEST = hashlib.sha256(PREPARED).digest()
DOCUMENT_NAME = "Ordonnance du 2 décembre 2026.pdf"


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[BridgeScene]:
    yield from bridge_scene(tmp_path)


def signature_request(**members: Any) -> dict[str, Any]:
    return {
        "kind": "signature",
        "hash": b64url(DIGEST),
        "hash_algorithm": "SHA-256",
        "document_name": DOCUMENT_NAME,
        **members,
    }


CERTIFICATE_REQUEST = {"kind": "signing_certificate"}


def sign_on_the_page(scene: BridgeScene, origin: str = TELESERVICE.value, **members: Any) -> Page:
    page = open_interaction(scene, origin, signature_request(**members))
    answer(scene, page, pin=PIN)
    return page


def security_operations(scene: BridgeScene) -> tuple[int, int]:
    """PSO commands (HASH, COMPUTE DIGITAL SIGNATURE) and INTERNAL AUTHENTICATEs the
    CPS card has seen."""
    commands = scene.card(0).commands
    return commands[Ins.PERFORM_SECURITY_OPERATION], commands[Ins.INTERNAL_AUTHENTICATE]


# -- a signature, from the page to openssl ---------------------------------------------


def test_the_page_shows_the_site_the_document_and_its_hash_then_the_signature_verifies(
    scene: BridgeScene, tmp_path: Path
) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    shown = html.unescape(page.html)
    assert TELESERVICE.value in shown
    assert DOCUMENT_NAME in shown
    grouped = " ".join(DIGEST.hex().upper()[i : i + 4] for i in range(0, 64, 4))
    assert f'<code id="document-hash">{grouped}</code>' in page.html
    assert 'id="pin"' in page.html
    assert "Essais restants : 3" in page.html
    assert 'id="remember"' not in page.html  # a signature is never "trusted" for later
    assert security_operations(scene) == (0, 0)  # nothing signed before the answer

    answer(scene, page, pin=PIN)
    assert 'id="outcome"' in page.html
    assert "Document signé" in page.html
    signed = outcome(scene.client(), page)
    assert set(signed) == {"status", "signature", "signature_algorithm", "certificate"}
    assert (signed["status"], signed["signature_algorithm"]) == ("ok", "RS256")
    signature, certificate_der = unb64url(signed["signature"]), unb64url(signed["certificate"])
    assert certificate_der == DOCTOR_CERTIFICATES.signature.public_bytes(Encoding.DER)
    assert verifies(DOCTOR_CERTIFICATES.signature, signature, DIGEST)
    assert not verifies(DOCTOR_CERTIFICATES.authentication, signature, DIGEST)
    assert openssl_verifies(certificate_der, signature, DIGEST, tmp_path)
    assert not openssl_verifies(
        certificate_der, signature, hashlib.sha256(b"other").digest(), tmp_path
    )
    assert scene.card(0).pins_presented == 1
    assert security_operations(scene) == (2, 0)  # PSO HASH, PSO CDS; no INTERNAL AUTHENTICATE
    assert not scene.card(0).verified_codes  # the card logged out after signing


def test_a_signature_costs_the_card_eight_commands(scene: BridgeScene) -> None:
    """The signature certificate is read once per insertion (when a signing page first
    shows); then each signature is the SELECT that logs out whatever PIN a login left,
    VERIFY, SELECT of the application, MSE SET of the hash and signature templates,
    PSO HASH, PSO CDS, and the SELECT that logs out."""
    for _ in range(2):
        page = open_interaction(scene, TELESERVICE.value, signature_request())
        card = scene.card(0)
        before = Counter(card.commands)
        answer(scene, page, pin=PIN)
        sent = Counter(card.commands) - before
        assert sent == {
            Ins.VERIFY: 1,
            Ins.SELECT: 3,
            Ins.MANAGE_SECURITY_ENVIRONMENT: 2,
            Ins.PERFORM_SECURITY_OPERATION: 2,
        }
        assert outcome(scene.client(), page)["status"] == "ok"


def test_the_card_signs_the_digest_info_of_the_hash(scene: BridgeScene, tmp_path: Path) -> None:
    """What the card padded, recovered by openssl and parsed by asn1crypto: the
    DigestInfo of SHA-256 with the site's hash (RFC 8017 § 9.2), so the signature is
    the one a PDF or CMS signature over that hash needs."""
    page = sign_on_the_page(scene)
    signature = unb64url(outcome(scene.client(), page)["signature"])
    (tmp_path / "key.pem").write_bytes(
        rsa_key(DOCTOR_CERTIFICATES.signature).public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "signature").write_bytes(signature)
    recovered = openssl(
        *("pkeyutl", "-verifyrecover", "-pubin", "-inkey", str(tmp_path / "key.pem")),
        *("-pkeyopt", "rsa_padding_mode:pkcs1", "-in", str(tmp_path / "signature")),
    )
    assert recovered.returncode == 0, recovered.stderr
    digest_info = algos.DigestInfo.load(recovered.stdout)
    assert digest_info["digest_algorithm"]["algorithm"].native == "sha256"
    assert digest_info["digest"].native == DIGEST


def test_a_cms_signature_finished_with_the_answer_verifies_with_openssl_cms(
    scene: BridgeScene, tmp_path: Path
) -> None:
    """Deferred signing as a teleservice does it, with asn1crypto: the signing
    certificate first, then signed attributes naming the document's digest, their
    SHA-256 signed through the bridge, and a detached CMS SignedData (RFC 5652)
    built around the raw signature. ``openssl cms -verify`` checks it, the path to
    the test PKI's root included."""
    asked = open_interaction(scene, TELESERVICE.value, CERTIFICATE_REQUEST)
    answer(scene, asked)
    certificate = asn1_x509.Certificate.load(
        unb64url(outcome(scene.client(), asked)["certificate"])
    )
    document = b"Ordonnance : amoxicilline 1 g, matin et soir, 6 jours.\n"
    signed_attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.sha256(document).digest()]}
            ),
        ]
    )
    digest = hashlib.sha256(signed_attributes.dump()).digest()  # over the SET OF (RFC 5652 § 5.4)
    page = sign_on_the_page(scene, hash=b64url(digest), document_name="Ordonnance.txt")
    signed = outcome(scene.client(), page)
    assert unb64url(signed["certificate"]) == certificate.dump()
    sha256 = algos.DigestAlgorithm({"algorithm": "sha256"})
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
                    )
                }
            ),
            "digest_algorithm": sha256,
            "signed_attrs": signed_attributes,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            "signature": unb64url(signed["signature"]),
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [sha256],
            "encap_content_info": {"content_type": "data"},  # detached
            "certificates": [certificate],
            "signer_infos": [signer],
        }
    )
    envelope = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
    (tmp_path / "document.txt").write_bytes(document)
    (tmp_path / "signature.p7s").write_bytes(envelope.dump())
    pki = simulator_pki()
    (tmp_path / "ca.pem").write_bytes(
        b"".join(a.certificate.public_bytes(Encoding.PEM) for a in (pki.cps_ca, pki.cps_root))
    )

    def openssl_cms(content: Path) -> bool:
        verdict = openssl(
            *("cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any"),
            *("-in", str(tmp_path / "signature.p7s"), "-content", str(content)),
            *("-CAfile", str(tmp_path / "ca.pem"), "-out", str(tmp_path / "out")),
        )
        return verdict.returncode == 0 and b"Verification successful" in verdict.stderr

    assert openssl_cms(tmp_path / "document.txt")
    (tmp_path / "altered.txt").write_bytes(document.replace(b"6 jours", b"60 jours"))
    assert not openssl_cms(tmp_path / "altered.txt")


def test_the_signing_certificate_is_given_once_the_professional_allows_it(
    scene: BridgeScene,
) -> None:
    page = open_interaction(scene, TELESERVICE.value, CERTIFICATE_REQUEST)
    assert TELESERVICE.value in html.unescape(page.html)
    assert 'id="certificate-use"' in page.html
    assert 'id="pin"' not in page.html  # public data: no PIN
    assert outcome(scene.client(), page) == {"status": "pending"}
    answer(scene, page)
    given = outcome(scene.client(), page)
    assert set(given) == {"status", "certificate"}
    der = unb64url(given["certificate"])
    assert der == DOCTOR_CERTIFICATES.signature.public_bytes(Encoding.DER)
    usage = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.value.content_commitment  # non-repudiation: the document key's
    assert scene.card(0).pins_presented == 0
    assert security_operations(scene) == (0, 0)


# -- sites, consents ----------------------------------------------------------------------


def test_a_site_not_approved_gets_nothing_until_the_professional_answers(
    scene: BridgeScene,
) -> None:
    site = scene.client(FOREIGN)
    page = open_interaction(scene, FOREIGN, signature_request())
    assert FOREIGN in html.unescape(page.html)  # the page names the site that asks
    path = f"/v1/interactions/{page.request_id}"
    for _ in range(2):
        refused = get(site, path)
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
    assert security_operations(scene) == (0, 0)
    assert scene.card(0).pins_presented == 0
    answer(scene, page, action="decline")
    assert "Signature refusée" in page.html
    declined = get(site, path)
    assert declined.get_json()["status"] == "declined"
    assert declined.get_json()["error"]["code"] == "bridge.declined"
    assert declined.headers["Access-Control-Allow-Origin"] == FOREIGN
    assert security_operations(scene) == (0, 0)
    assert scene.card(0).pins_presented == 0


def test_a_site_not_approved_signs_once_the_professional_signs(scene: BridgeScene) -> None:
    page = open_interaction(scene, FOREIGN, signature_request())
    answer(scene, page, pin=PIN, remember="on")  # a "trust" box forged into the form
    signed = outcome(scene.client(FOREIGN), page)
    assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), DIGEST)
    status = get(scene.client(FOREIGN), "/v1/status")
    assert status.status_code == 403  # signing approved nothing for later
    assert scene.consents.list(now=dt.datetime.now(dt.UTC)) == []


def test_a_refused_certificate_gives_nothing(scene: BridgeScene) -> None:
    page = open_interaction(scene, FOREIGN, CERTIFICATE_REQUEST)
    answer(scene, page, action="decline")
    refused = outcome(scene.client(FOREIGN), page)
    assert refused["status"] == "declined"
    assert "certificate" not in refused


def test_a_login_approval_and_pin_state_are_not_a_signing_consent(scene: BridgeScene) -> None:
    """The site is approved for logins (configured, and the PIN fresh from a login
    that ticked "trust"): it still gets the signing certificate only once the
    professional allows it on the page, and a signature only with the PIN typed for
    it; and signing ends the login's PIN state."""
    login = open_page(scene, TELESERVICE.value, scene.challenge())
    answer(scene, login, pin=PIN)
    assert outcome(scene.client(), login)["status"] == "ok"
    assert scene.cards.pin_is_fresh()

    asked = open_interaction(scene, TELESERVICE.value, CERTIFICATE_REQUEST)
    assert outcome(scene.client(), asked, wait=0.3) == {"status": "pending"}
    answer(scene, asked)
    assert outcome(scene.client(), asked)["status"] == "ok"

    page = open_interaction(scene, TELESERVICE.value, signature_request())
    assert 'id="pin"' in page.html  # asked though the login's PIN is fresh
    answer(scene, page)  # allowed, no PIN typed
    assert 'data-code="pin.format"' in page.html
    assert outcome(scene.client(), page) == {"status": "pending"}
    assert scene.card(0).pins_presented == 1  # the login's only
    assert security_operations(scene)[0] == 0
    answer(scene, page, pin=PIN)
    assert outcome(scene.client(), page)["status"] == "ok"
    assert scene.card(0).pins_presented == 2
    assert not scene.cards.pin_is_fresh()  # the card logged out after signing
    again = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    assert again.get_json() == {"status": "interaction_required"}


def test_each_signature_is_shown_and_asks_the_pin(scene: BridgeScene) -> None:
    digests = [hashlib.sha256(b"first").digest(), hashlib.sha256(b"second").digest()]
    for number, digest in enumerate(digests, start=1):
        page = open_interaction(scene, TELESERVICE.value, signature_request(hash=b64url(digest)))
        assert 'id="pin"' in page.html
        assert digest.hex().upper()[:4] in page.html
        answer(scene, page, pin=PIN)
        signed = outcome(scene.client(), page)
        assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), digest)
        assert scene.card(0).pins_presented == number


def test_there_is_no_fast_path_for_signing(scene: BridgeScene) -> None:
    """A site whose PIN state is fresh gets logins in one call; nothing of the kind
    signs or gives the signing certificate: /v1/authenticate takes a challenge only."""
    login = open_page(scene, TELESERVICE.value, scene.challenge())
    answer(scene, login, pin=PIN)
    for extra in (
        {"kind": "signature"},
        {"hash": b64url(DIGEST)},
        {"document_name": DOCUMENT_NAME},
    ):
        response = post_json(
            scene.client(), "/v1/authenticate", {"challenge": scene.challenge(), **extra}
        )
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "bridge.bad_request"
    assert security_operations(scene)[0] == 0


def test_a_signature_for_the_certificate_the_site_prepared_for_is_made_by_that_card(
    scene: BridgeScene,
) -> None:
    asked = open_interaction(scene, TELESERVICE.value, CERTIFICATE_REQUEST)
    answer(scene, asked)
    certificate = outcome(scene.client(), asked)["certificate"]
    page = sign_on_the_page(scene, certificate=certificate)
    signed = outcome(scene.client(), page)
    assert signed["certificate"] == certificate
    assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), DIGEST)


def test_another_card_than_the_one_the_document_was_prepared_for_is_refused_before_the_pin(
    scene: BridgeScene,
) -> None:
    """The site prepared the document for the doctor's certificate; the nurse's card
    is in the reader now: the page says so and asks no PIN, nothing is signed, and
    with the doctor's card back, the signature goes."""
    prepared_for = b64url(DOCTOR_CERTIFICATES.signature.public_bytes(Encoding.DER))
    scene.remove(0)
    scene.insert(0, "nurse")
    page = open_interaction(scene, TELESERVICE.value, signature_request(certificate=prepared_for))
    assert 'data-code="card.other_signer"' in page.html
    assert 'id="pin"' not in page.html
    assert 'id="reload"' in page.html
    answer(scene, page, pin=PIN)  # a form forged or kept from before
    assert 'data-code="card.other_signer"' in page.html
    assert scene.card(0).pins_presented == 0
    assert security_operations(scene) == (0, 0)
    assert outcome(scene.client(), page) == {"status": "pending"}
    scene.remove(0)
    scene.insert(0, "doctor")
    reload(scene, page)
    answer(scene, page, pin=PIN)
    signed = outcome(scene.client(), page)
    assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), DIGEST)


@pytest.mark.parametrize("certificate", ["not base64url!", "A", "QQ==", "QR", 12, None])
def test_a_malformed_certificate_is_refused(scene: BridgeScene, certificate: object) -> None:
    _page, started = start(scene, TELESERVICE.value, signature_request(certificate=certificate))
    assert started.status_code == 400
    assert started.get_json()["error"]["code"] == "document.certificate_malformed"


# -- the authentication key never signs a document ----------------------------------------


@pytest.mark.parametrize(
    "members",
    [
        {"key": "82"},
        {"key_reference": 130},
        {"usage": "authentication"},
        {"challenge": "A" * 43},
        {"vitale": True},
    ],
)
def test_no_member_chooses_the_key_or_mixes_a_login_in(
    scene: BridgeScene, members: dict[str, Any]
) -> None:
    page, started = start(scene, TELESERVICE.value, signature_request(**members))
    assert started.status_code == 400
    assert started.get_json()["error"]["code"] == "bridge.bad_request"
    assert reload(scene, page).status_code == 404


def test_a_login_carries_no_document_hash(scene: BridgeScene) -> None:
    for members in (
        {"hash": b64url(DIGEST), "hash_algorithm": "SHA-256"},
        {"document_name": DOCUMENT_NAME},
    ):
        _page, started = start(
            scene, TELESERVICE.value, {"challenge": scene.challenge(), **members}
        )
        assert started.status_code == 400
        assert started.get_json()["error"]["code"] == "bridge.bad_request"


def test_a_document_hash_sent_as_a_login_challenge_signs_no_document(
    scene: BridgeScene,
) -> None:
    """A site sends the 32-byte hash of a document as a login's challenge (it has
    the form of one). The authentication key signs the SHA-256 of the assertion's
    JSON header and payload, which hold the site's origin and a time: never the hash
    itself, and with the key whose certificate allows no non-repudiation."""
    challenge = b64url(DIGEST)
    page = open_page(scene, TELESERVICE.value, challenge)
    answer(scene, page, pin=PIN)
    token = outcome(scene.client(), page)["assertion"]
    jws = CompactJws.split(token)
    signature = unb64url(jws.signature_b64)
    assert not verifies(DOCTOR_CERTIFICATES.authentication, signature, DIGEST)
    assert not verifies(DOCTOR_CERTIFICATES.signature, signature, DIGEST)
    signed = f"{jws.header_b64}.{jws.payload_b64}".encode()
    assert verifies(DOCTOR_CERTIFICATES.authentication, signature, hashlib.sha256(signed).digest())
    assert jws.header()["typ"] == "cardauth+jws"
    assert jws.payload()["aud"] == TELESERVICE.value
    assert security_operations(scene) == (0, 1)  # INTERNAL AUTHENTICATE only, no PSO


# -- malformed requests --------------------------------------------------------------------


MALFORMED = [
    pytest.param({"hash": b64url(DIGEST[:31])}, "document.hash_malformed", id="31 bytes"),
    pytest.param({"hash": b64url(DIGEST + b"\0")}, "document.hash_malformed", id="33 bytes"),
    pytest.param({"hash": b64url(DIGEST) + "="}, "document.hash_malformed", id="padded"),
    pytest.param(
        {"hash": base64.b64encode(b"\xfb" * 32).decode().rstrip("=")},
        "document.hash_malformed",
        id="standard base64",
    ),
    pytest.param({"hash": DIGEST.hex()}, "document.hash_malformed", id="hexadecimal"),
    pytest.param(
        {"hash": b64url(DIGEST)[:-1] + "B"}, "document.hash_malformed", id="unused bits set"
    ),
    pytest.param({"hash": None}, "document.hash_malformed", id="null"),
    pytest.param({"hash": list(DIGEST)}, "document.hash_malformed", id="a list"),
    pytest.param({"hash_algorithm": "SHA-1"}, "document.hash_algorithm", id="SHA-1"),
    pytest.param({"hash_algorithm": "sha256"}, "document.hash_algorithm", id="sha256"),
    pytest.param({"hash_algorithm": "SHA-512"}, "document.hash_algorithm", id="SHA-512"),
    pytest.param({"hash_algorithm": None}, "document.hash_algorithm", id="no algorithm"),
    pytest.param({"document_name": ""}, "document.name_invalid", id="empty name"),
    pytest.param({"document_name": "   "}, "document.name_invalid", id="blank name"),
    pytest.param(
        {"document_name": "a" * (MAX_DOCUMENT_NAME + 1) + ".pdf"},
        "document.name_invalid",
        id="name too long",
    ),
    pytest.param(
        {"document_name": "Ordonnance\nSigné par le patient.pdf"},
        "document.name_invalid",
        id="line break",
    ),
    pytest.param({"document_name": "a\x00b.pdf"}, "document.name_invalid", id="NUL"),
    pytest.param({"document_name": "a\x1b[2Jb.pdf"}, "document.name_invalid", id="escape"),
    pytest.param(
        {"document_name": "Facture\u202efdp.exe"}, "document.name_invalid", id="RLO override"
    ),
    pytest.param(
        {"document_name": "\u2067Ordonnance.pdf\u2069"}, "document.name_invalid", id="RLI isolate"
    ),
    pytest.param(
        {"document_name": "Ordon\u200bnance.pdf"}, "document.name_invalid", id="zero width"
    ),
    pytest.param({"document_name": "a\u2028b.pdf"}, "document.name_invalid", id="line separator"),
    pytest.param({"document_name": 12}, "document.name_invalid", id="a number"),
]


@pytest.mark.parametrize(("members", "code"), MALFORMED)
def test_a_malformed_signature_request_is_refused_before_anything_waits(
    scene: BridgeScene, members: dict[str, Any], code: str
) -> None:
    page, started = start(scene, TELESERVICE.value, signature_request(**members))
    assert started.status_code == 400
    refusal = started.get_json()["error"]
    assert refusal["code"] == code
    assert refusal["message"]
    assert reload(scene, page).status_code == 404  # nothing waits for the professional
    assert security_operations(scene) == (0, 0)


@pytest.mark.parametrize("missing", ["hash", "hash_algorithm", "document_name"])
def test_every_member_of_a_signature_request_is_required(scene: BridgeScene, missing: str) -> None:
    body = signature_request()
    del body[missing]
    _page, started = start(scene, TELESERVICE.value, body)
    assert started.status_code == 400
    assert started.get_json()["error"]["code"].startswith("document.")


def test_an_unknown_kind_is_refused(scene: BridgeScene) -> None:
    _page, started = start(scene, TELESERVICE.value, {"kind": "decrypt"})
    assert started.status_code == 400
    assert started.get_json()["error"]["code"] == "bridge.bad_request"


def test_the_document_name_is_shown_as_text(scene: BridgeScene) -> None:
    name = '<script>alert("x")</script> & <b>Compte rendu</b>.pdf'
    page = open_interaction(scene, TELESERVICE.value, signature_request(document_name=name))
    assert "<script>alert" not in page.html
    assert "<b>Compte" not in page.html
    assert html.escape(name, quote=False) in page.html.replace("&#34;", '"')
    longest = "é" * MAX_DOCUMENT_NAME  # the longest name, in characters, is taken
    assert open_interaction(scene, TELESERVICE.value, signature_request(document_name=longest))


# -- the PIN and the card -----------------------------------------------------------------


def test_a_wrong_pin_says_the_tries_left_and_signs_nothing(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    answer(scene, page, pin="0000")
    assert 'data-code="pin.wrong"' in page.html
    assert "Essais restants : 2" in page.html
    assert outcome(scene.client(), page) == {"status": "pending"}
    assert security_operations(scene) == (0, 0)
    answer(scene, page, pin=PIN)
    assert outcome(scene.client(), page)["status"] == "ok"
    assert scene.card(0).pins_presented == 2


@pytest.mark.parametrize("typed", ["12a4", "", "123456789", "١٢٣٤"])
def test_a_malformed_pin_costs_no_try(scene: BridgeScene, typed: str) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    answer(scene, page, pin=typed)
    assert 'data-code="pin.format"' in page.html
    assert scene.card(0).pins_presented == 0
    assert scene.card(0).pin(0x01).tries_left == 3


def test_a_blocked_pin_ends_the_signature_and_the_page_says_what_to_do(
    scene: BridgeScene,
) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    for _ in range(3):
        answer(scene, page, pin="0000")
    assert 'data-code="pin.blocked"' in page.html
    assert "PUK" in page.html
    ended = outcome(scene.client(), page)
    assert (ended["status"], ended["error"]["code"]) == ("failed", "pin.blocked")
    assert "signature" not in ended
    later = open_interaction(scene, TELESERVICE.value, signature_request())
    assert 'id="blocked"' in later.html
    assert 'id="pin"' not in later.html
    assert 'id="allow"' not in later.html
    assert 'id="decline"' in later.html
    assert security_operations(scene) == (0, 0)


def test_a_card_pulled_and_put_back_mid_signature_is_said_and_signing_goes_on(
    scene: BridgeScene,
) -> None:
    scene.card(0).faults.arm(Fault.REMOVAL, ins=Ins.PERFORM_SECURITY_OPERATION)
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    answer(scene, page, pin=PIN)
    assert 'data-code="transport.card_removed"' in page.html
    assert outcome(scene.client(), page) == {"status": "pending"}  # nothing given, still asked
    assert not scene.card(0).verified_codes  # back in the reader, the PIN forgotten
    assert 'id="pin"' in page.html
    answer(scene, page, pin=PIN)
    signed = outcome(scene.client(), page)
    assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), DIGEST)
    assert scene.card(0).pins_presented == 2


def test_a_card_pulled_out_mid_signature_leaves_the_page_asking_for_it(
    scene: BridgeScene,
) -> None:
    cps = scene.card(0)
    process = cps.process

    def pulled_at_signature(raw: bytes) -> bytes:
        if raw[1] == Ins.PERFORM_SECURITY_OPERATION:
            scene.workstation.remove(0)  # gone between MSE SET and PSO HASH
        return process(raw)

    cps.process = pulled_at_signature  # type: ignore[method-assign]
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    answer(scene, page, pin=PIN)
    cps.process = process  # type: ignore[method-assign]
    assert any(
        f'data-code="{code}"' in page.html
        for code in ("transport.card_removed", "card.not_present")
    ), page.html
    assert outcome(scene.client(), page) == {"status": "pending"}
    reload(scene, page)
    assert 'id="no-card"' in page.html
    assert 'id="reload"' in page.html
    scene.insert(0, "doctor")
    reload(scene, page)
    answer(scene, page, pin=PIN)
    signed = outcome(scene.client(), page)
    assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), DIGEST)
    assert get(scene.client(), "/v1/status").status_code == 200


def test_the_professional_refuses_and_nothing_is_signed(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    answer(scene, page, action="decline", pin=PIN)  # a PIN typed, then "Refuse"
    refused = outcome(scene.client(), page)
    assert (refused["status"], refused["error"]["code"]) == ("declined", "bridge.declined")
    assert scene.card(0).pins_presented == 0
    assert security_operations(scene) == (0, 0)


def test_the_site_gives_the_signature_up(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    cancelled = scene.client().delete(f"/v1/interactions/{page.request_id}", base_url=BRIDGE)
    assert cancelled.get_json()["error"]["code"] == "bridge.cancelled"
    reload(scene, page)
    assert 'id="pin"' not in page.html
    assert 'data-code="bridge.cancelled"' in page.html


def test_a_new_request_of_the_site_replaces_the_signature_waiting(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    open_interaction(scene, TELESERVICE.value, CERTIFICATE_REQUEST)
    replaced = outcome(scene.client(), page)
    assert (replaced["status"], replaced["error"]["code"]) == ("failed", "bridge.replaced")
    assert page.token is not None
    answer(scene, page, pin=PIN)  # the page kept open: nothing is signed any more
    assert scene.card(0).pins_presented == 0


def test_an_expired_card_is_refused_before_the_pin(scene: BridgeScene) -> None:
    scene.remove(0)
    scene.insert(0, "cps-expired")
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    assert 'data-code="card.expired"' in page.html
    assert 'id="pin"' not in page.html
    answer(scene, page, pin=PIN)  # a form forged or kept from before
    assert scene.card(0).pins_presented == 0
    asked = open_interaction(scene, TELESERVICE.value, CERTIFICATE_REQUEST)
    assert 'data-code="card.expired"' in asked.html
    assert 'id="allow"' not in asked.html


def test_the_readers_keypad_takes_the_pin_of_a_signature(scene: BridgeScene) -> None:
    keypad = scene.readers.add_pinpad(0)
    scene.remove(0)
    scene.insert(0, "doctor")
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    assert 'id="keypad"' in page.html
    assert "« Signer »" in page.html
    typing = threading.Timer(0.2, keypad.type, args=(PIN,))
    typing.start()
    answer(scene, page, keypad="on")
    typing.join()
    signed = outcome(scene.client(), page)
    assert verifies(DOCTOR_CERTIFICATES.signature, unb64url(signed["signature"]), DIGEST)
    assert scene.card(0).pins_presented == 1


def test_the_signature_page_speaks_english_when_asked(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, signature_request())
    english = get(scene.client(None), page.url, headers={"Accept-Language": "en-GB,en"})
    text = english.get_data(as_text=True)
    assert "asks you to sign this document" in text
    assert "Your PIN is asked for each signature." in text
    assert ">Sign</button>" in text
