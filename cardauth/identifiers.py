"""National identifiers as validated types: NIR, RPPS, ADELI, FINESS and IdNat.

Each type parses text at the edge (``parse``) and refuses anything malformed with
:class:`~cardauth.errors.InvalidIdentifier`; once built, a value is known good.
A NIR is personal data: its ``repr`` masks it so that it cannot leak into logs
by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from cardauth.errors import InvalidIdentifier

_NIR_PATTERN = re.compile(r"[1-478][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{6}[0-9]{2}")
_CORSICA = {"2A": "19", "2B": "18"}


def luhn_valid(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the ones before it."""
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def luhn_check_digit(digits: str) -> str:
    """The digit that makes ``digits`` + it pass the Luhn check."""
    for candidate in "0123456789":
        if luhn_valid(digits + candidate):
            return candidate
    raise InvalidIdentifier("no Luhn digit for a non-numeric string")  # pragma: no cover


def _compact(text: str) -> str:
    return "".join(text.split()).upper()


@dataclass(frozen=True, slots=True)
class Nir:
    """A French social security number: 13 characters and a 2-digit key.

    Key = 97 - (the first 13 as a number mod 97); Corsican departments 2A and 2B
    count as 19 and 18 for the key.
    """

    value: str

    def __post_init__(self) -> None:
        if not _NIR_PATTERN.fullmatch(self.value):
            raise InvalidIdentifier("a NIR is 15 characters: 13 then a 2-digit key", kind="nir")
        if self.value[13:] != self.compute_key(self.value[:13]):
            raise InvalidIdentifier("the NIR key does not match", kind="nir")

    @classmethod
    def parse(cls, text: str) -> Nir:
        return cls(_compact(text))

    @staticmethod
    def compute_key(body: str) -> str:
        """The 2-digit key of a 13-character NIR body."""
        numeric = body[:5] + _CORSICA.get(body[5:7], body[5:7]) + body[7:]
        if len(numeric) != 13 or not (numeric.isascii() and numeric.isdigit()):
            raise InvalidIdentifier("a NIR body is 13 characters", kind="nir")
        return f"{97 - int(numeric) % 97:02d}"

    @property
    def body(self) -> str:
        return self.value[:13]

    @property
    def key(self) -> str:
        return self.value[13:]

    @property
    def sex(self) -> int:
        return int(self.value[0])

    def masked(self) -> str:
        """Sex and birth year only, for display where the full number is not needed."""
        return f"{self.value[0]} {self.value[1:3]} ** ** *** *** **"

    def __repr__(self) -> str:
        return f"Nir({self.masked()!r})"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Rpps:
    """An RPPS number: 11 digits, the last a Luhn check digit."""

    value: str

    def __post_init__(self) -> None:
        if len(self.value) != 11 or not luhn_valid(self.value):
            raise InvalidIdentifier("an RPPS number is 11 digits with a Luhn check", kind="rpps")

    @classmethod
    def parse(cls, text: str) -> Rpps:
        return cls(_compact(text))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Adeli:
    """An ADELI number: 9 digits, the last a Luhn check digit."""

    value: str

    def __post_init__(self) -> None:
        if len(self.value) != 9 or not luhn_valid(self.value):
            raise InvalidIdentifier("an ADELI number is 9 digits with a Luhn check", kind="adeli")

    @classmethod
    def parse(cls, text: str) -> Adeli:
        return cls(_compact(text))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Finess:
    """A FINESS number (health structure): 9 digits, the last a Luhn check digit."""

    value: str

    def __post_init__(self) -> None:
        if len(self.value) != 9 or not luhn_valid(self.value):
            raise InvalidIdentifier("a FINESS number is 9 digits with a Luhn check", kind="finess")

    def __str__(self) -> str:
        return self.value


class IdNatType(StrEnum):
    """The prefix of an IdNat, telling which register the identifier comes from."""

    ADELI = "0"
    FINESS_STAFF = "3"  # staff of a structure: FINESS + "/" + local suffix
    RPPS = "8"


_STAFF_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,20}", re.ASCII)


@dataclass(frozen=True, slots=True)
class IdNat:
    """The national identifier as written in card certificates (the subject CN).

    ``8`` + RPPS, ``0`` + ADELI, or ``3`` + FINESS + ``/`` + a suffix for the
    staff of a structure (CPE cards).
    """

    type: IdNatType
    identifier: str  # the register's number, without the prefix
    suffix: str = ""  # only for FINESS_STAFF

    def __post_init__(self) -> None:
        if self.type is IdNatType.RPPS:
            Rpps(self.identifier)
        elif self.type is IdNatType.ADELI:
            Adeli(self.identifier)
        else:
            Finess(self.identifier)
            if not _STAFF_SUFFIX.fullmatch(self.suffix):
                raise InvalidIdentifier("a structure staff IdNat needs a suffix", kind="idnat")
        if self.type is not IdNatType.FINESS_STAFF and self.suffix:
            raise InvalidIdentifier("only structure staff IdNats carry a suffix", kind="idnat")

    @classmethod
    def parse(cls, text: str) -> IdNat:
        text = text.strip()
        if not text:
            raise InvalidIdentifier("empty IdNat", kind="idnat")
        try:
            id_type = IdNatType(text[0])
        except ValueError:
            raise InvalidIdentifier("unknown IdNat prefix", kind="idnat") from None
        rest = text[1:]
        if id_type is IdNatType.FINESS_STAFF:
            identifier, slash, suffix = rest.partition("/")
            if not slash:
                raise InvalidIdentifier("a staff IdNat is 3 + FINESS/suffix", kind="idnat")
            return cls(id_type, identifier, suffix)
        return cls(id_type, rest)

    @classmethod
    def for_rpps(cls, rpps: Rpps) -> IdNat:
        return cls(IdNatType.RPPS, rpps.value)

    @classmethod
    def for_adeli(cls, adeli: Adeli) -> IdNat:
        return cls(IdNatType.ADELI, adeli.value)

    def __str__(self) -> str:
        if self.type is IdNatType.FINESS_STAFF:
            return f"{self.type.value}{self.identifier}/{self.suffix}"
        return f"{self.type.value}{self.identifier}"
