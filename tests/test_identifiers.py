"""National identifiers: NIR key, Corsica, Luhn checks, IdNat forms."""

from __future__ import annotations

import pytest

from cardauth.errors import InvalidIdentifier
from cardauth.identifiers import Adeli, IdNat, IdNatType, Nir, Rpps, luhn_valid


@pytest.mark.parametrize("value", ["295109912611193", "253072B07300470", "253072A07300443"])
def test_published_nirs_are_valid(value: str) -> None:
    assert Nir.parse(value).value == value


def test_nir_key_is_97_minus_the_body_mod_97() -> None:
    nir = Nir.parse("2 95 10 99 126 111 93")
    assert nir.body == "2951099126111"
    assert nir.key == f"{97 - 2951099126111 % 97:02d}"


def test_corsica_counts_2a_as_19_and_2b_as_18() -> None:
    assert Nir.compute_key("253072A073004") == f"{97 - 2530719073004 % 97:02d}"
    assert Nir.compute_key("253072B073004") == f"{97 - 2530718073004 % 97:02d}"


@pytest.mark.parametrize(
    "value",
    [
        "295109912611194",  # wrong key
        "29510991261119",  # too short
        "2951099126111930",  # too long
        "995109912611193",  # sex digit out of range
        "253072C07300470",  # not a Corsican department
        "29510991261119X",
        "",
    ],
)
def test_invalid_nirs_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        Nir.parse(value)
    assert caught.value.code == "identifier.invalid"


def test_a_nir_has_one_spelling_only() -> None:
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    with pytest.raises(InvalidIdentifier):
        Nir.parse("2" + "951099126111".translate(arabic) + "93")


def test_nir_repr_does_not_leak_the_number() -> None:
    nir = Nir.parse("295109912611193")
    assert "912611193" not in repr(nir)
    assert "9912611193" not in nir.masked()


@pytest.mark.parametrize("value", ["99700427885", "99700735741"])
def test_published_rpps_pass_luhn(value: str) -> None:
    assert Rpps.parse(value).value == value


@pytest.mark.parametrize("value", ["99700427886", "9970042788", "9970042788A"])
def test_invalid_rpps_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        Rpps.parse(value)


def test_adeli_is_nine_digits_with_luhn() -> None:
    assert Adeli.parse("991038431").value == "991038431"
    with pytest.raises(InvalidIdentifier):
        Adeli.parse("991038432")
    with pytest.raises(InvalidIdentifier):
        Adeli.parse("99103843")


def test_luhn_refuses_non_digits() -> None:
    assert not luhn_valid("١٢٣")  # Arabic-Indic digits are not ASCII digits
    assert not luhn_valid("")


@pytest.mark.parametrize(
    ("text", "kind", "identifier", "suffix"),
    [
        ("899700427885", IdNatType.RPPS, "99700427885", ""),
        ("0991038431", IdNatType.ADELI, "991038431", ""),
        ("3990000010/SEC0042", IdNatType.FINESS_STAFF, "990000010", "SEC0042"),
    ],
)
def test_idnat_forms(text: str, kind: IdNatType, identifier: str, suffix: str) -> None:
    idnat = IdNat.parse(text)
    assert (idnat.type, idnat.identifier, idnat.suffix) == (kind, identifier, suffix)
    assert str(idnat) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "999700427885",
        "899700427886",
        "0991038432",
        "3990000010",
        "3990000011/X",
        "3990000010/",
        "899700427885/X",
    ],
)
def test_invalid_idnats_are_refused(text: str) -> None:
    with pytest.raises(InvalidIdentifier):
        IdNat.parse(text)
