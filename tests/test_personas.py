"""Personas as data files: the bundled ones, and bad files refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardauth.cards.cps import CardType
from cardauth.identifiers import IdNatType
from simulator.errors import PersonaError
from simulator.personas import (
    DEFAULT_PIN,
    DEFAULT_PUK,
    CpsPersona,
    OtherPersona,
    VitalePersona,
    bundled,
    load,
    load_cps,
    load_vitale,
)


def test_every_bundled_persona_loads() -> None:
    personas = bundled()
    assert len(personas) >= 15
    kinds = {p.kind for p in personas.values()}
    assert kinds == {"cps", "vitale", "other"}


def test_the_professions_and_card_types_asked_for_are_there() -> None:
    cps = [p for p in bundled().values() if isinstance(p, CpsPersona)]
    professions = {p.holder.profession for p in cps}
    assert {"Médecin", "Pharmacien", "Infirmier"} <= professions
    card_types = {p.holder.card_type for p in cps}
    assert {CardType.CPS, CardType.CPE, CardType.CPF} <= card_types
    assert {p.holder.idnat.type for p in cps} == set(IdNatType)


def test_default_cps_personas_use_the_documented_codes() -> None:
    for persona in bundled().values():
        if isinstance(persona, CpsPersona):
            assert (persona.pin, persona.puk) == (DEFAULT_PIN, DEFAULT_PUK) == ("1234", "12345678")


def test_broken_personas() -> None:
    expired = load_cps("cps-expired")
    assert expired.certificate.not_after.year < 2026
    assert load_cps("cps-revoked").certificate.revoked_on is not None
    assert load_cps("cps-blocked").pin_tries_left == 0
    mute = load("mute-card")
    assert isinstance(mute, OtherPersona)
    assert mute.card.mute
    assert isinstance(load("unknown-card"), OtherPersona)


def test_parent_has_children_as_beneficiaries() -> None:
    parent = load_vitale("parent")
    assert len(parent.holder.beneficiaries) == 2


def test_a_persona_file_of_ones_own(tmp_path: Path) -> None:
    path = tmp_path / "midwife.toml"
    path.write_text(
        (Path(__file__).parent.parent / "simulator/personas/nurse.toml")
        .read_text()
        .replace('profession_code = "60"', 'profession_code = "50"')
    )
    persona = load(str(path))
    assert isinstance(persona, CpsPersona)
    assert persona.id == "midwife"
    assert persona.holder.profession == "Sage-femme"


GOOD_VITALE = """
kind = "vitale"
description = "test"
[card]
serial = "0000200099"
[insured]
nir = "285037511542370"
surname = "X"
given_name = "Y"
birth_date = 1985-03-14
[insurer]
regime = "01"
fund = "751"
centre = "0001"
[validity]
from = 2024-01-01
until = 2034-12-31
[certificate]
not_before = 2024-01-01
not_after = 2034-12-31
"""


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (('kind = "vitale"', 'kind = "passport"'), "kind"),
        (('nir = "285037511542370"', 'nir = "285037511542371"'), "identifier"),
        (('serial = "0000200099"', 'serial = "12"'), "serial"),
        (("birth_date = 1985-03-14", 'birth_date = "yesterday"'), "birth_date"),
        (('surname = "X"\n', ""), "surname"),
        (("not_after = 2034-12-31", "not_after = 2020-12-31"), "not_after"),
        (("[insurer]", "insurer = 3\n[other]"), "insurer"),
        (("[card]", "[card\n"), "does not read"),
    ],
)
def test_bad_persona_files_are_refused_with_the_reason(
    tmp_path: Path, change: tuple[str, str], reason: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_VITALE.replace(*change))
    with pytest.raises(PersonaError) as caught:
        load(str(path))
    assert caught.value.code == "sim.persona"
    assert reason in caught.value.message or reason in str(caught.value.context)
    assert caught.value.context["file"] == str(path)


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD_VITALE)
    assert isinstance(load(str(path)), VitalePersona)


def test_unknown_persona_names_the_known_ones() -> None:
    with pytest.raises(PersonaError) as caught:
        load("../../etc/passwd")
    assert "doctor" in str(caught.value.context["known"])


def test_non_ascii_digits_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_VITALE.replace('serial = "0000200099"', 'serial = "000020009²"'))
    with pytest.raises(PersonaError):
        load(str(path))
