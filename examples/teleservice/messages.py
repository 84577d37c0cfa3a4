"""What the teleservice says to people, in French (the default) and English: the
words of its pages and its own refusals (examples/teleservice/texts.toml; the
cardauth ones keep the wording of the core's catalog), and dates in words."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib import resources

from cardauth import messages
from cardauth.messages import Catalog, Language

CATALOG = Catalog.load(
    resources.files("examples.teleservice") / "texts.toml", parents=(messages.CORE,)
)
describe = CATALOG.describe
label = CATALOG.label


MONTHS: Mapping[Language, tuple[str, ...]] = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def date_text(day: dt.date, language: Language) -> str:
    """« 1er décembre 2026 », "1 December 2026"."""
    number = "1er" if language == "fr" and day.day == 1 else str(day.day)
    return f"{number} {MONTHS[language][day.month - 1]} {day.year}"


def moment_text(moment: dt.datetime, language: Language) -> str:
    """« 1er décembre 2026 à 23:45 », "1 December 2026, 23:45": ``moment`` as it
    is given, already in the time zone the reader lives in."""
    return label("moment", language, date=date_text(moment, language), time=f"{moment:%H:%M}")
