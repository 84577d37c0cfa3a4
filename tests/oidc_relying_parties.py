"""Relying parties written by others, unmodified, that log in through cardauth-oidc
as they would through Pro Santé Connect (tests/test_oidc_interop.py):

- pyoidc (``oic``, JOSE by pyjwkest), in a small Flask application of the test's
  own: discovery, PKCE S256, state and nonce, ``acr_values=eidas1``, the token
  request with ``client_secret_basic``, the ID token (ES256) and the signed
  userinfo (ES256) checked by pyoidc against the published keys, RP-initiated
  logout;
- mozilla-django-oidc (JOSE by PyJWT) in a Django project configured here
  (``python -m tests.oidc_relying_parties django ...``): its own views, PKCE,
  nonce, ``client_secret_post``, RS256, userinfo as JSON.

Each page a test reads shows what the library accepted, as JSON in ``#claims``.
"""

from __future__ import annotations

import html
import json
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, redirect, request, session
from werkzeug.wrappers import Response as WerkzeugResponse


def page(title: str, claims: dict[str, Any]) -> str:
    body = html.escape(json.dumps(claims, ensure_ascii=False, sort_keys=True))
    return f"<!doctype html><title>{title}</title><h1>{title}</h1><pre id='claims'>{body}</pre>"


def pyoidc_app(issuer: str, client_id: str, secret: str, base_url: str) -> Flask:
    """A relying party on pyoidc: every OpenID Connect step is the library's."""
    from oic import rndstr
    from oic.oic import Client
    from oic.oic.message import AuthorizationResponse, RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    app = Flask("pyoidc-rp")
    app.secret_key = secrets.token_bytes(32)
    app.config["SESSION_COOKIE_NAME"] = "pyoidc_rp"
    redirect_uri = f"{base_url}/callback"
    clients: dict[str, Any] = {}

    def client() -> Any:
        if "client" not in clients:
            made = Client(client_authn_method=CLIENT_AUTHN_METHOD)
            made.provider_config(issuer)
            made.store_registration_info(
                RegistrationResponse(
                    client_id=client_id,
                    client_secret=secret,
                    redirect_uris=[redirect_uri],
                    id_token_signed_response_alg="ES256",
                    userinfo_signed_response_alg="ES256",
                    token_endpoint_auth_method="client_secret_basic",
                )
            )
            clients["client"] = made
        return clients["client"]

    @app.get("/login")
    def login() -> WerkzeugResponse:
        rp = client()
        state, nonce = rndstr(32), rndstr(32)
        challenge, verifier = rp.add_code_challenge()
        session.update(state=state, nonce=nonce, verifier=verifier)
        arguments = {
            "client_id": client_id,
            "response_type": "code",
            "scope": ["openid", "scope_all"],
            "acr_values": ["eidas1"],
            "state": state,
            "nonce": nonce,
            "redirect_uri": redirect_uri,
            **challenge,
        }
        asked = rp.construct_AuthorizationRequest(request_args=arguments)
        return redirect(asked.request(rp.authorization_endpoint))

    @app.get("/callback")
    def callback() -> str:
        rp = client()
        answer = rp.parse_response(
            AuthorizationResponse, info=request.query_string.decode(), sformat="urlencoded"
        )
        if "error" in answer:
            return page("refused", answer.to_dict())
        if answer["state"] != session["state"]:
            return page("refused", {"error": "state"})
        tokens = rp.do_access_token_request(
            state=answer["state"],
            request_args={
                "code": answer["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": session["verifier"],
            },
            authn_method="client_secret_basic",
        )
        id_token = tokens["id_token"].to_dict()
        if id_token.get("nonce") != session["nonce"]:
            return page("refused", {"error": "nonce"})
        userinfo = rp.do_user_info_request(state=answer["state"]).to_dict()
        session["id_token"] = tokens["id_token"].jwt
        return page("logged in", {"id_token": id_token, "userinfo": userinfo})

    @app.get("/logout")
    def logout() -> WerkzeugResponse:
        rp = client()
        query = urlencode({
            "id_token_hint": session.pop("id_token", ""),
            "post_logout_redirect_uri": f"{base_url}/bye",
            "state": "bye-state",
        })  # fmt: skip
        return redirect(f"{rp.provider_info['end_session_endpoint']}?{query}")

    @app.get("/bye")
    def bye() -> Response:
        return Response(page("logged out", {"state": request.args.get("state")}))

    return app


# -- mozilla-django-oidc ---------------------------------------------------------------


def username(email: str | None, claims: dict[str, Any] | None = None) -> str:
    """The Django user's name: the IdNat (the library's own default hashes the email,
    which a PSC token does not carry)."""
    return str((claims or {}).get("preferred_username", "unknown"))


def django_settings(issuer: str, client_id: str, secret: str, folder: Path) -> dict[str, Any]:
    endpoint = f"{issuer}/protocol/openid-connect"
    return {
        "DEBUG": False,
        "SECRET_KEY": secrets.token_hex(32),
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
        "ROOT_URLCONF": "tests.oidc_relying_parties",
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "mozilla_django_oidc",
        ],
        "MIDDLEWARE": [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "AUTHENTICATION_BACKENDS": ["mozilla_django_oidc.auth.OIDCAuthenticationBackend"],
        "DATABASES": {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(folder / "rp.db")}
        },
        "SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies",
        "SESSION_COOKIE_NAME": "django_rp",
        "USE_TZ": True,
        "LOGIN_REDIRECT_URL": "/whoami",
        "LOGIN_REDIRECT_URL_FAILURE": "/failed",
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": secret,
        "OIDC_RP_SIGN_ALGO": "RS256",
        "OIDC_RP_SCOPES": "openid scope_all",
        "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{endpoint}/auth",
        "OIDC_OP_TOKEN_ENDPOINT": f"{endpoint}/token",
        "OIDC_OP_USER_ENDPOINT": f"{endpoint}/userinfo",
        "OIDC_OP_JWKS_ENDPOINT": f"{endpoint}/certs",
        "OIDC_USE_PKCE": True,
        "OIDC_AUTH_REQUEST_EXTRA_PARAMS": {"acr_values": "eidas1"},
        "OIDC_USERNAME_ALGO": "tests.oidc_relying_parties.username",
        "OIDC_STORE_ID_TOKEN": True,
    }


def whoami(request: Any) -> Any:
    from django.http import HttpResponse

    user = request.user
    if not user.is_authenticated:
        return HttpResponse(page("not logged in", {}))
    token = request.session.get("oidc_id_token", "")
    payload = token.split(".")[1] if token.count(".") == 2 else ""
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "==")) if payload else {}
    return HttpResponse(page("logged in", {"username": user.username, "id_token": claims}))


def failed(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(page("refused", {}))


def _urls() -> list[Any]:
    from django.urls import include, path

    return [
        path("oidc/", include("mozilla_django_oidc.urls")),
        path("whoami", whoami),
        path("failed", failed),
    ]


def serve_django(issuer: str, client_id: str, secret: str, folder: Path, port: int) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from waitress import serve

    settings.configure(**django_settings(issuer, client_id, secret, folder))
    django.setup()
    call_command("migrate", verbosity=0)
    print("django relying party ready", flush=True)
    serve(get_wsgi_application(), host="127.0.0.1", port=port, threads=4)


def __getattr__(name: str) -> Any:
    """Django reads ``urlpatterns`` of ROOT_URLCONF (this module) once set up."""
    if name == "urlpatterns":
        return _urls()
    raise AttributeError(name)


if __name__ == "__main__":
    _, kind, issuer_, client_id_, secret_, folder_, port_ = sys.argv
    assert kind == "django"
    serve_django(issuer_, client_id_, secret_, Path(folder_), int(port_))
