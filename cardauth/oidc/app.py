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
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import limits
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from flask import Flask, Response, redirect, render_template, request, session
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth import web
from cardauth.audit import AuditLog
from cardauth.errors import CardAuthError
from cardauth.flask import CardAuth, current_professional, login_time
from cardauth.messages import CORE, Catalog, Language, choose_language
from cardauth.oidc import claims
from cardauth.oidc.backchannel import Deliveries, Outcome, SessionClients, deliveries_for
from cardauth.oidc.ciba import CibaGrant
from cardauth.oidc.ciba_endpoints import CibaEndpoints
from cardauth.oidc.clients import CIBA_GRANT, Client, read_clients
from cardauth.oidc.endpoints import Introspection, Revocation, userinfo_answer
from cardauth.oidc.errors import (
    BadRequest,
    CardWatchRefused,
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
from cardauth.oidc.sessions import StoreSessionInterface, require_store
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
_WATCH = "oidc_watch"  # the card watch page's token, for its report of a card removal
_LOG = logging.getLogger("cardauth.oidc")
_BRIDGE_LOGIN = ("ciba_bridge_challenge", "ciba_bridge_enrol")  # card logins too
_CIBA_CALLS = ("ciba_auth", "ciba_bridge_pending", "ciba_bridge_answer")
_LOGOUT_CONFIRMATION = "oidc_logout_confirmation"
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
        "backchannel_authentication_endpoint": f"{endpoint}/ext/ciba/auth",  # CIBA § 4
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", CIBA_GRANT],
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
        "backchannel_logout_supported": True,  # Back-Channel Logout 1.0 § 2.1
        "backchannel_logout_session_supported": True,  # every logout token has sid
    }


class _Server(AuthorizationServer):
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
    store = store if store is not None else store_from_setting(settings.store)
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        CARDAUTH_ORIGINS=[origin.value],
        CARDAUTH_TRUST_DIR=str(settings.trust_dir),
        CARDAUTH_ALLOW_DEVELOPMENT_ORIGINS=settings.allow_development_origins,
        CARDAUTH_CHALLENGE_STORE=settings.store,
        CARDAUTH_SESSION_MAX_HOURS=settings.session_hours,
        OAUTH2_TOKEN_EXPIRES_IN={
            "authorization_code": settings.access_token_lifetime,
            CIBA_GRANT: settings.access_token_lifetime,
        },
        OAUTH2_SCOPES_SUPPORTED=["openid", "scope_all"],
    )
    if settings.audit_log is not None:
        app.config["CARDAUTH_AUDIT_LOG"] = str(settings.audit_log)
        app.config["CARDAUTH_PSEUDONYM_KEY"] = secrets.token_bytes(32)  # no NIR at login
    app.session_interface = StoreSessionInterface(
        store,
        lifetime=settings.session_hours * 3600,
        secure=origin.value.startswith("https://"),
        refuse=lambda error: web.secure(provider.answer(error, 503)),  # a session not kept
    )
    cardauth = CardAuth(app, verifier=verifier, clock=clock)  # /cardauth/challenge, /login...
    provider = Provider(app, settings, store, clock, audit=cardauth.audit)
    provider.register(app)
    app.extensions["cardauth_oidc"] = provider
    return app


class Provider:
    """The endpoints, on Authlib's server and the shared store."""

    def __init__(
        self,
        app: Flask,
        settings: ProviderSettings,
        store: OidcStore,
        clock: Callable[[], dt.datetime],
        *,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.issuer = settings.issuer
        self.clients = read_clients(settings.clients_file)
        self.keys = KeySet(settings.keys_file)
        self.tokens = Tokens(store)
        self.clock = clock
        self.services = Services(
            issuer=self.issuer,
            store=store,
            tokens=self.tokens,
            keys=self.keys,
            id_token_lifetime=settings.id_token_lifetime,
            access_token_lifetime=settings.access_token_lifetime,
            clock=clock,
            code_lifetime=settings.code_lifetime,
        )
        server = _Server(app, query_client=self.clients.get, save_token=self.save_token)
        server.services = self.services
        server.register_grant(CardCodeGrant, [PscRequirements(), RequiredS256(), CardOpenIDCode()])
        server.register_grant(CibaGrant, [CardOpenIDCode()])
        server.register_client_auth_method(
            PrivateKeyJwt.CLIENT_AUTH_METHOD,
            PrivateKeyJwt([f"{self.issuer}/protocol/openid-connect/token", self.issuer], store),
        )
        server.register_endpoint(Introspection(server, self.services))
        server.register_endpoint(Revocation(server, self.services))
        self.server = server
        self.limits = _Limits(settings, store)
        # forms: the logout confirmation posts to the provider
        self.page_policy = web.bridge_client_policy(settings.bridge_url, forms=True)
        self.watch_policy = web.bridge_client_policy(
            settings.bridge_url, forms=True, framed_by=_client_origins(self.clients)
        )
        self.session_clients = SessionClients(store, settings.session_hours * 3600)
        self.deliveries = Deliveries(self.report)
        self.ciba = CibaEndpoints(server, self.clients, settings, store, REFUSALS)

    def register(self, app: Flask) -> None:
        web.install_refusals(app, REFUSALS, self.answer, request)
        app.register_error_handler(StoreUnavailable, lambda error: self.answer(error, 503))
        app.before_request(require_store)
        app.before_request(self.limit)
        app.after_request(self.headers)
        for prefix in ("", REALM):  # PSC's discovery, at the root and under the realm
            for name in ("openid-configuration", "wallet-openid-configuration"):
                app.add_url_rule(
                    f"{prefix}/.well-known/{name}", f"discovery{prefix}{name}", self.configuration
                )
        app.add_url_rule(f"{OIDC}/certs", "certs", self.certs)
        app.add_url_rule(f"{OIDC}/auth", "authorize", self.authorize)
        app.add_url_rule(f"{OIDC}/token", "token", self.token, methods=["POST"])
        app.add_url_rule(
            f"{OIDC}/token/introspect", "introspect", self.introspect, methods=["POST"]
        )
        app.add_url_rule(f"{OIDC}/revoke", "revoke", self.revoke, methods=["POST"])
        app.add_url_rule(f"{OIDC}/userinfo", "userinfo", self.userinfo, methods=["GET", "POST"])
        app.add_url_rule(f"{OIDC}/logout", "logout", self.logout, methods=["GET", "POST"])
        app.add_url_rule(f"{OIDC}/card-watch", "card_watch", self.card_watch)
        app.add_url_rule(
            f"{OIDC}/card-removed", "card_removed", self.card_removed, methods=["POST"]
        )
        self.ciba.register(app)

    # -- answers ----------------------------------------------------------------------

    def language(self) -> Language:
        asked = request.args.get("ui_locales", "").split()  # OpenID Connect Core § 3.1.2.1
        return choose_language(asked[0]) if asked else web.language_of(request)

    def answer(self, error: CardAuthError, status: int) -> Response:
        message = TEXTS.describe(error, self.language())
        return web.json_answer(web.error_body(error, message), status)

    def limit(self) -> Response | None:
        refusal = self.limits.check(request.endpoint)
        if refusal is None:
            return None
        response = self.answer(refusal, 429)
        response.headers["Retry-After"] = "60"
        return response

    def headers(self, response: Response) -> Response:
        # the card watch is framed by the relying parties' pages; nothing else is
        watched = request.endpoint == "card_watch"
        web.secure(response, policy=self.watch_policy if watched else self.page_policy)
        if watched:  # frame-ancestors says who may frame it (X-Frame-Options cannot)
            del response.headers["X-Frame-Options"]
        response.headers["Referrer-Policy"] = "no-referrer"  # codes never go elsewhere
        return response

    def page(self, template: str, status: int = 200, **values: Any) -> Response:
        lang = self.language()
        text = render_template(
            f"{template}.html",
            lang=lang,
            bridge_url=self.settings.bridge_url,
            t=lambda key, **texts: TEXTS.label(key, lang, **texts),
            **values,
        )
        return Response(text, status=status, mimetype="text/html")

    def refused_page(self, error: OidcError) -> Response:
        message = TEXTS.describe(error, self.language())
        return self.page("refused", status=web.http_status(error), error=error, message=message)

    # -- discovery and keys ------------------------------------------------------------

    def configuration(self) -> Response:
        return web.json_answer(discovery(self.issuer))

    def certs(self) -> Response:
        response = web.json_answer(self.keys.jwks(self.clock()))
        response.headers["Cache-Control"] = "max-age=300"  # new keys are published ahead
        return response

    # -- authorization -----------------------------------------------------------------

    def holder(self) -> Holder | None:
        """Who is logged in by card in this browser, if recently enough (``max_age``)."""
        professional, logged_in_at = current_professional(), login_time()
        if professional is None or logged_in_at is None:
            return None
        max_age = request.args.get("max_age", "")
        asked = max_age.isascii() and max_age.isdigit() and len(max_age) <= 9  # seconds
        too_old = asked and self.clock().timestamp() - logged_in_at > int(max_age)
        if too_old:
            return None  # OpenID Connect Core § 3.1.2.1: log in again
        if _SID not in session:
            session[_SID] = secrets.token_urlsafe(16)
        return Holder(professional, str(session[_SID]), int(logged_in_at))

    def refuse_authorization(self, error: OAuth2Error) -> Response | WerkzeugResponse:
        """Back to the relying party when the client and its redirect URI are known
        (RFC 6749 § 4.1.2.1), with ``state``; on this page otherwise."""
        if error.redirect_uri is None:
            error.redirect_uri = _registered_redirect(self.clients)
        if error.redirect_uri is not None:
            error.state = request.args.get("state")
            response: Response = self.server.handle_error_response(request, error)
            return response
        return self.refused_page(RequestRefused(str(error.description), error=error.error))

    def authorize(self) -> Response | WerkzeugResponse:
        user = self.holder()
        if "login" in request.args.get("prompt", "").split():
            # OpenID Connect Core § 3.1.2.1: the card again, even with a session (the
            # login page then asks for the request without prompt=login: login.js)
            user = None
        try:
            grant = self.server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return self.refuse_authorization(error)
        except ValueError:  # Authlib's, for a value it cannot quote in its error (a NUL...)
            return self.refuse_authorization(InvalidRequestError("malformed request"))
        if user is None:
            client: Client = grant.request.client
            return self.page("login", client=client.client_id)
        response: Response = self.server.create_authorization_response(grant=grant, grant_user=user)
        return response

    # -- tokens ------------------------------------------------------------------------

    def save_token(self, token: dict[str, Any], oauth_request: Any) -> None:
        code = oauth_request.authorization_code
        now = int(self.clock().timestamp())
        lifetime = int(token.get("expires_in", self.settings.access_token_lifetime))
        record = TokenRecord(
            client_id=oauth_request.client.client_id,
            scope=token.get("scope", ""),
            professional=dict(code.professional),
            sid=code.sid,
            grant=code.grant,
            issued_at=now,
            expires_at=now + lifetime,
        )
        self.tokens.save(token["access_token"], record)
        # this relying party now holds a session from the provider's session
        self.session_clients.record(
            code.sid,
            record.client_id,
            claims.subject(code.professional),
            ends_at=code.auth_time + self.settings.session_hours * 3600,
        )

    def token(self) -> Response:
        response: Response = self.server.create_token_response()
        return response

    def introspect(self) -> Response:
        response: Response = self.server.create_endpoint_response(Introspection.ENDPOINT_NAME)
        return response

    def revoke(self) -> Response:
        response: Response = self.server.create_endpoint_response(Revocation.ENDPOINT_NAME)
        return response

    def userinfo(self) -> Response:
        record = self.tokens.find(_bearer())
        if record is None or record.is_expired() or record.is_revoked():
            response = web.json_answer(
                {"error": "invalid_token", "error_description": "unknown or expired token"},
                401,
            )
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        client = self.clients.get(record.client_id)
        body, media_type = userinfo_answer(record, client, self.services)
        if isinstance(body, dict):
            return web.json_answer(body)
        return Response(body, mimetype=media_type)

    # -- logout ------------------------------------------------------------------------

    def logout(self) -> Response | WerkzeugResponse:
        params = request.values.to_dict()
        try:
            asked = logout_request(
                params, keys=self.keys, issuer=self.issuer, clients=self.clients, now=self.clock()
            )
        except LogoutRefused as error:
            return self.refused_page(error)
        confirmed = request.method == "POST" and secrets.compare_digest(
            str(session.get(_LOGOUT_CONFIRMATION, "")), str(params.get("confirm", "-"))
        )
        if not asked.hinted and not confirmed:
            session[_LOGOUT_CONFIRMATION] = secrets.token_urlsafe(32)
            return self.page("logout", token=session[_LOGOUT_CONFIRMATION], params=params)
        ended = {str(session[_SID])} if _SID in session else set()
        if asked.sid is not None:  # the session the hint names, if the browser's is gone
            ended.add(asked.sid)
        session.clear()  # this browser's session, everywhere: the store holds it
        for sid in sorted(ended):
            self.end_session(sid)
        target = asked.redirect()
        if target is not None and asked.hinted:
            return redirect(target, 302)
        # after the confirmation form: a link (CSP form-action keeps a form's redirects home)
        return self.page("logged_out", target=target)

    # -- back-channel logout -------------------------------------------------------------

    def end_session(self, sid: str) -> None:
        """Every relying party of the provider session ``sid`` gets a logout token
        (in the background: this returns at once)."""
        pairs = self.session_clients.take(sid)
        self.deliveries.send(
            deliveries_for(
                pairs,
                sid=sid,
                clients=self.clients,
                issuer=self.issuer,
                keys=self.keys,
                now=self.clock(),
            )
        )

    def end_expired_sessions(self) -> int:
        """The provider sessions whose time is up (``session_hours`` after the card
        login) end: their relying parties are told. How many ended."""
        due = self.session_clients.due(self.clock().timestamp())
        for sid in due:
            self.end_session(sid)
        return len(due)

    def report(self, outcome: Outcome) -> None:
        delivery = outcome.delivery
        _LOG.info(
            "back-channel logout to %s: %s after %d attempt(s) (%s)",
            delivery.client_id,
            outcome.result,
            outcome.attempts,
            outcome.reason or outcome.status,
        )
        if self.audit is not None:
            self.audit.backchannel_logout(
                delivery.sub,
                client_id=delivery.client_id,
                outcome=outcome.result,
                attempts=outcome.attempts,
                status=outcome.status,
            )

    def card_watch(self) -> Response:
        """The page a relying party frames: it watches the bridge's card events for
        this browser's provider session (watch.js)."""
        token = None
        if _SID in session and current_professional() is not None:
            if _WATCH not in session:
                session[_WATCH] = secrets.token_urlsafe(32)
            token = session[_WATCH]
        return self.page("watch", token=token, report=f"{OIDC}/card-removed")

    def card_removed(self) -> Response:
        """The CPS card left the reader (the bridge told the card watch page): the
        provider session ends, and its relying parties are told. Bound to the
        session (its cookie, and its watch token in a JSON body: a form of another
        site cannot send it) and to this origin."""
        given = web.json_object(request, REFUSALS, allowed=("token",)).get("token")
        expected = session.get(_WATCH)
        if request.headers.get("Origin") != self.settings.checked_origin().value:
            raise CardWatchRefused("the report comes from another origin")
        if not isinstance(given, str) or not isinstance(expected, str) or _SID not in session:
            raise CardWatchRefused("no card watch in this session")
        if not secrets.compare_digest(given.encode(), expected.encode()):
            raise CardWatchRefused("not this session's card watch")
        sid, professional = str(session[_SID]), current_professional()
        session.clear()
        if professional is not None and self.audit is not None:
            self.audit.logout(professional["idnat"])
        self.end_session(sid)
        return web.json_answer({"logged_out": True})


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
        if settings.store == "memory":
            storage = storage_from_string("memory://")
        else:  # redis:// or redis+sentinel://: the same setting as the store's
            storage = storage_from_string(
                settings.store, socket_timeout=2.0, socket_connect_timeout=2.0
            )
        self._limiter = FixedWindowRateLimiter(storage)
        try:
            self._login = limits.parse_many(settings.login_limit)
            self._calls = limits.parse_many(settings.calls_limit)
        except ValueError:
            raise ConfigError("a limit is written like 30/minute") from None

    def check(self, endpoint: str | None) -> RateLimited | None:
        if endpoint in ("cardauth.challenge", "cardauth.login", *_BRIDGE_LOGIN):
            chosen, name = self._login, "login"
        elif endpoint in ("token", "userinfo", "introspect", "revoke", *_CIBA_CALLS):
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


def _client_origins(clients: dict[str, Client]) -> list[str]:
    """The origins of the relying parties' redirect URIs: who may frame the card watch."""
    origins = set()
    for client in clients.values():
        for uri in client.redirect_uris:
            parts = urlsplit(uri)
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)
