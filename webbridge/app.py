"""The bridge's HTTP API (``/v1``, described by ``webbridge/openapi.yaml``) and its
own pages (the consent and PIN page, the list of trusted sites).

A login from a page of an approved site whose PIN state is fresh is one call,
``POST /v1/authenticate``. Otherwise the page opens a login by ``POST
/v1/interactions`` (a CORS request: the browser always sets its Origin header)
and shows the bridge's page for it in a window of its own; the professional
approves the site and types the PIN there, and the page collects the assertion
from ``GET /v1/interactions/{request_id}``. A site the professional has not
approved can open a login, but reads nothing about it until the professional has
answered on the bridge's page.

Signing goes the same way, with no one-call path: a site asks for the signing
certificate, or for a signature over a hash it prepared, by ``POST
/v1/interactions`` with a ``kind`` (:mod:`webbridge.operations`); the bridge's page
shows the site (and the document's name and hash), and each signature takes the
PIN typed for it.
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
from werkzeug.wrappers import Response as WerkzeugResponse

from cardauth import __version__, challenges, web
from cardauth.cards.session import Keypad
from cardauth.errors import (
    CardAuthError,
    CardError,
    CardOutOfValidity,
    InvalidOrigin,
    PinBlocked,
    PinRequired,
    TransportError,
    WrongPin,
)
from cardauth.messages import Language
from cardauth.origins import Origin
from cardauth.trust import utc_now
from webbridge import messages, operations
from webbridge.cards import CardService, CardView
from webbridge.ciba import Followers, Waiting
from webbridge.config import LOOPBACK, BridgeConfig
from webbridge.consent import ConsentStore
from webbridge.errors import (
    BadRequest,
    BodyTooLarge,
    Busy,
    Cancelled,
    ContentTypeRequired,
    FormSpent,
    HostForbidden,
    InteractionDeclined,
    InteractionUnknown,
    Internal,
    MethodNotAllowed,
    NotFound,
    OriginForbidden,
    OtherSigner,
    RateLimited,
)
from webbridge.guards import MAX_BODY, Guard, cors_headers, preflight_headers
from webbridge.interactions import Interaction, Interactions, State
from webbridge.operations import (
    Assertion,
    Certificate,
    Kind,
    Login,
    Signature,
    Signed,
    SigningCertificate,
)

SERVICE = "cardauth-bridge"
REFUSALS = web.Refusals(
    bad_request=BadRequest,
    too_large=BodyTooLarge,
    content_type=ContentTypeRequired,
    not_found=NotFound,
    method_not_allowed=MethodNotAllowed,
    internal=Internal,
)
API_VERSION = 1
MAX_WAIT_SECONDS = 25.0
EVENT_STREAM_SECONDS = 600.0
KEEPALIVE_SECONDS = 15.0
APPROVAL_CHECK_SECONDS = 1.0  # an event stream ends this soon after its site's approval
# The endpoints any site may call (Origin still required): opening a login, and
# following or giving up the logins it opened. Their answers are readable (CORS) by
# an approved site, or once the professional has answered on the bridge's page.
OPEN_TO_ANY_SITE = frozenset(
    {"api.create_interaction", "api.interaction", "api.cancel_interaction"}
)
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
    form_token: str  # of the bridge's own forms: no other page can read it
    followers: Followers  # the OpenID Connect providers whose CIBA requests it shows


def create_app(
    *,
    config: BridgeConfig,
    cards: CardService,
    consents: ConsentStore,
    clock: Callable[[], dt.datetime] = utc_now,
    host: str = LOOPBACK,
    followers: Followers | None = None,
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
        followers if followers is not None else Followers([]),
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
        web.secure(response)
        # The bridge's pages set their own (a blueprint's hook runs before this one).
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.path.startswith("/v1/"):
            response.vary.add("Origin")
            origin = g.get("cors_origin")
            if origin is not None:
                response.headers.update(cors_headers(origin))
        return response

    web.install_refusals(app, REFUSALS, _error_response, request)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded) -> Response:
        response = _error_response(RateLimited("too many authentication requests"), 429)
        response.headers["Retry-After"] = "60"
        return response

    return app


# -- the API ----------------------------------------------------------------------


def _api(bridge: Bridge, per_origin: Callable[[Any], Any]) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/v1")
    guard = bridge.guard
    _interaction_api(api, bridge, per_origin)

    @api.before_request
    def check_origin() -> Response | None:
        """Every API call says which site it comes from; CORS names an approved one."""
        origin = guard.origin_of(request)
        g.origin = origin
        if guard.is_approved(origin):
            g.cors_origin = origin
        elif request.endpoint not in OPEN_TO_ANY_SITE:
            raise OriginForbidden("this site is not approved", origin=origin.value)
        if request.method == "OPTIONS":
            # A preflight is answered for the endpoints open to any site too: the
            # browser then sends the request, whose answer alone a page could read.
            response = Response(status=204)
            response.headers.update(preflight_headers(origin, request))
            return response
        if request.method == "POST":
            guard.check_json(request)
        return None

    @api.get("/status")
    def status() -> Response:
        return web.json_answer(
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
        return web.json_answer({"cards": [view.to_dict() for view in bridge.cards.views()]})

    @api.post("/authenticate")
    @per_origin
    def authenticate() -> Response:
        body = _json_body({"challenge", "vitale"})
        challenge = challenges.check_format(body.get("challenge"))
        origin: Origin = g.cors_origin
        try:
            assertion = bridge.cards.authenticate(
                origin=origin, challenge=challenge, with_vitale=operations.flag(body, "vitale")
            )
        except PinRequired:
            return web.json_answer({"status": "interaction_required"})
        return web.json_answer({"status": "ok", "assertion": assertion})

    @api.post("/logout")
    def logout() -> Response:
        """The site's user logged out: the card forgets the verified PIN, so that
        the next login, on any site, asks for it."""
        _json_body(set())
        bridge.cards.log_out()
        return web.json_answer({"status": "ok"})

    @api.get("/events")
    def events() -> Response:
        if not bridge.streams.acquire(blocking=False):
            raise Busy("too many event streams")
        response = Response(
            stream_with_context(_event_stream(bridge, g.origin)),
            mimetype="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )
        # Released when the server closes the response, whether the stream ran
        # (the page went away, or 10 minutes passed) or never started (HEAD).
        response.call_on_close(bridge.streams.release)
        return response

    return api


def _interaction_api(api: Blueprint, bridge: Bridge, per_origin: Callable[[Any], Any]) -> None:
    """The logins that wait for the professional on the bridge's page."""
    guard = bridge.guard

    @api.post("/interactions")
    @per_origin
    def create_interaction() -> Response:
        """A site's page opens a login, or asks for the signing certificate or a
        signature, on the bridge's page (its Origin header is the browser's); the page
        then shows the address returned, which is also made of the page_id it chose
        (a site not approved cannot read this answer)."""
        body = _json_body(set(operations.ALL_MEMBERS))
        origin: Origin = g.origin
        interaction = bridge.interactions.create(
            origin=origin,
            operation=operations.parse(body),
            request_id=body.get("request_id"),
            page_id=body.get("page_id"),
            approved=guard.is_approved(origin),
        )
        url = _own_url("pages.interaction_page", interaction_id=interaction.id)
        return web.json_answer({"status": "pending", "url": url}, 201)

    @api.get("/interactions/<request_id>")
    def interaction(request_id: str) -> Response:
        found = _own_interaction(bridge, request_id)
        _may_read(found)
        wait = _wait_seconds(request.args.get("wait"))
        found.finished.wait(wait)
        if found.state is not State.PENDING:
            bridge.interactions.collect(found)
        return web.json_answer(found.outcome(_describe))

    @api.delete("/interactions/<request_id>")
    def cancel_interaction(request_id: str) -> Response:
        """The asking page gives up (it was closed, say): the login stops waiting,
        and the bridge's page says so."""
        found = _own_interaction(bridge, request_id)
        found.finish(State.FAILED, error=Cancelled("the page gave the login up"))
        bridge.interactions.collect(found)
        _may_read(found)
        return web.json_answer(found.outcome(_describe))


def _own_interaction(bridge: Bridge, request_id: str) -> Interaction:
    """The login the calling site opened under ``request_id``. A site that is not
    approved hears of none that does not exist (as of one it may not read yet)."""
    origin: Origin = g.origin
    try:
        return bridge.interactions.for_request(request_id, origin)
    except InteractionUnknown:
        if g.get("cors_origin") is None:
            raise OriginForbidden("this site is not approved", origin=origin.value) from None
        raise


def _may_read(interaction: Interaction) -> None:
    """An approved site reads about its logins; another one only once the
    professional has answered on the bridge's page (until then, the bridge answers
    it at once and without CORS, as it answers a site that opened nothing)."""
    if g.get("cors_origin") is None:
        if not interaction.answered:
            raise OriginForbidden("this site is not approved", origin=g.origin.value)
        g.cors_origin = g.origin


def _event_stream(bridge: Bridge, origin: Origin) -> Iterator[str]:
    """Card events as Server-Sent Events: first a ``present`` event per card in
    the readers, then ``ready``, then insertions and removals as they come; a
    comment every 15 s keeps the connection alive; the stream ends after 10
    minutes (EventSource reconnects by itself, after ``retry`` milliseconds, and
    gets the present cards again: their ``card`` identifiers tell a swap), and
    within a second of the site's approval being withdrawn or running out."""
    with bridge.cards.subscribe() as listener:
        yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
        number = 0
        for present in bridge.cards.present():
            number += 1
            yield _sse("card", present.to_dict(), number)
        number += 1
        yield _sse("ready", {}, number)
        deadline = time.monotonic() + EVENT_STREAM_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            try:
                event = listener.get(timeout=APPROVAL_CHECK_SECONDS)
            except queue.Empty:  # nothing happened for a while
                if not bridge.guard.is_approved(origin):
                    return
                if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            if event is None or not bridge.guard.is_approved(origin):
                return
            number += 1
            quiet_since = time.monotonic()
            yield _sse("card", event.to_dict(), number)


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

    @pages.get("/interaction/<interaction_id>")
    def interaction_page(interaction_id: str) -> str:
        # Shown in a window or a tab, never loaded as an image, a frame or by fetch:
        # only a page the professional sees takes one of the places of open pages.
        if request.headers.get("Sec-Fetch-Dest", "document") != "document":
            raise BadRequest("this page is shown in a window of its own")
        interaction = bridge.interactions.open(interaction_id)
        if interaction.state is not State.PENDING:
            return _render_outcome(interaction)
        return _render_interaction(bridge, interaction)

    @pages.post("/interaction/<interaction_id>")
    def answer_interaction(interaction_id: str) -> WerkzeugResponse:
        """The professional's answer, acted upon once (its form token is spent), then
        the page shown again by GET (post/redirect/get): reloading it sends nothing."""
        guard.check_own_form(request)
        interaction = bridge.interactions.get(interaction_id)
        if not interaction.take_token(request.form.get("token")):
            interaction.tell(FormSpent("this form was sent already"))
        elif interaction.state is State.PENDING:
            if request.form.get("action") == "allow":
                _allow(bridge, interaction)
            else:
                interaction.finish(
                    State.DECLINED, error=InteractionDeclined("refused"), answered=True
                )
        return redirect(url_for("pages.interaction_page", interaction_id=interaction.id), 303)

    _ciba_pages(pages, bridge)

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


def _ciba_pages(pages: Blueprint, bridge: Bridge) -> None:
    """The requests of software (CIBA) that the followed providers list for the
    professional: the list (``/ciba``, which reloads itself), the enrolment with
    each provider, and each request's page, answered with the PIN or declined."""
    guard = bridge.guard

    def own_form() -> None:
        guard.check_own_form(request)
        if not _same_token(request.form.get("token"), bridge.form_token):
            raise OriginForbidden("this form is not the bridge's")

    def authenticate(origin: Origin, challenge: str, pin: str | Keypad) -> str:
        return bridge.cards.authenticate(
            origin=origin, challenge=challenges.check_format(challenge), with_vitale=False, pin=pin
        )

    @pages.get("/ciba")
    def ciba_list() -> str:
        return _render_ciba(bridge)

    @pages.post("/ciba/<int:index>/enrol")
    def ciba_enrol(index: int) -> str | WerkzeugResponse:
        own_form()
        follower = bridge.followers.get(index)
        try:
            follower.enrol(authenticate, _typed_pin())
        except CardAuthError as error:
            return _render_ciba(bridge, error)
        return redirect(url_for("pages.ciba_list"), 303)

    @pages.get("/ciba/<int:index>/<ref>")
    def ciba_request(index: int, ref: str) -> str:
        follower = bridge.followers.get(index)
        return _render_ciba_request(bridge, index, follower.find(ref))

    @pages.post("/ciba/<int:index>/<ref>")
    def ciba_answer(index: int, ref: str) -> str:
        own_form()
        follower = bridge.followers.get(index)
        waiting = follower.find(ref)
        approve = request.form.get("action") == "allow"
        try:
            if approve:
                follower.approve(ref, authenticate, _typed_pin())
            else:
                follower.decline(ref)
        except (CardError, TransportError) as error:  # a wrong PIN, the card pulled...
            return _render_ciba_request(bridge, index, waiting, error)  # nothing was sent
        language = _language()
        return render_template(
            "outcome.html",
            lang=language,
            t=lambda key, **values: messages.label(key, language, **values),
            title="ciba_title",
            text=messages.label("ciba_approved" if approve else "ciba_declined", language),
            code=None,
            close=False,
        )


def _render_ciba(bridge: Bridge, error: CardAuthError | None = None) -> str:
    language = _language()
    followed = [
        (index, follower, follower.waiting()) for index, follower in enumerate(bridge.followers.all)
    ]
    return render_template(
        "ciba.html",
        lang=language,
        t=lambda key, **values: messages.label(key, language, **values),
        title="ciba_title",
        followed=followed,
        card=_cps_or_none(bridge),
        token=bridge.form_token,
        error=error,
        describe=lambda problem: messages.describe(problem, language),
    )


def _render_ciba_request(
    bridge: Bridge, index: int, waiting: Waiting, error: CardAuthError | None = None
) -> str:
    language = _language()
    card = _cps_or_none(bridge)
    tries: int | None = None
    if card is not None:
        try:
            tries = bridge.cards.pin_status().tries_left
        except CardAuthError as problem:
            error = error or problem
    if isinstance(error, WrongPin):
        tries = error.tries_left
    follower = bridge.followers.get(index)
    return render_template(
        "ciba_request.html",
        lang=language,
        t=lambda key, **values: messages.label(key, language, **values),
        title="ciba_title",
        index=index,
        origin=follower.provider.origin.value,
        waiting=waiting,
        seconds=max(0, int(waiting.expires_at - follower.monotonic())),
        card=card,
        tries=tries,
        token=bridge.form_token,
        error=error,
        error_text=messages.describe(error, language) if error else None,
    )


def _cps_or_none(bridge: Bridge) -> CardView | None:
    try:
        return bridge.cards.cps_view()
    except CardAuthError:
        return None


def _allow(bridge: Bridge, interaction: Interaction) -> None:
    """The professional allowed what the page showed: a login (the PIN verified once,
    typed on the page or on the keypad, the authentication key signs, and only then
    the site is remembered if asked); the signing certificate (no PIN: public data;
    never remembered: a site asks each time); a signature (the PIN typed for it,
    verified once, the non-repudiation key signs the hash shown, the card logs out)."""
    operation = interaction.operation
    if isinstance(operation, Login):
        answered = _act(
            interaction,
            lambda: Assertion(
                bridge.cards.authenticate(
                    origin=interaction.origin,
                    challenge=operation.challenge,
                    with_vitale=operation.with_vitale,
                    pin=_typed_pin(),
                )
            ),
        )
        if answered and request.form.get("remember") == "on":
            bridge.consents.grant(
                interaction.origin, now=bridge.clock(), days=bridge.config.consent_days
            )
    elif isinstance(operation, Signature):
        _act(
            interaction,
            lambda: Signed(
                bridge.cards.sign_document(
                    operation.digest, _typed_pin(), expected_certificate=operation.certificate
                )
            ),
        )
    else:
        _act(interaction, lambda: Certificate(bridge.cards.signing_certificate()))


def _act(interaction: Interaction, card_work: Callable[[], operations.Result]) -> bool:
    """Run what the professional allowed, and end the interaction with its result;
    whether it ended so. A blocked PIN ends it; a wrong PIN, a card missing or
    pulled is said on the page, which asks again; any other refusal ends it."""
    try:
        result = card_work()
    except PinBlocked as error:
        interaction.finish(State.FAILED, error=error, answered=True)
        return False
    except (CardError, TransportError) as error:  # a wrong PIN, a card out or pulled...
        interaction.tell(error)  # said on the page, which asks again
        return False
    except CardAuthError as error:
        interaction.finish(State.FAILED, error=error, answered=True)
        return False
    return interaction.finish(State.OK, result=result, answered=True)


def _typed_pin() -> str | Keypad:
    """The PIN of the page's form: typed in its field, or on the reader's keypad."""
    form = request.form
    return Keypad.ENTRY if form.get("keypad") == "on" else form.get("pin", "")


def _render_interaction(bridge: Bridge, interaction: Interaction) -> str:
    """The page of an interaction waiting for the professional: the site, what it
    asks (a login; the signing certificate; a signature, with the document's name
    and hash), the cards, what the last answer gave (said once), and a form good for
    one answer: the PIN when one is needed and the cards can give what is asked,
    and always a way out."""
    language = _language()
    error, interaction.notice = interaction.notice, None
    operation = interaction.operation
    with_vitale = isinstance(operation, Login) and operation.with_vitale
    needs_pin = not isinstance(operation, SigningCertificate)
    card = vitale = None
    tries: int | None = None
    blocked = False
    try:
        card = bridge.cards.cps_view()
    except CardAuthError as problem:
        error = error or problem
    if with_vitale:
        vitale = next((v for v in bridge.cards.views() if v.kind == "vitale"), None)
    now = bridge.clock()
    # What keeps the cards from giving what is asked, whatever the professional types.
    invalid: CardError | None = next(
        (p for p in (c.validity_error(now) for c in (card, vitale) if c) if p is not None), None
    )
    if card is not None and invalid is None and not isinstance(operation, Login):
        expected = operation.certificate if isinstance(operation, Signature) else None
        invalid, error = _signing_problem(bridge, error, expected)
    if card is not None and invalid is None and needs_pin:
        try:
            status = bridge.cards.pin_status()
            tries, blocked = status.tries_left, status.blocked
        except CardAuthError as problem:
            error = error or problem
    if isinstance(error, WrongPin):
        tries = error.tries_left
    error = invalid or error
    ready = card is not None and (vitale is not None or not with_vitale)
    return render_template(
        "interaction.html",
        lang=language,
        t=lambda key, **values: messages.label(key, language, **values),
        title=_TITLES[operation.kind],
        interaction=interaction,
        operation=operation,
        kind=operation.kind.value,
        with_vitale=with_vitale,
        token=interaction.form_token(),
        card=card,
        vitale=vitale,
        tries=tries,
        needs_pin=needs_pin,
        approved=bridge.guard.is_approved(interaction.origin),
        consent_days=_days(bridge.config.consent_days),
        error=error,
        error_text=messages.describe(error, language) if error else None,
        blocked=blocked,
        can_allow=ready and invalid is None and not (blocked and needs_pin),
    )


def _signing_problem(
    bridge: Bridge, error: CardAuthError | None, expected: bytes | None
) -> tuple[CardError | None, CardAuthError | None]:
    """Before a signature (or its certificate) is offered: whether the card cannot
    give it (``invalid``: its signature certificate is not valid today, or is not
    the ``expected`` one), or what reading it gave (``error``)."""
    try:
        bridge.cards.signing_certificate(expected=expected)
    except (CardOutOfValidity, OtherSigner) as problem:
        return problem, error
    except CardAuthError as problem:
        return None, error or problem
    return None, error


_TITLES = {
    Kind.LOGIN: "title",
    Kind.SIGNING_CERTIFICATE: "title_certificate",
    Kind.SIGNATURE: "title_signature",
}
_DONE = {
    Kind.LOGIN: "done",
    Kind.SIGNING_CERTIFICATE: "certificate_given",
    Kind.SIGNATURE: "signed",
}
_DECLINED = {
    Kind.LOGIN: "declined",
    Kind.SIGNING_CERTIFICATE: "certificate_declined",
    Kind.SIGNATURE: "signature_declined",
}


def _render_outcome(interaction: Interaction) -> str:
    """The page of an interaction that ended: what came of it, and a way to close it
    (it closes itself after an answer that went through, or a refusal)."""
    language = _language()
    kind = interaction.operation.kind
    if interaction.state is State.OK:
        text = messages.label(_DONE[kind], language)
    elif interaction.state is State.DECLINED:
        text = messages.label(_DECLINED[kind], language)
    else:
        error = interaction.error or Internal("a failed interaction without its reason")
        text = messages.describe(error, language)
    return render_template(
        "outcome.html",
        lang=language,
        t=lambda k, **values: messages.label(k, language, **values),
        title=_TITLES[kind],
        text=text,
        code=interaction.error.code if interaction.error else None,
        blocked=isinstance(interaction.error, PinBlocked),
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


def _json_body(allowed: set[str]) -> dict[str, Any]:
    """The call's JSON object (strict: cardauth.web); the origin an assertion is bound
    to is always the Origin header: a body naming one is refused as unknown."""
    return web.json_object(request, REFUSALS, allowed=allowed)


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


def _own_url(endpoint: str, **values: Any) -> str:
    return f"http://{request.host}{url_for(endpoint, **values)}"


def _describe(error: CardAuthError) -> str:
    """``error`` in words, in the language the request asks for."""
    return messages.describe(error, _language())


def _language() -> Language:
    return web.language_of(request)


def _days(days: float) -> str:
    return f"{days:g}"


def _error_response(error: CardAuthError, status: int) -> Response:
    """A refusal: the API's JSON body, or the bridge's page saying it."""
    language = _language()
    message = messages.describe(error, language)
    if request.path.startswith("/v1/"):
        return web.json_answer(web.error_body(error, message), status)
    if isinstance(error, HostForbidden):
        # No page under a foreign Host: one that is not even a DNS name (an empty
        # label, a label over 63 characters) leaves Flask no URL adapter, and the
        # page's links (url_for) would fail, turning a 403 into a 500.
        return Response(
            f"<!doctype html><p>{escape(message)}</p>", status=403, mimetype="text/html"
        )
    return Response(
        render_template(
            "outcome.html",
            lang=language,
            t=lambda key, **values: messages.label(key, language, **values),
            text=message,
            code=error.code,
            close=False,  # an error stays on screen until the professional closes it
        ),
        status=status,
        mimetype="text/html",
    )
