"""The verifier with real cards: honest logins pass with identities from the
certificates; its interface cannot be misused; any mutation is refused with a
typed error; trust directories load; the CLI signs and verifies."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardauth.assertion import build_assertion
from cardauth.cards.cps import CpsCard
from cardauth.cards.vitale import VitaleCard
from cardauth.challenges import ChallengeRecord, MemoryChallengeStore, session_digest
from cardauth.errors import AssertionRefused, InvalidOrigin
from cardauth.protocol import is_card_serial, is_thumbprint, thumbprint
from cardauth.trust import TrustConfigError, TrustStore
from cardauth.verify import Verifier, verify_assertion
from simulator.pki import simulator_pki
from simulator.trust_export import export_trust
from tests.conftest import Station
from tests.verifier_kit import NOW, ORIGIN, SESSION, Forge, Scene, crl_checker, trust_store


def _cards(
    station: Station, cps: str = "doctor", vitale: str = "parent"
) -> tuple[CpsCard, VitaleCard]:
    station.insert(0, cps)
    station.insert(1, vitale)
    cps_card, vitale_card = station.open(0), station.open(1)
    assert isinstance(cps_card, CpsCard)
    assert isinstance(vitale_card, VitaleCard)
    return cps_card, vitale_card


def test_an_honest_login_with_real_cards(station: Station) -> None:
    cps, vitale = _cards(station)
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    cps.verify_pin("1234")
    token = build_assertion(cps, origin=ORIGIN, challenge=scene.challenge, now=NOW, vitale=vitale)
    login = scene.verify(token, require_vitale=True)
    assert login.professional.to_dict() | {"certificate_serial": "-"} == {
        "idnat": "899700420013",
        "identifier_type": "RPPS",
        "identifier": "99700420013",
        "surname": "FONTAINE",
        "given_name": "Élise",
        "card_type": "CPS",
        "profession": "Médecin",
        "profession_code": "10",
        "certificate_serial": "-",
    }
    assert login.patient is not None
    assert (login.patient.nir.value, login.patient.given_name, login.patient.birth_rank) == (
        "178016912304552",
        "Antoine",
        1,
    )
    assert login.card_serial == "80250000010000100001"
    assert login.origin == ORIGIN.value


@pytest.mark.parametrize(
    ("persona", "card_type", "identifier_type"),
    [
        ("nurse", "CPS", "ADELI"),
        ("cpe-employee", "CPE", "FINESS_STAFF"),
        ("cpf-student", "CPF", "RPPS"),
    ],
)
def test_identity_comes_from_the_certificate(
    persona: str, card_type: str, identifier_type: str
) -> None:
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    forge = Forge(cps_persona=persona)
    login = scene.verify(forge.assertion(scene.challenge, card="80250000010000999999"))
    assert login.professional.card_type == card_type
    assert login.professional.identifier_type == identifier_type
    assert login.card_serial == "80250000010000999999"  # a host's claim: carried, never an identity


@pytest.mark.parametrize(
    ("cps", "vitale"),
    [("doctor", "patient"), ("nurse", "parent"), ("cpe-employee", "patient-corsica")],
)
def test_the_serials_the_card_layer_reads_are_what_the_verifier_accepts(
    station: Station, cps: str, vitale: str
) -> None:
    """The verifier's form of the card claim is the card layer's: the serial of a
    CPS and of a Vitale card, read from EF.SN.ICC, signed and verified."""
    cps_card, vitale_card = _cards(station, cps, vitale)
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    cps_card.verify_pin("1234")
    token = build_assertion(
        cps_card, origin=ORIGIN, challenge=scene.challenge, now=NOW, vitale=vitale_card
    )
    assert scene.verify(token, require_vitale=True).card_serial == cps_card.serial()
    assert is_card_serial(cps_card.serial())
    assert cps_card.serial().startswith("8025000001")
    assert is_card_serial(vitale_card.serial())  # the co-assertion verified with it
    assert vitale_card.serial().startswith("8025000002")


def test_the_chain_in_x5c(station: Station) -> None:
    cps, _vitale = _cards(station)
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    cps.verify_pin("1234")
    token = build_assertion(
        cps,
        origin=ORIGIN,
        challenge=scene.challenge,
        now=NOW,
        chain=[simulator_pki().cps_ca.certificate],
    )
    assert scene.verify(token).professional.surname == "FONTAINE"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_every_thumbprint_has_the_form_the_verifier_checks(certificate_der: bytes) -> None:
    assert is_thumbprint(thumbprint(certificate_der))


def test_a_pss_assertion_verifies() -> None:
    """PS256 is in the protocol for RSA keys that sign PSS (a CPS3 signs PKCS#1 v1.5
    only, so its assertions are RS256): such an assertion verifies."""
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    forge = Forge()
    token = forge.assertion(scene.challenge, header=forge.header(alg="PS256"))
    assert scene.verify(token).professional.surname == "FONTAINE"


def test_the_verifier_cannot_be_called_without_origin_challenge_and_session() -> None:
    parameters = inspect.signature(verify_assertion).parameters
    for name in (
        "expected_origins",
        "expected_challenge",
        "session",
        "challenges_store",
        "trust",
        "revocation",
        "now",
    ):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        verify_assertion("token")  # type: ignore[call-arg]


def test_expected_origins_must_be_parsed_origins() -> None:
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    token = Forge().assertion(scene.challenge)
    with pytest.raises(InvalidOrigin):
        scene.verify(token, origins="https://teleservice.example")  # type: ignore[arg-type]
    with pytest.raises(InvalidOrigin):
        scene.verify(token, origins=())


_TOKEN = Forge().assertion("A" * 43)


@settings(
    max_examples=int(os.environ.get("CARDAUTH_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_any_mutation_is_refused_with_a_typed_error(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(_TOKEN) - 1))
    kind = data.draw(st.sampled_from(["replace", "delete", "insert", "truncate", "swap"]))
    if kind == "replace":
        char = data.draw(st.characters(codec="ascii"))
        mutated = _TOKEN[:position] + char + _TOKEN[position + 1 :]
    elif kind == "delete":
        mutated = _TOKEN[:position] + _TOKEN[position + data.draw(st.integers(1, 50)) :]
    elif kind == "insert":
        mutated = (
            _TOKEN[:position] + data.draw(st.text(min_size=1, max_size=20)) + _TOKEN[position:]
        )
    elif kind == "truncate":
        mutated = _TOKEN[:position]
    else:
        other = data.draw(st.integers(0, len(_TOKEN) - 1))
        chars = list(_TOKEN)
        chars[position], chars[other] = chars[other], chars[position]
        mutated = "".join(chars)
    if mutated == _TOKEN:
        return
    store = _store_with_the_challenge()  # so that only the mutation can make it fail
    with pytest.raises(AssertionRefused):
        verify_assertion(
            mutated,
            expected_origins=[ORIGIN],
            expected_challenge="A" * 43,
            session=SESSION,
            challenges_store=store,
            trust=trust_store(),
            revocation=crl_checker(),
            now=NOW,
        )


def _store_with_the_challenge() -> MemoryChallengeStore:
    store = MemoryChallengeStore()
    expires = (NOW + dt.timedelta(minutes=5)).timestamp()
    store.put(ChallengeRecord("A" * 43, session_digest(SESSION), expires), 300)
    return store


def test_the_unmutated_token_passes() -> None:
    store = _store_with_the_challenge()
    login = verify_assertion(
        _TOKEN,
        expected_origins=[ORIGIN],
        expected_challenge="A" * 43,
        session=SESSION,
        challenges_store=store,
        trust=trust_store(),
        revocation=crl_checker(),
        now=NOW,
    )
    assert login.professional.surname == "FONTAINE"


# -- trust directories ---------------------------------------------------------------


def test_an_exported_trust_directory_verifies(tmp_path: Path) -> None:
    export_trust(tmp_path, now=NOW)
    verifier = Verifier.from_directory(tmp_path)
    scene = Scene(verifier)
    assert scene.verify(Forge().assertion(scene.challenge)).professional.idnat == "899700420013"
    revoked = Scene(verifier)
    with pytest.raises(AssertionRefused) as refused:
        revoked.verify(Forge(cps_persona="cps-revoked").assertion(revoked.challenge))
    assert refused.value.code == "revocation.revoked"


@pytest.mark.parametrize(
    "damage", ["no toml", "bad toml", "no roots", "not a pem", "bad policy", "bad revocation"]
)
def test_a_damaged_trust_directory_is_refused(tmp_path: Path, damage: str) -> None:
    export_trust(tmp_path, now=NOW)
    settings_file = tmp_path / "trust.toml"
    if damage == "no toml":
        settings_file.unlink()
    elif damage == "bad toml":
        settings_file.write_text("[profile\n")
    elif damage == "no roots":
        for pem in (tmp_path / "cps-roots").iterdir():
            pem.unlink()
    elif damage == "not a pem":
        (tmp_path / "vitale-roots" / "extra.pem").write_text("-----BEGIN CERTIFICATE-----\nxx\n")
    elif damage == "bad policy":
        settings_file.write_text(settings_file.read_text().replace('= "CPS"', '= "XYZ"'))
    else:
        settings_file.write_text(settings_file.read_text() + "use_crl = 'yes'\n")
    with pytest.raises(TrustConfigError) as refused:
        Verifier.from_directory(tmp_path)
    assert refused.value.code == "trust.invalid"


def test_cps_and_vitale_roots_never_mix() -> None:
    store = trust_store()
    with pytest.raises(TrustConfigError):
        TrustStore(cps_roots=store.cps_roots, vitale_roots=store.cps_roots, profile=store.profile)


# -- the command line, through pcscd -------------------------------------------------


@pytest.mark.pcscd
def test_login_and_verify_commands_through_pcscd(pcscd_station: Station, tmp_path: Path) -> None:
    pcscd_station.insert(0, "patient")  # either slot
    pcscd_station.insert(1, "doctor")
    export_trust(tmp_path / "trust", now=dt.datetime.now(dt.UTC))
    challenge = "B" * 43
    env = {**os.environ, "CARDAUTH_LANG": "en"}

    def cardauth(*arguments: str, stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cardauth.cli", *arguments],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )

    login = cardauth(
        "login", "--origin", ORIGIN.value, "--challenge", challenge, "--with-vitale",
        "--pin-stdin", stdin="1234\n",
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    token = login.stdout.strip()
    trust = str(tmp_path / "trust")
    verify = cardauth(
        "verify", "--origin", ORIGIN.value, "--challenge", challenge, "--trust", trust,
        stdin=token,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    identity = json.loads(verify.stdout)
    assert identity["professional"]["idnat"] == "899700420013"
    assert identity["patient"]["nir"] == "285037511542370"
    wrong_origin = cardauth(
        "verify", "--origin", "https://other.example", "--challenge", challenge,
        "--trust", trust, stdin=token,
    )  # fmt: skip
    assert wrong_origin.returncode == 1
    assert "[origin.mismatch]" in wrong_origin.stderr
    cps = pcscd_station.workstation.card_in(1)
    assert cps is not None
    assert cps.pin(0x01).tries_left == 3
    assert cps.process(bytes.fromhex("00200001"))[-2:] == b"\x63\xc3"  # no longer verified


@pytest.mark.pcscd
def test_login_with_a_wrong_pin_says_the_tries_left(pcscd_station: Station) -> None:
    pcscd_station.insert(0, "doctor")
    login = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardauth.cli",
            "--lang",
            "fr",
            "login",
            "--origin",
            ORIGIN.value,
            "--challenge",
            "C" * 43,
            "--pin-stdin",
        ],
        input="0000\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert login.returncode == 1
    assert "[pin.wrong]" in login.stderr
    assert "Il reste 2 essai(s)" in login.stderr
    assert login.stdout == ""


def test_the_verifier_needs_no_pyscard(tmp_path: Path) -> None:
    """A teleservice has no card reader: importing and running the verifier, the Flask
    extension and the audit trail must not touch pyscard."""
    export_trust(tmp_path, now=NOW)
    scene_token = Forge().assertion("E" * 43)
    script = f"""
import sys, datetime as dt
sys.modules["smartcard"] = None  # any import of pyscard now fails
import cardauth.audit, cardauth.flask
from cardauth.challenges import MemoryChallengeStore, ChallengeRecord, session_digest
from cardauth.origins import Origin
from cardauth.verify import Verifier
now = dt.datetime.fromisoformat("{NOW.isoformat()}")
store = MemoryChallengeStore()
store.put(ChallengeRecord("E" * 43, session_digest("s"), now.timestamp() + 300), 300)
login = Verifier.from_directory(__import__("pathlib").Path({str(tmp_path)!r})).verify(
    {scene_token!r}, expected_origins=[Origin.parse("{ORIGIN.value}")],
    expected_challenge="E" * 43, session="s", challenges_store=store, now=now)
print(login.professional.idnat)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "899700420013"


def test_an_exported_trust_directory_with_an_ocsp_responder(tmp_path: Path) -> None:
    from simulator.ocsp import OcspResponder

    responder = OcspResponder(clock=lambda: NOW).start()
    try:
        export_trust(tmp_path, now=NOW, ocsp_url=responder.url)
        verifier = Verifier.from_directory(tmp_path)
        scene = Scene(verifier)
        with pytest.raises(AssertionRefused) as refused:
            scene.verify(Forge(cps_persona="cps-revoked").assertion(scene.challenge))
        assert refused.value.code == "revocation.revoked"
        assert refused.value.context["source"] == "ocsp"
        assert responder.requests == 1
    finally:
        responder.stop()
