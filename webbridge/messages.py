"""What the bridge says to people, in French (the default) and English: its own
refusals, and the words of its pages. Card and PIN errors keep the wording of
:mod:`cardauth.messages`."""

from __future__ import annotations

from collections.abc import Mapping

from cardauth import messages
from cardauth.errors import CardAuthError
from cardauth.messages import Language

ERRORS: Mapping[str, Mapping[Language, str]] = {
    "bridge.error": {
        "fr": "Le pont local a refusé la demande du site : recommencez depuis le site.",
        "en": "The local bridge refused the site's request: start again from the site.",
    },
    "bridge.config": {
        "fr": "Configuration du pont invalide : vérifiez son fichier de réglages et les options "
        "de la commande (détail : {message}).",
        "en": "Invalid bridge configuration: check its settings file and the command's "
        "options (detail: {message}).",
    },
    "bridge.not_loopback": {
        "fr": "Le pont n'écoute que sur une adresse locale de ce poste (127.0.0.1) : "
        "{host} est refusé.",
        "en": "The bridge listens on a loopback address of this workstation only "
        "(127.0.0.1): {host} is refused.",
    },
    "bridge.cannot_listen": {
        "fr": "Impossible d'écouter sur le port {port} : il est déjà utilisé (un autre pont "
        "est-il lancé ?) ou interdit.",
        "en": "Cannot listen on port {port}: it is already in use (is another bridge "
        "running?) or not allowed.",
    },
    "bridge.host": {
        "fr": "Adresse du pont inattendue : la requête est refusée.",
        "en": "Unexpected bridge address: the request is refused.",
    },
    "bridge.origin_required": {
        "fr": "La requête ne dit pas de quel site elle vient : elle est refusée.",
        "en": "The request does not say which site it comes from: it is refused.",
    },
    "bridge.origin_forbidden": {
        "fr": "Ce site n'est pas autorisé à utiliser votre carte.",
        "en": "This site is not allowed to use your card.",
    },
    "bridge.content_type": {
        "fr": "La requête doit être envoyée en JSON.",
        "en": "The request must be sent as JSON.",
    },
    "bridge.too_large": {
        "fr": "La requête est trop volumineuse.",
        "en": "The request is too large.",
    },
    "bridge.bad_request": {
        "fr": "La demande du site est incorrecte : recommencez depuis le site.",
        "en": "The site's request is not valid: start again from the site.",
    },
    "bridge.internal": {
        "fr": "Le pont local a rencontré une erreur : recommencez ; si elle revient, "
        "redémarrez le pont (cardauth-bridge).",
        "en": "The local bridge ran into an error: try again; if it comes back, "
        "restart the bridge (cardauth-bridge).",
    },
    "bridge.not_found": {
        "fr": "Cette adresse n'existe pas sur le pont cardauth.",
        "en": "This address does not exist on the cardauth bridge.",
    },
    "bridge.method_not_allowed": {
        "fr": "Cette adresse n'accepte pas cette méthode.",
        "en": "This address does not take this method.",
    },
    "bridge.rate_limited": {
        "fr": "Trop de demandes de connexion de ce site : réessayez dans une minute.",
        "en": "Too many login requests from this site: try again in a minute.",
    },
    "bridge.interaction_unknown": {
        "fr": "Cette demande de connexion n'existe plus : recommencez depuis le site.",
        "en": "This login request no longer exists: start again from the site.",
    },
    "bridge.declined": {
        "fr": "Vous avez refusé l'accès de ce site à votre carte.",
        "en": "You refused this site access to your card.",
    },
    "bridge.cancelled": {
        "fr": "Le site a abandonné cette demande de connexion : vous pouvez fermer cette fenêtre.",
        "en": "The site gave up this login request: you may close this window.",
    },
    "bridge.replaced": {
        "fr": "Le site a ouvert une nouvelle demande de connexion, qui remplace celle-ci : "
        "vous pouvez fermer cette fenêtre.",
        "en": "The site opened a new login request, which replaces this one: you may close "
        "this window.",
    },
    "bridge.form_spent": {
        "fr": "Ce formulaire avait déjà été envoyé : rien n'a été refait (aucun code n'a "
        "été présenté à la carte). Voici où en est la connexion.",
        "en": "This form had been sent already: nothing was done again (no PIN was presented "
        "to the card). Here is where the login stands.",
    },
    "bridge.busy": {
        "fr": "Le pont est occupé : réessayez dans un instant.",
        "en": "The bridge is busy: try again in a moment.",
    },
}

LABELS: Mapping[str, Mapping[Language, str]] = {
    "title": {"fr": "Connexion par carte CPS", "en": "CPS card login"},
    "asks": {
        "fr": "Le site {origin} demande à vous identifier avec votre carte.",
        "en": "The site {origin} asks to identify you with your card.",
    },
    "vitale": {
        "fr": "La carte Vitale du patient ({holder}) signera aussi.",
        "en": "The patient's Vitale card ({holder}) will sign too.",
    },
    "card": {"fr": "Carte", "en": "Card"},
    "no_card": {
        "fr": "Aucune carte CPS dans le lecteur : insérez-la puis actualisez cette page.",
        "en": "No CPS card in the reader: insert it, then reload this page.",
    },
    "no_vitale": {
        "fr": "La carte Vitale du patient n'est pas dans le lecteur : insérez-la puis "
        "actualisez cette page.",
        "en": "The patient's Vitale card is not in the reader: insert it, then reload this page.",
    },
    "tries": {"fr": "Essais restants : {tries}", "en": "Tries left: {tries}"},
    "pin": {"fr": "Code porteur (4 chiffres)", "en": "PIN (4 digits)"},
    "keypad": {
        "fr": "Saisissez votre code sur le clavier du lecteur après avoir cliqué sur "
        "« Autoriser ».",
        "en": "Type your PIN on the reader's keypad after clicking “Allow”.",
    },
    "remember": {
        "fr": "Faire confiance à ce site pendant {days} jours",
        "en": "Trust this site for {days} days",
    },
    "allow": {"fr": "Autoriser", "en": "Allow"},
    "reload": {"fr": "Actualiser", "en": "Reload"},
    "close": {"fr": "Fermer", "en": "Close"},
    "close_hint": {
        "fr": "Vous pouvez fermer cette fenêtre.",
        "en": "You may close this window.",
    },
    "decline": {"fr": "Refuser", "en": "Refuse"},
    "done": {
        "fr": "Connexion effectuée. Vous pouvez fermer cette fenêtre.",
        "en": "Logged in. You may close this window.",
    },
    "declined": {
        "fr": "Accès refusé. Vous pouvez fermer cette fenêtre.",
        "en": "Access refused. You may close this window.",
    },
    "blocked_help": {
        "fr": "Votre carte est bloquée. Débloquez-la avec le code de déblocage (PUK) "
        "reçu avec la carte, dans l'outil de gestion de votre carte CPS, ou "
        "contactez l'Agence du numérique en santé.",
        "en": "Your card is blocked. Unblock it with the unblocking code (PUK) that came "
        "with the card, in your CPS card management tool, or contact the French "
        "digital health agency.",
    },
    "unknown_help": {
        "fr": "Si vous venez de vous connecter depuis un site, ce site n'a pas pu joindre "
        "le pont. Si votre navigateur vous a demandé d'autoriser ce site à accéder aux "
        "appareils de votre réseau local ou de ce poste, autorisez-le, puis recommencez "
        "depuis le site.",
        "en": "If you have just logged in from a site, that site could not reach the "
        "bridge. If your browser asked whether to let the site access devices on your "
        "local network or this computer, allow it, then start again from the site.",
    },
    "never_framed": {
        "fr": "Cette page appartient au pont local de votre poste ; le code ne quitte "
        "jamais votre poste.",
        "en": "This page belongs to your workstation's local bridge; the PIN never "
        "leaves your workstation.",
    },
    "consents": {"fr": "Sites autorisés", "en": "Trusted sites"},
    "consents_none": {"fr": "Aucun site autorisé.", "en": "No trusted site."},
    "until": {"fr": "jusqu'au {date}", "en": "until {date}"},
    "revoke": {"fr": "Retirer", "en": "Withdraw"},
    "configured": {
        "fr": "autorisé par la configuration",
        "en": "allowed by the configuration",
    },
    # -- the command line (cardauth-bridge): its help and what it prints; the options
    # it shares with the cardauth command keep the words of cardauth.messages.
    "cli.description": {
        "fr": "Le pont web local : la connexion par carte CPS pour les téléservices web.",
        "en": "The local web bridge: card login for web teleservices.",
    },
    "cli.config": {
        "fr": "fichier de réglages (par défaut : ~/.config/cardauth/bridge.toml)",
        "en": "settings file (default: ~/.config/cardauth/bridge.toml)",
    },
    "cli.state_dir": {
        "fr": "dossier où sont gardés les accords donnés aux sites",
        "en": "where the approvals of sites are kept",
    },
    "cli.host": {
        "fr": "adresse locale d'écoute (par défaut : 127.0.0.1)",
        "en": "loopback address to listen on (default: 127.0.0.1)",
    },
    "cli.port": {
        "fr": "port d'écoute (par défaut : 24790)",
        "en": "port to listen on (default: 24790)",
    },
    "cli.allow_origin": {
        "fr": "un site autorisé sans demander, https://nom[:port] (option répétable)",
        "en": "a site allowed without asking, https://host[:port] (repeatable)",
    },
    "cli.consents": {
        "fr": "lister ou retirer les accords donnés aux sites",
        "en": "list or withdraw the approvals of sites",
    },
    "cli.consents.list": {
        "fr": "les sites autorisés, et jusqu'à quand",
        "en": "the approved sites and until when",
    },
    "cli.consents.revoke": {
        "fr": "retirer l'accord donné à un site",
        "en": "withdraw a site's approval",
    },
    "cli.consents.origin": {
        "fr": "l'origine du site, https://nom[:port]",
        "en": "the site's origin, https://host[:port]",
    },
    "cli.listening": {
        "fr": "Pont cardauth à l'écoute sur {url} (Ctrl-C pour arrêter).",
        "en": "cardauth bridge listening on {url} (Ctrl-C to stop).",
    },
    "cli.origins": {"fr": "Sites autorisés : {origins}", "en": "Allowed sites: {origins}"},
    "cli.origins_none": {
        "fr": "aucun (accord demandé au professionnel)",
        "en": "none (the professional is asked)",
    },
    "cli.revoked": {"fr": "Accord retiré : {origin}", "en": "Approval withdrawn: {origin}"},
    "cli.not_found": {"fr": "Aucun accord pour {origin}", "en": "No approval for {origin}"},
    "cli.no_consent": {"fr": "Aucun site autorisé.", "en": "No approved site."},
    "cli.until": {"fr": "{origin} jusqu'au {date}", "en": "{origin} until {date}"},
}


def describe(error: CardAuthError, language: Language) -> str:
    return messages.describe(error, language, more=ERRORS)


def label(key: str, language: Language, **values: object) -> str:
    return LABELS[key][language].format(**values)
