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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cardauth.arguments import ArgumentParser, requested_language
from cardauth.errors import CardAuthError
from cardauth.messages import LANGUAGES, Language, choose_language, label
from cardauth.serving import stop_on_signals
from simulator import control
from simulator.messages import CATALOG
from simulator.ocsp import OcspResponder
from simulator.personas import DEFAULT_CPS, DEFAULT_VITALE, bundled
from simulator.trust_export import export_trust
from simulator.tsa import DEFAULT_TSA_PORT, TimeStampAuthority
from simulator.vpcd import DEFAULT_PORTS
from simulator.workstation import vpcd_workstation

DEFAULT_OCSP_PORT = 35980


def _text(key: str, language: Language, **values: object) -> str:
    return CATALOG.label(key, language, **values)


def _port(language: Language) -> Callable[[str], int]:
    """A TCP port whose successor (the second slot) is a port too."""

    def port(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(_text("port.number", language)) from None
        if not 1 <= number <= 65534:
            raise argparse.ArgumentTypeError(_text("port.range", language))
        return number

    return port


def build_parser(language: Language) -> ArgumentParser:
    """The command line, its help and argparse's own messages in ``language``."""

    def text(key: str, **values: object) -> str:
        return _text(key, language, **values)

    parser = ArgumentParser(prog="cardauth-sim", description=text("help"), language=language)
    # Before the command or after it: cardauth-sim status --lang en.
    parser.add_shared_argument("--lang", choices=LANGUAGES, help=label("help.lang", language))
    control: dict[str, Any] = {
        "type": Path,
        "metavar": label("metavar.file", language),
        "help": text("help.control"),
    }
    parser.add_argument("--control", **control)
    parser.add_argument("--vpcd", action="store_true", help=text("help.vpcd"))
    persona = text("metavar.persona")
    parser.add_argument(
        "--cps", default=DEFAULT_CPS, metavar=persona, help=text("help.cps", default=DEFAULT_CPS)
    )
    parser.add_argument(
        "--vitale",
        default=DEFAULT_VITALE,
        metavar=persona,
        help=text("help.vitale", default=DEFAULT_VITALE),
    )
    parser.add_argument("--swap", action="store_true", help=text("help.swap"))
    parser.add_argument("--no-cps", action="store_true", help=text("help.no_cps"))
    parser.add_argument("--no-vitale", action="store_true", help=text("help.no_vitale"))
    parser.add_argument(
        "--vpcd-host",
        default="127.0.0.1",
        metavar=label("metavar.address", language),
        help=text("help.vpcd_host"),
    )
    parser.add_argument(
        "--vpcd-port",
        type=_port(language),
        default=DEFAULT_PORTS[0],
        metavar="PORT",
        help=text("help.vpcd_port"),
    )
    commands = parser.add_subparsers(dest="command", metavar=label("metavar.command", language))
    personas = commands.add_parser("personas", help=text("help.personas"))
    personas.add_argument("--json", action="store_true", help=label("help.json", language))
    status = commands.add_parser("status", help=text("help.status"))
    slot = {"type": int, "metavar": text("metavar.slot"), "help": text("help.slot")}
    insert = commands.add_parser("insert", help=text("help.insert"))
    insert.add_argument("slot", **slot)
    insert.add_argument("persona", metavar=persona, help=text("help.persona"))
    remove = commands.add_parser("remove", help=text("help.remove"))
    remove.add_argument("slot", **slot)
    swap = commands.add_parser("swap", help=text("help.swap_cards"))
    for moving in (status, insert, remove, swap):
        # The running simulator's socket, before the command or after it (absent
        # unless given here: the value given before the command stays).
        moving.add_argument("--control", **control, default=argparse.SUPPRESS)
    export = commands.add_parser("export-trust", help=text("help.export_trust"))
    export.add_argument(
        "directory",
        type=Path,
        metavar=label("metavar.directory", language),
        help=text("help.directory"),
    )
    export.add_argument("--ocsp-url", metavar=text("metavar.url"), help=text("help.ocsp_url"))
    responder = commands.add_parser("ocsp", help=text("help.ocsp"))
    responder.add_argument(
        "--port",
        type=_port(language),
        default=DEFAULT_OCSP_PORT,
        help=text("help.port", default=DEFAULT_OCSP_PORT),
    )
    stamper = commands.add_parser("tsa", help=text("help.tsa"))
    stamper.add_argument(
        "--port",
        type=_port(language),
        default=DEFAULT_TSA_PORT,
        help=text("help.tsa_port", default=DEFAULT_TSA_PORT),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(requested_language(argv))
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
        if args.command == "tsa":
            return _run_tsa(args.port, language)
        if args.vpcd:
            return _run_vpcd(args, language)
    except CardAuthError as error:
        print(CATALOG.error_line(error, language), file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of our output went away (| head)
        sys.stdout = None  # no flush error at exit
        return 0
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
    stop = stop_on_signals()
    print(_text("ocsp", language, url=responder.url), flush=True)
    while not stop.wait(0.5):
        pass
    responder.stop()
    return 0


def _run_tsa(port: int, language: Language) -> int:
    authority = TimeStampAuthority().start(port=port)
    stop = stop_on_signals()
    print(_text("tsa", language, url=authority.url), flush=True)
    while not stop.wait(0.5):
        pass
    authority.stop()
    return 0


def _run_vpcd(args: argparse.Namespace, language: Language) -> int:
    workstation = vpcd_workstation(args.vpcd_host, args.vpcd_port)
    placement = [None if args.no_cps else args.cps, None if args.no_vitale else args.vitale]
    if args.swap:
        placement.reverse()
    stop = stop_on_signals()
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
