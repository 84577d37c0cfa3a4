"""``cardauth-bridge``: run the bridge, or manage the sites it trusts.

    cardauth-bridge [--config FILE] [--port N] [--allow-origin ORIGIN]...
                    [--simulate [--personas doctor,patient]]
    cardauth-bridge consents list [--json]
    cardauth-bridge consents revoke ORIGIN

The bridge listens on 127.0.0.1 only (a loopback address is the only one it
accepts) and is served by waitress, a production WSGI server. Messages are in
French by default (``--lang en`` or ``CARDAUTH_LANG=en`` for English).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cardauth import __version__
from cardauth.errors import CardAuthError, InvalidOrigin
from cardauth.messages import LANGUAGES, Language, choose_language
from cardauth.origins import Origin
from cardauth.serving import CannotListen as PortTaken
from cardauth.serving import Served, is_loopback_address, listen
from cardauth.transport.base import ReaderBackend
from cardauth.trust import utc_now
from webbridge import messages
from webbridge.app import create_app
from webbridge.cards import CardService
from webbridge.config import LOOPBACK, BridgeConfig, load_config
from webbridge.consent import ConsentStore
from webbridge.errors import BridgeConfigError, CannotListen, NotLoopback
from webbridge.guards import MAX_BODY

THREADS = 16  # event streams and long polls each hold one while they last
CHANNEL_TIMEOUT = 30  # seconds a connection may stay silent (event streams send keep-alives)
EXIT_ERROR = 1

_SAYS: dict[str, dict[Language, str]] = {
    "listening": {
        "fr": "Pont cardauth à l'écoute sur {url} (Ctrl-C pour arrêter).",
        "en": "cardauth bridge listening on {url} (Ctrl-C to stop).",
    },
    "origins": {"fr": "Sites autorisés : {origins}", "en": "Allowed sites: {origins}"},
    "none": {
        "fr": "aucun (accord demandé au professionnel)",
        "en": "none (the professional is asked)",
    },
    "revoked": {"fr": "Accord retiré : {origin}", "en": "Approval withdrawn: {origin}"},
    "not_found": {"fr": "Aucun accord pour {origin}", "en": "No approval for {origin}"},
    "no_consent": {"fr": "Aucun site autorisé.", "en": "No approved site."},
    "until": {"fr": "{origin} jusqu'au {date}", "en": "{origin} until {date}"},
}


def say(key: str, language: Language, **values: object) -> str:
    return _SAYS[key][language].format(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardauth-bridge",
        description="The local web bridge: card login for web teleservices.",
    )
    parser.add_argument("--version", action="version", version=f"cardauth-bridge {__version__}")
    parser.add_argument("--lang", choices=LANGUAGES, help="language of messages (default: fr)")
    parser.add_argument(
        "--config", type=Path, help="settings file (default: ~/.config/cardauth/bridge.toml)"
    )
    parser.add_argument("--state-dir", type=Path, help="where approvals are kept")
    _serve_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    consents = commands.add_parser("consents", help="list or withdraw approvals of sites")
    actions = consents.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the approved sites and until when")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    revoke = actions.add_parser("revoke", help="withdraw a site's approval")
    revoke.add_argument("origin", help="the site's origin, https://host[:port]")
    return parser


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=LOOPBACK, help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 24790)")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a site allowed without asking (repeatable)",
    )
    parser.add_argument(
        "--allow-development-origins",
        action="store_true",
        help="accept http://localhost and http://127.0.0.1 origins",
    )
    parser.add_argument(
        "--simulate", action="store_true", help="in-process virtual cards instead of PC/SC"
    )
    parser.add_argument(
        "--personas",
        default="",
        metavar="P1,P2",
        help="personas in the simulated slots (default: doctor,patient)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    language = choose_language(args.lang)
    try:
        config = load_config(args.config)
        if args.state_dir is not None:
            config = config.with_overrides(state_dir=args.state_dir)
        if args.command == "consents":
            return _consents(args, config, language)
        return serve(args, config, language)
    except CardAuthError as error:
        print(
            f"{'Erreur' if language == 'fr' else 'Error'} [{error.code}] "
            f"{messages.describe(error, language)}",
            file=sys.stderr,
        )
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
        app = create_app(
            config=config, cards=self.cards, consents=ConsentStore(config.state_dir), host=host
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
        return self

    def close(self) -> None:
        """Stop serving (open event streams and polls end), then stop watching the
        readers; the backend stays its owner's to close."""
        self._served.close()
        self.cards.stop()


def serve(args: argparse.Namespace, config: BridgeConfig, language: Language) -> int:
    host = args.host
    config = config.with_overrides(
        port=args.port,
        origins=args.allow_origin,
        allow_development_origins=True if args.allow_development_origins else None,
    )
    backend = _backend(args.simulate, args.personas)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        bridge = BridgeServer(config, backend, host=host).start()
        try:
            print(say("listening", language, url=bridge.url), flush=True)
            allowed = ", ".join(o.value for o in config.allowed_origins) or say("none", language)
            print(say("origins", language, origins=allowed), flush=True)
            stopping.wait()
        finally:
            bridge.close()
    finally:
        backend.close()
    return 0


def _require_loopback(host: str) -> None:
    if not is_loopback_address(host):
        raise NotLoopback("the bridge listens on a loopback address only", host=host[:80])


def _backend(simulate: bool, personas: str) -> ReaderBackend:
    if not simulate:
        from cardauth.transport.pcsc import PcscBackend  # noqa: PLC0415 - pyscard only if used

        return PcscBackend()
    from simulator.workstation import simulated_readers  # noqa: PLC0415 - a development tool

    return simulated_readers([p for p in personas.split(",") if p])


def _consents(args: argparse.Namespace, config: BridgeConfig, language: Language) -> int:
    store = ConsentStore(config.state_dir)
    now = utc_now()
    if args.action == "list":
        found = store.list(now=now)
        if args.json:
            print(json.dumps({"consents": [c.to_dict() for c in found]}, indent=2))
        elif not found:
            print(say("no_consent", language))
        for consent in found if not args.json else ():
            date = consent.expires_at.astimezone(dt.UTC).date().isoformat()
            print(say("until", language, origin=consent.origin.value, date=date))
        return 0
    try:
        origin = Origin.parse(args.origin, allow_development=True)
    except InvalidOrigin as error:
        raise BridgeConfigError(f"not an origin: {error.message}") from None
    if store.revoke(origin):
        print(say("revoked", language, origin=origin.value))
        return 0
    print(say("not_found", language, origin=origin.value), file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
