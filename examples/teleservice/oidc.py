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
to ``/oidc/logged-out``), ``POST /oidc/backchannel-logout`` (OpenID Connect
Back-Channel Logout 1.0: the provider's session ended, the CPS card pulled; the
logout token checked with joserfc by the rules of § 2.6, then every session here
that came from that provider session ends at its next request: the sessions are
signed cookies, so the ended ``sid`` is kept in a small SQLite table that every
process of the service reads).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, jsonify, redirect, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth.certificates import Professional
from cardauth.errors import CardAuthError
from cardauth.flask import current_professional, extension
from cardauth.identifiers import IdNat
from cardauth.professions import profession_label

ENDPOINTS = frozenset(
    {"oidc_login", "oidc_callback", "oidc_logout", "oidc_logged_out", "oidc_backchannel_logout"}
)
ACR = "eidas1"  # PSC's relying parties refuse a token without it
_ID_TOKEN = "oidc_id_token"  # noqa: S105 - the session key it is kept under
_SID = "oidc_sid"  # the provider session this one came from
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["RS256", "ES256"]
MAX_LOGOUT_TOKEN_AGE = 300  # seconds (§ 2.6: iat not too far in the past)
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


class LogoutTokenRefused(Exception):
    """A logout token that breaks a rule of Back-Channel Logout 1.0 § 2.6."""


def check_logout_token(
    token: str, keys: KeySet, *, issuer: str, client_id: str, now: float
) -> dict[str, Any]:
    """The claims of a logout token, checked as § 2.6 says (rules 2 to 6)."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)  # rule 2: signature
    except (JoseError, ValueError) as error:
        raise LogoutTokenRefused(f"not a token of the provider ({type(error).__name__})") from None
    if decoded.header.get("typ") != "logout+jwt":  # § 2.4: explicitly typed
        raise LogoutTokenRefused("typ is not logout+jwt")
    claims = dict(decoded.claims)
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if claims.get("iss") != issuer or client_id not in audiences:  # rule 2
        raise LogoutTokenRefused("another issuer or audience")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):  # rule 3
        raise LogoutTokenRefused("iat and exp are required")
    if now - iat > MAX_LOGOUT_TOKEN_AGE or exp <= now:
        raise LogoutTokenRefused("too old or expired")
    if not isinstance(claims.get("sid"), str):  # rule 4 (this service keys on sid)
        raise LogoutTokenRefused("no sid")
    events = claims.get("events")  # rule 5
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise LogoutTokenRefused("no back-channel logout event")
    if "nonce" in claims:  # rule 6
        raise LogoutTokenRefused("a logout token carries no nonce")
    return claims


class EndedSessions:
    """The provider sessions that ended (their ``sid``), for as long as a session
    here may last, in a SQLite file every process of the service shares."""

    def __init__(self, path: Path, keep_seconds: float) -> None:
        self.path = path
        self.keep_seconds = keep_seconds
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS ended (sid TEXT PRIMARY KEY, at REAL NOT NULL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        try:
            yield connection
        finally:
            connection.close()

    def end(self, sid: str) -> None:
        now = time.time()
        with self._connect() as connection:
            connection.execute("DELETE FROM ended WHERE at < ?", (now - self.keep_seconds,))
            connection.execute("INSERT OR REPLACE INTO ended (sid, at) VALUES (?, ?)", (sid, now))

    def ended(self, sid: str) -> bool:
        with self._connect() as connection:
            found = connection.execute("SELECT 1 FROM ended WHERE sid = ?", (sid,)).fetchone()
        return found is not None


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
        if isinstance(claims.get("sid"), str):
            session[_SID] = claims["sid"]
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

    install_backchannel_logout(app, provider, issuer, settings)


def install_backchannel_logout(
    app: Flask, provider: Any, issuer: str, settings: Mapping[str, Any]
) -> None:
    """``POST /oidc/backchannel-logout``, and the check that ends, at its next
    request, a session whose provider session ended."""
    ended_sessions = EndedSessions(
        Path(settings["TELESERVICE_DB"]).with_name("oidc-ended-sessions.db"),
        keep_seconds=app.extensions["cardauth"].session_max_age.total_seconds(),
    )

    def end_if_ended_at_the_provider() -> None:
        """Before anything else of a request: a session whose provider session ended
        (back-channel logout) is over here too."""
        sid = session.get(_SID)
        if isinstance(sid, str) and ended_sessions.ended(sid):
            session.clear()

    app.before_request_funcs.setdefault(None, []).insert(0, end_if_ended_at_the_provider)

    @app.post("/oidc/backchannel-logout")
    def oidc_backchannel_logout() -> Response:
        """Back-Channel Logout 1.0 § 2.5: the provider posts ``logout_token``; 200
        when the sessions of its ``sid`` end, 400 when it is refused (§ 2.8)."""
        token = request.form.get("logout_token", "")
        cardauth = extension()
        try:
            keys = KeySet.import_key_set(provider.fetch_jwk_set(force=True))
            claims = check_logout_token(
                token, keys, issuer=issuer, client_id=provider.client_id, now=time.time()
            )
        except (LogoutTokenRefused, OAuthError, ValueError) as error:
            if cardauth.audit is not None:
                cardauth.audit.refused("oidc.logout_token", origin=issuer, action="logout")
            answer = jsonify({"error": "invalid_request", "error_description": str(error)})
            answer.status_code = 400
            answer.headers["Cache-Control"] = "no-store"
            return answer
        ended_sessions.end(claims["sid"])
        if cardauth.audit is not None and isinstance(claims.get("sub"), str):
            cardauth.audit.logout(claims["sub"])
        answer = Response(status=200)
        answer.headers["Cache-Control"] = "no-store"
        return answer
