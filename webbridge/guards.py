"""What every request to the bridge must pass before anything else.

- **Host** is the bridge's own loopback name and port: a page of a DNS-rebinding
  attacker reaches 127.0.0.1 under a name of its own, and is refused here.
- **Origin**, on API calls, is present and not ``null``, and approved: in the
  configuration, or by the professional on the bridge's page, unexpired (only the
  logins' own endpoints are open to any site, which reads nothing there until the
  professional answers: :mod:`webbridge.app`). CORS headers name that one origin
  (never ``*``, always with ``Vary: Origin``), and a Private Network Access
  preflight (Chromium before Local Network Access) is answered for it alone.
- State-changing API calls take ``application/json`` only, which a browser never
  sends cross-site without a preflight; bodies are small.
- The bridge's own pages accept form posts from the bridge's own origin only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import Request

from cardauth.errors import InvalidOrigin
from cardauth.origins import Origin
from webbridge.consent import ConsentStore
from webbridge.errors import (
    ContentTypeRequired,
    HostForbidden,
    OriginForbidden,
    OriginRequired,
)

MAX_BODY = 16 * 1024
PREFLIGHT_MAX_AGE = 600


class Guard:
    """The bridge's checks, for one port, its configured origins and the approvals."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        configured: tuple[Origin, ...],
        consents: ConsentStore,
        allow_development: bool,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.hosts = frozenset((f"{host}:{port}", f"localhost:{port}"))
        self.own_origins = frozenset(f"http://{host}" for host in self.hosts)
        self.configured = frozenset(configured)
        self.consents = consents
        self.allow_development = allow_development
        self.clock = clock

    def check_host(self, request: Request) -> None:
        if request.host not in self.hosts:
            raise HostForbidden("the Host header is not the bridge's own", host=request.host[:80])

    def origin_of(self, request: Request) -> Origin:
        """The calling page's origin, as its browser sent it."""
        text = request.headers.get("Origin")
        if text is None or text == "null":
            raise OriginRequired("an Origin header is required")
        try:
            return Origin.parse(text, allow_development=self.allow_development)
        except InvalidOrigin:
            raise OriginForbidden("not an origin this bridge serves", origin=text[:80]) from None

    def is_approved(self, origin: Origin) -> bool:
        return origin in self.configured or self.consents.is_approved(origin, now=self.clock())

    def check_own_form(self, request: Request) -> None:
        """A form of the bridge's own page: posted from the bridge's own origin."""
        if request.headers.get("Origin") not in self.own_origins:
            raise OriginForbidden("this form belongs to the bridge's own page")

    @staticmethod
    def check_json(request: Request) -> None:
        if request.mimetype != "application/json":
            raise ContentTypeRequired("Content-Type: application/json is required")


def cors_headers(origin: Origin) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin.value,
        "Access-Control-Expose-Headers": "Retry-After",
    }


def preflight_headers(origin: Origin, request: Request) -> dict[str, str]:
    """The answer to a CORS preflight from an approved origin, PNA included."""
    headers = {
        **cors_headers(origin),
        "Access-Control-Allow-Methods": "GET, POST, DELETE",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
    }
    if request.headers.get("Access-Control-Request-Private-Network") == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return headers
