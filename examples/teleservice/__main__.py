"""``python -m examples.teleservice``: run the teleservice, or make its database.

    python -m examples.teleservice init-db [--seed FILE] --db FILE
    python -m examples.teleservice --trust DIR [--port 8450] [--origin URL]
        [--bridge-url URL] [--tsa-url URL] [--db FILE] [--audit-log FILE] [--state-dir DIR]

It listens on 127.0.0.1 only, served by waitress.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cardauth.errors import CardAuthError
from cardauth.messages import choose_language
from cardauth.origins import Origin
from cardauth.serving import Served, listen
from examples.teleservice import messages
from examples.teleservice.app import create_app
from examples.teleservice.settings import (
    DEFAULT_BRIDGE_URL,
    DEFAULT_ORIGIN,
    DEFAULT_PORT,
    Settings,
)
from examples.teleservice.store import BUNDLED_SEED, init_db

HOST = "127.0.0.1"
STATE_DIR = Path.home() / ".local" / "state" / "cardauth-teleservice"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.teleservice",
        description="« Médecin traitant en ligne »: a demo teleservice with CPS card login.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument("--bridge-url", default=DEFAULT_BRIDGE_URL, help="default: %(default)s")
    parser.add_argument("--trust", type=Path, help="trust anchors (cardauth-sim export-trust DIR)")
    parser.add_argument(
        "--origin", default=DEFAULT_ORIGIN, help="this service's public origin (%(default)s)"
    )
    parser.add_argument(
        "--tsa-url", help="time-stamping authority for signed prescriptions (B-T; B-LT with OCSP)"
    )
    parser.add_argument("--db", type=Path, help="default: STATE_DIR/teleservice.db")
    parser.add_argument("--audit-log", type=Path, help="default: STATE_DIR/audit.jsonl")
    parser.add_argument(
        "--state-dir", type=Path, default=STATE_DIR, help="keys and data (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    init = commands.add_parser("init-db", help="create or update the database from a seed file")
    init.add_argument(
        "--seed", type=Path, default=BUNDLED_SEED, help="default: the bundled seed.toml"
    )
    init.add_argument("--db", type=Path, dest="init_db", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "init-db":
            doctors, patients = init_db(args.init_db, args.seed)
            print(f"{args.init_db}: {doctors} doctors, {patients} patients")
            return 0
        return run(args)
    except CardAuthError as error:
        language = choose_language(None)  # CARDAUTH_LANG, else French
        prefix = "Erreur" if language == "fr" else "Error"
        print(f"{prefix} [{error.code}] {messages.describe(error, language)}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    if args.trust is None:
        print("--trust is required (cardauth-sim export-trust DIR)", file=sys.stderr)
        return 2
    origin = Origin.parse(args.origin, allow_development=True)
    settings = Settings(
        state_dir=args.state_dir,
        trust_dir=args.trust,
        db=args.db,
        audit_log=args.audit_log,
        origin=origin.value,
        bridge_url=args.bridge_url,
        # http:// on loopback is for development: only then are such origins allowed.
        allow_development_origins=origin.value.startswith("http://"),
        tsa_url=args.tsa_url,
    )
    db = args.db or args.state_dir / "teleservice.db"
    if not db.exists():
        init_db(db, BUNDLED_SEED)
    app = create_app(settings)
    print(f"Médecin traitant en ligne: http://{HOST}:{args.port}/ ({origin.value})", flush=True)
    Served(app, listen(HOST, args.port), ident="teleservice").run()  # until Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
