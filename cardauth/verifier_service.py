"""``cardauth-verifier``: the verifier over HTTP, for teleservices written in any
language (PHP, Java, Node...).

It runs beside the teleservice's backend, on a loopback address only, and answers
that backend alone: every request carries ``Authorization: Bearer <token>``, the
token read from a file of mode 0600 (made on first run). Browsers get nothing: no
CORS, and a request with an ``Origin`` or ``Sec-Fetch-*`` header is refused, so a
web page can never talk to it, even one that rebinds a name to 127.0.0.1.

The API (JSON only, versioned; docs/verifier.md "Over HTTP: cardauth-verifier"):

- ``POST /v1/challenges {"session"}``: a challenge bound to the teleservice's
  session identifier, kept in the challenge store;
- ``POST /v1/verify {"assertion", "session", "challenge", "require_vitale"}``: the
  verified identity, or ``{"error": {"code", "message"}}`` with the verifier's
  stable code (401, or 503 when the store or the revocation sources are down). The
  challenge is taken out of the store: one try each;
- ``GET /v1/health``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import os
import re
import secrets
import stat
import sys
from collections.abc import Callable, Collection, Sequence
from importlib import resources
from pathlib import Path

from flask import Flask, Response, jsonify, request

from cardauth import __version__, web
from cardauth.arguments import ArgumentParser, requested_language
from cardauth.challenges import (
    DEFAULT_LIFETIME,
    ChallengeStore,
    issue_challenge,
    store_from_setting,
)
from cardauth.errors import CardAuthError
from cardauth.messages import CORE, LANGUAGES, Catalog, Language, choose_language, label
from cardauth.origins import Origin, parse_origins
from cardauth.revocation import refresh_in_background
from cardauth.serving import Served, is_loopback_address, listen, stop_on_signals
from cardauth.trust import utc_now
from cardauth.verify import Verifier

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 24791  # the bridge's is 24790
MAX_BODY = 64 * 1024  # an assertion with its co-assertion is some 10 KiB
TOKEN_BYTES = 32
THREADS = 8
CHANNEL_TIMEOUT = 30
EXIT_ERROR = 1
# RFC 6750 § 2.1 b64token, long enough to be a secret.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{32,512}=*", re.ASCII)
# The teleservice's own session identifier (or anything opaque that stays the same
# for one browser session): visible ASCII, no space.
_SESSION = re.compile(r"[\x21-\x7e]{16,128}", re.ASCII)
# The service cannot check now: the caller may try again later (as the Flask extension).
CHALLENGE_MEMBERS = frozenset(("session",))
VERIFY_MEMBERS = frozenset(("assertion", "session", "challenge", "require_vitale"))
VERIFY_REQUIRED = VERIFY_MEMBERS - {"require_vitale"}


# -- errors -----------------------------------------------------------------------


class VerifierServiceError(CardAuthError):
    """Base of the service's own refusals; ``status`` is the HTTP answer."""

    code = "verifier.error"
    status = 400


class ServiceConfigError(VerifierServiceError):
    """The command line or a file it names cannot be used."""

    code = "verifier.config"


class NotLoopback(ServiceConfigError):
    """Asked to listen on an address other than a loopback one."""

    code = "verifier.not_loopback"


class TokenFileError(ServiceConfigError):
    """The token file cannot be read or made, or others may read it."""

    code = "verifier.token_file"


class Unauthorized(VerifierServiceError):
    """No ``Authorization: Bearer`` header, or not the token of this service."""

    code = "verifier.unauthorized"
    status = 401


class BrowserRefused(VerifierServiceError):
    """A request sent by a browser (``Origin`` or ``Sec-Fetch-*`` header)."""

    code = "verifier.browser"
    status = 403


class HostForbidden(VerifierServiceError):
    """The ``Host`` header is not a loopback name (DNS rebinding)."""

    code = "verifier.host"
    status = 403


class ContentTypeRequired(VerifierServiceError):
    code = "verifier.content_type"
    status = 415


class BodyTooLarge(VerifierServiceError):
    code = "verifier.too_large"
    status = 413


class BadRequest(VerifierServiceError):
    """The body is not the JSON object the call takes."""

    code = "verifier.bad_request"
    status = 400


class NotFound(VerifierServiceError):
    code = "verifier.not_found"
    status = 404


class MethodNotAllowed(VerifierServiceError):
    code = "verifier.method_not_allowed"
    status = 405


class InternalError(VerifierServiceError):
    code = "verifier.internal"
    status = 500


REFUSALS = web.Refusals(
    bad_request=BadRequest,
    too_large=BodyTooLarge,
    content_type=ContentTypeRequired,
    not_found=NotFound,
    method_not_allowed=MethodNotAllowed,
    internal=InternalError,
)


# What the command line says: its help, and where it listens.
# What the service and its command line say (cardauth/texts/verifier.toml).
TEXTS = Catalog.load(resources.files("cardauth") / "texts" / "verifier.toml", parents=(CORE,))


# -- the token ----------------------------------------------------------------------


def load_token(path: Path) -> str:
    """The token in ``path``, made there (32 random bytes in hex, mode 0600) if the
    file does not exist. A file that other users may read or write is refused."""
    try:
        _create_token(path)
        # O_NOFOLLOW: a symbolic link planted in the token's place is not followed.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, encoding="ascii") as file:
            status = os.fstat(file.fileno())
            mode = status.st_mode
            if not stat.S_ISREG(mode):
                raise TokenFileError("not a regular file", file=str(path))
            if status.st_uid != os.geteuid():  # its owner could know, or change, it
                raise TokenFileError("the file belongs to another user", file=str(path))
            if mode & 0o077:
                raise TokenFileError(
                    "other users may read it (chmod 600)", file=str(path), mode=oct(mode & 0o777)
                )
            token = file.read(1024).strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(str(exc), file=str(path)) from None
    if not _TOKEN.fullmatch(token):
        raise TokenFileError("a token is 32 to 512 characters of base64 or hex", file=str(path))
    return token


def _create_token(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another copy made it first: it is read as it is
        return
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secrets.token_hex(TOKEN_BYTES) + "\n")


def _authorised(header: str | None, token: bytes) -> bool:
    """``Authorization: Bearer <token>`` (RFC 6750 § 2.1), compared in constant time."""
    if header is None:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    # WSGI headers are latin-1 text: back to their bytes, whatever they hold.
    return hmac.compare_digest(value.strip().encode("latin-1", "replace"), token)


# -- the application ---------------------------------------------------------------


def create_app(
    *,
    verifier: Verifier,
    origins: Collection[Origin],
    store: ChallengeStore,
    token: str,
    language: Language = "fr",
    clock: Callable[[], dt.datetime] = utc_now,
    challenge_lifetime: dt.timedelta = DEFAULT_LIFETIME,
) -> Flask:
    """The service as a WSGI application: ``origins`` are the teleservice's own,
    ``token`` the secret its backend sends, ``language`` that of messages when a
    request does not ask for one (``Accept-Language``)."""
    if not _TOKEN.fullmatch(token):
        raise ServiceConfigError("a token is 32 to 512 characters of base64 or hex")
    expected_token = token.encode("ascii")
    expected_origins = frozenset(origins)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    @app.before_request
    def backend_only() -> None:
        """Browsers first (they are refused whatever they carry), then the Host, then
        the token: nothing is routed, not even a 404, before all three pass."""
        if "Origin" in request.headers or any(
            name.lower().startswith("sec-fetch-") for name, _value in request.headers
        ):
            raise BrowserRefused("requests from web pages are refused")
        if not web.names_this_machine(request.host):
            raise HostForbidden("the Host header is not a loopback name", host=request.host[:100])
        if not _authorised(request.headers.get("Authorization"), expected_token):
            raise Unauthorized("missing or wrong bearer token")

    @app.get("/v1/health")
    def health() -> Response:
        return jsonify({"status": "ok", "version": __version__})

    @app.post("/v1/challenges")
    def challenges() -> Response:
        body = web.json_object(
            request, REFUSALS, allowed=CHALLENGE_MEMBERS, required=CHALLENGE_MEMBERS
        )
        session = _session(body["session"])
        now = clock()
        challenge = issue_challenge(store, session=session, now=now, lifetime=challenge_lifetime)
        expires_at = (now + challenge_lifetime).isoformat(timespec="seconds")
        return jsonify({"challenge": challenge, "expires_at": expires_at})

    @app.post("/v1/verify")
    def verify() -> Response:
        body = web.json_object(request, REFUSALS, allowed=VERIFY_MEMBERS, required=VERIFY_REQUIRED)
        for member in ("assertion", "challenge"):
            if not isinstance(body[member], str):
                raise BadRequest(f"{member} is a string", member=member)
        require_vitale = body.get("require_vitale", False)
        if type(require_vitale) is not bool:
            raise BadRequest("require_vitale is true or false", member="require_vitale")
        login = verifier.verify(
            body["assertion"],
            expected_origins=expected_origins,
            expected_challenge=body["challenge"],
            session=_session(body["session"]),
            challenges_store=store,
            now=clock(),
            require_vitale=require_vitale,
        )
        return jsonify(login.to_dict())

    def answer(error: CardAuthError, status: int) -> Response:
        return _error_response(error, language, status)

    web.install_refusals(app, REFUSALS, answer, request)

    @app.after_request
    def headers(response: Response) -> Response:
        return web.secure(response)  # no-store: identities, challenges

    return app


def _session(value: object) -> str:
    if not isinstance(value, str) or not _SESSION.fullmatch(value):
        raise BadRequest("session is 16 to 128 visible ASCII characters", member="session")
    return value


def _error_response(error: CardAuthError, default_language: Language, status: int) -> Response:
    language = web.language_of(request, default_language)
    message = TEXTS.describe(error, language)
    response = web.json_answer(web.error_body(error, message), status)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="cardauth-verifier"'
    return response


# -- the command ---------------------------------------------------------------------


def require_loopback(host: str) -> None:
    """An IPv4 loopback address, or NotLoopback: a remote deployment goes behind
    the teleservice's own TLS proxy, never straight onto the network."""
    if not is_loopback_address(host):
        raise NotLoopback("the verifier listens on a loopback address only", host=host[:80])


def build_parser(language: Language) -> ArgumentParser:
    """The command line, its help and argparse's own messages in ``language``."""

    def text(key: str, **values: object) -> str:
        return TEXTS.label(key, language, **values)

    parser = ArgumentParser(
        prog="cardauth-verifier", description=text("description"), language=language
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"cardauth {__version__}",
        help=label("help.version", language),
    )
    parser.add_argument(
        "--trust",
        required=True,
        type=Path,
        metavar=label("metavar.directory", language),
        help=text("trust"),
    )
    parser.add_argument(
        "--origin",
        required=True,
        action="append",
        metavar=label("metavar.origin", language),
        help=text("origin"),
    )
    parser.add_argument(
        "--allow-development-origins",
        action="store_true",
        help=label("help.allow_development_origins", language),
    )
    parser.add_argument(
        "--token-file",
        required=True,
        type=Path,
        metavar=label("metavar.file", language),
        help=text("token_file"),
    )
    parser.add_argument(
        "--challenge-store",
        default="memory",
        metavar=text("metavar.store"),
        help=text("challenge_store"),
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar=label("metavar.address", language),
        help=text("host"),
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=text("port", port=DEFAULT_PORT)
    )
    parser.add_argument("--lang", choices=LANGUAGES, help=label("help.lang", language))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(requested_language(argv)).parse_args(argv)
    language = choose_language(args.lang)
    try:
        return serve(args, language)
    except CardAuthError as error:
        print(TEXTS.error_line(error, language), file=sys.stderr)
        return EXIT_ERROR


def serve(args: argparse.Namespace, language: Language) -> int:
    """Serve until SIGINT or SIGTERM. The handler only sets an event: this thread
    closes the server (Served.close must not run inside a signal handler)."""
    require_loopback(args.host)
    token = load_token(args.token_file)
    origins = parse_origins(args.origin, allow_development=args.allow_development_origins)
    verifier = Verifier.from_directory(args.trust)
    refresher = refresh_in_background(verifier.revocation, args.trust / "crls")
    app = create_app(
        verifier=verifier,
        origins=origins,
        store=store_from_setting(args.challenge_store),
        token=token,
        language=language,
    )
    stopping = stop_on_signals()
    listener = listen(args.host, args.port)
    served = Served(
        app,
        listener,
        ident="cardauth-verifier",
        threads=THREADS,
        channel_timeout=CHANNEL_TIMEOUT,
        max_request_body_size=2 * MAX_BODY,  # beyond, waitress answers; below, we do (JSON)
    ).start("cardauth-verifier")
    try:
        port = listener.getsockname()[1]
        url = f"http://{args.host}:{port}"
        listed = ", ".join(sorted(o.value for o in origins))
        print(TEXTS.label("listening", language, url=url, origins=listed), flush=True)
        stopping.wait()
    finally:
        served.close()
        if refresher is not None:
            refresher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
