"""The teleservice's data: patients keyed by NIR and the médecin traitant each
declared, in SQLite, made from a seed file (seed.toml).

``init_db`` is idempotent: running it again with the same seed changes nothing,
with an edited seed it brings the rows up to date. The file is readable by its
owner only (0600): it holds NIRs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardauth.errors import InvalidIdentifier
from cardauth.identifiers import Nir, Rpps
from examples.teleservice.errors import SeedError

BUNDLED_SEED = Path(__file__).with_name("seed.toml")  # the simulator's personas

FILE_MODE = 0o600
SCHEMA = """
CREATE TABLE IF NOT EXISTS doctors (
    rpps TEXT PRIMARY KEY,
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    practice TEXT NOT NULL,
    city TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS patients (
    nir TEXT PRIMARY KEY,
    surname TEXT NOT NULL,
    given_name TEXT NOT NULL,
    doctor_rpps TEXT REFERENCES doctors (rpps),
    declared_on TEXT
);
"""


@dataclass(frozen=True, slots=True)
class Doctor:
    rpps: str
    surname: str
    given_name: str
    practice: str
    city: str


@dataclass(frozen=True, slots=True)
class Declaration:
    """What the service knows of one patient: the declared doctor, if any."""

    doctor: Doctor | None
    declared_on: dt.date | None


@dataclass(frozen=True, slots=True)
class Seed:
    doctors: tuple[Doctor, ...]
    patients: tuple[tuple[str, str, str, str | None, dt.date | None], ...]


def load_seed(path: Path) -> Seed:
    """Read and check a seed file: valid RPPS and NIRs, declared doctors known."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SeedError(f"cannot read the seed file: {exc}", file=str(path)) from None
    try:
        doctors = tuple(_doctor(entry) for entry in data.get("doctors", []))
        known = {doctor.rpps for doctor in doctors}
        patients = tuple(_patient(entry, known) for entry in data.get("patients", []))
    except (KeyError, TypeError, AttributeError, InvalidIdentifier) as exc:
        raise SeedError(f"invalid seed entry: {exc}", file=str(path)) from None
    return Seed(doctors, patients)


def _doctor(entry: dict[str, Any]) -> Doctor:
    return Doctor(
        rpps=Rpps(entry["rpps"]).value,
        surname=_text(entry, "surname"),
        given_name=_text(entry, "given_name"),
        practice=_text(entry, "practice"),
        city=_text(entry, "city"),
    )


def _patient(
    entry: dict[str, Any], doctors: set[str]
) -> tuple[str, str, str, str | None, dt.date | None]:
    nir = Nir(entry["nir"]).value
    doctor = entry.get("doctor")
    declared_on = entry.get("declared_on")
    if doctor is None and declared_on is None:
        return (nir, _text(entry, "surname"), _text(entry, "given_name"), None, None)
    if doctor not in doctors or not isinstance(declared_on, dt.date):
        raise TypeError(f"patient {Nir(nir).masked()}: a known doctor and a declared_on date")
    return (nir, _text(entry, "surname"), _text(entry, "given_name"), doctor, declared_on)


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{key} must be non-empty text")
    return value


def init_db(db: Path, seed: Path) -> tuple[int, int]:
    """Create or update the database ``db`` from ``seed``; the counts of doctors and
    patients in the seed."""
    content = load_seed(seed)
    db.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before SQLite opens it, so that it is never readable by others.
    os.close(os.open(db, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    db.chmod(FILE_MODE)
    with _connect(db) as connection, connection:
        connection.executescript(SCHEMA)
        connection.executemany(
            "INSERT INTO doctors VALUES (?, ?, ?, ?, ?) ON CONFLICT (rpps) DO UPDATE SET "
            "surname = excluded.surname, given_name = excluded.given_name, "
            "practice = excluded.practice, city = excluded.city",
            [(d.rpps, d.surname, d.given_name, d.practice, d.city) for d in content.doctors],
        )
        connection.executemany(
            "INSERT INTO patients VALUES (?, ?, ?, ?, ?) ON CONFLICT (nir) DO UPDATE SET "
            "surname = excluded.surname, given_name = excluded.given_name, "
            "doctor_rpps = excluded.doctor_rpps, declared_on = excluded.declared_on",
            [
                (nir, surname, given, doctor, None if on is None else on.isoformat())
                for nir, surname, given, doctor, on in content.patients
            ],
        )
    return len(content.doctors), len(content.patients)


class Declarations:
    """Read access to the database, one short connection per query (Flask serves
    requests on several threads)."""

    def __init__(self, db: Path) -> None:
        if not db.is_file():
            raise SeedError("no database: run init-db first", file=str(db))
        self.db = db

    def find(self, nir: Nir) -> Declaration | None:
        """The declaration of the patient whose NIR the Vitale certificate gave, or
        None when the patient is unknown to the service."""
        with _connect(self.db, read_only=True) as connection:
            row = connection.execute(
                "SELECT p.declared_on, d.rpps, d.surname, d.given_name, d.practice, d.city "
                "FROM patients p LEFT JOIN doctors d ON d.rpps = p.doctor_rpps WHERE p.nir = ?",
                (nir.value,),
            ).fetchone()
        if row is None:
            return None
        declared_on, *doctor = row
        if declared_on is None or doctor[0] is None:
            return Declaration(None, None)
        return Declaration(Doctor(*doctor), dt.date.fromisoformat(declared_on))


@contextlib.contextmanager
def _connect(db: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"{db.resolve().as_uri()}?mode=ro" if read_only else f"{db.resolve().as_uri()}?mode=rw"
    connection = sqlite3.connect(uri, uri=True)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        yield connection
    finally:
        connection.close()
