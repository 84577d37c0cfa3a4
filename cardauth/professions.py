"""Health profession codes (the public "profession de santé" nomenclature used on
CPS cards and in Pro Santé Connect's ``codeProfession``), with French labels.

Only the professions our product meets are listed; an unknown code is carried
as is, without a label.
"""

from __future__ import annotations

PROFESSIONS: dict[str, str] = {
    "10": "Médecin",
    "21": "Pharmacien",
    "40": "Chirurgien-dentiste",
    "50": "Sage-femme",
    "60": "Infirmier",
    "70": "Masseur-kinésithérapeute",
    "80": "Pédicure-podologue",
    "91": "Orthophoniste",
    "92": "Orthoptiste",
}


def profession_label(code: str | None) -> str | None:
    """The French label of a profession code, or None when the code is unknown."""
    if code is None:
        return None
    return PROFESSIONS.get(code)
