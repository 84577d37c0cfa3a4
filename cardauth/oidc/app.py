"""The provider as a Flask application: PSC's endpoints under the realm's path,
the card login page, and the Flask extension's card login under ``/cardauth``.

A login, from the relying party's redirect to its callback:

1. ``GET …/auth?client_id&redirect_uri&scope&state&nonce&code_challenge…``: Authlib
   validates the request (client, exact redirect URI, scope, PKCE, nonce, acr); a
   request that cannot be sent back (unknown client, redirect URI not registered) is
   refused on this page, any other refusal goes back to the relying party with
   ``error`` and ``state``.
2. Nobody logged in in this browser: the login page. Its script (``login.js``)
   asks the bridge for an assertion on a challenge of ``POST /cardauth/challenge``,
   posts it to ``/cardauth/login`` (the verifier: certificates, revocation, origin,
   single-use challenge), then loads the same ``…/auth`` address again.
3. Logged in: a code, and the browser goes back to the relying party.
4. ``POST …/token``: the client authenticates; the code is taken from the store
   (once), the PKCE verifier checked, tokens and the ID token issued.

Everything a login leaves behind is in the store (:mod:`cardauth.oidc.store`).
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import secrets
from collections.abc import Callable
from typing import Any

import limits
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Flask, Response, redirect, render_template, request, session
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth import web
from cardauth.flask import CardAuth, current_professional
from cardauth.messages import CORE, Catalog, Language, choose_language
from cardauth.oidc import claims
from cardauth.oidc.clients import Client, read_clients
from cardauth.oidc.endpoints import Introspection, Revocation, userinfo_answer
from cardauth.oidc.errors import (
    BadRequest,
    ConfigError,
    Internal,
    LogoutRefused,
    MethodNotAllowed,
    NotFound,
    NotJson,
    OidcError,
    RateLimited,
    RequestRefused,
    StoreUnavailable,
    TooLarge,
)
from cardauth.oidc.grants import (
    CardCodeGrant,
    CardOpenIDCode,
    Holder,
    PrivateKeyJwt,
    PscRequirements,
    RequiredS256,
    Services,
    TokenRecord,
    Tokens,
)
from cardauth.oidc.keys import ALGORITHMS, KeySet
from cardauth.oidc.logout import logout_request
from cardauth.oidc.sessions import StoreSessionInterface
from cardauth.oidc.settings import OIDC, REALM, ProviderSettings
from cardauth.oidc.store import OidcStore, store_from_setting
from cardauth.trust import utc_now
from cardauth.verify import Verifier

TEXTS = Catalog.load(importlib.resources.files("cardauth") / "texts" / "oidc.toml", parents=(CORE,))
REFUSALS = web.Refusals(
    bad_request=BadRequest,
    too_large=TooLarge,
    content_type=NotJson,
    not_found=NotFound,
    method_not_allowed=MethodNotAllowed,
    internal=Internal,
)
MAX_BODY = 64 * 1024
_SID = "oidc_sid"
_LOGGED_IN_AT = "cardauth_logged_in_at"  # cardauth.flask's, POSIX seconds
_LOGOUT_TOKEN = "oidc_logout_token"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
CLAIMS = sorted(
    {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp"}
    | set(claims.userinfo({"idnat": ""}))
)


def discovery(issuer: str) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 § 3, with PSC's (Keycloak's) addresses."""
    endpoint = issuer.removesuffix(REALM) + OIDC
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{endpoint}/auth",
        "token_endpoint": f"{endpoint}/token",
        "userinfo_endpoint": f"{endpoint}/userinfo",
        "jwks_uri": f"{endpoint}/certs",
        "end_session_endpoint": f"{endpoint}/logout",
        "introspection_endpoint": f"{endpoint}/token/introspect",
        "revocation_endpoint": f"{endpoint}/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "scope_all"],
        "acr_values_supported": [claims.ACR],
        "claims_supported": CLAIMS,
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "userinfo_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }


class _Server(AuthorizationServer):  # type: ignore[misc]
    services: Services


def create_app(
    settings: ProviderSettings,
    *,
    verifier: Verifier | None = None,
    store: OidcStore | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Flask:
    """The provider. ``verifier``, ``store`` and ``clock`` are for tests (made from
    the settings otherwise)."""
    origin = settings.checked_origin()
    issuer = settings.issuer
    clients = read_clients(settings.clients_file)
    keys = KeySet(settings.keys_file)
    store = store if store is not None else store_from_setting(settings.store)
    tokens = Tokens(store)
    services = Services(
        issuer=issuer,
        store=store,
        tokens=tokens,
        keys=keys,
        id_token_lifetime=settings.id_token_lifetime,
        access_token_lifetime=settings.access_token_lifetime,
        clock=clock,
    )
    secure = origin.value.startswith("https://")
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        CARDAUTH_ORIGINS=[origin.value],
        CARDAUTH_TRUST_DIR=str(settings.trust_dir),
        CARDAUTH_ALLOW_DEVELOPMENT_ORIGINS=settings.allow_development_origins,
        CARDAUTH_CHALLENGE_STORE=settings.store,
        CARDAUTH_SESSION_MAX_HOURS=settings.session_hours,
        OAUTH2_TOKEN_EXPIRES_IN={"authorization_code": settings.access_token_lifetime},
        OAUTH2_SCOPES_SUPPORTED=["openid", "scope_all"],
    )
    if settings.audit_log is not None:
        app.config["CARDAUTH_AUDIT_LOG"] = str(settings.audit_log)
        app.config["CARDAUTH_PSEUDONYM_KEY"] = secrets.token_bytes(32)  # no NIR at login
    app.session_interface = StoreSessionInterface(
        store, lifetime=settings.session_hours * 3600, secure=secure
    )
    CardAuth(app, verifier=verifier, clock=clock)

    def save_token(token: dict[str, Any], oauth_request: Any) -> None:
        code = oauth_request.authorization_code
        now = int(clock().timestamp())
        tokens.save(
            token["access_token"],
            TokenRecord(
                client_id=oauth_request.client.client_id,
                scope=token.get("scope", ""),
                professional=dict(code.professional),
                sid=code.sid,
                grant=code.grant,
                issued_at=now,
                expires_at=now + int(token.get("expires_in", settings.access_token_lifetime)),
            ),
        )

    server = _Server(app, query_client=clients.get, save_token=save_token)
    server.services = services
    server.register_grant(CardCodeGrant, [PscRequirements(), RequiredS256(), CardOpenIDCode()])
    server.register_client_auth_method(
        PrivateKeyJwt.CLIENT_AUTH_METHOD,
        PrivateKeyJwt([f"{issuer}/protocol/openid-connect/token", issuer], store),
    )
    server.register_endpoint(Introspection(server, services))
    server.register_endpoint(Revocation(server, services))
    limiter = _Limits(settings, store)
    page_policy = _content_security_policy(settings.bridge_url)

    def language() -> Language:
        asked = request.args.get("ui_locales", "").split()  # OpenID Connect Core § 3.1.2.1
        return choose_language(asked[0]) if asked else web.language_of(request)

    def answer(error: OidcError | Any, status: int) -> Response:
        message = TEXTS.describe(error, language())
        return web.json_answer(web.error_body(error, message), status)

    web.install_refusals(app, REFUSALS, answer, request)

    @app.errorhandler(StoreUnavailable)
    def store_down(error: StoreUnavailable) -> Response:
        return answer(error, 503)

    @app.before_request
    def limit() -> Response | None:
        refusal = limiter.check(request.endpoint)
        if refusal is None:
            return None
        response = answer(refusal, 429)
        response.headers["Retry-After"] = "60"
        return response

    @app.after_request
    def headers(response: Response) -> Response:
        web.secure(response, policy=page_policy)
        response.headers["Referrer-Policy"] = "no-referrer"  # codes never go elsewhere
        return response

    def page(template: str, status: int = 200, **values: Any) -> Response:
        lang = language()
        text = render_template(
            f"{template}.html",
            lang=lang,
            bridge_url=settings.bridge_url,
            t=lambda key, **texts: TEXTS.label(key, lang, **texts),
            **values,
        )
        return Response(text, status=status, mimetype="text/html")

    def refused_page(error: OidcError) -> Response:
        return page("refused", status=web.http_status(error), error=error,
                    message=TEXTS.describe(error, language()))  # fmt: skip

    # -- discovery and keys -------------------------------------------------------

    def configuration() -> Response:
        return web.json_answer(discovery(issuer))

    for prefix in ("", REALM):
        for name in ("openid-configuration", "wallet-openid-configuration"):
            app.add_url_rule(
                f"{prefix}/.well-known/{name}", f"discovery{prefix}{name}", configuration
            )

    @app.get(f"{OIDC}/certs")
    def certs() -> Response:
        response = web.json_answer(keys.jwks(clock()))
        response.headers["Cache-Control"] = "max-age=300"  # new keys are published ahead
        return response

    # -- authorization ------------------------------------------------------------------

    def holder() -> Holder | None:
        professional = current_professional()
        if professional is None:
            return None
        max_age = request.args.get("max_age")
        logged_in_at = float(session[_LOGGED_IN_AT])
        if max_age is not None and max_age.isdigit():
            if clock().timestamp() - logged_in_at > int(max_age):
                return None  # OpenID Connect Core § 3.1.2.1: log in again
        if _SID not in session:
            session[_SID] = secrets.token_urlsafe(16)
        return Holder(professional, str(session[_SID]), int(logged_in_at))

    def refuse_authorization(error: OAuth2Error) -> Response | WerkzeugResponse:
        """Back to the relying party when the client and its redirect URI are known
        (RFC 6749 § 4.1.2.1), with ``state``; on this page otherwise."""
        if error.redirect_uri is None:
            error.redirect_uri = _registered_redirect(clients)
        if error.redirect_uri is not None:
            error.state = request.args.get("state")
            response: Response = server.handle_error_response(request, error)
            return response
        return refused_page(RequestRefused(str(error.description), error=error.error))

    @app.get(f"{OIDC}/auth")
    def authorize() -> Response | WerkzeugResponse:
        user = holder()
        try:
            grant = server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return refuse_authorization(error)
        if user is None:
            client: Client = grant.request.client
            return page("login", client=client.client_id)
        response: Response = server.create_authorization_response(grant=grant, grant_user=user)
        return response

    # -- tokens -----------------------------------------------------------------------

    @app.post(f"{OIDC}/token")
    def token() -> Response:
        response: Response = server.create_token_response()
        return response

    @app.post(f"{OIDC}/token/introspect")
    def introspect() -> Response:
        response: Response = server.create_endpoint_response(Introspection.ENDPOINT_NAME)
        return response

    @app.post(f"{OIDC}/revoke")
    def revoke() -> Response:
        response: Response = server.create_endpoint_response(Revocation.ENDPOINT_NAME)
        return response

    @app.route(f"{OIDC}/userinfo", methods=["GET", "POST"])
    def userinfo() -> Response:
        record = tokens.find(_bearer())
        if record is None or record.is_expired() or record.is_revoked():
            response = web.json_answer(
                {"error": "invalid_token", "error_description": "unknown or expired token"},
                401,
            )
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        body, media_type = userinfo_answer(record, clients.get(record.client_id), services)
        if isinstance(body, dict):
            return web.json_answer(body)
        return Response(body, mimetype=media_type)

    # -- logout -----------------------------------------------------------------------

    @app.route(f"{OIDC}/logout", methods=["GET", "POST"])
    def logout() -> Response | WerkzeugResponse:
        params = request.values.to_dict()
        try:
            asked = logout_request(
                params, keys=keys, issuer=issuer, clients=clients, now=clock()
            )
        except LogoutRefused as error:
            return refused_page(error)
        confirmed = request.method == "POST" and secrets.compare_digest(
            str(session.get(_LOGOUT_TOKEN, "")), str(params.get("confirm", "-"))
        )
        if not asked.hinted and not confirmed:
            session[_LOGOUT_TOKEN] = secrets.token_urlsafe(32)
            return page("logout", token=session[_LOGOUT_TOKEN], params=params)
        session.clear()  # this browser's session, everywhere: the store holds it
        target = asked.redirect()
        if target is not None and asked.hinted:
            return redirect(target, 302)
        # after the confirmation form: a link (CSP form-action keeps a form's redirects home)
        return page("logged_out", target=target)

    app.extensions["cardauth_oidc"] = server
    return app


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return request.form.get("access_token", "")
    return ""


def _registered_redirect(clients: dict[str, Client]) -> str | None:
    client = clients.get(request.args.get("client_id", ""))
    uri = request.args.get("redirect_uri")
    if client is None or uri is None or len(request.args.getlist("redirect_uri")) != 1:
        return None
    return uri if client.check_redirect_uri(uri) else None


class _Limits:
    """Per address: the card login's challenges and logins (open to anyone); the
    calls of relying parties. Counted where every process counts (the store's
    Redis), by ``limits``' fixed windows."""

    def __init__(self, settings: ProviderSettings, store: OidcStore) -> None:
        uri = "memory://" if settings.store == "memory" else settings.store
        self._limiter = FixedWindowRateLimiter(storage_from_string(uri))
        try:
            self._login = limits.parse_many(settings.login_limit)
            self._calls = limits.parse_many(settings.token_limit)
        except ValueError:
            raise ConfigError("a limit is written like 30/minute") from None

    def check(self, endpoint: str | None) -> RateLimited | None:
        if endpoint in ("cardauth.challenge", "cardauth.login"):
            chosen, name = self._login, "login"
        elif endpoint in ("token", "userinfo", "introspect", "revoke"):
            chosen, name = self._calls, "calls"
        else:
            return None
        address = request.remote_addr or "?"
        try:
            for item in chosen:
                if not self._limiter.hit(item, "cardauth-oidc", name, address):
                    return RateLimited(f"limit reached ({item})")
        except Exception as exc:  # the storage's own errors: refused, not let through
            raise StoreUnavailable("the rate limits' store is unavailable") from exc
        return None


def _content_security_policy(bridge_url: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src 'self' {bridge_url.rstrip('/')}",  # cardauth.js: the bridge
            "form-action 'self'",  # the logout confirmation
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )
