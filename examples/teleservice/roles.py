"""Who may see what about a patient's médecin traitant, by card type and profession.

The rules are data (:data:`RULES`, written out in docs/teleservice.md) and one
function (:func:`disclosure_for`). The card type and the profession come from the
CPS certificate that the verifier checked, never from anything the browser sent.
Whatever the rules do not name is refused: a new card type or profession sees
nothing until someone decides otherwise here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

ANY_PROFESSION = "*"


class Disclosure(IntEnum):
    """How much of a declaration a professional sees; each level includes the ones
    below it."""

    NONE = 0  # no lookup at all
    DECLARED = 1  # whether the patient has declared a médecin traitant
    DOCTOR = 2  # and the doctor's name and practice (to contact them)
    FULL = 3  # and the doctor's RPPS number and the date of the declaration


# (card type, profession code or ANY_PROFESSION) -> what that card may see.
# Profession codes are those of cardauth.professions (10 Médecin, 21 Pharmacien...).
RULES: Mapping[tuple[str, str], Disclosure] = {
    # A licensed doctor: coordinates care with, or takes over from, the médecin
    # traitant, and bills according to the declaration (parcours de soins).
    ("CPS", "10"): Disclosure.FULL,
    # Other licensed health professionals: who to call about the patient.
    ("CPS", "21"): Disclosure.DOCTOR,  # Pharmacien
    ("CPS", "40"): Disclosure.DOCTOR,  # Chirurgien-dentiste
    ("CPS", "50"): Disclosure.DOCTOR,  # Sage-femme
    ("CPS", "60"): Disclosure.DOCTOR,  # Infirmier
    ("CPS", "70"): Disclosure.DOCTOR,  # Masseur-kinésithérapeute
    ("CPS", "80"): Disclosure.DOCTOR,  # Pédicure-podologue
    ("CPS", "91"): Disclosure.DOCTOR,  # Orthophoniste
    ("CPS", "92"): Disclosure.DOCTOR,  # Orthoptiste
    # Staff of a practice or a structure (medical secretary...): enough to bill
    # within the parcours de soins, not who the patient's doctor is.
    ("CPE", ANY_PROFESSION): Disclosure.DECLARED,
    # Students and interns work under a licensed professional, who sees the rest.
    ("CPF", ANY_PROFESSION): Disclosure.DECLARED,
    # Authorised staff of a structure (administration): no access to patients.
    ("CPA", ANY_PROFESSION): Disclosure.NONE,
}


def disclosure_for(card_type: object, profession_code: object) -> Disclosure:
    """What a card of ``card_type`` held by a professional of ``profession_code``
    may see: the exact rule, else the card type's rule for any profession, else
    nothing."""
    if not isinstance(card_type, str):
        return Disclosure.NONE
    if isinstance(profession_code, str) and (card_type, profession_code) in RULES:
        return RULES[(card_type, profession_code)]
    return RULES.get((card_type, ANY_PROFESSION), Disclosure.NONE)


# Who may sign an e-prescription (prescriptions.py): (card type, profession code).
# A licensed doctor only: the other professions prescribe within limits of their
# own (a nurse's or a midwife's list of products), which this demo does not model,
# and staff and students (CPE, CPF, CPA) never sign in their own name.
PRESCRIBERS: frozenset[tuple[str, str]] = frozenset({("CPS", "10")})


def may_prescribe(card_type: object, profession_code: object) -> bool:
    """Whether a card of ``card_type`` held by a professional of ``profession_code``
    may sign a prescription: only what :data:`PRESCRIBERS` names."""
    return (card_type, profession_code) in PRESCRIBERS
