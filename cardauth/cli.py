"""The ``cardauth`` command: readers, cards, and what they say.

Messages are in French by default (``--lang en``, or ``CARDAUTH_LANG=en``, for
English). ``--json`` prints machine-readable output for scripts. Every failure
prints its stable error code and exits with status 1; bad usage exits with 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from cardauth import __version__, challenges
from cardauth.arguments import ArgumentParser, requested_language
from cardauth.assertion import build_assertion
from cardauth.cards.application import CardKind
from cardauth.cards.cps import CpsCard
from cardauth.cards.identify import find_card
from cardauth.cards.inventory import (
    CardReport,
    CertificateSummary,
    SlotCard,
    identify_slots,
    inventory,
)
from cardauth.cards.session import pin_session
from cardauth.cards.vitale import VitaleCard
from cardauth.challenges import DEFAULT_LIFETIME as DEFAULT_CHALLENGE_LIFETIME
from cardauth.challenges import ChallengeRecord, MemoryChallengeStore, session_digest
from cardauth.errors import CardAuthError, NoReader, PartMissing, PcscUnavailable
from cardauth.identifiers import IdNatType
from cardauth.jose import MAX_TOKEN_LENGTH
from cardauth.messages import (
    LANGUAGES,
    Language,
    choose_language,
    describe,
    error_line,
    label,
)
from cardauth.origins import Origin, parse_origins
from cardauth.transport.backends import open_backend, personas_of
from cardauth.transport.base import ReaderBackend
from cardauth.verify import Verifier

EXIT_ERROR = 1
SIGNING_PACKAGE = "cardauth[signing]"
FORMATS = ("pades", "cades", "smime")
LEVELS = ("b-b", "b-t", "b-lt")


def make_backend(simulate: bool, personas: str) -> ReaderBackend:
    """PC/SC, or the simulator's virtual cards with ``--simulate``."""
    return open_backend(simulate=simulate, personas=personas_of(personas))


class Output:
    """Where and how to print: language, JSON or text, the clock for validity."""

    def __init__(self, language: Language, as_json: bool, stream: TextIO) -> None:
        self.language = language
        self.as_json = as_json
        self.stream = stream
        self.now = dt.datetime.now(dt.UTC)

    def line(self, text: str = "") -> None:
        print(text, file=self.stream)

    def label(self, key: str, **values: object) -> str:
        return label(key, self.language, **values)

    def pair(self, name: str, value: str, indent: int = 1) -> None:
        """``name : value`` in French typography, ``name: value`` in English."""
        separator = " : " if self.language == "fr" else ": "
        self.line(f"{'  ' * indent}{name}{separator}{value}")

    def field(self, key: str, value: str, indent: int = 1) -> None:
        self.pair(self.label(key), value, indent)

    def json(self, value: object) -> None:
        json.dump(value, self.stream, ensure_ascii=False, indent=2)
        self.stream.write("\n")


def command_readers(backend: ReaderBackend, out: Output) -> int:
    """Each reader slot and the kind of card in it, told without the PIN."""
    slots = identify_slots(backend)
    if out.as_json:
        out.json({"readers": [s.to_dict() for s in slots]})
        return 0
    if not slots:
        out.line(out.label("no_reader"))
        out.line(out.label("hint.no_cards", command="readers"))
    for slot in slots:
        _print_slot(slot, out)
    return 0


# What `cardauth readers` calls the card in a slot, by SlotCard.kind_name.
SLOT_LABELS = {
    None: "empty",
    "cps": "reader.cps",
    "vitale": "reader.vitale",
    "unknown": "reader.unknown",
    "unreadable": "reader.unreadable",
}


def _print_slot(slot: SlotCard, out: Output) -> None:
    what = out.label(SLOT_LABELS[slot.kind_name])
    if slot.slot.card_present:
        what += f" — ATR {slot.slot.atr.hex(' ').upper()}"
    out.pair(slot.slot.reader, what, indent=0)
    if slot.kind_name == "unreadable" and slot.error is not None:
        out.pair(f"{out.label('error')} [{slot.error.code}]", describe(slot.error, out.language))


def command_cards(backend: ReaderBackend, out: Output) -> int:
    reports = inventory(backend)
    if out.as_json:
        out.json({"readers": [r.to_dict(out.now) for r in reports]})
        return 0
    for report in reports:
        _print_report(report, out)
    return 0


def _print_report(report: CardReport, out: Output) -> None:
    out.field("reader", report.slot.reader, indent=0)
    if not report.slot.card_present:
        out.line(f"  {out.label('empty')}")
    elif report.error is not None:
        out.pair(
            f"{out.label('error')} [{report.error.code}]", describe(report.error, out.language)
        )
    elif report.cps_holder is not None:
        _print_cps(report, out)
    elif report.vitale_holder is not None:
        _print_vitale(report, out)
    out.line()


def _print_cps(report: CardReport, out: Output) -> None:
    holder = report.cps_holder
    assert holder is not None
    out.field("kind", f"{out.label('kind.cps')} — {holder.card_type.value}")
    out.field("serial", report.serial or "")
    out.field("holder", f"{holder.civility} {holder.given_name} {holder.surname}")
    idnat = holder.idnat
    register = (
        out.label("finess_staff") if idnat.type is IdNatType.FINESS_STAFF else idnat.type.name
    )
    out.field("identifier", f"{register} {idnat.identifier} (IdNat {idnat})")
    if holder.profession_code:
        name = holder.profession or "?"
        out.field("profession", f"{name} ({holder.profession_code})")
    if holder.specialty:
        out.field("specialty", holder.specialty)
    for situation in holder.situations:
        if situation.structure_name:
            out.field("structure", f"{situation.structure_name}")
    _print_certificates(report, out)
    if report.pin is not None:
        out.field("pin", f"{_pin_text(report, out)}")


def _pin_text(report: CardReport, out: Output) -> str:
    pin = report.pin
    assert pin is not None
    if pin.blocked:
        return out.label("pin.blocked")
    if pin.verified:
        return out.label("pin.verified")
    return out.label("pin.tries", tries=pin.tries_left)


def _print_vitale(report: CardReport, out: Output) -> None:
    holder = report.vitale_holder
    assert holder is not None
    out.field("kind", f"{out.label('kind.vitale')}")
    out.field("serial", report.serial or "")
    for person in holder.people:
        role = out.label("insured") if person is holder.insured else out.label("beneficiary")
        born = out.label("born", date=person.birth_date.isoformat())
        rank = out.label("rank", rank=person.rank)
        nir = f"{out.label('nir')} {person.nir}"
        out.pair(role, f"{person.given_name} {person.surname}, {born}, {rank}, {nir}")
    if holder.insurer is not None:
        insurer = holder.insurer
        out.field("insurer", f"{insurer.regime} / {insurer.fund} / {insurer.centre}")
    if holder.valid_from and holder.valid_until:
        validity = out.label(
            "valid", start=holder.valid_from.isoformat(), end=holder.valid_until.isoformat()
        )
        out.field("card_validity", validity)
    _print_certificates(report, out)


def _print_certificates(report: CardReport, out: Output) -> None:
    for role, summary in report.certificates.items():
        key = f"certificate.{role}" if role in ("authentication", "signature") else "certificate"
        out.field(key, summary.subject)
        out.line(f"    {_validity_text(summary, out)} — {summary.issuer}")


def _validity_text(summary: CertificateSummary, out: Output) -> str:
    text = out.label(
        "valid",
        start=summary.not_before.date().isoformat(),
        end=summary.not_after.date().isoformat(),
    )
    status = summary.status(out.now)
    if status != "valid":
        text += f" ({out.label(status)})"
    return text


def command_login(args: argparse.Namespace, out: Output) -> int:
    """Build an assertion with the cards present: the PIN is asked once, verified once,
    and the card forgets it as soon as it has signed."""
    origin = Origin.parse(args.origin, allow_development=args.allow_development_origins)
    challenge = challenges.check_format(args.challenge)
    backend = make_backend(args.simulate, args.personas)
    try:
        cps = find_card(backend, CardKind.CPS)
        vitale = find_card(backend, CardKind.VITALE) if args.with_vitale else None
        assert isinstance(cps, CpsCard)
        assert vitale is None or isinstance(vitale, VitaleCard)
        with pin_session(cps, _read_pin(args.pin_stdin, out)):
            token = build_assertion(
                cps,
                origin=origin,
                challenge=challenge,
                now=dt.datetime.now(dt.UTC),
                vitale=vitale,
            )
    finally:
        backend.close()
    out.line(token)
    return 0


def _read_pin(from_stdin: bool, out: Output) -> str:
    if from_stdin:
        return sys.stdin.readline(64).rstrip("\r\n")
    return getpass.getpass(out.label("pin_prompt"))


def command_verify(args: argparse.Namespace, out: Output) -> int:
    """Verify an assertion read on standard input against a trust directory."""
    origins = parse_origins(args.origin, allow_development=args.allow_development_origins)
    verifier = Verifier.from_directory(args.trust)
    assertion = sys.stdin.read(MAX_TOKEN_LENGTH + 1).strip()
    store = MemoryChallengeStore()
    now = dt.datetime.now(dt.UTC)
    session = "cardauth-verify"
    lifetime = DEFAULT_CHALLENGE_LIFETIME
    store.put(
        ChallengeRecord(args.challenge, session_digest(session), (now + lifetime).timestamp()),
        lifetime.total_seconds(),
    )
    verified = verifier.verify(
        assertion,
        expected_origins=origins,
        expected_challenge=args.challenge,
        session=session,
        challenges_store=store,
        now=now,
        require_vitale=args.require_vitale,
    )
    out.json(verified.to_dict())
    return 0


def _signing_command(name: str) -> Callable[[argparse.Namespace, Output], int]:
    """A command of :mod:`cardauth.signing.commands`, loaded when it runs: without the
    ``signing`` extra (pyHanko), the command says what to install."""

    def run(args: argparse.Namespace, out: Output) -> int:
        try:
            from cardauth.signing import commands  # noqa: PLC0415 - the extra, if installed
        except ImportError as error:
            if not (error.name or "").startswith(("pyhanko", "asn1crypto", "lxml", "aiohttp")):
                raise
            raise PartMissing(
                "pyHanko is not installed", part="signing", package=SIGNING_PACKAGE
            ) from error
        handler: Callable[[argparse.Namespace, Output], int] = getattr(commands, name)
        return handler(args, out)

    return run


def _card_command(
    handler: Callable[[ReaderBackend, Output], int],
) -> Callable[[argparse.Namespace, Output], int]:
    def run(args: argparse.Namespace, out: Output) -> int:
        backend = make_backend(args.simulate, args.personas)
        try:
            return handler(backend, out)
        finally:
            backend.close()

    return run


def _option(
    parser: argparse.ArgumentParser,
    language: Language,
    *names: str,
    help: str,
    metavar: str | None = None,
    **options: Any,
) -> None:
    """An argument whose help is the label ``help.<help>`` and whose metavar is the
    label ``metavar.<metavar>``, in ``language``."""
    if metavar is not None:
        options["metavar"] = label(f"metavar.{metavar}", language)
    parser.add_argument(*names, help=label(f"help.{help}", language), **options)


def _configure_login(parser: argparse.ArgumentParser, language: Language) -> None:
    option = functools.partial(_option, parser, language)
    option("--origin", required=True, metavar="origin", help="login.origin")
    option("--challenge", required=True, metavar="challenge", help="login.challenge")
    option("--with-vitale", action="store_true", help="with_vitale")
    option("--pin-stdin", action="store_true", help="pin_stdin")
    option("--allow-development-origins", action="store_true", help="allow_development_origins")


def _configure_verify(parser: argparse.ArgumentParser, language: Language) -> None:
    option = functools.partial(_option, parser, language)
    option("--origin", required=True, action="append", metavar="origin", help="verify.origin")
    option("--challenge", required=True, metavar="challenge", help="verify.challenge")
    option("--trust", required=True, type=Path, metavar="directory", help="trust")
    option("--require-vitale", action="store_true", help="require_vitale")
    option("--allow-development-origins", action="store_true", help="allow_development_origins")


def _configure_sign(parser: argparse.ArgumentParser, language: Language) -> None:
    option = functools.partial(_option, parser, language)
    option("document", type=Path, metavar="file", help="sign.document")
    option("--output", "-o", required=True, type=Path, metavar="file", help="sign.output")
    option("--format", choices=FORMATS, default="pades", help="sign.format")
    option("--level", choices=LEVELS, default="b-b", help="sign.level")
    option("--tsa-url", metavar="url", help="sign.tsa_url")
    option("--trust", required=True, type=Path, metavar="directory", help="sign.trust")
    option("--reason", metavar="text", help="sign.reason")
    option("--force", action="store_true", help="sign.force")
    option("--pin-stdin", action="store_true", help="pin_stdin")


def _configure_verify_signature(parser: argparse.ArgumentParser, language: Language) -> None:
    option = functools.partial(_option, parser, language)
    option("document", type=Path, metavar="file", help="verify_signature.document")
    option("--content", type=Path, metavar="file", help="verify_signature.content")
    option("--trust", required=True, type=Path, metavar="directory", help="trust")


def _no_options(parser: argparse.ArgumentParser, language: Language) -> None:
    return


# Each command: what runs it, the key of its help text, its own options.
COMMANDS: dict[
    str,
    tuple[
        Callable[[argparse.Namespace, Output], int],
        str,
        Callable[[argparse.ArgumentParser, Language], None],
    ],
] = {
    "readers": (_card_command(command_readers), "help.readers", _no_options),
    "cards": (_card_command(command_cards), "help.cards", _no_options),
    "login": (command_login, "help.login", _configure_login),
    "verify": (command_verify, "help.verify", _configure_verify),
    "sign": (_signing_command("command_sign"), "help.sign", _configure_sign),
    "verify-signature": (
        _signing_command("command_verify_signature"),
        "help.verify_signature",
        _configure_verify_signature,
    ),
}


def build_parser(language: Language) -> ArgumentParser:
    """The command line, its help and argparse's own messages in ``language``."""
    parser = ArgumentParser(
        prog="cardauth", description=label("help.cardauth", language), language=language
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"cardauth {__version__}",
        help=label("help.version", language),
    )
    # Before the command or after it: cardauth --simulate cards, cardauth cards --simulate.
    parser.add_shared_argument("--lang", choices=LANGUAGES, help=label("help.lang", language))
    parser.add_shared_argument(
        "--simulate", action="store_true", help=label("help.simulate", language)
    )
    parser.add_shared_argument(
        "--personas", default="", metavar="P1,P2", help=label("help.personas", language)
    )
    parser.add_shared_argument("--json", action="store_true", help=label("help.json", language))
    commands = parser.add_subparsers(
        dest="command", required=True, metavar=label("metavar.command", language)
    )
    for name, (_handler, help_key, configure) in COMMANDS.items():
        help_text = label(help_key, language)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        configure(sub, language)
    return parser


def main(argv: Sequence[str] | None = None, stream: TextIO | None = None) -> int:
    args = build_parser(requested_language(argv)).parse_args(argv)
    out = Output(choose_language(args.lang), args.json, stream or sys.stdout)
    handler = COMMANDS[args.command][0]
    try:
        return handler(args, out)
    except CardAuthError as error:
        return report_error(error, out, args.command)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head)
        sys.stdout = None  # no flush error at exit
        return 0


# Errors that mean no card can be reached here: the command says how to reach some.
NO_CARDS = frozenset((PcscUnavailable.code, NoReader.code))


def report_error(error: CardAuthError, out: Output, command: str) -> int:
    if out.as_json:
        out.json({"error": {**error.to_dict(), "text": describe(error, out.language)}})
        return EXIT_ERROR
    print(error_line(error, out.language), file=sys.stderr)
    if error.code in NO_CARDS:
        print(out.label("hint.no_cards", command=command), file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
