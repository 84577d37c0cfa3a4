"""What people read: error messages and labels, in French (the default for health
professionals) and English.

Messages are looked up by the error's stable code and filled from its context,
so the wording can change without breaking anything that matches on codes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from cardauth.errors import CardAuthError

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")

# Every text says what happened and what to do. ``{message}`` is the error's English
# message, for developers and support: a text shows it only at its end, as a detail
# ("(détail : {message})."), never as what a person must read to understand.
ERRORS: Mapping[str, Mapping[Language, str]] = {
    "cardauth.error": {
        "fr": "Erreur inattendue de cardauth (détail : {message}).",
        "en": "Unexpected cardauth error (detail: {message}).",
    },
    "identifier.invalid": {
        "fr": "Un identifiant (NIR, RPPS, ADELI, FINESS ou IdNat) ne respecte pas son format "
        "ou sa clé de contrôle (détail : {message}).",
        "en": "An identifier (NIR, RPPS, ADELI, FINESS or IdNat) does not follow its format "
        "or its check digits (detail: {message}).",
    },
    "apdu.malformed": {
        "fr": "Échange avec la carte mal formé. Retirez et réinsérez la carte "
        "(détail : {message}).",
        "en": "Malformed exchange with the card. Remove and reinsert the card (detail: {message}).",
    },
    "card.bad_data": {
        "fr": "Les données lues sur la carte sont illisibles : la carte est peut-être "
        "endommagée (détail : {message}).",
        "en": "The data read from the card do not parse: the card may be damaged "
        "(detail: {message}).",
    },
    "card.unexpected_status": {
        "fr": "La carte a refusé la commande {command} (code {sw}).",
        "en": "The card refused the {command} command (status {sw}).",
    },
    "transport.failure": {
        "fr": "Erreur de communication avec le lecteur. Vérifiez qu'il est bien branché, "
        "puis réessayez (détail : {message}).",
        "en": "Communication error with the reader. Check that it is connected, then try "
        "again (detail: {message}).",
    },
    "transport.no_service": {
        "fr": "Le service des cartes à puce (pcscd) ne fonctionne pas. "
        "Démarrez-le (sudo systemctl start pcscd ; s'il manque, installez le paquet pcscd) "
        "puis réessayez.",
        "en": "The smart-card service (pcscd) is not running. "
        "Start it (sudo systemctl start pcscd; if it is missing, install the pcscd package) "
        "and try again.",
    },
    "transport.no_reader": {
        "fr": "Aucun lecteur de cartes n'est branché. Branchez le lecteur puis réessayez.",
        "en": "No card reader is connected. Connect the reader and try again.",
    },
    "transport.reader_not_found": {
        "fr": "Le lecteur {reader} n'est plus branché.",
        "en": "The reader {reader} is no longer connected.",
    },
    "transport.no_card": {
        "fr": "Aucune carte dans le lecteur {reader}. Insérez la carte.",
        "en": "No card in the reader {reader}. Insert the card.",
    },
    "transport.card_removed": {
        "fr": "La carte a été retirée pendant l'opération. Réinsérez-la et recommencez.",
        "en": "The card was removed during the operation. Reinsert it and start again.",
    },
    "transport.card_reset": {
        "fr": "La carte a été réinitialisée par une autre application. Recommencez.",
        "en": "The card was reset by another application. Start again.",
    },
    "transport.card_mute": {
        "fr": "La carte ne répond pas. Vérifiez son sens d'insertion, ou essayez une autre carte.",
        "en": "The card does not answer. Check which way it is inserted, or try another card.",
    },
    "transport.card_busy": {
        "fr": "La carte est occupée par une autre application. Réessayez dans un instant.",
        "en": "The card is busy with another application. Try again in a moment.",
    },
    "transport.timeout": {
        "fr": "Le lecteur n'a pas répondu à temps.",
        "en": "The reader did not answer in time.",
    },
    "card.error": {
        "fr": "La carte n'a pas pu faire ce qui lui était demandé (détail : {message}).",
        "en": "The card could not do what was asked (detail: {message}).",
    },
    "install.part_missing": {
        "fr": "Cette commande a besoin de {package}, qui n'est pas installé sur ce poste : "
        "installez-le (pip install '{package}'), puis recommencez.",
        "en": "This command needs {package}, which is not installed here: install it "
        "(pip install '{package}'), then try again.",
    },
    "card.unknown": {
        "fr": "La carte du lecteur {reader} n'est ni une carte CPS ni une carte Vitale.",
        "en": "The card in reader {reader} is neither a CPS nor a Vitale card.",
    },
    "card.not_present": {
        "fr": "Aucune carte {kind} n'est insérée. Insérez-la dans le lecteur.",
        "en": "No {kind} card is inserted. Insert it in the reader.",
    },
    "card.out_of_validity": {
        "fr": "La carte {kind} n'est pas valable à cette date : elle ne permet pas de se "
        "connecter.",
        "en": "The {kind} card is not valid at this date: it cannot be used to log in.",
    },
    "card.expired": {
        "fr": "La carte {kind} a expiré le {date} : elle ne permet plus de se connecter. "
        "Utilisez la nouvelle carte qui vous a été envoyée.",
        "en": "The {kind} card expired on {date}: it can no longer be used to log in. "
        "Use the new card that was sent to you.",
    },
    "card.not_yet_valid": {
        "fr": "La carte {kind} n'est valable qu'à partir du {date} : utilisez votre carte "
        "actuelle jusque-là.",
        "en": "The {kind} card is valid from {date} only: use your current card until then.",
    },
    "pin.format": {
        "fr": "Le code porteur doit comporter de {min_digits} à {max_digits} chiffres. "
        "Aucun essai n'a été compté.",
        "en": "The PIN must be {min_digits} to {max_digits} digits. No try was counted.",
    },
    "pin.wrong": {
        "fr": "Code porteur incorrect. Il reste {tries_left} essai(s) avant blocage de la carte.",
        "en": "Wrong PIN. {tries_left} try(ies) left before the card is blocked.",
    },
    "pin.blocked": {
        "fr": "Le code porteur est bloqué. Débloquez-le avec votre code de déblocage (PUK) "
        "reçu avec la carte.",
        "en": "The PIN is blocked. Unblock it with the unblocking code (PUK) sent with the card.",
    },
    "pin.timeout": {
        "fr": "Aucun code n'a été saisi sur le lecteur à temps. Aucun essai n'a été compté.",
        "en": "No PIN was typed on the reader in time. No try was counted.",
    },
    "pin.cancelled": {
        "fr": "La saisie du code sur le lecteur a été annulée. Aucun essai n'a été compté.",
        "en": "PIN entry on the reader was cancelled. No try was counted.",
    },
    "pin.required": {
        "fr": "Le code porteur doit être saisi avant cette opération.",
        "en": "The PIN must be entered before this operation.",
    },
    "pin.error": {
        "fr": "Le code porteur n'a pas pu être vérifié (détail : {message}).",
        "en": "The PIN could not be checked (detail: {message}).",
    },
    "puk.error": {
        "fr": "Le code de déblocage n'a pas pu être vérifié (détail : {message}).",
        "en": "The unblocking code could not be checked (detail: {message}).",
    },
    "puk.wrong": {
        "fr": "Code de déblocage incorrect. Il reste {tries_left} essai(s).",
        "en": "Wrong unblocking code. {tries_left} try(ies) left.",
    },
    "puk.blocked": {
        "fr": "Le code de déblocage est bloqué : la carte doit être remplacée.",
        "en": "The unblocking code is blocked: the card must be replaced.",
    },
    "origin.invalid": {
        "fr": "Origine web invalide : une origine s'écrit https://nom ou https://nom:port, "
        "en minuscules, sans chemin (détail : {message}).",
        "en": "Invalid web origin: an origin is written https://name or https://name:port, "
        "in lower case, with no path (detail: {message}).",
    },
    "trust.invalid": {
        "fr": "Configuration de confiance inutilisable : vérifiez le dossier de confiance et "
        "ses réglages (détail : {message}).",
        "en": "Unusable trust configuration: check the trust directory and its settings "
        "(detail: {message}).",
    },
    "serve.cannot_listen": {
        "fr": "Impossible d'écouter sur le port {port} : il est peut-être déjà pris "
        "(détail : {message}).",
        "en": "Cannot listen on port {port}: it may be taken already (detail: {message}).",
    },
    "request.json": {
        "fr": "La requête doit être envoyée en JSON.",
        "en": "The request must be sent as JSON.",
    },
    "request.malformed": {
        "fr": "Requête invalide : elle n'a pas la forme attendue (détail : {message}).",
        "en": "Invalid request: it does not have the expected form (detail: {message}).",
    },
    "request.too_large": {
        "fr": "La requête est trop volumineuse.",
        "en": "The request is too large.",
    },
    "login.required": {
        "fr": "Connectez-vous avec votre carte CPS.",
        "en": "Log in with your CPS card.",
    },
    "assertion.refused": {
        "fr": "Connexion par carte refusée (détail : {message}).",
        "en": "Card login refused (detail: {message}).",
    },
    "assertion.too_large": {
        "fr": "Connexion refusée : la preuve de connexion est trop volumineuse.",
        "en": "Login refused: the login proof is too large.",
    },
    "assertion.malformed": {
        "fr": "Connexion refusée : la preuve de connexion est mal formée.",
        "en": "Login refused: the login proof is malformed.",
    },
    "assertion.duplicate_key": {
        "fr": "Connexion refusée : la preuve de connexion contient des champs en double.",
        "en": "Login refused: the login proof has duplicate fields.",
    },
    "assertion.type": {
        "fr": "Connexion refusée : ce n'est pas une preuve de connexion cardauth.",
        "en": "Login refused: this is not a cardauth login proof.",
    },
    "assertion.crit": {
        "fr": "Connexion refusée : version ou règles de la preuve de connexion non reconnues.",
        "en": "Login refused: unknown version or rules of the login proof.",
    },
    "assertion.forbidden_header": {
        "fr": "Connexion refusée : la preuve de connexion contient des paramètres interdits.",
        "en": "Login refused: the login proof carries forbidden parameters.",
    },
    "assertion.algorithm": {
        "fr": "Connexion refusée : algorithme de signature non autorisé.",
        "en": "Login refused: signature algorithm not allowed.",
    },
    "assertion.algorithm_mismatch": {
        "fr": "Connexion refusée : l'algorithme ne correspond pas à la clé de la carte.",
        "en": "Login refused: the algorithm does not fit the card's key.",
    },
    "assertion.signature": {
        "fr": "Connexion refusée : la signature de la carte n'est pas valide.",
        "en": "Login refused: the card's signature is not valid.",
    },
    "assertion.claims": {
        "fr": "Connexion refusée : contenu de la preuve de connexion invalide.",
        "en": "Login refused: invalid content in the login proof.",
    },
    "assertion.card_serial": {
        "fr": "Connexion refusée : le numéro de série de la carte n'a pas la forme de celui "
        "d'une puce (20 chiffres hexadécimaux).",
        "en": "Login refused: the card serial is not a chip serial number (20 hexadecimal digits).",
    },
    "assertion.expired": {
        "fr": "Connexion refusée : la preuve de connexion a expiré. Recommencez la connexion.",
        "en": "Login refused: the login proof expired. Log in again.",
    },
    "assertion.issued_in_future": {
        "fr": "Connexion refusée : la preuve de connexion est datée dans le futur ; vérifiez "
        "l'horloge du poste.",
        "en": "Login refused: the login proof is dated in the future; check the workstation's "
        "clock.",
    },
    "assertion.lifetime": {
        "fr": "Connexion refusée : durée de validité de la preuve de connexion incorrecte.",
        "en": "Login refused: wrong validity period for the login proof.",
    },
    "origin.mismatch": {
        "fr": "Connexion refusée : la carte a signé pour un autre site ({origin}).",
        "en": "Login refused: the card signed for another site ({origin}).",
    },
    "challenge.malformed": {
        "fr": "Connexion refusée : défi de connexion mal formé.",
        "en": "Login refused: malformed login challenge.",
    },
    "challenge.unknown": {
        "fr": "Connexion refusée : ce défi de connexion est inconnu ou déjà utilisé. "
        "Recommencez la connexion.",
        "en": "Login refused: this login challenge is unknown or already used. Log in again.",
    },
    "challenge.expired": {
        "fr": "Connexion refusée : le défi de connexion a expiré. Recommencez la connexion.",
        "en": "Login refused: the login challenge expired. Log in again.",
    },
    "challenge.session": {
        "fr": "Connexion refusée : ce défi a été demandé par une autre session de navigateur. "
        "Rechargez la page puis recommencez.",
        "en": "Login refused: this challenge was asked for by another browser session. "
        "Reload the page and try again.",
    },
    "challenge.store_unavailable": {
        "fr": "Connexion impossible pour l'instant : le service ne peut pas vérifier le défi. "
        "Réessayez dans un moment.",
        "en": "Login impossible for now: the service cannot check the challenge. Try again "
        "in a moment.",
    },
    "certificate.malformed": {
        "fr": "Connexion refusée : certificat de carte illisible.",
        "en": "Login refused: unreadable card certificate.",
    },
    "certificate.chain_too_long": {
        "fr": "Connexion refusée : trop de certificats joints.",
        "en": "Login refused: too many certificates attached.",
    },
    "certificate.chain_root": {
        "fr": "Connexion refusée : un certificat racine est joint à la preuve de connexion "
        "(seuls ceux des autorités intermédiaires peuvent l'être).",
        "en": "Login refused: a root certificate is attached to the login proof (only "
        "intermediate authorities' certificates may be).",
    },
    "certificate.chain_repeated": {
        "fr": "Connexion refusée : un certificat est joint deux fois à la preuve de connexion.",
        "en": "Login refused: a certificate is attached twice to the login proof.",
    },
    "certificate.chain_order": {
        "fr": "Connexion refusée : les certificats joints ne sont pas, dans l'ordre, les "
        "autorités qui ont émis la carte.",
        "en": "Login refused: the attached certificates are not, in order, the authorities "
        "that issued the card.",
    },
    "certificate.expired": {
        "fr": "Connexion refusée : le certificat de la carte a expiré. Demandez une nouvelle "
        "carte.",
        "en": "Login refused: the card's certificate expired. Ask for a new card.",
    },
    "certificate.not_yet_valid": {
        "fr": "Connexion refusée : le certificat de la carte n'est pas encore valide.",
        "en": "Login refused: the card's certificate is not valid yet.",
    },
    "certificate.ca_expired": {
        "fr": "Connexion refusée : une autorité de certification n'est pas valide.",
        "en": "Login refused: a certification authority is not valid.",
    },
    "certificate.self_signed": {
        "fr": "Connexion refusée : certificat auto-signé.",
        "en": "Login refused: self-signed certificate.",
    },
    "certificate.not_a_ca": {
        "fr": "Connexion refusée : chaîne de certificats invalide.",
        "en": "Login refused: invalid certificate chain.",
    },
    "certificate.untrusted": {
        "fr": "Connexion refusée : la carte n'est pas émise par une autorité de confiance.",
        "en": "Login refused: the card was not issued by a trusted authority.",
    },
    "certificate.usage": {
        "fr": "Connexion refusée : ce certificat ne sert pas à l'authentification.",
        "en": "Login refused: this certificate is not for authentication.",
    },
    "certificate.wrong_card": {
        "fr": "Connexion refusée : ce n'est pas le bon type de carte.",
        "en": "Login refused: this is not the right kind of card.",
    },
    "certificate.identity": {
        "fr": "Connexion refusée : l'identité du certificat est incomplète ou invalide.",
        "en": "Login refused: the certificate's identity is incomplete or invalid.",
    },
    "revocation.revoked": {
        "fr": "Connexion refusée : cette carte a été révoquée (perdue, volée ou remplacée).",
        "en": "Login refused: this card has been revoked (lost, stolen or replaced).",
    },
    "revocation.unknown": {
        "fr": "Connexion refusée : l'autorité ne connaît pas cette carte.",
        "en": "Login refused: the authority does not know this card.",
    },
    "revocation.unavailable": {
        "fr": "Connexion impossible pour l'instant : la validité de la carte ne peut pas être "
        "vérifiée. Réessayez dans un moment.",
        "en": "Login impossible for now: the card's status cannot be checked. Try again in "
        "a moment.",
    },
    "revocation.stale": {
        "fr": "Connexion impossible pour l'instant : la liste des cartes révoquées est "
        "périmée. Réessayez plus tard ; si cela dure, prévenez le support du téléservice.",
        "en": "Login impossible for now: the list of revoked cards is out of date. Try "
        "again later; if it lasts, tell the teleservice's support.",
    },
    "revocation.crl_invalid": {
        "fr": "Connexion refusée : liste des cartes révoquées invalide.",
        "en": "Login refused: invalid list of revoked cards.",
    },
    "revocation.ocsp_invalid": {
        "fr": "Connexion refusée : réponse OCSP illisible.",
        "en": "Login refused: unreadable OCSP response.",
    },
    "revocation.ocsp_signature": {
        "fr": "Connexion refusée : réponse OCSP mal signée.",
        "en": "Login refused: badly signed OCSP response.",
    },
    "revocation.ocsp_responder": {
        "fr": "Connexion refusée : répondeur OCSP non reconnu.",
        "en": "Login refused: OCSP responder not recognised.",
    },
    "revocation.ocsp_cert_id": {
        "fr": "Connexion refusée : la réponse OCSP concerne un autre certificat.",
        "en": "Login refused: the OCSP response is about another certificate.",
    },
    "revocation.ocsp_nonce": {
        "fr": "Connexion refusée : réponse OCSP rejouée ou sans nonce.",
        "en": "Login refused: replayed OCSP response or no nonce.",
    },
    "revocation.ocsp_time": {
        "fr": "Connexion refusée : réponse OCSP périmée ou datée dans le futur.",
        "en": "Login refused: OCSP response out of date or dated in the future.",
    },
    "vitale.binding": {
        "fr": "Consultation refusée : la carte Vitale n'a pas co-signé cette connexion.",
        "en": "Lookup refused: the Vitale card did not co-sign this login.",
    },
    "lookup.other_professional": {
        "fr": "Consultation refusée : elle doit être signée par la carte CPS de la personne "
        "connectée.",
        "en": "Lookup refused: it must be signed by the CPS card of the person logged in.",
    },
    "audit.invalid": {
        "fr": "Le journal d'audit ne peut pas être tenu : vérifiez sa configuration "
        "(détail : {message}).",
        "en": "The audit trail cannot be kept: check its settings (detail: {message}).",
    },
    "vitale.missing": {
        "fr": "La carte Vitale du patient doit être insérée pour cette consultation.",
        "en": "The patient's Vitale card must be inserted for this lookup.",
    },
    "sim.error": {
        "fr": "Le simulateur n'a pas pu faire ce qui lui était demandé (détail : {message}).",
        "en": "The simulator could not do what was asked (detail: {message}).",
    },
    "sim.not_loopback": {
        "fr": "Le simulateur ne se connecte à vpcd qu'en local (127.0.0.1), pas à {host}.",
        "en": "The simulator connects to vpcd on loopback only (127.0.0.1), not {host}.",
    },
    "sim.vpcd_unreachable": {
        "fr": "Le lecteur virtuel (vpcd, port {port}) ne répond pas : pcscd tourne-t-il "
        "avec le pilote vsmartcard-vpcd ?",
        "en": "The virtual reader (vpcd, port {port}) does not answer: is pcscd running "
        "with the vsmartcard-vpcd driver?",
    },
    "sim.slot_occupied": {
        "fr": "Ce lecteur contient déjà une carte.",
        "en": "That reader slot already holds a card.",
    },
    "sim.control_unavailable": {
        "fr": "Aucun simulateur ne tourne : lancez d'abord « cardauth-sim --vpcd ».",
        "en": "No simulator is running: start 'cardauth-sim --vpcd' first.",
    },
    "sim.pcscd_unavailable": {
        "fr": "pcscd ne peut pas être démarré pour les tests : lancez scripts/setup.sh "
        "(détail : {message}).",
        "en": "pcscd cannot be started for the tests: run scripts/setup.sh (detail: {message}).",
    },
    "sim.persona": {
        "fr": "Profil de carte inconnu ou invalide ; « cardauth-sim personas » liste ceux qui "
        "sont fournis (détail : {message}).",
        "en": "Unknown or invalid card persona; 'cardauth-sim personas' lists the bundled ones "
        "(detail: {message}).",
    },
}

LABELS: Mapping[str, Mapping[Language, str]] = {
    "reader": {"fr": "Lecteur", "en": "Reader"},
    "no_reader": {
        "fr": "Aucun lecteur de cartes n'est branché. Branchez le lecteur puis réessayez.",
        "en": "No card reader is connected. Connect the reader and try again.",
    },
    "hint.no_cards": {
        "fr": "Sans lecteur, --simulate donne des cartes virtuelles (cardauth {command} "
        "--simulate). Pour les cartes de la démonstration (scripts/demo.sh), lancez la "
        "commande qu'elle affiche : PCSCLITE_CSOCK_NAME=… cardauth {command}",
        "en": "Without a reader, --simulate gives virtual cards (cardauth {command} "
        "--simulate). For the demo's cards (scripts/demo.sh), run the command it prints: "
        "PCSCLITE_CSOCK_NAME=… cardauth {command}",
    },
    "empty": {"fr": "pas de carte", "en": "no card"},
    "reader.cps": {
        "fr": "carte CPS (professionnel de santé)",
        "en": "CPS card (health professional)",
    },
    "reader.vitale": {"fr": "carte Vitale (assuré)", "en": "Vitale card (insured person)"},
    "reader.unknown": {
        "fr": "carte inconnue : ni CPS ni Vitale",
        "en": "unknown card: neither CPS nor Vitale",
    },
    "reader.unreadable": {"fr": "carte illisible", "en": "unreadable card"},
    "mute": {"fr": "carte muette", "en": "mute card"},
    "kind": {"fr": "Carte", "en": "Card"},
    "kind.cps": {"fr": "CPS (professionnel de santé)", "en": "CPS (health professional)"},
    "kind.vitale": {"fr": "Vitale (assuré)", "en": "Vitale (insured person)"},
    "serial": {"fr": "Numéro de carte", "en": "Card number"},
    "card_type": {"fr": "Type de carte", "en": "Card type"},
    "holder": {"fr": "Titulaire", "en": "Holder"},
    "identifier": {"fr": "Identifiant national", "en": "National identifier"},
    "finess_staff": {"fr": "FINESS (personnel)", "en": "FINESS (staff)"},
    "profession": {"fr": "Profession", "en": "Profession"},
    "specialty": {"fr": "Spécialité", "en": "Specialty"},
    "structure": {"fr": "Structure", "en": "Structure"},
    "certificate": {"fr": "Certificat", "en": "Certificate"},
    "certificate.authentication": {
        "fr": "Certificat d'authentification",
        "en": "Authentication certificate",
    },
    "certificate.signature": {"fr": "Certificat de signature", "en": "Signature certificate"},
    "valid": {"fr": "valide du {start} au {end}", "en": "valid from {start} to {end}"},
    "expired": {"fr": "EXPIRÉ", "en": "EXPIRED"},
    "not_yet_valid": {"fr": "PAS ENCORE VALIDE", "en": "NOT YET VALID"},
    "pin": {"fr": "Code porteur", "en": "PIN"},
    "pin.verified": {"fr": "vérifié", "en": "verified"},
    "pin.tries": {"fr": "{tries} essai(s) restant(s)", "en": "{tries} try(ies) left"},
    "pin.blocked": {"fr": "BLOQUÉ (déblocage par PUK)", "en": "BLOCKED (unblock with the PUK)"},
    "insured": {"fr": "Assuré", "en": "Insured person"},
    "beneficiary": {"fr": "Ayant droit", "en": "Beneficiary"},
    "born": {"fr": "né(e) le {date}", "en": "born {date}"},
    "rank": {"fr": "rang {rank}", "en": "rank {rank}"},
    "nir": {"fr": "NIR", "en": "NIR"},
    "insurer": {"fr": "Organisme", "en": "Insurer"},
    "card_validity": {"fr": "Validité de la carte", "en": "Card validity"},
    "error": {"fr": "Erreur", "en": "Error"},
    "pin_prompt": {"fr": "Code porteur de la carte CPS : ", "en": "CPS card PIN: "},
    # -- the help of the command lines (cardauth --help); the bridge and the verifier
    # service use the shared ones (version, lang, command) with their own.
    "help.version": {"fr": "afficher la version et quitter", "en": "show the version and exit"},
    "help.lang": {
        "fr": "langue des messages (par défaut : CARDAUTH_LANG, sinon celle du système, sinon fr)",
        "en": "language of messages (default: CARDAUTH_LANG, else the system's, else fr)",
    },
    "help.json": {"fr": "sortie JSON, pour les scripts", "en": "JSON output, for scripts"},
    "help.shared_option": {
        "fr": "L'option {options} se place avant ou après la commande.",
        "en": "The option {options} goes before or after the command.",
    },
    "help.shared_options": {
        "fr": "Les options {options} se placent avant ou après la commande.",
        "en": "The options {options} go before or after the command.",
    },
    "help.allow_development_origins": {
        "fr": "accepter aussi http://localhost et http://127.0.0.1 (développement)",
        "en": "accept http://localhost and http://127.0.0.1 too (development)",
    },
    "metavar.command": {"fr": "COMMANDE", "en": "COMMAND"},
    "metavar.origin": {"fr": "ORIGINE", "en": "ORIGIN"},
    "metavar.challenge": {"fr": "DÉFI", "en": "CHALLENGE"},
    "metavar.directory": {"fr": "DOSSIER", "en": "DIRECTORY"},
    "metavar.file": {"fr": "FICHIER", "en": "FILE"},
    "metavar.address": {"fr": "ADRESSE", "en": "ADDRESS"},
    "help.cardauth": {
        "fr": "Connexion par carte CPS et carte Vitale : lecteurs, cartes, preuves de connexion.",
        "en": "Smart-card authentication with CPS and Vitale cards: readers, cards, assertions.",
    },
    "help.simulate": {
        "fr": "cartes virtuelles dans ce processus, au lieu des lecteurs PC/SC",
        "en": "use in-process virtual cards instead of the PC/SC readers",
    },
    "help.personas": {
        "fr": "profils des cartes simulées, un par lecteur (par défaut : doctor,patient) ; "
        "voir cardauth-sim personas",
        "en": "personas in the simulated slots (default: doctor,patient); "
        "see cardauth-sim personas",
    },
    "help.readers": {
        "fr": "lister les lecteurs et la carte de chacun (CPS, Vitale, inconnue, illisible), "
        "sans le code porteur",
        "en": "list the reader slots and the card in each (CPS, Vitale, unknown, unreadable), "
        "without the PIN",
    },
    "help.cards": {
        "fr": "afficher la carte de chaque lecteur : type, titulaire, certificats, code porteur",
        "en": "show the card in each slot: kind, holder, certificates, PIN",
    },
    "help.login": {
        "fr": "faire signer par les cartes une preuve de connexion pour un site et un défi",
        "en": "sign an assertion for an origin and a challenge with the cards",
    },
    "help.verify": {
        "fr": "vérifier une preuve de connexion lue sur l'entrée standard",
        "en": "verify an assertion read on standard input",
    },
    "help.login.origin": {
        "fr": "l'origine web du site, https://nom[:port], à laquelle la preuve est liée",
        "en": "the web origin to bind the assertion to, https://host[:port]",
    },
    "help.login.challenge": {
        "fr": "le défi donné par le téléservice",
        "en": "the teleservice's challenge",
    },
    "help.with_vitale": {
        "fr": "faire cosigner la carte Vitale du patient",
        "en": "have the patient's Vitale card co-sign",
    },
    "help.pin_stdin": {
        "fr": "lire le code porteur sur l'entrée standard plutôt qu'au terminal",
        "en": "read the PIN from standard input instead of the terminal",
    },
    "help.verify.origin": {
        "fr": "une origine attendue, https://nom[:port] (option répétable)",
        "en": "an expected origin, https://host[:port] (repeatable)",
    },
    "help.verify.challenge": {
        "fr": "le défi qui a été émis",
        "en": "the challenge that was issued",
    },
    "help.trust": {
        "fr": "dossier de confiance (cardauth-sim export-trust en écrit un pour la PKI de test)",
        "en": "trust directory (cardauth-sim export-trust writes one for the test PKI)",
    },
    "help.require_vitale": {
        "fr": "refuser une preuve de connexion sans la cosignature de la carte Vitale",
        "en": "refuse an assertion without the Vitale card's co-signature",
    },
}


def choose_language(requested: str | None = None) -> Language:
    """``requested`` if given, else CARDAUTH_LANG, else the locale; French by default."""
    for candidate in (requested, os.environ.get("CARDAUTH_LANG")):
        if candidate:
            return "en" if candidate.lower().startswith("en") else "fr"
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value and value not in ("C", "POSIX", "C.UTF-8"):
            return "en" if value.lower().startswith("en") else "fr"
    return "fr"


CARD_NAMES = {"cps": "CPS", "vitale": "Vitale"}  # as people write them, in messages


class _Context(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def describe(
    error: CardAuthError,
    language: Language,
    *,
    more: Mapping[str, Mapping[Language, str]] | None = None,
) -> str:
    """The message a person reads for ``error``; ``more`` adds the messages of one
    part of the product (the bridge's refusals) to the shared ones."""
    known = ERRORS if more is None else {**ERRORS, **more}
    template = (known.get(error.code) or known[_family(error, known)])[language]
    values = dict(error.context)
    values["kind"] = CARD_NAMES.get(str(values.get("kind")), values.get("kind", "?"))
    return template.format_map(_Context(values, message=error.message))


def _family(error: CardAuthError, known: Mapping[str, object]) -> str:
    """The code of the error, or of its nearest ancestor that has a message (at the
    root, CardAuthError's own: no error is shown as its bare English message)."""
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if isinstance(code, str) and code in known:
            return code
    return CardAuthError.code


def error_line(
    error: CardAuthError,
    language: Language,
    *,
    more: Mapping[str, Mapping[Language, str]] | None = None,
) -> str:
    """How a command line reports ``error`` on standard error:
    ``Erreur [code] : message``, or ``Error [code]: message`` in English."""
    separator = " : " if language == "fr" else ": "
    text = describe(error, language, more=more)
    return f"{label('error', language)} [{error.code}]{separator}{text}"


def label(key: str, language: Language, **values: object) -> str:
    return LABELS[key][language].format(**values)
