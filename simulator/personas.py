"""Personas: who is on each virtual card, as data files.

Each persona is a TOML file in ``simulator/personas/`` (docs/simulator.md lists
them); a developer can also point the simulator at a file of their own. A
persona file is untrusted input like any other: every field is checked here and
a bad file is a PersonaError naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardauth.cards.cps import PIN_TRIES, CardType, CpsHolder, Situation
from cardauth.cards.vitale import Insurer, Person, Relationship, VitaleHolder
from cardauth.errors import InvalidIdentifier
from cardauth.identifiers import IdNat, Nir
from simulator.errors import PersonaError
from simulator.faults import NO_FAULTS, FaultSettings

PERSONA_DIRECTORY = Path(__file__).parent / "personas"
DEFAULT_CPS = "doctor"
DEFAULT_VITALE = "patient"
DEFAULT_PIN = "1234"
DEFAULT_PUK = "12345678"


@dataclass(frozen=True, slots=True)
class CardSettings:
    serial: str  # 10 decimal digits, stored as 5 BCD bytes
    mute: bool = False
    faults: FaultSettings = NO_FAULTS  # the [faults] table (simulator/faults.py)


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    not_before: dt.date
    not_after: dt.date
    revoked_on: dt.date | None = None
    organization: str = ""


@dataclass(frozen=True, slots=True)
class CpsPersona:
    id: str
    description: str
    card: CardSettings
    holder: CpsHolder
    certificate: CertificateSpec
    pin: str = DEFAULT_PIN
    puk: str = DEFAULT_PUK
    pin_tries_left: int = 3
    kind: str = "cps"


@dataclass(frozen=True, slots=True)
class VitalePersona:
    id: str
    description: str
    card: CardSettings
    holder: VitaleHolder
    certificate: CertificateSpec
    kind: str = "vitale"


@dataclass(frozen=True, slots=True)
class OtherPersona:
    """A card that is neither CPS nor Vitale (or one that does not answer)."""

    id: str
    description: str
    card: CardSettings
    atr: bytes
    kind: str = "other"


Persona = CpsPersona | VitalePersona | OtherPersona


def load(name_or_path: str) -> Persona:
    """A bundled persona by id, or a persona file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" and candidate.exists():
        return load_file(candidate)
    path = PERSONA_DIRECTORY / f"{name_or_path}.toml"
    if not name_or_path.replace("-", "").isalnum() or not path.exists():
        raise PersonaError(
            f"unknown persona {name_or_path[:64]!r}",
            persona=name_or_path,
            known=", ".join(sorted(bundled())),
        )
    return bundled()[name_or_path]


def load_cps(name_or_path: str) -> CpsPersona:
    persona = load(name_or_path)
    if not isinstance(persona, CpsPersona):
        raise PersonaError("not a CPS persona", persona=name_or_path)
    return persona


def load_vitale(name_or_path: str) -> VitalePersona:
    persona = load(name_or_path)
    if not isinstance(persona, VitalePersona):
        raise PersonaError("not a Vitale persona", persona=name_or_path)
    return persona


@functools.cache
def bundled() -> Mapping[str, Persona]:
    """Every persona shipped with the simulator, by id."""
    return {path.stem: load_file(path) for path in sorted(PERSONA_DIRECTORY.glob("*.toml"))}


def load_file(path: Path) -> Persona:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PersonaError("persona file does not read", file=str(path), reason=str(exc)) from exc
    reader = _Fields(data, str(path))
    kind = reader.text("kind")
    builders: dict[str, Callable[[str, _Fields], Persona]] = {
        "cps": _cps,
        "vitale": _vitale,
        "other": _other,
    }
    if kind not in builders:
        raise PersonaError("persona kind must be cps, vitale or other", file=str(path))
    try:
        return builders[kind](path.stem, reader)
    except InvalidIdentifier as exc:
        raise PersonaError(
            f"persona has an invalid identifier: {exc.message}", file=str(path)
        ) from exc


class _Fields:
    """Typed access to a persona's TOML tables, naming the field at fault."""

    def __init__(self, data: Mapping[str, Any], file: str, prefix: str = "") -> None:
        self._data = data
        self._file = file
        self._prefix = prefix

    @property
    def file(self) -> str:
        return self._file

    def has(self, key: str) -> bool:
        return key in self._data

    def mapping(self) -> Mapping[str, Any]:
        return self._data

    def _fail(self, key: str, expected: str) -> PersonaError:
        return PersonaError(
            f"persona field {self._prefix}{key} must be {expected}", file=self._file
        )

    def _get(self, key: str, kind: type | tuple[type, ...], expected: str, default: Any) -> Any:
        value = self._data.get(key, default)
        if (
            value is _REQUIRED
            or not isinstance(value, kind)
            or isinstance(value, bool) != (kind is bool)
        ):
            raise self._fail(key, expected)
        return value

    def text(self, key: str, default: Any = None) -> str:
        return str(self._get(key, str, "text", _REQUIRED if default is None else default))

    def optional_text(self, key: str) -> str | None:
        return self._get(key, (str, type(None)), "text", None)  # type: ignore[no-any-return]

    def flag(self, key: str) -> bool:
        return bool(self._get(key, bool, "true or false", False))

    def integer(self, key: str, default: int) -> int:
        return int(self._get(key, int, "an integer", default))

    def date(self, key: str) -> dt.date:
        value = self._get(key, dt.date, "a date (YYYY-MM-DD)", _REQUIRED)
        if isinstance(value, dt.datetime):
            raise self._fail(key, "a date without a time")
        return value  # type: ignore[no-any-return]

    def optional_date(self, key: str) -> dt.date | None:
        return self.date(key) if self.has(key) else None

    def table(self, key: str) -> _Fields:
        value = self._get(key, dict, "a table", _REQUIRED)
        return _Fields(value, self._file, f"{self._prefix}{key}.")

    def tables(self, key: str) -> list[_Fields]:
        value = self._get(key, list, "a list of tables", [])
        if not all(isinstance(item, dict) for item in value):
            raise self._fail(key, "a list of tables")
        return [
            _Fields(item, self._file, f"{self._prefix}{key}[{i}].") for i, item in enumerate(value)
        ]


_REQUIRED = object()


def _digits(text: str, count: int) -> bool:
    return len(text) == count and text.isascii() and text.isdigit()


def _card_settings(fields: _Fields) -> CardSettings:
    card = fields.table("card")
    serial = card.text("serial")
    if not _digits(serial, 10):
        raise PersonaError("card.serial must be 10 digits", file=fields.file)
    return CardSettings(serial=serial, mute=card.flag("mute"), faults=_faults(fields))


def _faults(fields: _Fields) -> FaultSettings:
    if not fields.has("faults"):
        return NO_FAULTS
    try:
        return FaultSettings.from_mapping(fields.table("faults").mapping())
    except ValueError as exc:
        raise PersonaError(f"persona field faults: {exc}", file=fields.file) from None


def _certificate(fields: _Fields) -> CertificateSpec:
    cert = fields.table("certificate")
    spec = CertificateSpec(
        not_before=cert.date("not_before"),
        not_after=cert.date("not_after"),
        revoked_on=cert.optional_date("revoked_on"),
        organization=cert.text("organization", ""),
    )
    if spec.not_after <= spec.not_before:
        raise PersonaError("certificate.not_after must follow not_before", file=fields.file)
    return spec


def _cps(persona_id: str, fields: _Fields) -> CpsPersona:
    holder = fields.table("holder")
    try:
        card_type = CardType(holder.text("card_type"))
    except ValueError:
        raise PersonaError(
            "holder.card_type must be CPS, CPE, CPF or CPA", file=fields.file
        ) from None
    situations = tuple(
        Situation(**{name: s.text(name, "") for name in Situation.FIELDS})
        for s in fields.tables("situations")
    )
    pin_settings = fields.table("pin") if fields.has("pin") else _Fields({}, fields.file)
    pin, puk = pin_settings.text("pin", DEFAULT_PIN), pin_settings.text("puk", DEFAULT_PUK)
    tries_left = pin_settings.integer("tries_left", PIN_TRIES)
    if not (_digits(pin, 4) and _digits(puk, 8)):
        raise PersonaError("pin.pin must be 4 digits and pin.puk 8 digits", file=fields.file)
    if not 0 <= tries_left <= PIN_TRIES:
        raise PersonaError(f"pin.tries_left must be 0 to {PIN_TRIES}", file=fields.file)
    return CpsPersona(
        id=persona_id,
        description=fields.text("description"),
        card=_card_settings(fields),
        holder=CpsHolder(
            card_type=card_type,
            idnat=IdNat.parse(holder.text("idnat")),
            civility=holder.text("civility"),
            surname=holder.text("surname"),
            given_name=holder.text("given_name"),
            profession_code=holder.optional_text("profession_code"),
            situations=situations,
        ),
        certificate=_certificate(fields),
        pin=pin,
        puk=puk,
        pin_tries_left=tries_left,
    )


def _person(fields: _Fields, relationship: Relationship) -> Person:
    try:
        relation = Relationship[fields.text("relationship", relationship.name).upper()]
    except KeyError:
        raise PersonaError(
            "relationship must be insured, spouse, child or other", file=fields.file
        ) from None
    return Person(
        nir=Nir.parse(fields.text("nir")),
        surname=fields.text("surname"),
        given_name=fields.text("given_name"),
        birth_date=fields.date("birth_date"),
        rank=fields.integer("rank", 1),
        relationship=relation,
    )


def _vitale(persona_id: str, fields: _Fields) -> VitalePersona:
    insurer = fields.table("insurer")
    validity = fields.table("validity")
    return VitalePersona(
        id=persona_id,
        description=fields.text("description"),
        card=_card_settings(fields),
        holder=VitaleHolder(
            insured=_person(fields.table("insured"), Relationship.INSURED),
            beneficiaries=tuple(
                _person(b, Relationship.CHILD) for b in fields.tables("beneficiaries")
            ),
            insurer=Insurer(insurer.text("regime"), insurer.text("fund"), insurer.text("centre")),
            valid_from=validity.date("from"),
            valid_until=validity.date("until"),
        ),
        certificate=_certificate(fields),
    )


def _other(persona_id: str, fields: _Fields) -> OtherPersona:
    try:
        atr = bytes.fromhex(fields.text("atr"))
    except ValueError:
        raise PersonaError("atr must be hexadecimal", file=fields.file) from None
    if not 1 <= len(atr) <= 33:
        raise PersonaError("atr must be 1 to 33 bytes", file=fields.file)
    return OtherPersona(
        id=persona_id,
        description=fields.text("description"),
        card=_card_settings(fields),
        atr=atr,
    )
