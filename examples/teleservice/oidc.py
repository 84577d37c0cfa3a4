"""The teleservice as a plain OpenID Connect relying party (``TELESERVICE_OIDC_ISSUER``):
the professional logs in at an identity provider that did the card login
(cardauth-oidc, or Pro Santé Connect: the same requests), and comes back with an ID
token. Authlib's Flask client does the protocol: discovery, PKCE S256, state and
nonce, the token request, the ID token's signature, issuer, audience and nonce.
This module adds what PSC's relying parties must check themselves: ``acr`` is
``eidas1``. The professional then holds the same session as after a card login
here (``CardAuth.start_session``); lookups still need the patient's Vitale card,
co-signing with the card of the professional who is logged in.

Routes: ``/oidc/login`` (to the provider), ``/oidc/callback`` (back from it),
``/oidc/logout`` (the session ends here, then at the provider, RP-initiated, back
to ``/oidc/logged-out``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth.certificates import Professional
from cardauth.errors import CardAuthError
from cardauth.flask import current_professional, extension
from cardauth.identifiers import IdNat
from cardauth.professions import profession_label

ENDPOINTS = frozenset({"oidc_login", "oidc_callback", "oidc_logout", "oidc_logged_out"})
ACR = "eidas1"  # PSC's relying parties refuse a token without it
_ID_TOKEN = "oidc_id_token"  # noqa: S105 - the session key it is kept under
# Why the page says the session ended (the page's notices, teleservice.js).
REASONS = frozenset({"cardRemoved", "sessionEnded", "oidcRefused"})


def professional_from_claims(claims: Mapping[str, Any]) -> Professional:
    """The professional of PSC's claims (docs/oidc.md): the IdNat, names, and the
    profession of the first practice; the card type from the identifier and the
    category (a student's ``E``: CPF; a FINESS staff identifier: CPE)."""
    idnat = IdNat.parse(str(claims.get("SubjectNameID") or claims.get("preferred_username")))
    practices = (claims.get("SubjectRefPro") or {}).get("exercices") or [{}]
    practice = practices[0] if isinstance(practices[0], dict) else {}
    code = practice.get("codeProfession")
    card_type = "CPF" if practice.get("codeCategorieProfessionnelle") == "E" else "CPS"
    if idnat.type.name == "FINESS_STAFF":
        card_type = "CPE"
    return Professional(
        idnat=str(idnat),
        identifier_type=idnat.type.name,
        identifier=idnat.identifier if not idnat.suffix else f"{idnat.identifier}/{idnat.suffix}",
        surname=str(claims.get("family_name", "")),
        given_name=str(claims.get("given_name", "")),
        card_type=card_type,
        profession=profession_label(code) if isinstance(code, str) else None,
        profession_code=code if isinstance(code, str) else None,
        certificate_serial="",  # the provider checked the certificate; its serial is not passed on
    )


def install_oidc(app: Flask, settings: Mapping[str, Any]) -> None:
    issuer = settings["TELESERVICE_OIDC_ISSUER"]
    origin = settings["CARDAUTH_ORIGINS"][0]
    oauth = OAuth(app)
    provider = oauth.register(
        "provider",
        client_id=settings["TELESERVICE_OIDC_CLIENT_ID"],
        client_secret=settings["TELESERVICE_OIDC_CLIENT_SECRET"],
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid scope_all",
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )

    def back_to_the_page(reason: str | None = None) -> WerkzeugResponse:
        return redirect(url_for("index", ended=reason) if reason else url_for("index"))

    @app.get("/oidc/login")
    def oidc_login() -> WerkzeugResponse:
        language = request.args.get("lang", "fr")
        response: WerkzeugResponse = provider.authorize_redirect(
            f"{origin}/oidc/callback", acr_values=ACR, ui_locales=language
        )
        return response

    @app.get("/oidc/callback")
    def oidc_callback() -> WerkzeugResponse:
        cardauth = extension()
        try:
            token = provider.authorize_access_token()
            claims = token["userinfo"]  # the ID token's claims, checked by Authlib
            if claims.get("acr") != ACR:
                raise OAuthError("acr", "the ID token's acr is not eidas1")
            professional = professional_from_claims(claims)
        except (OAuthError, CardAuthError, KeyError, TypeError, ValueError) as error:
            if cardauth.audit is not None:
                cardauth.audit.refused(
                    f"oidc.{getattr(error, 'error', type(error).__name__)}"[:60], origin=issuer
                )
            return back_to_the_page("oidcRefused")
        cardauth.start_session(professional)
        session[_ID_TOKEN] = token["id_token"]
        if cardauth.audit is not None:
            cardauth.audit.login(professional, origin=issuer, card_serial="")
        return back_to_the_page()

    @app.get("/oidc/logout")
    def oidc_logout() -> WerkzeugResponse:
        """The session ends here, then at the provider (RP-initiated logout)."""
        reason = request.args.get("ended")
        id_token = session.get(_ID_TOKEN)
        professional = current_professional()
        session.clear()
        cardauth = extension()
        if professional is not None and cardauth.audit is not None:
            cardauth.audit.logout(professional["idnat"])
        metadata = provider.load_server_metadata()
        if not id_token or "end_session_endpoint" not in metadata:
            return back_to_the_page(reason if reason in REASONS else None)
        query = {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": f"{origin}/oidc/logged-out",
            "state": reason if reason in REASONS else "",
        }
        return redirect(f"{metadata['end_session_endpoint']}?{urlencode(query)}")

    @app.get("/oidc/logged-out")
    def oidc_logged_out() -> WerkzeugResponse:
        reason = request.args.get("state")
        return back_to_the_page(reason if reason in REASONS else None)
