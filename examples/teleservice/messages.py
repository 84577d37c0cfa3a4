"""What the teleservice says to people, in French (the default) and English: the
words of its pages and its own refusals (the cardauth ones keep the wording of
:mod:`cardauth.messages`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from cardauth import messages
from cardauth.errors import CardAuthError
from cardauth.messages import Language

ERRORS: Mapping[str, Mapping[Language, str]] = {
    "teleservice.error": {
        "fr": "Le téléservice a refusé la demande : rechargez la page et recommencez "
        "(détail : {message}).",
        "en": "The teleservice refused the request: reload the page and try again "
        "(detail: {message}).",
    },
    "teleservice.not_found": {
        "fr": "Cette adresse n'existe pas sur le téléservice.",
        "en": "This address does not exist on the teleservice.",
    },
    "teleservice.method_not_allowed": {
        "fr": "Cette adresse n'accepte pas cette méthode.",
        "en": "This address does not take this method.",
    },
    "teleservice.internal": {
        "fr": "Le téléservice a rencontré une erreur : recommencez dans un instant.",
        "en": "The teleservice ran into an error: try again in a moment.",
    },
    "seed.invalid": {
        "fr": "Le fichier de données initiales est invalide : corrigez-le d'après "
        "docs/teleservice.md (détail : {message}).",
        "en": "The seed file is invalid: correct it as docs/teleservice.md says "
        "(detail: {message}).",
    },
    "settings.invalid": {
        "fr": "Les réglages du téléservice sont invalides : corrigez-les d'après "
        "docs/teleservice.md (détail : {message}).",
        "en": "The teleservice's settings are invalid: correct them as docs/teleservice.md "
        "says (detail: {message}).",
    },
    "lookup.fields": {
        "fr": "La recherche ne prend que la signature de la carte Vitale du patient : "
        "aucun NIR ni date de naissance.",
        "en": "A lookup takes the patient's Vitale card signature only: no NIR, no birth date.",
    },
    "lookup.forbidden": {
        "fr": "Votre carte ({card_type}) ne donne pas accès à cette information.",
        "en": "Your card ({card_type}) gives no access to this information.",
    },
    "login.rate_limited": {
        "fr": "Trop de tentatives de connexion depuis ce poste : réessayez dans une minute.",
        "en": "Too many login attempts from this workstation: try again in a minute.",
    },
    "lookup.rate_limited": {
        "fr": "Trop de recherches : réessayez dans une minute.",
        "en": "Too many lookups: try again in a minute.",
    },
}

LABELS: Mapping[str, Mapping[Language, str]] = {
    # The service's name, a proper name: the same in both languages.
    "title": {"fr": "Médecin traitant en ligne", "en": "Médecin traitant en ligne"},
    "tagline": {
        "fr": "Le médecin traitant déclaré d'un patient, par carte CPS et carte Vitale",
        "en": "Whether a patient has declared a médecin traitant, by CPS and Vitale card",
    },
    "logged_in_as": {"fr": "Session ouverte :", "en": "Logged in:"},
    "who": {
        "fr": "{given_name} {surname} — {profession} ({card_type})",
        "en": "{given_name} {surname} — {profession} ({card_type})",
    },
    "navigation": {"fr": "Navigation", "en": "Navigation"},
    "search": {"fr": "Rechercher un patient", "en": "Look up a patient"},
    "footer": {
        "fr": "Téléservice de démonstration de cardauth : cartes et patients simulés.",
        "en": "cardauth's demonstration teleservice: simulated cards and patients.",
    },
    "login_title": {"fr": "Connexion", "en": "Log in"},
    "login_step_card": {
        "fr": "Insérez votre carte CPS dans le lecteur.",
        "en": "Insert your CPS card in the reader.",
    },
    "login_step_pin": {
        "fr": "Cliquez sur « Se connecter avec la carte CPS », puis saisissez votre code PIN "
        "dans la fenêtre du module cardauth ou sur le clavier du lecteur.",
        "en": "Click “Log in with the CPS card”, then type your PIN in the cardauth window "
        "or on the reader's keypad.",
    },
    "search_title": {"fr": "Recherche d'un patient", "en": "Patient lookup"},
    "search_step": {
        "fr": "Le patient présente sa carte Vitale : insérez-la dans le lecteur, puis lancez "
        "la recherche.",
        "en": "The patient presents their Vitale card: insert it in the reader, then look "
        "the patient up.",
    },
    "intro": {
        "fr": "Ce service indique si un patient a déclaré un médecin traitant, et lequel. "
        "Connexion par carte CPS ; le patient présente sa carte Vitale.",
        "en": "This service tells whether a patient has declared a médecin traitant, and "
        "who. Log in with your CPS card; the patient presents their Vitale card.",
    },
    "login": {"fr": "Se connecter avec la carte CPS", "en": "Log in with the CPS card"},
    "lookup": {
        "fr": "Rechercher le patient (carte Vitale)",
        "en": "Look up the patient (Vitale card)",
    },
    "logout": {"fr": "Se déconnecter", "en": "Log out"},
    # Why the page logged out by itself.
    "ended_card_removed": {
        "fr": "Vous avez été déconnecté : votre carte CPS a été retirée du lecteur.",
        "en": "You have been logged out: your CPS card was removed from the reader.",
    },
    "ended_session": {
        "fr": "Votre session a pris fin : reconnectez-vous avec votre carte CPS.",
        "en": "Your session has ended: log in again with your CPS card.",
    },
    "journal": {"fr": "Mes recherches", "en": "My lookups"},
    "journal_intro": {
        "fr": "Vos recherches, refusées comprises, les plus récentes d'abord. Le patient y "
        "figure sous un pseudonyme : le journal ne contient aucun NIR.",
        "en": "Your lookups, refused ones included, most recent first. Patients appear as a "
        "pseudonym: the audit trail holds no NIR.",
    },
    "journal_none": {"fr": "Aucune recherche.", "en": "No lookup."},
    "at": {"fr": "Date et heure (heure de Paris)", "en": "Date and time (Paris time)"},
    "patient": {"fr": "Patient (pseudonyme)", "en": "Patient (pseudonym)"},
    "outcome": {"fr": "Résultat", "en": "Outcome"},
    "no_patient": {"fr": "—", "en": "—"},
    "moment": {"fr": "{date} à {time}", "en": "{date}, {time}"},
    "unknown_moment": {"fr": "date inconnue", "en": "unknown date"},
    # What a lookup answered, or why it was refused, as "Mes recherches" says it.
    "outcome_declared": {
        "fr": "Le patient a déclaré un médecin traitant.",
        "en": "The patient has declared a médecin traitant.",
    },
    "outcome_not_declared": {
        "fr": "Le patient n'a pas déclaré de médecin traitant.",
        "en": "The patient has not declared a médecin traitant.",
    },
    "outcome_unknown_patient": {
        "fr": "Patient inconnu du service : aucune déclaration enregistrée.",
        "en": "Patient unknown to the service: no declaration on record.",
    },
    "outcome_verified": {
        "fr": "Recherche faite ; sa réponse n'a pas été enregistrée.",
        "en": "Lookup made; its answer was not recorded.",
    },
    "outcome_refused_vitale": {
        "fr": "Refusée : la carte Vitale du patient n'a pas signé la recherche.",
        "en": "Refused: the patient's Vitale card did not sign the lookup.",
    },
    "outcome_refused_other_card": {
        "fr": "Refusée : la recherche était signée par une autre carte CPS que la vôtre.",
        "en": "Refused: the lookup was signed by another CPS card than yours.",
    },
    "outcome_unavailable": {
        "fr": "Non aboutie : le service ne pouvait pas vérifier les cartes à ce moment-là.",
        "en": "Not completed: the service could not check the cards at that moment.",
    },
    "outcome_refused": {
        "fr": "Refusée : la signature des cartes n'a pas pu être vérifiée.",
        "en": "Refused: the cards' signature could not be verified.",
    },
    "back": {"fr": "Retour", "en": "Back"},
    "other_language": {"fr": "English", "en": "Français"},
    # An error that comes without a sentence (a proxy's page, a network failure...).
    "error_generic": {
        "fr": "L'opération n'a pas abouti à cause d'une erreur inattendue. Réessayez dans un "
        "instant ; si le problème persiste, contactez le support.",
        "en": "The operation did not complete because of an unexpected error. Try again in a "
        "moment; if the problem persists, contact support.",
    },
    "error_code": {"fr": "Code pour le support :", "en": "Code for support:"},
    "declared": {
        "fr": "{patient} a déclaré un médecin traitant.",
        "en": "{patient} has declared a médecin traitant.",
    },
    "not_declared": {
        "fr": "{patient} n'a pas déclaré de médecin traitant.",
        "en": "{patient} has not declared a médecin traitant.",
    },
    "unknown_patient": {
        "fr": "{patient} n'est pas connu de ce service : aucune déclaration enregistrée.",
        "en": "{patient} is unknown to this service: no declaration on record.",
    },
    "doctor": {
        "fr": "Médecin traitant : Dr {given_name} {surname}, {practice} ({city}).",
        "en": "Médecin traitant: Dr {given_name} {surname}, {practice} ({city}).",
    },
    "doctor_full": {
        "fr": "RPPS {rpps}, déclaré le {declared_on}.",
        "en": "RPPS {rpps}, declared on {declared_on}.",
    },
    "access": {
        "fr": "Votre accès : {level}",
        "en": "Your access: {level}",
    },
    "level_0": {"fr": "aucun", "en": "none"},
    "level_1": {
        "fr": "existence d'une déclaration",
        "en": "whether a doctor is declared",
    },
    "level_2": {
        "fr": "existence et nom du médecin traitant",
        "en": "whether a doctor is declared, and who",
    },
    "level_3": {
        "fr": "déclaration complète (médecin, RPPS, date)",
        "en": "full declaration (doctor, RPPS, date)",
    },
}


def describe(error: CardAuthError, language: Language) -> str:
    return messages.describe(error, language, more=ERRORS)


def label(key: str, language: Language, **values: object) -> str:
    return LABELS[key][language].format(**values)


MONTHS: Mapping[Language, tuple[str, ...]] = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def date_text(day: dt.date, language: Language) -> str:
    """« 1er décembre 2026 », "1 December 2026"."""
    number = "1er" if language == "fr" and day.day == 1 else str(day.day)
    return f"{number} {MONTHS[language][day.month - 1]} {day.year}"


def moment_text(moment: dt.datetime, language: Language) -> str:
    """« 1er décembre 2026 à 23:45 », "1 December 2026, 23:45": ``moment`` as it
    is given, already in the time zone the reader lives in."""
    return label("moment", language, date=date_text(moment, language), time=f"{moment:%H:%M}")
