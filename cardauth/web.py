"""What the product's local web services share: the bridge (webbridge), the
verifier over HTTP (cardauth-verifier), the simulator's control page, and the
example teleservice. Each keeps its own refusals (their stable codes) and texts;
this module holds the one way to:

- tell whether a ``Host`` header names this machine (DNS rebinding);
- read a request's JSON body strictly: an object, of the members the call takes,
  none repeated, no NaN or Infinity, not nested past Python's limit;
- turn Flask's own HTTP errors (404, 405, 413...) into the service's refusals,
  and any refusal into its HTTP status, one policy for the whole product;
- set the headers every answer carries;
- pick the language of a request's messages.

Serving (loopback binding, waitress, stopping) is :mod:`cardauth.serving`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, Response
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound

from cardauth.errors import (
    AssertionRefused,
    CardAuthError,
    CardNotPresent,
    CardOutOfValidity,
    CardRemoved,
    InvalidOrigin,
    PinBlocked,
    PinError,
    TransportError,
    UnknownCard,
)
from cardauth.messages import Language, choose_language
from cardauth.serving import is_loopback_address

JSON = "application/json"
logger = logging.getLogger(__name__)


# -- Host ------------------------------------------------------------------------


def own_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers of a service listening on ``host:port``: that address and
    ``localhost``, with the port (a page of a rebinding site sends its own name)."""
    return frozenset((f"{host}:{port}", f"localhost:{port}"))


def names_this_machine(host: str) -> bool:
    """Whether a Host header names this machine (``localhost``, ``[::1]`` or an IPv4
    loopback address), with or without a port."""
    name = host if host.endswith("]") else host.rsplit(":", 1)[0]
    return name in ("localhost", "[::1]") or is_loopback_address(name)


# -- refusals ---------------------------------------------------------------------


@dataclass(frozen=True)
class Refusals:
    """A service's own refusals for what this module checks (each service has its
    codes: ``bridge.bad_request``, ``verifier.bad_request``...)."""

    bad_request: type[CardAuthError]
    too_large: type[CardAuthError]
    content_type: type[CardAuthError]
    not_found: type[CardAuthError]
    method_not_allowed: type[CardAuthError]
    internal: type[CardAuthError]

    def of_route(self, error: HTTPException, request: Request) -> CardAuthError:
        """The service's refusal for one of Flask's own errors."""
        if isinstance(error, RequestEntityTooLarge):
            return self.too_large("the body is too large")
        if isinstance(error, RouteNotFound):
            return self.not_found("no such address", path=request.path[:200])
        if isinstance(error, RouteMethodNotAllowed):
            return self.method_not_allowed(
                "method not allowed", method=request.method[:16], allow=_allowed(error)
            )
        if (error.code or 500) >= 500:
            return self.internal(error.name)
        return self.bad_request(error.name.lower(), status=error.code or 400)


def http_status(error: CardAuthError) -> int:
    """The HTTP status of a refusal, the same in every service: a service's own
    refusal says its status; the product's errors map by what they mean."""
    given = error.context.get("status")
    if isinstance(given, int):
        return given
    own = getattr(error, "status", None)
    if isinstance(own, int):
        return own
    if isinstance(error, InvalidOrigin) or error.code == "challenge.malformed":
        return 400  # what the request says is not what the call takes
    if isinstance(error, AssertionRefused):
        return 503 if error.service_unavailable else 401
    if isinstance(error, (CardNotPresent, UnknownCard, CardRemoved, CardOutOfValidity)):
        return 409
    if isinstance(error, PinBlocked):
        return 423
    if isinstance(error, PinError):
        return 401
    if isinstance(error, TransportError):
        return 503
    if error.code.startswith(("card.", "apdu.", "identifier.")):
        return 502  # the card answered something that cannot be used
    return 400


def install_refusals(
    app: Flask,
    refusals: Refusals,
    answer: Callable[[CardAuthError, int], Response],
    request: Request,
) -> None:
    """Every error of ``app`` answered by ``answer(refusal, status)``: refusals as
    they are, Flask's own errors as the service's refusals (405 with ``Allow``),
    anything unexpected as the service's internal error (its details logged, never
    shown)."""

    @app.errorhandler(CardAuthError)
    def refused(error: CardAuthError) -> Response:
        return answer(error, http_status(error))

    @app.errorhandler(HTTPException)
    def route_error(error: HTTPException) -> Response:
        refusal = refusals.of_route(error, request)
        response = answer(refusal, http_status(refusal) if error.code is None else error.code)
        if isinstance(error, RouteMethodNotAllowed):
            response.headers["Allow"] = _allowed(error)
        return response

    @app.errorhandler(Exception)
    def failed(error: Exception) -> Response:
        logger.exception("unexpected error")
        refusal = refusals.internal(type(error).__name__)
        return answer(refusal, 500)


def _allowed(error: RouteMethodNotAllowed) -> str:
    return ", ".join(error.valid_methods or ())


# -- bodies ------------------------------------------------------------------------


def json_object(
    request: Request,
    refusals: Refusals,
    *,
    allowed: Collection[str],
    required: Collection[str] = (),
) -> dict[str, Any]:
    """The request's body: a JSON object (``Content-Type: application/json``) with
    the members ``allowed`` and at least those ``required``, none repeated, no NaN or
    Infinity; anything else is the service's refusal, never a 500 nor a member
    silently ignored. Its size is the app's MAX_CONTENT_LENGTH."""
    if request.mimetype != JSON:
        raise refusals.content_type("Content-Type: application/json is required")
    data = request.get_data(cache=True)  # RequestEntityTooLarge past the app's limit
    try:
        body = json.loads(data, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a repeat, too deep
        raise refusals.bad_request("the body is not a JSON object") from None
    if not isinstance(body, dict):
        raise refusals.bad_request("the body is not a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise refusals.bad_request(f"unknown member {unknown[0][:40]!r}", member=unknown[0][:40])
    missing = sorted(set(required) - set(body))
    if missing:
        raise refusals.bad_request(f"missing member {missing[0]!r}", member=missing[0])
    return body


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member is repeated")
    return members


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# -- answers ---------------------------------------------------------------------------


def json_answer(value: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer, UTF-8 as it is (no \\u escapes), members in their order."""
    return Response(
        json.dumps(value, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype=JSON,
    )


def error_body(error: CardAuthError, message: str) -> dict[str, Any]:
    """The body of every refusal of the product's APIs."""
    return {"error": {"code": error.code, "message": message}}


def secure(response: Response, *, policy: str | None = None) -> Response:
    """The headers every answer of a local service carries: nothing cached (forms
    carry tokens, answers identities), no type sniffing, no framing of its pages;
    ``policy``: the pages' Content-Security-Policy. A header a view set stays."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    if policy is not None:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def bridge_client_policy(
    bridge_url: str, *, forms: bool = False, framed_by: Sequence[str] = ()
) -> str:
    """The Content-Security-Policy of a site's pages that run cardauth.js: their own
    scripts, styles and images only, and requests to the site and to the
    professional's bridge (cardauth.js's calls and card events); forms posted to the
    site only with ``forms``; framed by ``framed_by`` origins only (none by default)."""
    ancestors = " ".join(framed_by) or "'none'"
    form_action = "'self'" if forms else "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src 'self' {bridge_url.rstrip('/')}",
            f"form-action {form_action}",
            f"frame-ancestors {ancestors}",
            "base-uri 'none'",
        ]
    )


def language_of(request: Request, default: Language = "fr") -> Language:
    """The language of a request's messages: ``?lang=``, else ``Accept-Language``,
    else ``default``."""
    requested = request.args.get("lang") or request.accept_languages.best_match(["fr", "en"])
    return choose_language(requested) if requested else default
