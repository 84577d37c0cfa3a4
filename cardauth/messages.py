"""What people read: error messages and labels, in French (the default for health
professionals) and English.

Messages are looked up by the error's stable code and filled from its context,
so the wording can change without breaking anything that matches on codes.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Mapping, Sequence
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from typing import Literal

from cardauth.errors import CardAuthError

Language = Literal["fr", "en"]
LANGUAGES: tuple[Language, ...] = ("fr", "en")


def choose_language(requested: str | None = None) -> Language:
    """``requested`` if given, else CARDAUTH_LANG, else the locale; French by default."""
    for candidate in (requested, os.environ.get("CARDAUTH_LANG")):
        if candidate:
            return "en" if candidate.lower().startswith("en") else "fr"
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value and value not in ("C", "POSIX", "C.UTF-8"):
            return "en" if value.lower().startswith("en") else "fr"
    return "fr"


CARD_NAMES = {"cps": "CPS", "vitale": "Vitale"}  # as people write them, in messages


class _Context(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


Texts = Mapping[str, Mapping[Language, str]]


class Catalog:
    """Texts for people, in French and English: error messages by the error's code,
    and labels by key. Each part of the product owns its catalog, a TOML file of its
    package (``[errors."<code>"]`` and ``[labels.<key>]`` tables, each entry with
    ``fr`` and ``en``), and looks up what it does not hold in its ``parents`` (the
    core's, at the root)."""

    def __init__(self, errors: Texts, labels: Texts, parents: Sequence[Catalog] = ()) -> None:
        self.errors, self.labels, self.parents = errors, labels, tuple(parents)

    @classmethod
    def load(
        cls, source: Traversable, *, labels: str = "labels", parents: Sequence[Catalog] = ()
    ) -> Catalog:
        """The catalog in the TOML file ``source``; ``labels``: the table of its labels."""
        with source.open("rb") as file:
            tables = tomllib.load(file)
        return cls(
            _texts(tables.get("errors", {}), source.name),
            _texts(tables.get(labels, {}), source.name),
            parents,
        )

    def describe(self, error: CardAuthError, language: Language) -> str:
        """The message a person reads for ``error``: its code's, else the nearest
        ancestor class's (at the root, CardAuthError's own: an error is never shown
        as its bare English message), filled from its context."""
        codes = [error.code, *(getattr(cls, "code", None) for cls in type(error).__mro__)]
        template = next(
            found for code in codes if isinstance(code, str) and (found := self._error_text(code))
        )[language]
        values = dict(error.context)
        values["kind"] = CARD_NAMES.get(str(values.get("kind")), values.get("kind", "?"))
        return template.format_map(_Context(values, message=error.message))

    def label(self, key: str, language: Language, **values: object) -> str:
        for catalog in self._chain():
            if key in catalog.labels:
                return catalog.labels[key][language].format(**values)
        raise KeyError(key)

    def error_line(self, error: CardAuthError, language: Language) -> str:
        """How a command line reports ``error`` on standard error:
        ``Erreur [code] : message``, or ``Error [code]: message`` in English."""
        separator = " : " if language == "fr" else ": "
        text = self.describe(error, language)
        return f"{self.label('error', language)} [{error.code}]{separator}{text}"

    def all_errors(self) -> dict[str, Mapping[Language, str]]:
        """Every error text this catalog gives, its parents' included (its own win)."""
        merged: dict[str, Mapping[Language, str]] = {}
        for catalog in reversed(self._chain()):
            merged.update(catalog.errors)
        return merged

    def all_labels(self) -> dict[str, Mapping[Language, str]]:
        """Every label this catalog gives, its parents' included (its own win)."""
        merged: dict[str, Mapping[Language, str]] = {}
        for catalog in reversed(self._chain()):
            merged.update(catalog.labels)
        return merged

    def _error_text(self, code: str) -> Mapping[Language, str] | None:
        for catalog in self._chain():
            if code in catalog.errors:
                return catalog.errors[code]
        for contributed in _contributed():  # the parts installed beside (the simulator)
            if code in contributed.errors:
                return contributed.errors[code]
        return None

    def _chain(self) -> list[Catalog]:
        """This catalog, then its parents' chains, in order, each once."""
        chain: list[Catalog] = []
        for catalog in (self, *(c for parent in self.parents for c in parent._chain())):
            if catalog not in chain:
                chain.append(catalog)
        return chain


def _texts(table: object, source: str) -> Texts:
    """A catalog file's table, checked: every entry a French and an English string."""
    if not isinstance(table, dict):
        raise TypeError(f"{source}: a table of texts is expected")
    for key, texts in table.items():
        if not (
            isinstance(texts, dict)
            and set(texts) == set(LANGUAGES)
            and all(isinstance(text, str) for text in texts.values())
        ):
            raise TypeError(f"{source}: {key} needs a French and an English text")
    return table


@functools.cache
def _contributed() -> tuple[Catalog, ...]:
    """The catalogs of the parts installed beside cardauth that raise errors of their
    own through cardauth's commands (the simulator's, behind ``--simulate``): found
    through their entry points (group ``cardauth.texts``), never imported by name."""
    found = []
    for entry_point in metadata.entry_points(group="cardauth.texts"):
        catalog = entry_point.load()
        if isinstance(catalog, Catalog):
            found.append(catalog)
    return tuple(found)


CORE = Catalog.load(resources.files("cardauth") / "texts" / "core.toml")


def describe(error: CardAuthError, language: Language) -> str:
    """``error`` in words, from the core's catalog (a part with texts of its own
    describes with its catalog: :class:`Catalog`)."""
    return CORE.describe(error, language)


def error_line(error: CardAuthError, language: Language) -> str:
    return CORE.error_line(error, language)


def label(key: str, language: Language, **values: object) -> str:
    return CORE.label(key, language, **values)
