"""The bridge's HTTP API (``/v1``, described by ``webbridge/openapi.yaml``) and its
own pages (the consent and PIN page, the list of trusted sites).

A login from a page of an approved site whose PIN state is fresh is one call,
``POST /v1/authenticate``. Otherwise the page opens the bridge's page in a window
of its own by a form POST to ``/interaction`` (the browser sets the Origin
header); the professional approves the site and types the PIN there, and the
page collects the assertion from ``GET /v1/interactions/{request_id}``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_limiter import Limiter, RateLimitExceeded
from markupsafe import escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth import __version__, challenges
from cardauth.cards.session import Keypad
from cardauth.errors import (
    CardAuthError,
    CardError,
    CardNotPresent,
    CardRemoved,
    InvalidOrigin,
    PinBlocked,
    PinError,
    PinRequired,
    TransportError,
    UnknownCard,
    WrongPin,
)
from cardauth.messages import Language, choose_language
from cardauth.origins import Origin
from cardauth.trust import utc_now
from webbridge import messages
from webbridge.cards import CardService
from webbridge.config import LOOPBACK, BridgeConfig
from webbridge.consent import ConsentStore
from webbridge.errors import (
    BadRequest,
    BodyTooLarge,
    BridgeError,
    Busy,
    Cancelled,
    HostForbidden,
    InteractionDeclined,
    Internal,
    MethodNotAllowed,
    NotFound,
    OriginForbidden,
    RateLimited,
)
from webbridge.guards import MAX_BODY, Guard, cors_headers, preflight_headers
from webbridge.interactions import Interaction, Interactions, State

SERVICE = "cardauth-bridge"
API_VERSION = 1
MAX_WAIT_SECONDS = 25.0
EVENT_STREAM_SECONDS = 600.0
KEEPALIVE_SECONDS = 15.0
RECONNECT_MILLISECONDS = 2000
MAX_EVENT_STREAMS = 8
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Bridge:
    """What the views share: settings, cards, approvals, waiting logins, checks."""

    config: BridgeConfig
    cards: CardService
    consents: ConsentStore
    interactions: Interactions
    guard: Guard
    clock: Callable[[], dt.datetime]
    streams: threading.BoundedSemaphore
    form_token: str  # of the trusted-sites form: no other page can read it


def create_app(
    *,
    config: BridgeConfig,
    cards: CardService,
    consents: ConsentStore,
    clock: Callable[[], dt.datetime] = utc_now,
    host: str = LOOPBACK,
) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    guard = Guard(
        host=host,
        port=config.port,
        configured=config.allowed_origins,
        consents=consents,
        allow_development=config.allow_development_origins,
        clock=clock,
    )
    bridge = Bridge(
        config,
        cards,
        consents,
        Interactions(),
        guard,
        clock,
        threading.BoundedSemaphore(MAX_EVENT_STREAMS),
        secrets.token_urlsafe(24),
    )
    app.extensions["cardauth-bridge"] = bridge
    limiter = Limiter(
        key_func=lambda: request.headers.get("Origin", "-"),
        app=app,
        storage_uri="memory://",
        default_limits=[],
    )
    per_origin = limiter.limit(f"{config.authentications_per_minute}/minute")
    app.register_blueprint(_api(bridge, per_origin))
    app.register_blueprint(_pages(bridge, per_origin))

    @app.before_request
    def check_host() -> None:
        guard.check_host(request)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.path.startswith("/v1/"):
            response.vary.add("Origin")
            origin = g.get("cors_origin")
            if origin is not None:
                response.headers.update(cors_headers(origin))
        return response

    @app.errorhandler(CardAuthError)
    def refused(error: CardAuthError) -> Response:
        return _error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if isinstance(error, RateLimitExceeded):
            response = _error_response(RateLimited("too many authentication requests"))
            response.headers["Retry-After"] = "60"
            return response
        if isinstance(error, RequestEntityTooLarge):
            return _error_response(BodyTooLarge("the body is too large"))
        if isinstance(error, RouteNotFound):
            return _error_response(NotFound(request.path[:200]))
        if isinstance(error, RouteMethodNotAllowed):
            response = _error_response(MethodNotAllowed(request.method))
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
            return response
        if (error.code or 500) >= 500:
            return _error_response(Internal(error.name), status=error.code or 500)
        return _error_response(BadRequest(error.name), status=error.code or 400)

    return app


# -- the API ----------------------------------------------------------------------


def _api(bridge: Bridge, per_origin: Callable[[Any], Any]) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/v1")
    guard = bridge.guard

    @api.before_request
    def approved_origins_only() -> Response | None:
        """Every API call comes from an approved origin; CORS names it."""
        origin = guard.origin_of(request)
        if not (guard.is_approved(origin) or _asks_for_own_interaction(bridge, origin)):
            raise OriginForbidden("this site is not approved", origin=origin.value)
        g.cors_origin = origin
        if request.method == "OPTIONS":
            response = Response(status=204)
            response.headers.update(preflight_headers(origin, request))
            return response
        if request.method == "POST":
            guard.check_json(request)
        return None

    @api.get("/status")
    def status() -> Response:
        return _json(
            {
                "service": SERVICE,
                "version": __version__,
                "api": API_VERSION,
                "readers": bridge.cards.readers(),
                "pin_fresh": bridge.cards.pin_is_fresh(),
            }
        )

    @api.get("/cards")
    def cards() -> Response:
        return _json({"cards": [view.to_dict() for view in bridge.cards.views()]})

    @api.post("/authenticate")
    @per_origin
    def authenticate() -> Response:
        body = _json_body({"challenge", "vitale"})
        challenge = challenges.check_format(body.get("challenge"))
        with_vitale = body.get("vitale", False)
        if not isinstance(with_vitale, bool):
            raise BadRequest("vitale is true or false")
        origin: Origin = g.cors_origin
        try:
            assertion = bridge.cards.authenticate(
                origin=origin, challenge=challenge, with_vitale=with_vitale
            )
        except PinRequired:
            return _json(
                {"status": "interaction_required", "url": _own_url("pages.start_interaction")}
            )
        return _json({"status": "ok", "assertion": assertion})

    @api.get("/interactions/<request_id>")
    def interaction(request_id: str) -> Response:
        found = bridge.interactions.for_request(request_id, g.cors_origin)
        wait = _wait_seconds(request.args.get("wait"))
        found.finished.wait(wait)
        if found.state is not State.PENDING:
            bridge.interactions.collect(found)
        return _json(found.outcome())

    @api.delete("/interactions/<request_id>")
    def cancel_interaction(request_id: str) -> Response:
        """The asking page gives up (its window was closed, say): the login stops
        waiting, and the bridge's page says so if it is still open."""
        found = bridge.interactions.for_request(request_id, g.cors_origin)
        if found.state is State.PENDING:
            found.finish(State.FAILED, error=Cancelled("the page gave the login up"))
        bridge.interactions.collect(found)
        return _json(found.outcome())

    @api.get("/events")
    def events() -> Response:
        if not bridge.streams.acquire(blocking=False):
            raise Busy("too many event streams")
        response = Response(
            stream_with_context(_event_stream(bridge)),
            mimetype="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )
        # Released when the server closes the response, whether the stream ran
        # (the page went away, or 10 minutes passed) or never started (HEAD).
        response.call_on_close(bridge.streams.release)
        return response

    return api


def _asks_for_own_interaction(bridge: Bridge, origin: Origin) -> bool:
    """A site that is not approved may still collect the outcome of a login it
    asked for (approved once, on the bridge's page, without being remembered)."""
    view_args = request.view_args or {}
    if request.endpoint not in ("api.interaction", "api.cancel_interaction"):
        return False
    if "request_id" not in view_args:
        return False
    try:
        bridge.interactions.for_request(view_args["request_id"], origin)
    except BridgeError:
        return False
    return True


def _event_stream(bridge: Bridge) -> Iterator[str]:
    """Card events as Server-Sent Events: first a ``present`` event per card in
    the readers, then ``ready``, then insertions and removals as they come; a
    comment every 15 s keeps the connection alive; the stream ends after 10
    minutes (EventSource reconnects by itself, after ``retry`` milliseconds, and
    gets the present cards again: their ``card`` identifiers tell a swap)."""
    with bridge.cards.subscribe() as listener:
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
        number = 0
        for event in bridge.cards.present():
            number += 1
            yield _sse("card", event.to_dict(), number)
        number += 1
        yield _sse("ready", {}, number)
        deadline = time.monotonic() + EVENT_STREAM_SECONDS
        while time.monotonic() < deadline:
            try:
                item = listener.get(timeout=KEEPALIVE_SECONDS)
            except queue.Empty:  # nothing happened for a while
                yield ": keep-alive\n\n"
                continue
            if item is None:
                return
            number += 1
            yield _sse("card", item.to_dict(), number)


def _sse(name: str, data: dict[str, str], number: int) -> str:
    body = json.dumps(data, separators=(",", ":"))
    return f"id: {number}\nevent: {name}\ndata: {body}\n\n"


# -- the bridge's own pages -----------------------------------------------------------


def _pages(bridge: Bridge, per_origin: Callable[[Any], Any]) -> Blueprint:
    pages = Blueprint("pages", __name__)
    guard = bridge.guard

    @pages.after_request
    def page_policy(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        # Not no-referrer: under it a browser sends "Origin: null" on the page's own
        # form, which the bridge could not tell from a foreign one.
        response.headers["Referrer-Policy"] = "same-origin"
        # The site's page that opened this window keeps no handle on it (it could
        # not send it elsewhere while the professional types the PIN).
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return response

    @pages.post("/interaction")
    @per_origin
    def start_interaction() -> WerkzeugResponse:
        """A site's page opens a login on the bridge's page (a form POST from its
        window: the Origin header is the browser's)."""
        origin = guard.origin_of(request)
        form = request.form
        request_id = form.get("request_id", "")
        try:
            vitale = form.get("vitale", "false")
            if vitale not in ("true", "false"):
                raise BadRequest("vitale is true or false")
            interaction = bridge.interactions.create(
                origin=origin,
                challenge=challenges.check_format(form.get("challenge")),
                with_vitale=vitale == "true",
                request_id=request_id,
            )
        except CardAuthError as error:  # the asking page learns it too, by its request id
            bridge.interactions.record_failure(origin=origin, request_id=request_id, error=error)
            raise
        return redirect(url_for("pages.interaction_page", interaction_id=interaction.id), 303)

    @pages.get("/interaction/<interaction_id>")
    def interaction_page(interaction_id: str) -> str:
        return _render_interaction(bridge, bridge.interactions.get(interaction_id))

    @pages.post("/interaction/<interaction_id>")
    def answer_interaction(interaction_id: str) -> str:
        guard.check_own_form(request)
        interaction = bridge.interactions.get(interaction_id)
        if not _same_token(request.form.get("token"), interaction.token):
            raise OriginForbidden("this form is not the bridge's")
        if interaction.state is not State.PENDING:
            return _render_outcome(interaction)
        if request.form.get("action") != "allow":
            interaction.finish(State.DECLINED, error=InteractionDeclined("refused on the page"))
            return _render_outcome(interaction)
        return _allow(bridge, interaction)

    @pages.get("/consents")
    def consents_page() -> str:
        return _render_consents(bridge)

    @pages.post("/consents/revoke")
    def revoke() -> str:
        guard.check_own_form(request)
        if not _same_token(request.form.get("token"), bridge.form_token):
            raise OriginForbidden("this form is not the bridge's")
        try:
            bridge.consents.revoke(
                Origin.parse(request.form.get("origin", ""), allow_development=True)
            )
        except InvalidOrigin:
            raise BadRequest("not an origin") from None
        return _render_consents(bridge)

    return pages


def _allow(bridge: Bridge, interaction: Interaction) -> str:
    """The professional allowed the site: remember it if asked, verify the PIN once
    (typed here, or on the keypad), sign."""
    form = request.form
    if form.get("remember") == "on":
        bridge.consents.grant(
            interaction.origin, now=bridge.clock(), days=bridge.config.consent_days
        )
    pin: str | Keypad | None
    pin = Keypad.ENTRY if form.get("keypad") == "on" else form.get("pin", "")
    try:
        assertion = bridge.cards.authenticate(
            origin=interaction.origin,
            challenge=interaction.challenge,
            with_vitale=interaction.with_vitale,
            pin=pin,
        )
    except PinBlocked as error:
        interaction.finish(State.FAILED, error=error)
        return _render_interaction(bridge, interaction, error=error)
    except (CardError, TransportError) as error:  # a wrong PIN, a card out or pulled...
        return _render_interaction(bridge, interaction, error=error)  # may try again
    except CardAuthError as error:
        interaction.finish(State.FAILED, error=error)
        return _render_interaction(bridge, interaction, error=error)
    interaction.finish(State.OK, assertion=assertion)
    return _render_outcome(interaction)


def _render_interaction(
    bridge: Bridge, interaction: Interaction, *, error: CardAuthError | None = None
) -> str:
    language = _language()
    card = vitale = None
    tries: int | None = None
    blocked = isinstance(error, PinBlocked)
    try:
        card = bridge.cards.cps_view()
        if error is None:
            status = bridge.cards.pin_status()
            tries, blocked = status.tries_left, status.blocked
    except CardAuthError as problem:
        error = error or problem
    if interaction.with_vitale:
        vitale = next((v for v in bridge.cards.views() if v.kind == "vitale"), None)
    if isinstance(error, WrongPin):
        tries = error.tries_left
    return render_template(
        "interaction.html",
        lang=language,
        t=lambda key, **values: messages.label(key, language, **values),
        interaction=interaction,
        card=card,
        vitale=vitale,
        tries=tries,
        approved=bridge.guard.is_approved(interaction.origin),
        consent_days=_days(bridge.config.consent_days),
        error=error,
        error_text=messages.describe(error, language) if error else None,
        blocked=blocked,
        finished=interaction.state is not State.PENDING,
    )


def _render_outcome(interaction: Interaction) -> str:
    language = _language()
    if interaction.state is State.OK:
        text = messages.label("done", language)
    elif interaction.state is State.DECLINED:
        text = messages.label("declined", language)
    else:
        error = interaction.error or Internal("a failed login without its reason")
        text = messages.describe(error, language)
    return render_template(
        "outcome.html",
        lang=language,
        t=lambda k, **values: messages.label(k, language, **values),
        text=text,
        close=interaction.state in (State.OK, State.DECLINED),
    )


def _render_consents(bridge: Bridge) -> str:
    language = _language()
    return render_template(
        "consents.html",
        lang=language,
        t=lambda key, **values: messages.label(key, language, **values),
        consents=bridge.consents.list(now=bridge.clock()),
        configured=sorted(o.value for o in bridge.config.allowed_origins),
        token=bridge.form_token,
    )


# -- helpers ----------------------------------------------------------------------------


def _json(value: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(value, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )


def _json_body(allowed: set[str]) -> dict[str, Any]:
    try:
        body = request.get_json(silent=False)
    except RecursionError:
        raise BadRequest("nested too deep") from None
    except RequestEntityTooLarge:
        raise BodyTooLarge("the body is too large") from None
    except HTTPException:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is a JSON object")
    if "origin" in body:
        raise BadRequest("the origin is the browser's Origin header, never the body's")
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest("unknown members", members=sorted(unknown)[:8])
    return body


def _same_token(given: str | None, expected: str) -> bool:
    """Compare a form's token in constant time (no timing hint of its prefix)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _wait_seconds(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise BadRequest("wait is a number of seconds") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise BadRequest(f"wait is 0 to {MAX_WAIT_SECONDS:g} seconds")
    return value


def _own_url(endpoint: str) -> str:
    return f"http://{request.host}{url_for(endpoint)}"


def _language() -> Language:
    requested = request.args.get("lang") or request.accept_languages.best_match(["fr", "en"])
    return choose_language(requested or "fr")


def _days(days: float) -> str:
    return f"{days:g}"


def _error_response(error: CardAuthError, *, status: int | None = None) -> Response:
    language = _language()
    body = {"error": {"code": error.code, "message": messages.describe(error, language)}}
    if request.path.startswith("/v1/"):
        return _json(body, status or http_status(error))
    if isinstance(error, HostForbidden):
        # No page under a foreign Host: one that is not even a DNS name (an empty
        # label, a label over 63 characters) leaves Flask no URL adapter, and the
        # page's links (url_for) would fail, turning a 403 into a 500.
        message = escape(body["error"]["message"])
        return Response(f"<!doctype html><p>{message}</p>", status=403, mimetype="text/html")
    return Response(
        render_template(
            "outcome.html",
            lang=language,
            t=lambda key, **values: messages.label(key, language, **values),
            text=body["error"]["message"],
            close=False,  # an error stays on screen until the professional closes it
        ),
        status=status or http_status(error),
        mimetype="text/html",
    )


def http_status(error: CardAuthError) -> int:
    """The HTTP status of a refusal."""
    if isinstance(error, BridgeError):
        return error.status
    if isinstance(error, (CardNotPresent, UnknownCard, CardRemoved)):
        return 409
    if isinstance(error, PinBlocked):
        return 423
    if isinstance(error, PinError):
        return 401
    if isinstance(error, TransportError):
        return 503
    if isinstance(error, InvalidOrigin) or error.code.startswith("challenge."):
        return 400
    return 502  # the card answered something we cannot use
