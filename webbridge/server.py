"""``cardauth-bridge``: run the bridge, or manage the sites it trusts.

    cardauth-bridge [--config FILE] [--port N] [--allow-origin ORIGIN]...
                    [--simulate [--personas doctor,patient]]
    cardauth-bridge consents list [--json]
    cardauth-bridge consents revoke ORIGIN

``--lang``, ``--config`` and ``--state-dir`` go before ``consents`` or after it.

The bridge listens on 127.0.0.1 only (a loopback address is the only one it
accepts) and is served by waitress, a production WSGI server. Messages are in
French by default (``--lang en`` or ``CARDAUTH_LANG=en`` for English).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cardauth import __version__
from cardauth.arguments import ArgumentParser, requested_language
from cardauth.errors import CardAuthError
from cardauth.messages import LANGUAGES, Language, choose_language, label
from cardauth.origins import Origin
from cardauth.serving import CannotListen as PortTaken
from cardauth.serving import Served, is_loopback_address, listen, stop_on_signals
from cardauth.transport.backends import open_backend, personas_of
from cardauth.transport.base import ReaderBackend
from cardauth.trust import utc_now
from webbridge import messages
from webbridge.app import create_app
from webbridge.cards import CardService
from webbridge.ciba import Follower, Followers, post_json
from webbridge.config import LOOPBACK, BridgeConfig, load_config
from webbridge.consent import ConsentStore
from webbridge.errors import CannotListen, NotLoopback
from webbridge.guards import MAX_BODY

THREADS = 16  # event streams and long polls each hold one while they last
CHANNEL_TIMEOUT = 30  # seconds a connection may stay silent (event streams send keep-alives)
EXIT_ERROR = 1


def build_parser(language: Language) -> ArgumentParser:
    """The command line, its help and argparse's own messages in ``language``."""

    def text(key: str) -> str:
        return messages.label(key, language)

    parser = ArgumentParser(
        prog="cardauth-bridge", description=text("cli.description"), language=language
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"cardauth-bridge {__version__}",
        help=label("help.version", language),
    )
    # Before the command or after it: cardauth-bridge consents list --state-dir DIR.
    parser.add_shared_argument("--lang", choices=LANGUAGES, help=label("help.lang", language))
    parser.add_shared_argument(
        "--config", type=Path, metavar=label("metavar.file", language), help=text("cli.config")
    )
    parser.add_shared_argument(
        "--state-dir",
        type=Path,
        metavar=label("metavar.directory", language),
        help=text("cli.state_dir"),
    )
    _serve_options(parser, language)
    commands = parser.add_subparsers(dest="command", metavar=label("metavar.command", language))
    consents = commands.add_parser("consents", help=text("cli.consents"))
    actions = consents.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help=text("cli.consents.list"))
    listing.add_argument("--json", action="store_true", help=label("help.json", language))
    revoke = actions.add_parser("revoke", help=text("cli.consents.revoke"))
    revoke.add_argument(
        "origin", metavar=label("metavar.origin", language), help=text("cli.consents.origin")
    )
    return parser


def _serve_options(parser: argparse.ArgumentParser, language: Language) -> None:
    def text(key: str) -> str:
        return messages.label(key, language)

    parser.add_argument(
        "--host",
        default=LOOPBACK,
        metavar=label("metavar.address", language),
        help=text("cli.host"),
    )
    parser.add_argument("--port", type=int, help=text("cli.port"))
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar=label("metavar.origin", language),
        help=text("cli.allow_origin"),
    )
    parser.add_argument(
        "--allow-development-origins",
        action="store_true",
        help=label("help.allow_development_origins", language),
    )
    parser.add_argument(
        "--oidc-provider",
        action="append",
        default=[],
        metavar=label("metavar.issuer", language),
        help=text("cli.oidc_provider"),
    )
    parser.add_argument("--simulate", action="store_true", help=label("help.simulate", language))
    parser.add_argument(
        "--personas", default="", metavar="P1,P2", help=label("help.personas", language)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(requested_language(argv)).parse_args(argv)
    language = choose_language(args.lang)
    try:
        config = load_config(args.config)
        if args.state_dir is not None:
            config = config.with_overrides(state_dir=args.state_dir)
        if args.command == "consents":
            return _consents(args, config, language)
        return serve(args, config, language)
    except CardAuthError as error:
        print(messages.error_line(error, language), file=sys.stderr)
        return EXIT_ERROR


class BridgeServer:
    """The bridge on ``backend``'s readers, served by waitress on a loopback
    address: :meth:`start` serves in a thread until :meth:`close`."""

    def __init__(
        self, config: BridgeConfig, backend: ReaderBackend, *, host: str = LOOPBACK
    ) -> None:
        _require_loopback(host)
        self.url = f"http://{host}:{config.port}"
        try:
            listener = listen(host, config.port)
        except PortTaken as error:
            raise CannotListen(error.message, port=config.port) from None
        self.cards = CardService(
            backend,
            pin_idle_seconds=config.pin_idle_seconds,
            pin_entry_timeout=config.pin_entry_timeout_seconds,
        ).start()
        self.followers = Followers([Follower(p, post_json) for p in config.oidc_providers])
        app = create_app(
            config=config,
            cards=self.cards,
            consents=ConsentStore(config.state_dir),
            host=host,
            followers=self.followers,
        )
        self._served = Served(
            app,
            listener,
            ident="cardauth-bridge",
            threads=THREADS,
            channel_timeout=CHANNEL_TIMEOUT,
            max_request_body_size=MAX_BODY,
        )

    def start(self) -> BridgeServer:
        self._served.start("cardauth-bridge")
        self.followers.start()
        return self

    def close(self) -> None:
        """Stop serving (open event streams and polls end), then stop watching the
        readers; the backend stays its owner's to close."""
        self._served.close()
        self.followers.stop()
        self.cards.stop()


def serve(args: argparse.Namespace, config: BridgeConfig, language: Language) -> int:
    host = args.host
    config = config.with_overrides(
        port=args.port,
        origins=args.allow_origin,
        allow_development_origins=True if args.allow_development_origins else None,
        oidc_providers=args.oidc_provider,
    )
    backend = open_backend(simulate=args.simulate, personas=personas_of(args.personas))
    stopping = stop_on_signals()
    try:
        bridge = BridgeServer(config, backend, host=host).start()
        try:
            print(messages.label("cli.listening", language, url=bridge.url), flush=True)
            allowed = ", ".join(o.value for o in config.allowed_origins)
            allowed = allowed or messages.label("cli.origins_none", language)
            print(messages.label("cli.origins", language, origins=allowed), flush=True)
            for provider in config.oidc_providers:
                page = f"{bridge.url}/ciba"
                line = messages.label("cli.follows", language, issuer=provider.issuer, page=page)
                print(line, flush=True)
            stopping.wait()
        finally:
            bridge.close()
    finally:
        backend.close()
    return 0


def _require_loopback(host: str) -> None:
    if not is_loopback_address(host):
        raise NotLoopback("the bridge listens on a loopback address only", host=host[:80])


def _consents(args: argparse.Namespace, config: BridgeConfig, language: Language) -> int:
    store = ConsentStore(config.state_dir)
    now = utc_now()
    if args.action == "list":
        found = store.list(now=now)
        if args.json:
            print(json.dumps({"consents": [c.to_dict() for c in found]}, indent=2))
        elif not found:
            print(messages.label("cli.no_consent", language))
        for consent in found if not args.json else ():
            date = consent.expires_at.astimezone(dt.UTC).date().isoformat()
            print(messages.label("cli.until", language, origin=consent.origin.value, date=date))
        return 0
    origin = Origin.parse(args.origin, allow_development=True)  # else origin.invalid
    if store.revoke(origin):
        print(messages.label("cli.revoked", language, origin=origin.value))
        return 0
    print(messages.label("cli.not_found", language, origin=origin.value), file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
