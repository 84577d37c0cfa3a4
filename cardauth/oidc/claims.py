"""Pro Santé Connect's claims, filled from what the verifier certified: the CPS
card's authentication certificate, checked against the health PKI
(:class:`cardauth.certificates.Professional`). docs/oidc.md maps each claim to
where it comes from.

What PSC fills from the national directory (RPPS) and a card login cannot certify
is present with ``null`` values (or an empty list): the practice situations
written on the card are the workstation's claim, not in the signed assertion, so
``activities`` is empty and ``codeSavoirFaire`` null. Relying parties see the
same shape as PSC's, and no value that the card did not prove.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ACR = "eidas1"  # PSC's level: a CPS card and its PIN ("élevé")
AMR = ("sc", "pin", "mfa", "hwk")  # RFC 8176: smart card, PIN, two factors, hardware key
# Card types as PSC's categories of professional: C civil, E student.
_CATEGORY = {"CPS": "C", "CPE": "C", "CPA": "C", "CPF": "E"}


def subject(professional: Mapping[str, Any]) -> str:
    """``sub``: the IdNat (PSC's relying parties key on SubjectNameID, the same)."""
    return str(professional["idnat"])


def exercise(professional: Mapping[str, Any]) -> dict[str, Any]:
    """One ``SubjectRefPro.exercices[]`` entry: the profession the certificate names."""
    return {
        "codeProfession": professional.get("profession_code"),
        "codeCategorieProfessionnelle": _CATEGORY.get(str(professional.get("card_type"))),
        "codeCiviliteDExercice": None,
        "nomDExercice": professional.get("surname"),
        "prenomDExercice": professional.get("given_name"),
        "codeTypeSavoirFaire": None,
        "codeSavoirFaire": None,  # the specialty: on the card, not certified
        "activities": [],  # the practice situations: on the card, not certified
    }


def userinfo(professional: Mapping[str, Any]) -> dict[str, Any]:
    """What userinfo answers for ``scope_all`` (the id_token carries it too)."""
    idnat = subject(professional)
    return {
        "sub": idnat,
        "SubjectNameID": idnat,
        "preferred_username": idnat,
        "given_name": professional.get("given_name"),
        "family_name": professional.get("surname"),
        # PSC's values of these come from its directory, in codes whose lists we did
        # not find published: present, empty (docs/oidc.md, "What differs").
        "SubjectRole": [],
        "SubjectOrganization": None,
        "Secteur_Activite": None,  # the sector of a practice situation: not certified
        "codeCivilite": None,
        "Palier_Authentification": None,
        "SubjectRefPro": {
            "codeCivilite": None,
            "exercices": [exercise(professional)],
        },
        "otherIds": [
            {
                "identifiant": professional.get("identifier"),
                "origine": professional.get("identifier_type"),
                "qualite": 1,
            }
        ],
    }
