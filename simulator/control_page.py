"""A local web page that moves the simulator's cards: insert, remove, swap.

A person (or a browser-test harness) plays every scenario from a browser: each
slot of the virtual dual-slot reader shows its reader name and the persona whose
card it holds, with a persona selector and Insérer / Retirer buttons, plus one
Échanger button. The page is plain HTML forms (POST, then redirect to GET), no
JavaScript; ``/api/...`` offers the same moves as JSON.

The page changes what a workstation holds, so it is guarded like the bridge:

- it listens on an IPv4 loopback address only;
- every request's **Host** is the page's own ``host:port`` (or ``localhost:port``):
  a DNS-rebinding page reaches 127.0.0.1 under a name of its own and is refused
  before anything is read, the form token included;
- every POST's **Origin**, when the browser sends one, is the page's own origin;
- every form carries a per-process random token, compared in constant time;
- API calls that change something take ``application/json`` only, which a browser
  never sends cross-site without a CORS preflight (never answered here);
- CSP ``default-src 'none'``, no framing, forms post to the page itself.

Texts are in French by default, English with ``?lang=en`` or ``Accept-Language``.
"""

from __future__ import annotations

import hmac
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import Any

from flask import Flask, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from cardauth import web
from cardauth.errors import CardAuthError
from cardauth.messages import Catalog, Language, choose_language
from cardauth.serving import CannotListen as PortTaken
from cardauth.serving import Served, is_loopback_address, listen
from simulator.errors import NotLoopback, PersonaError, SimulatorError, SlotOccupied
from simulator.messages import CATALOG
from simulator.personas import Persona, bundled
from simulator.workstation import DEFAULT_PERSONAS, SlotStatus, Workstation

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8460
MAX_BODY = 16 * 1024
THREADS = 4
CHANNEL_TIMEOUT = 30  # seconds an idle browser connection may stay open
STOP_WAIT = 5.0  # seconds close() waits for the serving thread

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_KIND_ORDER = ("cps", "vitale", "other")


# -- errors ------------------------------------------------------------------------


class ControlPageError(SimulatorError):
    """Base of the control page's refusals; ``status`` is the HTTP answer."""

    code = "sim.page"
    status = 400


class PageNotLoopback(NotLoopback):
    """Asked to serve the control page on an address other than IPv4 loopback."""

    code = "sim.page.not_loopback"


class CannotListen(ControlPageError):
    """The port is taken (another control page?) or not allowed."""

    code = "sim.page.cannot_listen"


class HostForbidden(ControlPageError):
    """The Host header is not the page's own loopback host and port (DNS rebinding)."""

    code = "sim.page.host"
    status = 403


class OriginForbidden(ControlPageError):
    """A POST whose Origin is not the page's own (another site, or ``null``)."""

    code = "sim.page.origin"
    status = 403


class TokenInvalid(ControlPageError):
    """A form posted without the page's token, or with another one."""

    code = "sim.page.token"
    status = 403


class ContentTypeRequired(ControlPageError):
    """An API call that changes something, without ``Content-Type: application/json``."""

    code = "sim.page.content_type"
    status = 415


class BadRequest(ControlPageError):
    """A request body that is not what the page or the API expects."""

    code = "sim.page.bad_request"


class NotFound(ControlPageError):
    """No such page or API call (or not with that method)."""

    code = "sim.page.not_found"
    status = 404


class MethodNotAllowed(ControlPageError):
    """A page or an API call asked for with a method it does not take."""

    code = "sim.page.method"
    status = 405


class PageFailed(ControlPageError):
    """Something went wrong in the page itself (the log says what)."""

    code = "sim.page.internal"
    status = 500


REFUSALS = web.Refusals(
    bad_request=BadRequest,
    too_large=BadRequest,  # with the status 413
    content_type=ContentTypeRequired,
    not_found=NotFound,
    method_not_allowed=MethodNotAllowed,
    internal=PageFailed,
)


class UnknownPersona(PersonaError):
    """Not one of the bundled personas (the page never loads persona files)."""

    code = "sim.persona_unknown"
    status = 400


class UnknownSlot(SimulatorError):
    """The workstation has no slot with that number."""

    code = "sim.slot_unknown"
    status = 404


class SlotEmpty(SimulatorError):
    """There is no card to remove from that slot."""

    code = "sim.slot_empty"
    status = 409


class CardInUse(SimulatorError):
    """That persona's card is already in the other slot: there is one card per persona."""

    code = "sim.card_in_use"
    status = 409


_REFUSALS = (HostForbidden, OriginForbidden, TokenInvalid)


# The page's words (the [page] table of simulator/texts.toml) and its errors.
PAGE = Catalog.load(resources.files("simulator") / "texts.toml", labels="page", parents=(CATALOG,))

# -- the application ---------------------------------------------------------------


def require_loopback(host: str) -> None:
    """Refuse any address but an IPv4 loopback one (the bridge's rule): the page
    moves cards, so nobody on a network may reach it."""
    if not is_loopback_address(host):
        raise PageNotLoopback("the control page listens on a loopback address only", host=host[:80])


@dataclass(frozen=True, slots=True)
class _Guard:
    """The page's own addresses and its form token."""

    hosts: frozenset[str]
    origins: frozenset[str]
    token: str

    @classmethod
    def for_address(cls, host: str, port: int) -> _Guard:
        hosts = web.own_hosts(host, port)
        return cls(hosts, frozenset(f"http://{h}" for h in hosts), secrets.token_urlsafe(32))

    def check_host(self) -> None:
        if request.host not in self.hosts:
            raise HostForbidden("the Host header is not the page's own", host=request.host[:80])

    def check_origin(self) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.origins:
            raise OriginForbidden("this request comes from another origin", origin=origin[:80])

    def check_token(self) -> None:
        given = request.form.get("token", "")
        # Constant time, over bytes (compare_digest refuses non-ASCII str).
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise TokenInvalid("the form token is missing or wrong")

    @staticmethod
    def check_json() -> None:
        if request.mimetype != "application/json":
            raise ContentTypeRequired("Content-Type: application/json is required")


class _Slots:
    """The moves the page offers, on one workstation, checked before they are made."""

    def __init__(self, workstation: Workstation, names: Sequence[str]) -> None:
        self.workstation = workstation
        self.names = tuple(names)

    def state(self) -> list[dict[str, object]]:
        return [
            {**status.to_dict(), "reader": self.names[status.index]}
            for status in self.workstation.status()
        ]

    def insert(self, index: int, persona: str) -> None:
        slots = self._status(index)
        if persona not in bundled():
            raise UnknownPersona("unknown persona", persona=persona[:64])
        if slots[index].persona is not None:
            raise SlotOccupied(
                "the slot already holds a card", slot=index, reader=self.names[index]
            )
        if any(s.persona == persona for s in slots):
            raise CardInUse("that card is already in a slot", persona=persona)
        self.workstation.insert(index, persona)

    def remove(self, index: int) -> None:
        if self._status(index)[index].persona is None:
            raise SlotEmpty("the slot holds no card", slot=index, reader=self.names[index])
        self.workstation.remove(index)

    def swap(self) -> None:
        self.workstation.swap()

    def _status(self, index: int) -> list[SlotStatus]:
        slots = self.workstation.status()
        if not 0 <= index < len(slots):
            raise UnknownSlot("no such slot", slot=index)
        return slots


def create_control_app(
    workstation: Workstation,
    *,
    slot_names: Sequence[str],
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
) -> Flask:
    """The control page of ``workstation``, whose slots hold the readers named
    ``slot_names``; it answers requests addressed to ``host:port`` only."""
    require_loopback(host)
    if len(slot_names) != len(workstation.status()):
        raise ControlPageError("slot_names must name every slot", slots=len(slot_names))
    guard = _Guard.for_address(host, port)
    slots = _Slots(workstation, slot_names)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True

    @app.before_request
    def check_request() -> None:
        guard.check_host()
        if request.method == "GET":
            return
        guard.check_origin()
        if request.path.startswith("/api/"):
            guard.check_json()
        else:
            guard.check_token()

    @app.after_request
    def secure_headers(response: Response) -> Response:
        # no-store: the page carries the form token
        web.secure(response, policy=CONTENT_SECURITY_POLICY)
        # Not no-referrer: under it a browser sends "Origin: null" on the page's own
        # forms, which the page could not tell from a foreign one (and refuses).
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.get("/")
    def page() -> str:
        return _render(slots, guard.token)

    @app.post("/slots/<int:index>/insert")
    def insert_form(index: int) -> BaseResponse:
        slots.insert(index, request.form.get("persona", ""))
        return _back_to_page()

    @app.post("/slots/<int:index>/remove")
    def remove_form(index: int) -> BaseResponse:
        slots.remove(index)
        return _back_to_page()

    @app.post("/swap")
    def swap_form() -> BaseResponse:
        slots.swap()
        return _back_to_page()

    @app.get("/api/slots")
    def api_state() -> dict[str, Any]:
        return {"slots": slots.state()}

    @app.post("/api/slots/<int:index>/insert")
    def api_insert(index: int) -> dict[str, Any]:
        slots.insert(index, _json_persona())
        return {"slots": slots.state()}

    @app.post("/api/slots/<int:index>/remove")
    def api_remove(index: int) -> dict[str, Any]:
        slots.remove(index)
        return {"slots": slots.state()}

    @app.post("/api/swap")
    def api_swap() -> dict[str, Any]:
        slots.swap()
        return {"slots": slots.state()}

    def answer(error: CardAuthError, status: int) -> Response:
        return _error_answer(error, slots, guard.token, status)

    web.install_refusals(app, REFUSALS, answer, request)

    return app


def _language() -> Language:
    return web.language_of(request)


def _query() -> str:
    """The page's own query (its language, when asked for), kept across a form post."""
    language = request.args.get("lang")
    return f"?lang={choose_language(language)}" if language else ""


def _back_to_page() -> BaseResponse:
    # POST-redirect-GET: reloading the page never repeats a move.
    return redirect(f"/{_query()}", code=303)


def _json_persona() -> str:
    body = web.json_object(request, REFUSALS, allowed={"persona"}, required={"persona"})
    persona = body["persona"]
    if not isinstance(persona, str) or not persona:
        raise BadRequest('the body must be {"persona": "<persona id>"}')
    return persona


def _error_answer(error: CardAuthError, slots: _Slots, token: str, status: int) -> Response:
    language = _language()
    text = PAGE.describe(error, language)
    if request.path.startswith("/api/"):
        return web.json_answer(web.error_body(error, text), status)
    # A refused request gets no forms, so never the token.
    shown = slots if not isinstance(error, _REFUSALS) else None
    page = _render(shown, token, error={"code": error.code, "text": text})
    return Response(page, status=status, mimetype="text/html")


def _render(slots: _Slots | None, token: str, *, error: Mapping[str, str] | None = None) -> str:
    language = _language()
    text = {key: texts[language] for key, texts in PAGE.labels.items()}
    return render_template(
        "control.html",
        language=language,
        other_language="en" if language == "fr" else "fr",
        text=text,
        error=error,
        slots=_slot_views(slots, language) if slots else [],
        groups=_persona_groups(language),
        token=token,
        query=_query(),
    )


def _slot_views(slots: _Slots, language: Language) -> list[dict[str, object]]:
    known = bundled()
    views = []
    for status in slots.workstation.status():
        default = DEFAULT_PERSONAS[status.index] if status.index < len(DEFAULT_PERSONAS) else ""
        views.append(
            {
                "index": status.index,
                "title": PAGE.label("slot", language, index=status.index),
                "reader": slots.names[status.index],
                "persona": status.persona,
                "description": status.description,
                "choice": status.persona if status.persona in known else default,
            }
        )
    return views


def _persona_groups(language: Language) -> list[dict[str, object]]:
    personas = bundled()
    groups: list[dict[str, object]] = []
    for kind in _KIND_ORDER:
        members: list[Persona] = [p for p in personas.values() if p.kind == kind]
        if members:
            groups.append({"label": PAGE.label(f"group.{kind}", language), "personas": members})
    return groups


# -- serving -----------------------------------------------------------------------


class ControlPageServer:
    """The control page served by waitress: :meth:`run` serves until :meth:`close`
    (from another thread); :meth:`start` runs it in a thread."""

    def __init__(self, app: Flask, listener: socket.socket, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}/"
        self._served = Served(
            app,
            listener,
            ident="cardauth-sim-control",
            threads=THREADS,
            channel_timeout=CHANNEL_TIMEOUT,
            max_request_body_size=MAX_BODY,
        )

    def run(self) -> None:
        self._served.run()

    def start(self) -> ControlPageServer:
        self._served.start("control-page")
        return self

    def close(self) -> None:
        """Stop serving: close the listening socket and any open connection."""
        self._served.close()

    def __enter__(self) -> ControlPageServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def serve_control_page(
    workstation: Workstation,
    host: str = LOOPBACK,
    port: int = DEFAULT_PORT,
    *,
    slot_names: Sequence[str],
) -> ControlPageServer:
    """The control page of ``workstation`` on ``host:port`` (``port`` 0: a free one),
    listening already; call ``run()`` or ``start()``, then ``close()``."""
    require_loopback(host)
    try:
        listener = listen(host, port)
    except PortTaken as error:
        raise CannotListen(error.message, port=port, reason=error.context["reason"]) from None
    # Bound before the app is made, so that the app knows its port even when the
    # system chose it: the Host and Origin checks need it.
    bound = int(listener.getsockname()[1])
    try:
        app = create_control_app(workstation, slot_names=slot_names, host=host, port=bound)
        return ControlPageServer(app, listener, host, bound)
    except BaseException:
        listener.close()
        raise
