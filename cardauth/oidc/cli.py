"""``cardauth-oidc``: the OpenID Connect provider on card login (docs/oidc.md).

    cardauth-oidc keys init --keys /etc/cardauth-oidc/keys.json
    cardauth-oidc serve --origin https://idp.example --trust /etc/cardauth-oidc/trust \\
        --keys /etc/cardauth-oidc/keys.json --clients /etc/cardauth-oidc/clients.toml \\
        --store redis://127.0.0.1:6379/0
    cardauth-oidc keys rotate --keys ... [--lead-hours 24]   # a new key, signing later
    cardauth-oidc keys prune --keys ...                      # drop keys no longer published

It listens on a loopback address (127.0.0.1) only, behind the service's TLS front,
like cardauth-verifier; several processes share one Redis (``--store``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from cardauth import __version__
from cardauth.arguments import ArgumentParser, requested_language
from cardauth.errors import CardAuthError
from cardauth.messages import LANGUAGES, Language, choose_language, label
from cardauth.oidc.app import TEXTS, create_app
from cardauth.oidc.backchannel import Sweeper
from cardauth.oidc.errors import ConfigError
from cardauth.oidc.keys import init_keys, prune_keys, rotate_keys
from cardauth.oidc.settings import DEFAULT_BRIDGE, DEFAULT_PORT, ProviderSettings
from cardauth.serving import Served, is_loopback_address, listen, stop_on_signals
from cardauth.trust import utc_now

EXIT_ERROR = 1
THREADS = 16


def build_parser(language: Language) -> ArgumentParser:
    def text(key: str, **values: object) -> str:
        return TEXTS.label(key, language, **values)

    parser = ArgumentParser(prog="cardauth-oidc", description=text("help"), language=language)
    parser.add_argument(
        "--version",
        action="version",
        version=f"cardauth {__version__}",
        help=label("help.version", language),
    )
    parser.add_shared_argument("--lang", choices=LANGUAGES, help=label("help.lang", language))
    commands = parser.add_subparsers(
        dest="command", required=True, metavar=label("metavar.command", language)
    )
    serve = commands.add_parser("serve", help=text("help.serve"), description=text("help.serve"))
    serve.add_argument("--origin", required=True, help=text("help.origin"))
    serve.add_argument("--trust", required=True, type=Path, help=label("help.trust", language))
    serve.add_argument("--keys", required=True, type=Path, help=text("help.keys"))
    serve.add_argument("--clients", required=True, type=Path, help=text("help.clients"))
    serve.add_argument("--store", default="memory", help=text("help.store"))
    serve.add_argument("--bridge-url", default=DEFAULT_BRIDGE, help=text("help.bridge_url"))
    serve.add_argument("--audit-log", type=Path, help=text("help.audit_log"))
    serve.add_argument(
        "--allow-development-origins",
        action="store_true",
        help=label("help.allow_development_origins", language),
    )
    serve.add_argument("--host", default="127.0.0.1", help=text("help.host"))
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=text("help.port"))
    keys = commands.add_parser("keys", help=text("help.keys_command"))
    action = keys.add_subparsers(dest="action", required=True)
    for name in ("init", "rotate", "prune"):
        sub = action.add_parser(name, help=text(f"help.keys.{name}"))
        sub.add_argument("--keys", required=True, type=Path, help=text("help.keys"))
        if name == "rotate":
            sub.add_argument("--lead-hours", type=float, default=24.0, help=text("help.lead"))
            sub.add_argument("--keep-hours", type=float, default=1.0, help=text("help.keep"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(requested_language(argv)).parse_args(argv)
    language = choose_language(getattr(args, "lang", None))
    try:
        if args.command == "keys":
            return manage_keys(args, language)
        return serve(args, language)
    except CardAuthError as error:
        print(TEXTS.error_line(error, language), file=sys.stderr, flush=True)
        return EXIT_ERROR


def manage_keys(args: argparse.Namespace, language: Language) -> int:
    now = utc_now()
    if args.action == "init":
        made = init_keys(args.keys, now)
    elif args.action == "rotate":
        made = rotate_keys(
            args.keys,
            now,
            lead=dt.timedelta(hours=args.lead_hours),
            keep=dt.timedelta(hours=args.keep_hours),
        )
    else:
        made = prune_keys(args.keys, now)
    for key in made:
        print(TEXTS.label("key_line", language, kid=key.kid, alg=key.alg,
                          signs_from=key.signs_from.isoformat()))  # fmt: skip
    return 0


def serve(args: argparse.Namespace, language: Language) -> int:
    if not is_loopback_address(args.host):
        raise ConfigError("cardauth-oidc listens on a loopback address only", host=args.host[:60])
    settings = ProviderSettings(
        origin=args.origin,
        trust_dir=args.trust,
        keys_file=args.keys,
        clients_file=args.clients,
        store=args.store,
        bridge_url=args.bridge_url,
        allow_development_origins=args.allow_development_origins,
        audit_log=args.audit_log,
    )
    app = create_app(settings)
    provider = app.extensions["cardauth_oidc"]
    sweeper = Sweeper(provider.end_expired_sessions, settings.session_sweep_seconds).start()
    stopping = stop_on_signals()
    listener = listen(args.host, args.port)
    served = Served(app, listener, ident="cardauth-oidc", threads=THREADS).start("cardauth-oidc")
    try:
        port = listener.getsockname()[1]
        print(
            TEXTS.label(
                "listening", language, url=f"http://{args.host}:{port}", issuer=settings.issuer
            ),
            flush=True,
        )
        stopping.wait()
    finally:
        served.close()
        sweeper.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
