"""« Médecin traitant en ligne », set up: its database from the seed file (the
simulator's personas), the init-db command, its settings and installation secrets."""

from __future__ import annotations

import sqlite3
import stat
import tomllib
from pathlib import Path

import pytest

from cardauth.errors import InvalidOrigin
from examples.teleservice import Settings, create_app
from examples.teleservice.__main__ import build_parser, main
from examples.teleservice.errors import SeedError, SettingsError
from examples.teleservice.settings import installation_secret
from examples.teleservice.store import BUNDLED_SEED, init_db, load_seed
from simulator.personas import VitalePersona, bundled, load_cps
from simulator.trust_export import export_trust
from tests.verifier_kit import NOW


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_the_seed_holds_the_simulator_s_vitale_personas() -> None:
    seed = tomllib.loads(BUNDLED_SEED.read_text(encoding="utf-8"))
    personas = {
        str(persona.holder.insured.nir)
        for persona in bundled().values()
        if isinstance(persona, VitalePersona)
    }
    nirs = {patient["nir"] for patient in seed["patients"]}
    assert nirs <= personas
    assert {"285037511542370", "178016912304552", "263022A00401181"} <= nirs
    assert any("doctor" not in patient for patient in seed["patients"])  # one declared nobody


def test_the_seed_s_doctors_include_the_simulator_s_doctor() -> None:
    doctor = load_cps("doctor").holder
    seed = load_seed(BUNDLED_SEED)
    assert f"8{seed.doctors[0].rpps}" == str(doctor.idnat)
    assert (seed.doctors[0].surname, seed.doctors[0].given_name) == (
        doctor.surname,
        doctor.given_name,
    )


def test_init_db_is_idempotent_and_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "teleservice.db"
    assert init_db(db, BUNDLED_SEED) == (2, 3)
    first = rows(db, "SELECT * FROM patients ORDER BY nir")
    assert init_db(db, BUNDLED_SEED) == (2, 3)
    assert rows(db, "SELECT * FROM patients ORDER BY nir") == first
    assert len(first) == 3
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_init_db_brings_an_edited_seed_up_to_date(tmp_path: Path) -> None:
    db = tmp_path / "teleservice.db"
    init_db(db, BUNDLED_SEED)
    edited = tmp_path / "seed.toml"
    edited.write_text(
        BUNDLED_SEED.read_text(encoding="utf-8").replace("2021-09-06", "2024-01-02"),
        encoding="utf-8",
    )
    init_db(db, edited)
    assert ("2024-01-02",) in rows(db, "SELECT declared_on FROM patients")


@pytest.mark.parametrize(
    "patient",
    [
        'nir = "285037511542371"\nsurname = "X"\ngiven_name = "Y"',  # wrong NIR key
        'nir = "285037511542370"\nsurname = "X"\ngiven_name = "Y"\ndoctor = "99700735741"',
        'nir = "285037511542370"\nsurname = "X"\ngiven_name = "Y"\n'
        'doctor = "12345678901"\ndeclared_on = 2020-01-01',  # an unknown doctor
    ],
)
def test_a_bad_seed_is_refused(tmp_path: Path, patient: str) -> None:
    seed = tmp_path / "seed.toml"
    doctors = BUNDLED_SEED.read_text(encoding="utf-8").split("[[patients]]")[0]
    seed.write_text(f"{doctors}[[patients]]\n{patient}\n", encoding="utf-8")
    with pytest.raises(SeedError):
        load_seed(seed)


def test_the_init_db_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.db"
    assert main(["init-db", "--seed", str(BUNDLED_SEED), "--db", str(db)]) == 0
    assert main(["init-db", "--db", str(db)]) == 0  # the bundled seed, again
    assert "2 doctors, 3 patients" in capsys.readouterr().out
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert main(["init-db", "--seed", str(tmp_path / "missing.toml"), "--db", str(db)]) == 1
    assert "seed.invalid" in capsys.readouterr().err


def test_the_run_command_s_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.port, args.bridge_url, args.origin) == (
        8450,
        "http://127.0.0.1:24790",
        "http://127.0.0.1:8450",
    )


def test_the_secret_key_is_made_once_per_installation(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret_key"
    first = installation_secret(path)
    assert len(first) == 32
    assert installation_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with pytest.raises(SettingsError):
        installation_secret(path)


def test_create_app_from_settings(tmp_path: Path) -> None:
    export_trust(tmp_path / "trust", now=NOW)
    settings = Settings(
        state_dir=tmp_path / "state",
        trust_dir=tmp_path / "trust",
        allow_development_origins=True,
    )
    init_db(tmp_path / "state" / "teleservice.db", BUNDLED_SEED)
    app = create_app(settings)
    assert app.config["CARDAUTH_ORIGINS"] == ["http://127.0.0.1:8450"]
    assert app.config["SECRET_KEY"] == bytes.fromhex(
        (tmp_path / "state" / "secret_key").read_text()
    )
    assert not app.config["SESSION_COOKIE_SECURE"]  # http on loopback, for development


def test_http_origins_need_the_development_setting(tmp_path: Path) -> None:
    export_trust(tmp_path / "trust", now=NOW)
    init_db(tmp_path / "state" / "teleservice.db", BUNDLED_SEED)
    settings = Settings(state_dir=tmp_path / "state", trust_dir=tmp_path / "trust")
    with pytest.raises(InvalidOrigin, match="https"):
        create_app(settings)


def test_the_app_needs_its_database_and_audit_trail(tmp_path: Path) -> None:
    base = {"SECRET_KEY": "k", "CARDAUTH_ORIGINS": ["https://teleservice.example"]}
    with pytest.raises(SettingsError):
        create_app(base)
    with pytest.raises(SettingsError):
        create_app(base | {"TELESERVICE_DB": str(tmp_path / "none.db")})
    with pytest.raises(SeedError):
        create_app(
            base
            | {
                "TELESERVICE_DB": str(tmp_path / "none.db"),
                "CARDAUTH_AUDIT_LOG": str(tmp_path / "a.jsonl"),
            }
        )
    with pytest.raises(SettingsError):
        create_app(
            base | {"TELESERVICE_DB": "x", "TELESERVICE_BRIDGE_URL": "http://a; script-src *"}
        )
