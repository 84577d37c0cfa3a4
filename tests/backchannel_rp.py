"""A relying party of cardauth-oidc for the back-channel logout tests, on a JOSE
library that is not the provider's (PyJWT; the provider signs with joserfc).

- Its login: the authorization code flow with PKCE, state and nonce; the ID token
  checked with PyJWT against the provider's published keys (issuer, audience,
  nonce, ``acr``). Its sessions are its own (a cookie named for the client: the
  cookies of 127.0.0.1 go to every port), each
  remembering the provider's ``sid`` and ``sub``.
- ``POST /backchannel-logout``: the logout token checked by every rule of OpenID
  Connect Back-Channel Logout 1.0 § 2.6, then the sessions of that ``sid`` end.
  A token that breaks a rule gets 400 (§ 2.8) and ends nothing.
- ``GET /me``: a page that says whether the professional is logged in here, and
  frames the provider's card watch (so that pulling the card ends the session).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from flask import Flask, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth.oidc.settings import OIDC, REALM

EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["RS256", "ES256"]
MAX_TOKEN_AGE = 300  # seconds: an older iat is refused (§ 2.6 rule 3)


class LogoutTokenRefused(Exception):
    """A logout token that breaks a rule of § 2.6."""


@dataclass
class RelyingParty:
    provider_origin: str  # where the provider is reached (its issuer is under REALM)
    client_id: str
    secret: str
    origin: str  # this relying party's own
    sessions: dict[str, dict[str, str]] = field(default_factory=dict)  # cookie -> sid, sub
    pending: dict[str, dict[str, str]] = field(default_factory=dict)  # state -> nonce...
    received: list[dict[str, Any]] = field(default_factory=list)  # accepted tokens' claims
    refused: list[str] = field(default_factory=list)  # why tokens were refused
    seen_jti: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cookie(self) -> str:
        return f"rp_session_{self.client_id}"

    @property
    def issuer(self) -> str:
        return self.provider_origin + REALM

    def _keys(self) -> jwt.PyJWKClient:
        return jwt.PyJWKClient(f"{self.provider_origin}{OIDC}/certs", cache_keys=False)

    # -- § 2.6 -------------------------------------------------------------------------

    def validate_logout_token(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "logout+jwt":  # § 2.4: explicitly typed
            raise LogoutTokenRefused("typ is not logout+jwt")
        if header.get("alg") not in ALGORITHMS:  # rule 2: as an ID token (never none)
            raise LogoutTokenRefused("alg")
        key = self._keys().get_signing_key_from_jwt(token)
        # rule 2: signature, iss, aud (as an ID token, OpenID Connect Core § 3.1.3.7);
        # rule 3: iat (and exp), present and in range
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=self.client_id,
            issuer=self.issuer,
            options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]},
        )
        if time.time() - claims["iat"] > MAX_TOKEN_AGE:
            raise LogoutTokenRefused("iat is too old")
        if "sub" not in claims and "sid" not in claims:  # rule 4
            raise LogoutTokenRefused("neither sub nor sid")
        events = claims["events"]  # rule 5
        if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
            raise LogoutTokenRefused("events has no back-channel logout event")
        if "nonce" in claims:  # rule 6
            raise LogoutTokenRefused("a logout token has no nonce")
        with self.lock:  # rule 7: a jti seen before is a replay
            if claims["jti"] in self.seen_jti:
                raise LogoutTokenRefused("jti replayed")
            self.seen_jti.add(claims["jti"])
        return claims

    def backchannel_logout(self) -> Response:
        token = request.form.get("logout_token", "")
        try:
            claims = self.validate_logout_token(token)
        except (LogoutTokenRefused, jwt.PyJWTError) as error:
            with self.lock:
                self.refused.append(f"{type(error).__name__}: {error}")
            answer = jsonify({"error": "invalid_request", "error_description": str(error)})
            answer.status_code = 400
            answer.headers["Cache-Control"] = "no-store"
            return answer
        with self.lock:  # rules 8, 9: the sessions of this sid (and sub) end
            ended = [
                cookie
                for cookie, held in self.sessions.items()
                if held["sid"] == claims.get("sid") and held["sub"] == claims.get("sub")
            ]
            for cookie in ended:
                del self.sessions[cookie]
            self.received.append(claims)
        answer = Response(status=200)
        answer.headers["Cache-Control"] = "no-store"  # § 2.8
        return answer

    # -- its login ---------------------------------------------------------------------

    def login(self) -> WerkzeugResponse:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        with self.lock:
            self.pending[state] = {"nonce": nonce, "verifier": verifier}
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": f"{self.origin}/callback",
            "scope": "openid scope_all",
            "acr_values": "eidas1",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        return redirect(f"{self.provider_origin}{OIDC}/auth?{urlencode(query)}")

    def callback(self) -> WerkzeugResponse | tuple[str, int]:
        with self.lock:
            asked = self.pending.pop(request.args.get("state", ""), None)
        if asked is None or "code" not in request.args:
            return "unknown state", 400
        answer = requests.post(
            f"{self.provider_origin}{OIDC}/token",
            data={
                "grant_type": "authorization_code",
                "code": request.args["code"],
                "redirect_uri": f"{self.origin}/callback",
                "code_verifier": asked["verifier"],
            },
            auth=(self.client_id, self.secret),
            timeout=10,
        )
        answer.raise_for_status()
        id_token = answer.json()["id_token"]
        key = self._keys().get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token, key.key, algorithms=ALGORITHMS, audience=self.client_id, issuer=self.issuer
        )
        if claims.get("nonce") != asked["nonce"] or claims.get("acr") != "eidas1":
            return "nonce or acr", 400
        cookie = secrets.token_urlsafe(24)
        with self.lock:
            self.sessions[cookie] = {"sid": claims["sid"], "sub": claims["sub"]}
        response = redirect(f"{self.origin}/me")
        response.set_cookie(self.cookie, cookie, httponly=True, samesite="Lax")
        return response

    def held(self) -> dict[str, str] | None:
        with self.lock:
            return self.sessions.get(request.cookies.get(self.cookie, ""))

    def me(self) -> Response:
        held = self.held()
        state = "logged-in" if held else "logged-out"
        who = held["sub"] if held else ""
        watch = f"{self.provider_origin}{OIDC}/card-watch"
        page = (
            f'<!doctype html><html lang="en"><title>{self.client_id}</title>'
            f'<p id="state" data-state="{state}">{state} {who}</p>'
            f'<iframe id="card-watch" src="{watch}" title="card watch"></iframe></html>'
        )
        return Response(page, mimetype="text/html")

    def status(self) -> Response:
        held = self.held()
        return jsonify({"logged_in": held is not None, **(held or {})})

    def app(self) -> Flask:
        app = Flask(f"rp-{self.client_id}")
        app.add_url_rule("/login", "login", self.login)
        app.add_url_rule("/callback", "callback", self.callback)
        app.add_url_rule("/me", "me", self.me)
        app.add_url_rule("/status", "status", self.status)
        app.add_url_rule(
            "/backchannel-logout", "backchannel", self.backchannel_logout, methods=["POST"]
        )
        return app
