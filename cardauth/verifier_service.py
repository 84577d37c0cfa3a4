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
import json
import os
import re
import secrets
import signal
import stat
import sys
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import (
    HTTPException,
    RequestEntityTooLarge,
)
from werkzeug.exceptions import MethodNotAllowed as RouteMethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound

from cardauth import __version__
from cardauth.arguments import ArgumentParser, requested_language
from cardauth.challenges import (
    DEFAULT_LIFETIME,
    ChallengeStore,
    issue_challenge,
    store_from_setting,
)
from cardauth.errors import AssertionRefused, CardAuthError
from cardauth.messages import LANGUAGES, Language, choose_language, describe, error_line, label
from cardauth.origins import Origin, parse_origins
from cardauth.revocation import refresh_in_background
from cardauth.serving import Served, is_loopback_address, listen
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


MESSAGES: Mapping[str, Mapping[Language, str]] = {
    "verifier.error": {
        "fr": "Requête refusée par le vérificateur (détail : {message}).",
        "en": "Request refused by the verifier (detail: {message}).",
    },
    "verifier.config": {
        "fr": "Configuration du vérificateur invalide : vérifiez les options de la commande "
        "(détail : {message}).",
        "en": "Invalid verifier configuration: check the command's options (detail: {message}).",
    },
    "verifier.not_loopback": {
        "fr": "Le vérificateur n'écoute que sur une adresse de bouclage (127.0.0.1), "
        "pas sur {host}. Pour un accès à distance, placez-le derrière le proxy TLS "
        "du téléservice.",
        "en": "The verifier listens on a loopback address (127.0.0.1) only, not on {host}. "
        "For remote access, put it behind the teleservice's own TLS proxy.",
    },
    "verifier.token_file": {
        "fr": "Fichier de jeton {file} inutilisable : ce doit être un fichier ordinaire de ce "
        "compte, lisible par lui seul (chmod 600), qui contient le jeton (détail : {message}).",
        "en": "Token file {file} cannot be used: it must be a regular file of this account, "
        "readable by it alone (chmod 600), that holds the token (detail: {message}).",
    },
    "verifier.unauthorized": {
        "fr": "Jeton absent ou invalide (en-tête Authorization: Bearer).",
        "en": "Missing or wrong token (Authorization: Bearer header).",
    },
    "verifier.browser": {
        "fr": "Le vérificateur ne répond pas aux navigateurs : seul le serveur du "
        "téléservice l'appelle.",
        "en": "The verifier does not answer browsers: only the teleservice's server calls it.",
    },
    "verifier.host": {
        "fr": "En-tête Host refusé : le vérificateur ne répond qu'à une adresse de bouclage.",
        "en": "Host header refused: the verifier answers on a loopback address only.",
    },
    "verifier.content_type": {
        "fr": "Le corps doit être du JSON (Content-Type: application/json).",
        "en": "The body must be JSON (Content-Type: application/json).",
    },
    "verifier.too_large": {
        "fr": "Corps trop grand (64 Kio au plus).",
        "en": "Body too large (64 KiB at most).",
    },
    "verifier.bad_request": {
        "fr": "Requête invalide : le corps n'est pas l'objet JSON que prend cet appel "
        "(détail : {message}).",
        "en": "Bad request: the body is not the JSON object this call takes (detail: {message}).",
    },
    "verifier.not_found": {
        "fr": "Adresse inconnue du vérificateur (l'API est sous /v1/).",
        "en": "No such address on the verifier (the API is under /v1/).",
    },
    "verifier.method_not_allowed": {
        "fr": "Méthode non acceptée à cette adresse.",
        "en": "Method not allowed on this address.",
    },
    "verifier.internal": {
        "fr": "Erreur interne du vérificateur.",
        "en": "Internal error of the verifier.",
    },
}

# What the command line says: its help, and where it listens.
TEXTS: Mapping[str, Mapping[Language, str]] = {
    "description": {
        "fr": "Vérifier les preuves de connexion par carte pour le serveur d'un téléservice, "
        "en HTTP (adresse locale seulement, jeton d'accès).",
        "en": "Verify card assertions over HTTP for a teleservice's backend "
        "(loopback only, bearer token).",
    },
    "trust": {
        "fr": "dossier de confiance (cardauth-sim export-trust en écrit un pour la PKI de test)",
        "en": "trust directory (cardauth-sim export-trust writes one for the test PKI)",
    },
    "origin": {
        "fr": "une origine du téléservice, https://nom[:port] (option répétable)",
        "en": "an origin of the teleservice, https://host[:port] (repeatable)",
    },
    "token_file": {
        "fr": "le jeton d'accès ; créé s'il manque (32 octets aléatoires, en hexadécimal, "
        "mode 0600)",
        "en": "the bearer token; made (32 random bytes, hex, mode 0600) if absent",
    },
    "challenge_store": {
        "fr": "memory (par défaut), sqlite:///chemin/du/fichier.db ou redis://hôte:port/base",
        "en": "memory (default), sqlite:///path/to/file.db or redis://host:port/db",
    },
    "host": {
        "fr": "adresse locale d'écoute (par défaut : 127.0.0.1)",
        "en": "a loopback address (default: 127.0.0.1)",
    },
    "port": {
        "fr": "port d'écoute (par défaut : {port})",
        "en": "port to listen on (default: {port})",
    },
    "metavar.store": {"fr": "STOCKAGE", "en": "STORE"},
    "listening": {
        "fr": "cardauth-verifier écoute sur {url} (origines : {origins})",
        "en": "cardauth-verifier listening on {url} (origins: {origins})",
    },
}


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
        if not _loopback_host(request.host):
            raise HostForbidden("the Host header is not a loopback name", host=request.host[:100])
        if not _authorised(request.headers.get("Authorization"), expected_token):
            raise Unauthorized("missing or wrong bearer token")

    @app.get("/v1/health")
    def health() -> Response:
        return jsonify({"status": "ok", "version": __version__})

    @app.post("/v1/challenges")
    def challenges() -> Response:
        body = _json_body(CHALLENGE_MEMBERS, CHALLENGE_MEMBERS)
        session = _session(body["session"])
        now = clock()
        challenge = issue_challenge(store, session=session, now=now, lifetime=challenge_lifetime)
        expires_at = (now + challenge_lifetime).isoformat(timespec="seconds")
        return jsonify({"challenge": challenge, "expires_at": expires_at})

    @app.post("/v1/verify")
    def verify() -> Response:
        body = _json_body(VERIFY_MEMBERS, VERIFY_REQUIRED)
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

    @app.errorhandler(CardAuthError)
    def refused(error: CardAuthError) -> Response:
        return _error_response(error, language)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if isinstance(error, RequestEntityTooLarge):
            return _error_response(BodyTooLarge("the body is too large"), language)
        if isinstance(error, RouteNotFound):
            return _error_response(NotFound(request.path[:200]), language)
        if isinstance(error, RouteMethodNotAllowed):
            response = _error_response(MethodNotAllowed(request.method), language)
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
            return response
        return _error_response(BadRequest(error.name), language, status=error.code or 400)

    @app.errorhandler(Exception)
    def failed(error: Exception) -> Response:
        app.logger.exception("unexpected error")  # the details stay in the log
        return _error_response(InternalError(type(error).__name__), language)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"  # identities, challenges
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def _loopback_host(host: str) -> bool:
    """A Host header naming this machine (localhost, [::1] or an IPv4 loopback
    address), with or without a port."""
    name = host if host.endswith("]") else host.rsplit(":", 1)[0]
    return name in ("localhost", "[::1]") or is_loopback_address(name)


def _json_body(allowed: frozenset[str], required: frozenset[str]) -> dict[str, Any]:
    """A JSON object of at most MAX_BODY bytes with the call's members and no other:
    unknown or repeated members, NaN and Infinity are refused, not ignored."""
    if not request.is_json:
        raise ContentTypeRequired("the body must be application/json")
    data = request.get_data(cache=False)  # RequestEntityTooLarge past MAX_BODY
    try:
        body = json.loads(data, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSON, UTF-8, duplicates, nesting
        raise BadRequest("the body is not a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown member {unknown[0][:40]!r}")
    missing = sorted(required - set(body))
    if missing:
        raise BadRequest(f"missing member {missing[0]!r}")
    return body


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member is repeated")
    return members


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _session(value: object) -> str:
    if not isinstance(value, str) or not _SESSION.fullmatch(value):
        raise BadRequest("session is 16 to 128 visible ASCII characters", member="session")
    return value


def _error_response(
    error: CardAuthError, default_language: Language, *, status: int | None = None
) -> Response:
    requested = request.accept_languages.best_match(["fr", "en"])
    language = choose_language(requested) if requested else default_language
    message = describe(error, language, more=MESSAGES)
    response = jsonify({"error": {"code": error.code, "message": message}})
    response.status_code = status or http_status(error)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="cardauth-verifier"'
    return response


def http_status(error: CardAuthError) -> int:
    """401 for a refused assertion, 503 when the service cannot check now."""
    if isinstance(error, VerifierServiceError):
        return error.status
    if isinstance(error, AssertionRefused):
        return 503 if error.service_unavailable else 401
    return 500


# -- the command ---------------------------------------------------------------------


def require_loopback(host: str) -> None:
    """An IPv4 loopback address, or NotLoopback: a remote deployment goes behind
    the teleservice's own TLS proxy, never straight onto the network."""
    if not is_loopback_address(host):
        raise NotLoopback("the verifier listens on a loopback address only", host=host[:80])


def build_parser(language: Language) -> ArgumentParser:
    """The command line, its help and argparse's own messages in ``language``."""

    def text(key: str, **values: object) -> str:
        return TEXTS[key][language].format(**values)

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
        help=label("help.allow_development_origin", language),
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
        print(error_line(error, language, more=MESSAGES), file=sys.stderr)
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
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
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
        print(TEXTS["listening"][language].format(url=url, origins=listed), flush=True)
        stopping.wait()
    finally:
        served.close()
        if refresher is not None:
            refresher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
