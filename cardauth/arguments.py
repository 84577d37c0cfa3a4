"""Command lines in the language of the person at the keyboard: argparse's own
words (``usage:``, ``options``, ``error:``, "the following arguments are
required"...) in French or English, as the programs' own help texts.

argparse writes those words through gettext, bound in its module as ``_`` and
``ngettext``, and Python ships no translation of them. A gettext catalog installed
for the process would follow the locale rather than ``--lang`` and change every
other user of gettext; instead, :class:`ArgumentParser` puts French functions in
argparse's place only while it builds, parses or formats, and puts argparse's
own back afterwards. A message that a later Python adds stays English until
:data:`ARGPARSE_FR` has it: tests/test_messages.py lists any that the running
Python has and the table lacks.

A program's own options that hold for all its commands (``--lang``, ``--simulate``...)
are declared with :meth:`ArgumentParser.add_shared_argument`: people put them
before the command or after it (``cardauth --simulate cards``, ``cardauth cards
--simulate``), and each command's help lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

from cardauth.messages import Language, choose_language, label

# argparse's messages, by their English text (gettext's msgid), in French. Those of
# Python 3.11 to 3.14 a person can meet on a command line; argparse's complaints
# about a program's own mistakes (a conflicting option, a bad nargs) are for its
# developers, and stay English.
ARGPARSE_FR: Mapping[str, str] = {
    "usage: ": "utilisation : ",
    "positional arguments": "arguments",
    "options": "options",
    "subcommands": "sous-commandes",
    "%(heading)s:": "%(heading)s :",
    "show this help message and exit": "afficher cette aide et quitter",
    "show program's version number and exit": "afficher la version et quitter",
    "%(prog)s: error: %(message)s\n": "%(prog)s : erreur : %(message)s\n",
    "%(prog)s: warning: %(message)s\n": "%(prog)s : avertissement : %(message)s\n",
    "argument %(argument_name)s: %(message)s": "argument %(argument_name)s : %(message)s",
    "the following arguments are required: %s": "arguments obligatoires manquants : %s",
    "one of the arguments %s is required": "l'un des arguments %s est obligatoire",
    "unrecognized arguments: %s": "arguments inconnus : %s",
    "not allowed with argument %s": "incompatible avec l'argument %s",
    "ignored explicit argument %r": "cette option ne prend pas de valeur (%r)",
    "expected one argument": "une valeur est attendue",
    "expected at most one argument": "une valeur au plus est attendue",
    "expected at least one argument": "au moins une valeur est attendue",
    "ambiguous option: %(option)s could match %(matches)s": (
        "option ambiguë : %(option)s peut désigner %(matches)s"
    ),
    "unexpected option string: %s": "option inattendue : %s",
    # %(type)s is the name of a Python type (int): the argument's name says enough.
    "invalid %(type)s value: %(value)r": "valeur invalide : %(value)r",
    "invalid choice: %(value)r (choose from %(choices)s)": (
        "choix invalide : %(value)r (choisir parmi %(choices)s)"
    ),
    "invalid choice: %(value)r, maybe you meant %(closest)r? (choose from %(choices)s)": (
        "choix invalide : %(value)r ; vouliez-vous dire %(closest)r ? (choisir parmi %(choices)s)"
    ),
    "unknown parser %(parser_name)r (choices: %(choices)s)": (
        "commande inconnue : %(parser_name)r (choisir parmi %(choices)s)"
    ),
    "can't open '%(filename)s': %(error)s": "impossible d'ouvrir « %(filename)s » : %(error)s",
    "option '%(option)s' is deprecated": "l'option « %(option)s » est obsolète",
    "argument '%(argument_name)s' is deprecated": ("l'argument « %(argument_name)s » est obsolète"),
    "command '%(parser_name)s' is deprecated": "la commande « %(parser_name)s » est obsolète",
}

# ngettext's (singular, plural) pairs; in French, 0 and 1 take the singular.
ARGPARSE_FR_PLURAL: Mapping[tuple[str, str], tuple[str, str]] = {
    ("expected %s argument", "expected %s arguments"): (
        "%s valeur attendue",
        "%s valeurs attendues",
    ),
}

_HOOKS = ("_", "ngettext")  # argparse's module-level names for gettext's functions
_swapping = threading.RLock()  # one parser at a time changes them (a parser may nest)


def _french(message: str) -> str:
    # argparse 3.11 passes None through _() when a group has no description.
    return ARGPARSE_FR.get(message, message) if isinstance(message, str) else message


def _french_plural(singular: str, plural: str, count: int) -> str:
    french = ARGPARSE_FR_PLURAL.get((singular, plural))
    if french is None:
        return singular if count == 1 else plural
    return french[0] if count <= 1 else french[1]


@contextlib.contextmanager
def speaking(language: Language) -> Iterator[None]:
    """argparse's words in ``language`` for the time of the block (English is its own)."""
    if language == "en" or not all(hasattr(argparse, name) for name in _HOOKS):
        yield
        return
    with _swapping:
        saved = {name: getattr(argparse, name) for name in _HOOKS}
        vars(argparse).update({"_": _french, "ngettext": _french_plural})
        try:
            yield
        finally:
            vars(argparse).update(saved)


# An option shared by a program's commands: its names, and add_argument's keywords.
SharedOption = tuple[tuple[str, ...], Mapping[str, Any]]


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose own words are in ``language``; its subcommands'
    parsers are in the same language, and take the options it shares
    (:meth:`add_shared_argument`). The program gives its help texts in it."""

    def __init__(
        self,
        *args: Any,
        language: Language,
        shared: Sequence[SharedOption] = (),
        **kwargs: Any,
    ) -> None:
        self.language: Language = language
        self._shared_options: list[SharedOption] = list(shared)
        with speaking(language):
            super().__init__(*args, **kwargs)
            for names, options in shared:
                # Absent unless given here: a default would undo the same option
                # given before the command (argparse copies a command's values over).
                super().add_argument(*names, **{**options, "default": argparse.SUPPRESS})

    def add_shared_argument(self, *names: str, **options: Any) -> argparse.Action:
        """An option of the whole program, accepted before its command and after it.
        The subcommands made after this call take it (their help lists it, and their
        own subcommands too); given on both sides, the one after the command wins."""
        self._shared_options.append((names, options))
        return self.add_argument(*names, **options)

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault(
            "parser_class",
            functools.partial(type(self), language=self.language, shared=self._shared_options),
        )
        if self._shared_options and self.epilog is None:
            options = [names[0] for names, _ in self._shared_options]
            key = "help.shared_option" if len(options) == 1 else "help.shared_options"
            self.epilog = label(key, self.language, options=", ".join(options))
        with speaking(self.language):
            return super().add_subparsers(**kwargs)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        with speaking(self.language):
            return super().parse_known_args(args, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> Any:
        with speaking(self.language):  # "unrecognized arguments" is said here
            return super().parse_args(args, namespace)

    def format_usage(self) -> str:
        with speaking(self.language):
            return super().format_usage()

    def format_help(self) -> str:
        with speaking(self.language):
            return super().format_help()

    def error(self, message: str) -> NoReturn:
        with speaking(self.language):
            super().error(message)


def requested_language(argv: Sequence[str] | None = None) -> Language:
    """The language asked for before the command line is parsed (argparse speaks
    about it in that language): ``--lang X`` or ``--lang=X``, before the command or
    after it (the last one, as argparse keeps), else as
    :func:`~cardauth.messages.choose_language` finds it."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    asked: str | None = None
    for index, argument in enumerate(arguments):
        if argument == "--":
            break
        if argument.startswith("--lang="):
            asked = argument.partition("=")[2]
        elif argument == "--lang" and index + 1 < len(arguments):
            asked = arguments[index + 1]
    return choose_language(asked)
