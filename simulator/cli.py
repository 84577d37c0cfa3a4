"""The ``cardauth-sim`` command.

``cardauth-sim --vpcd`` plugs the default doctor's CPS card into the first vpcd
slot of pcscd and the default patient's Vitale card into the second, and keeps
them there until stopped (Ctrl-C or SIGTERM). While it runs, ``cardauth-sim
insert|remove|swap|status`` move cards from another terminal.
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
from typing import Any

from cardauth.errors import CardAuthError
from cardauth.messages import LANGUAGES, Language, choose_language, describe
from simulator import control
from simulator.ocsp import OcspResponder
from simulator.personas import DEFAULT_CPS, DEFAULT_VITALE, bundled
from simulator.trust_export import export_trust
from simulator.vpcd import DEFAULT_PORTS
from simulator.workstation import vpcd_workstation

DEFAULT_OCSP_PORT = 35980

TEXTS: dict[str, dict[Language, str]] = {
    "plugged": {
        "fr": "Cartes virtuelles branchées sur pcscd (vpcd {host}:{port} et {port2}) :",
        "en": "Virtual cards plugged into pcscd (vpcd {host}:{port} and {port2}):",
    },
    "slot": {"fr": "  emplacement {slot} : {what}", "en": "  slot {slot}: {what}"},
    "empty": {"fr": "vide", "en": "empty"},
    "stop": {
        "fr": "Ctrl-C pour arrêter. Depuis un autre terminal : cardauth-sim status | insert "
        "SLOT PERSONA | remove SLOT | swap",
        "en": "Ctrl-C to stop. From another terminal: cardauth-sim status | insert SLOT "
        "PERSONA | remove SLOT | swap",
    },
    "stopped": {
        "fr": "Cartes retirées, simulateur arrêté.",
        "en": "Cards removed, simulator stopped.",
    },
    "error": {"fr": "Erreur", "en": "Error"},
    "exported": {
        "fr": "Confiance de la PKI de TEST écrite dans {directory} (pour cardauth verify --trust).",
        "en": "TEST PKI trust written to {directory} (for cardauth verify --trust).",
    },
    "ocsp": {
        "fr": "Répondeur OCSP de la PKI de TEST sur {url} ; Ctrl-C pour arrêter.",
        "en": "TEST PKI OCSP responder on {url}; Ctrl-C to stop.",
    },
}


def _text(key: str, language: Language, **values: object) -> str:
    return TEXTS[key][language].format(**values)


def _port(text: str) -> int:
    """A TCP port whose successor (the second slot) is a port too."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a port number") from None
    if not 1 <= port <= 65534:
        raise argparse.ArgumentTypeError("a port from 1 to 65534 (the second slot is port + 1)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardauth-sim",
        description="Virtual CPS and Vitale cards for development and tests.",
    )
    parser.add_argument("--lang", choices=LANGUAGES, help="language of messages (default: fr)")
    parser.add_argument("--control", type=Path, help="control socket path")
    parser.add_argument(
        "--vpcd", action="store_true", help="plug virtual cards into pcscd through vpcd and wait"
    )
    parser.add_argument("--cps", default=DEFAULT_CPS, help=f"CPS persona (default: {DEFAULT_CPS})")
    parser.add_argument(
        "--vitale", default=DEFAULT_VITALE, help=f"Vitale persona (default: {DEFAULT_VITALE})"
    )
    parser.add_argument("--swap", action="store_true", help="Vitale in slot 0, CPS in slot 1")
    parser.add_argument("--no-cps", action="store_true", help="start without the CPS card")
    parser.add_argument("--no-vitale", action="store_true", help="start without the Vitale card")
    parser.add_argument("--vpcd-host", default="127.0.0.1", help="vpcd address (loopback only)")
    parser.add_argument(
        "--vpcd-port", type=_port, default=DEFAULT_PORTS[0], help="port of vpcd's first slot"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    personas = commands.add_parser("personas", help="list the bundled personas")
    personas.add_argument("--json", action="store_true")
    commands.add_parser("status", help="what the running simulator has in each slot")
    insert = commands.add_parser("insert", help="insert a persona's card into a slot")
    insert.add_argument("slot", type=int)
    insert.add_argument("persona")
    remove = commands.add_parser("remove", help="remove the card from a slot")
    remove.add_argument("slot", type=int)
    commands.add_parser("swap", help="exchange the cards of the two slots")
    export = commands.add_parser(
        "export-trust", help="write the test PKI's roots, CRLs and settings for cardauth verify"
    )
    export.add_argument("directory", type=Path)
    export.add_argument("--ocsp-url", help="the OCSP responder to name (cardauth-sim ocsp)")
    responder = commands.add_parser("ocsp", help="run the test PKI's OCSP responder on loopback")
    responder.add_argument("--port", type=_port, default=DEFAULT_OCSP_PORT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    language = choose_language(args.lang)
    try:
        if args.command == "personas":
            return _personas(args.json)
        if args.command in ("status", "insert", "remove", "swap"):
            return _control(args)
        if args.command == "export-trust":
            export_trust(args.directory, now=dt.datetime.now(dt.UTC), ocsp_url=args.ocsp_url)
            print(_text("exported", language, directory=args.directory))
            return 0
        if args.command == "ocsp":
            return _run_ocsp(args.port, language)
        if args.vpcd:
            return _run_vpcd(args, language)
    except CardAuthError as error:
        print(
            f"{_text('error', language)} [{error.code}] : {describe(error, language)}",
            file=sys.stderr,
        )
        return 1
    parser.print_help(sys.stderr)
    return 2


def _personas(as_json: bool) -> int:
    personas = bundled()
    if as_json:
        listing = [
            {"id": p.id, "kind": p.kind, "description": p.description} for p in personas.values()
        ]
        print(json.dumps(listing, ensure_ascii=False, indent=2))
        return 0
    for persona in personas.values():
        print(f"{persona.id:22} {persona.kind:7} {persona.description}")
    return 0


def _control(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"op": args.command}
    if args.command in ("insert", "remove"):
        request["slot"] = args.slot
    if args.command == "insert":
        request["persona"] = args.persona
    answer = control.send(request, args.control)
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0 if answer.get("ok") else 1


def _run_ocsp(port: int, language: Language) -> int:
    responder = OcspResponder().start(port=port)
    stop = _stop_on_signals()
    print(_text("ocsp", language, url=responder.url), flush=True)
    while not stop.wait(0.5):
        pass
    responder.stop()
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _run_vpcd(args: argparse.Namespace, language: Language) -> int:
    workstation = vpcd_workstation(args.vpcd_host, args.vpcd_port)
    placement = [None if args.no_cps else args.cps, None if args.no_vitale else args.vitale]
    if args.swap:
        placement.reverse()
    stop = _stop_on_signals()
    server = None
    try:
        for slot, persona in enumerate(placement):
            if persona is not None:
                workstation.insert(slot, persona)
        server = control.ControlServer(workstation, args.control)
        print(
            _text(
                "plugged",
                language,
                host=args.vpcd_host,
                port=args.vpcd_port,
                port2=args.vpcd_port + 1,
            )
        )
        for status in workstation.status():
            what = status.description or _text("empty", language)
            print(_text("slot", language, slot=status.index, what=what))
        print(_text("stop", language), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if server is not None:
            server.close()
        workstation.close()
    print(_text("stopped", language), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
