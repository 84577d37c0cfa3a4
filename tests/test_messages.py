"""Every text a person reads, walked in full: each error code of every package has
a French and an English text in the catalog of the program that shows it, each
label a command line uses exists in both, the two languages take the same values
and say different words, and the command lines (argparse's own words included)
speak French by default and English when asked."""

from __future__ import annotations

import argparse
import ast
import contextlib
import gettext
import importlib
import inspect
import io
import pkgutil
import string
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import pytest

import cardauth.cli
import cardauth.oidc.app
import cardauth.oidc.cli
import cardauth.signing.commands
import cardauth.verifier_service
import examples.demo
import simulator.cli
import webbridge.server
from cardauth import arguments, messages
from cardauth.cards.pin import PinFormat
from cardauth.errors import CardAuthError, PinFormatInvalid, Refusal
from cardauth.messages import Language
from examples.teleservice import messages as teleservice_messages
from examples.teleservice.__main__ import build_parser as teleservice_parser
from simulator import control_page
from simulator import messages as simulator_messages
from webbridge import messages as bridge_messages

Catalog = Mapping[str, Mapping[Language, str]]
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cardauth", "webbridge", "simulator", "examples")

# The catalogs a program describes its errors with: its own, on the core's (each
# part's cardauth.messages.Catalog). The most precise module prefix wins.
ERROR_CATALOGS: Mapping[str, Catalog] = {
    "cardauth": messages.CORE.all_errors(),
    "cardauth.verifier_service": cardauth.verifier_service.TEXTS.all_errors(),
    "cardauth.oidc": cardauth.oidc.app.TEXTS.all_errors(),
    "webbridge": bridge_messages.CATALOG.all_errors(),
    "simulator": simulator_messages.CATALOG.all_errors(),
    "simulator.control_page": control_page.PAGE.all_errors(),
    "examples": examples.demo.TEXTS.all_errors(),
    "examples.teleservice": teleservice_messages.CATALOG.all_errors(),
}

# Every table of texts for people, by its file and table.
CATALOGS: Mapping[str, Catalog] = {
    "cardauth/texts/core.toml [errors]": messages.CORE.errors,
    "cardauth/texts/core.toml [labels]": messages.CORE.labels,
    "cardauth/texts/verifier.toml [errors]": cardauth.verifier_service.TEXTS.errors,
    "cardauth/texts/verifier.toml [labels]": cardauth.verifier_service.TEXTS.labels,
    "cardauth/texts/oidc.toml [errors]": cardauth.oidc.app.TEXTS.errors,
    "cardauth/texts/oidc.toml [labels]": cardauth.oidc.app.TEXTS.labels,
    "webbridge/texts.toml [errors]": bridge_messages.CATALOG.errors,
    "webbridge/texts.toml [labels]": bridge_messages.CATALOG.labels,
    "simulator/texts.toml [errors]": simulator_messages.CATALOG.errors,
    "simulator/texts.toml [labels]": simulator_messages.CATALOG.labels,
    "simulator/texts.toml [page]": control_page.PAGE.labels,
    "examples/demo.toml [labels]": examples.demo.TEXTS.labels,
    "examples/teleservice/texts.toml [errors]": teleservice_messages.CATALOG.errors,
    "examples/teleservice/texts.toml [labels]": teleservice_messages.CATALOG.labels,
}

# Texts that are the same words in both languages: names and acronyms.
SAME_IN_BOTH = {
    ("cardauth/texts/core.toml [labels]", "profession"),  # Profession
    ("cardauth/texts/core.toml [labels]", "structure"),  # Structure
    ("cardauth/texts/core.toml [labels]", "nir"),  # NIR
    ("examples/teleservice/texts.toml [labels]", "title"),  # the service's name
    ("examples/teleservice/texts.toml [labels]", "who"),  # names and a card type
    ("examples/teleservice/texts.toml [labels]", "navigation"),  # Navigation
    ("examples/teleservice/texts.toml [labels]", "no_patient"),  # a dash
}

# The catalogs of the command lines and of the pages they serve, where the English
# {message} may appear only as a detail at the end.
DETAIL_RULE = list(CATALOGS)
DETAIL = {"fr": "(détail : {message}).", "en": "(detail: {message})."}


def _modules() -> Iterator[ModuleType]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield package
        for found in pkgutil.walk_packages(package.__path__, f"{name}."):
            yield importlib.import_module(found.name)


def _error_classes() -> list[type[CardAuthError]]:
    for _module in _modules():  # every class is defined once its module is imported
        pass
    found: list[type[CardAuthError]] = []
    waiting: list[type[CardAuthError]] = [CardAuthError]
    while waiting:  # subclasses of subclasses, each once
        cls = waiting.pop()
        if cls not in found:
            found.append(cls)
            waiting += cls.__subclasses__()
    return found


def _catalog_of(module: str) -> Catalog:
    owners = [
        prefix for prefix in ERROR_CATALOGS if module == prefix or module.startswith(f"{prefix}.")
    ]
    assert owners, f"no catalog known for the errors of {module}: add it to ERROR_CATALOGS"
    return ERROR_CATALOGS[max(owners, key=len)]


def _fields(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


# -- the codes -------------------------------------------------------------------------


def test_every_error_code_has_a_text_in_the_catalog_of_its_program() -> None:
    classes = _error_classes()
    assert len(classes) > 80  # the walk reached every package
    missing = [
        f"{cls.__module__}.{cls.__qualname__}: {cls.code}"
        for cls in classes
        if cls.code not in _catalog_of(cls.__module__)
    ]
    missing += [
        f"Refusal.{r.name}: {r.value}" for r in Refusal if r.value not in messages.CORE.errors
    ]
    assert missing == []


def test_every_error_class_has_a_code_of_its_own() -> None:
    """An error class that inherited its parent's code would be shown with the
    parent's text, and matched by scripts as the parent."""
    inherited = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _error_classes()
        if "code" not in vars(cls)
    ]
    assert inherited == []


def test_an_error_without_a_text_of_its_own_is_never_its_bare_english_message() -> None:
    error = CardAuthError("something broke")
    error.code = "nowhere.in.any.catalog"
    assert messages.describe(error, "fr") == (
        "Erreur inattendue de cardauth (détail : something broke)."
    )
    assert messages.describe(error, "en").startswith("Unexpected cardauth error")


# -- the catalogs ------------------------------------------------------------------------


@pytest.mark.parametrize("name", CATALOGS)
def test_every_text_is_in_french_and_in_english(name: str) -> None:
    incomplete = [
        key
        for key, texts in CATALOGS[name].items()
        if set(texts) != {"fr", "en"} or not all(isinstance(t, str) and t for t in texts.values())
    ]
    assert incomplete == []


@pytest.mark.parametrize("name", CATALOGS)
def test_both_languages_take_the_same_values(name: str) -> None:
    different = {
        key: (sorted(_fields(texts["fr"])), sorted(_fields(texts["en"])))
        for key, texts in CATALOGS[name].items()
        if _fields(texts["fr"]) != _fields(texts["en"])
    }
    assert different == {}


@pytest.mark.parametrize("name", CATALOGS)
def test_french_is_not_english(name: str) -> None:
    same = [
        key
        for key, texts in CATALOGS[name].items()
        if texts["fr"] == texts["en"] and (name, key) not in SAME_IN_BOTH
    ]
    assert same == []


@pytest.mark.parametrize("name", DETAIL_RULE)
def test_the_english_message_is_only_ever_a_detail(name: str) -> None:
    """{message} is the error's English message: a person must understand what
    happened and what to do without it."""
    misplaced = [
        (key, language)
        for key, texts in CATALOGS[name].items()
        for language, text in texts.items()
        if "{message}" in text and not text.endswith(DETAIL[language])
    ]
    assert misplaced == []


def test_the_allowed_sameness_is_still_needed() -> None:
    for name, key in SAME_IN_BOTH:
        texts = CATALOGS[name][key]
        assert texts["fr"] == texts["en"], (name, key)


# -- the labels of the command lines -------------------------------------------------------

# For each command line, the functions it reads labels with and the catalog of each.
LABEL_CALLS: Mapping[ModuleType, Mapping[str, Catalog]] = {
    cardauth.cli: {"label": messages.CORE.labels, "out.label": messages.CORE.labels},
    cardauth.signing.commands: {"out.label": messages.CORE.labels},
    webbridge.server: {
        "label": messages.CORE.labels,
        "messages.label": bridge_messages.CATALOG.all_labels(),
        "text": bridge_messages.CATALOG.all_labels(),
    },
    cardauth.verifier_service: {
        "label": messages.CORE.labels,
        "text": cardauth.verifier_service.TEXTS.all_labels(),
    },
    simulator.cli: {
        "label": messages.CORE.labels,
        "_text": simulator_messages.CATALOG.all_labels(),
        "text": simulator_messages.CATALOG.all_labels(),
    },
    examples.demo: {
        "label": messages.CORE.labels,
        "self._text": examples.demo.TEXTS.all_labels(),
        "text": examples.demo.TEXTS.all_labels(),
    },
}
# cardauth.cli's Output.field(key, ...) reads the label of key.
FIELD_CALLS = {"out.field"}
# Keys cardauth.cli builds: the certificate of each role, a certificate's status,
# the card in a reader slot.
BUILT_KEYS = [
    *(f"certificate.{role}" for role in ("authentication", "signature")),
    "expired",
    "not_yet_valid",
    *cardauth.cli.SLOT_LABELS.values(),
]


def _label_keys(module: ModuleType, calls: Mapping[str, Catalog]) -> Iterator[tuple[str, str]]:
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        called = ast.unparse(node.func)
        if called in calls or called in FIELD_CALLS:
            yield called, first.value


@pytest.mark.parametrize("module", LABEL_CALLS, ids=lambda m: m.__name__)
def test_every_label_a_command_line_reads_exists(module: ModuleType) -> None:
    calls = LABEL_CALLS[module]
    keys = list(_label_keys(module, calls))
    assert len(keys) > 10  # the walk found the calls
    missing = [
        (called, key)
        for called, key in keys
        if key not in calls.get(called, messages.CORE.labels)  # out.field reads the core's
    ]
    assert missing == []


def test_the_labels_cardauth_builds_exist() -> None:
    assert [key for key in BUILT_KEYS if key not in messages.CORE.labels] == []


# -- the command lines -------------------------------------------------------------------

Main = Callable[[Sequence[str]], int]
Program = tuple[Main, Callable[[Language], argparse.ArgumentParser]]
PROGRAMS: Mapping[str, Program] = {
    "cardauth": (cardauth.cli.main, cardauth.cli.build_parser),
    "cardauth-bridge": (webbridge.server.main, webbridge.server.build_parser),
    "cardauth-verifier": (
        cardauth.verifier_service.main,
        cardauth.verifier_service.build_parser,
    ),
    "cardauth-sim": (simulator.cli.main, simulator.cli.build_parser),
    "cardauth-oidc": (cardauth.oidc.cli.main, cardauth.oidc.cli.build_parser),
}
# The demo is no installed program, but the first command line many people run.
EVERY_PROGRAM: Mapping[str, Program] = {
    **PROGRAMS,
    "scripts/demo.sh": (examples.demo.main, examples.demo.build_parser),
}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for each in _parsers(parser)
        for action in each._actions
        for name in action.option_strings
    }


def test_an_option_has_one_spelling_in_every_program() -> None:
    """The same setting is never --x in one program and --xs, --x-dir or --x-file in
    another (nor in one command and another of a program)."""
    parsers = [build("en") for _, build in EVERY_PROGRAM.values()] + [teleservice_parser()]
    spellings: dict[str, set[str]] = {}
    for parser in parsers:
        for option in _options(parser):
            stem = option.removesuffix("-dir").removesuffix("-file").rstrip("s")
            spellings.setdefault(stem, set()).add(option)
    assert {stem: names for stem, names in spellings.items() if len(names) > 1} == {}


def test_every_program_of_the_package_is_here() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(project["project"]["scripts"]) == set(PROGRAMS)


def _run(main: Main, argv: Sequence[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status: object = main(list(argv))
        except SystemExit as exit_:
            status = exit_.code
    return status, out.getvalue(), err.getvalue()


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def _helps(parser: argparse.ArgumentParser) -> list[str | None]:
    """Every help text and metavar of a parser and its subcommands (argparse keeps
    them in private attributes: this test reads them, the programs never do)."""
    found: list[str | None] = []
    for each in _parsers(parser):
        found.append(each.description)
        for action in each._actions:
            found += [action.help, str(action.metavar) if action.metavar else None]
            if isinstance(action, argparse._SubParsersAction):
                found += [choice.help for choice in action._choices_actions]
    return found


@pytest.mark.parametrize("program", EVERY_PROGRAM)
def test_every_help_text_is_translated(program: str) -> None:
    build = EVERY_PROGRAM[program][1]
    french, english = _helps(build("fr")), _helps(build("en"))
    assert len(french) == len(english)
    same = [fr for fr, en in zip(french, english, strict=True) if fr is not None and fr == en]
    # Words that are the same in both: a port, an action, the personas' names.
    assert set(same) <= {"PORT", "ACTION", "P1,P2"}


@pytest.mark.parametrize("program", EVERY_PROGRAM)
def test_help_is_in_french_by_default_and_in_english_when_asked(
    program: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARDAUTH_LANG", raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    main = EVERY_PROGRAM[program][0]
    status, french, _ = _run(main, ["--help"])
    assert status == 0
    assert french.startswith(f"utilisation : {program} ")
    assert "afficher cette aide et quitter" in french
    for english_word in ("usage:", "positional arguments", "show this help", "default:"):
        assert english_word not in french
    status, english, _ = _run(main, ["--lang", "en", "--help"])
    assert status == 0
    assert english.startswith(f"usage: {program} ")
    assert "show this help message and exit" in english
    monkeypatch.setenv("CARDAUTH_LANG", "en")
    assert _run(main, ["--help"])[1] == english


def test_usage_errors_are_in_the_language_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDAUTH_LANG", raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    status, _, french = _run(cardauth.cli.main, ["login"])
    assert status == 2
    assert french.startswith("utilisation : cardauth login ")
    assert "cardauth login : erreur : arguments obligatoires manquants : --origin" in french
    _, _, choice = _run(cardauth.cli.main, ["--lang=fr", "frobnicate"])
    assert "choix invalide : 'frobnicate' (choisir parmi 'readers'" in choice
    _, _, number = _run(webbridge.server.main, ["--port", "many"])
    assert "argument --port : valeur invalide : 'many'" in number
    status, _, english = _run(cardauth.cli.main, ["--lang", "en", "login"])
    assert status == 2
    assert "error: the following arguments are required: --origin" in english


def test_argparse_is_its_own_again_after_a_french_command_line() -> None:
    _run(cardauth.cli.main, ["--lang", "fr", "--help"])
    assert vars(argparse)["_"] is gettext.gettext
    assert vars(argparse)["ngettext"] is gettext.ngettext
    assert argparse.ArgumentParser(prog="other").format_usage().startswith("usage: other")


def test_argparse_messages_of_this_python_are_all_in_french() -> None:
    """A later Python's new message shows here (and stays English until added)."""
    said: list[str | tuple[str, str]] = []
    for node in ast.walk(ast.parse(inspect.getsource(argparse))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        texts = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if node.func.id == "_" and texts and isinstance(texts[0], str):
            said.append(texts[0])
        elif node.func.id == "ngettext" and len(texts) == 2:
            said.append((str(texts[0]), str(texts[1])))
    assert len(said) > 20
    untranslated = [
        text
        for text in said
        if text not in arguments.ARGPARSE_FR
        and text not in arguments.ARGPARSE_FR_PLURAL
        and text not in ARGPARSE_FOR_DEVELOPERS
    ]
    assert untranslated == []


# What argparse says of a program's own mistakes (raised while the parser is built,
# or a type that is not callable): for its developers, never for a professional.
ARGPARSE_FOR_DEVELOPERS = {
    ("conflicting option string: %s", "conflicting option strings: %s"),
    ".__call__() not defined",
    "'required' is an invalid argument for positionals",
    "mutually exclusive arguments must be optional",
    "%r is not callable",
    "cannot merge actions - two groups are named %r",
    "invalid option string %(option)r: must start with a character %(prefix_chars)r",
    "dest= is required for options like %r",
    "invalid conflict_resolution value: %r",
    "cannot have multiple subparser arguments",
    "conflicting subparser: %s",
    "conflicting subparser alias: %s",
    'argument "-" with mode %r',
}


def test_the_language_is_read_before_the_command_line_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARDAUTH_LANG", "fr")
    assert arguments.requested_language(["--lang", "en", "cards"]) == "en"
    assert arguments.requested_language(["--lang=en"]) == "en"
    assert arguments.requested_language(["--", "--lang", "en"]) == "fr"
    assert arguments.requested_language(["--lang"]) == "fr"
    monkeypatch.setenv("CARDAUTH_LANG", "en")
    assert arguments.requested_language([]) == "en"


def test_the_language_asked_after_the_command_is_the_one_argparse_speaks() -> None:
    assert arguments.requested_language(["cards", "--lang", "en"]) == "en"
    status, _, english = _run(cardauth.cli.main, ["--lang", "fr", "login", "--lang", "en"])
    assert status == 2
    assert "error: the following arguments are required: --origin" in english


# -- what the command lines print ----------------------------------------------------------


def test_errors_are_reported_the_same_way_by_every_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARDAUTH_LANG", raising=False)
    _, _, bridge = _run(webbridge.server.main, ["--config", str(tmp_path / "none.toml")])
    assert bridge.startswith("Erreur [bridge.config] : Configuration du pont invalide : ")
    _, _, revoke = _run(
        webbridge.server.main,
        ["--lang", "en", "--state-dir", str(tmp_path), "consents", "revoke", "nope"],
    )
    assert revoke.startswith("Error [origin.invalid]: Invalid web origin: ")
    _, _, persona = _run(
        cardauth.cli.main, ["--lang", "fr", "--simulate", "--personas", "x", "cards"]
    )
    assert persona.startswith("Erreur [sim.persona] : Profil de carte inconnu")


def test_the_pin_format_is_said_in_each_language() -> None:
    with pytest.raises(PinFormatInvalid) as refused:
        PinFormat(min_digits=4, max_digits=8, encoded_length=8).encode("12")
    assert "de 4 à 8 chiffres" in messages.describe(refused.value, "fr")
    assert "4 to 8 digits" in messages.describe(refused.value, "en")
