"""The bridge as a program: its settings file, its command line, a real server
on loopback (waitress) that refuses any other address, and the approvals it
lists and withdraws."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from cardauth.origins import Origin
from tests.support import free_port
from webbridge.config import DEFAULT_PORT, BridgeConfig, config_from_settings, load_config
from webbridge.consent import ConsentStore
from webbridge.errors import BridgeConfigError
from webbridge.server import main

ORIGIN = "https://teleservice.example"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# -- settings -------------------------------------------------------------------------


def test_no_settings_file_means_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = load_config(None)
    assert config.port == DEFAULT_PORT
    assert config.allowed_origins == ()
    assert config.pin_idle_seconds == 300


def test_a_settings_file_is_read(tmp_path: Path) -> None:
    file = tmp_path / "bridge.toml"
    file.write_text(
        'port = 25000\nallowed_origins = ["https://b.example", "https://a.example"]\n'
        "[pin]\nidle_seconds = 60\n[consent]\ndays = 7\n"
        "[limits]\nauthentications_per_minute = 5\n",
        encoding="utf-8",
    )
    config = load_config(file)
    assert config.port == 25000
    assert [o.value for o in config.allowed_origins] == ["https://a.example", "https://b.example"]
    assert (config.pin_idle_seconds, config.consent_days) == (60, 7)
    assert config.authentications_per_minute == 5


@pytest.mark.parametrize(
    "settings",
    [
        {"prot": 25000},
        {"port": "25000"},
        {"port": 80},
        {"allowed_origins": ["http://teleservice.example"]},
        {"allowed_origins": "https://teleservice.example"},
        {"pin": {"idle_seconds": float("nan")}},
        {"pin": {"idle_seconds": -1}},
        {"pin": {"idle": 1}},
        {"pin": 5},
        {"consent": {"days": True}},
        {"limits": {"authentications_per_minute": 0}},
    ],
)
def test_a_wrong_setting_is_named(settings: dict[str, object]) -> None:
    with pytest.raises(BridgeConfigError):
        config_from_settings(settings)


def test_a_named_settings_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BridgeConfigError):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n", encoding="utf-8")
    with pytest.raises(BridgeConfigError):
        load_config(broken)


def test_the_command_line_adds_to_the_file() -> None:
    config = BridgeConfig(allowed_origins=(Origin.parse(ORIGIN),)).with_overrides(
        port=25001, origins=["http://127.0.0.1:8000"], allow_development_origins=True
    )
    assert config.port == 25001
    assert [o.value for o in config.allowed_origins] == [ORIGIN, "http://127.0.0.1:8000"]


# -- the command -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_the_bridge_refuses_to_listen_beyond_loopback(tmp_path: Path, host: str) -> None:
    code, _out, err = _run(
        "--lang", "en", "--state-dir", str(tmp_path), "--simulate", "--host", host
    )
    assert code == 1
    assert "[bridge.not_loopback]" in err
    assert f"{host} is refused" in err


def test_approvals_are_listed_and_withdrawn_from_the_command_line(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path)
    store.grant(Origin.parse("https://new.example"), now=dt.datetime.now(dt.UTC), days=30)
    code, out, _err = _run("--lang", "en", "--state-dir", str(tmp_path), "consents", "list")
    assert code == 0
    assert "https://new.example until" in out
    code, out, _err = _run("--state-dir", str(tmp_path), "consents", "list", "--json")
    assert [c["origin"] for c in json.loads(out)["consents"]] == ["https://new.example"]
    code, out, _err = _run(
        "--lang", "fr", "--state-dir", str(tmp_path), "consents", "revoke", "https://new.example"
    )
    assert (code, out.strip()) == (0, "Accord retiré : https://new.example")
    code, _out, err = _run(
        "--lang", "en", "--state-dir", str(tmp_path), "consents", "revoke", "https://new.example"
    )
    assert code == 1
    assert "No approval for https://new.example" in err
    assert store.list(now=dt.datetime.now(dt.UTC)) == []
    assert oct((tmp_path / "consents.db").stat().st_mode & 0o777) == "0o600"


def test_the_program_options_go_after_the_command_too(tmp_path: Path) -> None:
    store = ConsentStore(tmp_path)
    store.grant(Origin.parse("https://new.example"), now=dt.datetime.now(dt.UTC), days=30)
    code, out, _err = _run("consents", "--state-dir", str(tmp_path), "list", "--lang", "en")
    assert code == 0
    assert "https://new.example until" in out
    code, out, _err = _run(
        "consents", "revoke", "https://new.example", "--state-dir", str(tmp_path)
    )
    assert (code, out.strip()) == (0, "Accord retiré : https://new.example")


# -- a real server -----------------------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    command = [
        sys.executable, "-m", "webbridge.server", "--lang", "en", "--simulate",
        "--port", str(port), "--allow-origin", ORIGIN, "--state-dir", str(tmp_path),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in first, first
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _ask(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_a_real_server_answers_on_loopback_and_stops_cleanly(
    running: tuple[int, subprocess.Popen[str]],
) -> None:
    port, process = running
    status, body = _ask(port, "/v1/cards", {"Origin": ORIGIN, "Host": f"127.0.0.1:{port}"})
    assert status == 200
    assert b'"kind":"cps"' in body
    rebinding, _ = _ask(port, "/v1/cards", {"Origin": ORIGIN, "Host": f"attacker.example:{port}"})
    assert rebinding == 403
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_a_second_bridge_on_the_same_port_says_so(
    running: tuple[int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    port, _process = running
    started = time.monotonic()
    code, _out, err = _run(
        "--lang", "en", "--simulate", "--port", str(port), "--state-dir", str(tmp_path)
    )
    assert code == 1
    assert "[bridge.cannot_listen]" in err
    assert f"Cannot listen on port {port}" in err
    assert time.monotonic() - started < 10
