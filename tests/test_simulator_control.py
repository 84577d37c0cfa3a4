"""The simulator's control socket and its private directory: untrusted requests get
answers, never crashes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import control
from simulator.errors import SimulatorError
from simulator.workstation import virtual_workstation


@pytest.fixture
def server(tmp_path: Path) -> Iterator[control.ControlServer]:
    workstation, _readers = virtual_workstation()
    made = control.ControlServer(workstation, tmp_path / "control.sock")
    yield made
    made.close()
    workstation.close()


def raw_request(path: Path, line: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(line)
        with sock.makefile("rb") as answer:
            decoded = json.loads(answer.readline())
    assert isinstance(decoded, dict)
    return decoded


def test_insert_remove_swap_status(server: control.ControlServer) -> None:
    assert control.send({"op": "insert", "slot": 0, "persona": "doctor"}, server.path)["ok"]
    assert control.send({"op": "insert", "slot": 1, "persona": "patient"}, server.path)["ok"]
    swapped = control.send({"op": "swap"}, server.path)
    assert [s["persona"] for s in swapped["slots"]] == ["patient", "doctor"]
    removed = control.send({"op": "remove", "slot": 0}, server.path)
    assert [s["persona"] for s in removed["slots"]] == [None, "doctor"]


@pytest.mark.parametrize(
    "request_line",
    [
        b"not json\n",
        b"[1, 2]\n",
        b'{"op": "insert", "slot": "0", "persona": "doctor"}\n',
        b'{"op": "insert", "slot": 0, "persona": "nobody"}\n',
        b'{"op": "insert", "slot": 7, "persona": "doctor"}\n',
        b'{"op": "format-the-disk"}\n',
        b"[" * 5000 + b"\n",
    ],
)
def test_bad_requests_get_an_error_answer(
    server: control.ControlServer, request_line: bytes
) -> None:
    answer = raw_request(server.path, request_line)
    assert answer["ok"] is False
    assert isinstance(answer["error"], dict)
    assert str(answer["error"]["code"]).startswith("sim.")
    assert control.send({"op": "status"}, server.path)["ok"]  # and the server still serves


def test_an_overlong_request_is_refused(server: control.ControlServer) -> None:
    answer = raw_request(server.path, b"x" * (control.MAX_REQUEST + 10) + b"\n")
    assert answer["ok"] is False


def test_socket_is_private(server: control.ControlServer) -> None:
    assert server.path.stat().st_mode & 0o077 == 0


def test_no_simulator_running(tmp_path: Path) -> None:
    with pytest.raises(control.ControlUnavailable):
        control.send({"op": "status"}, tmp_path / "nobody.sock")


def test_a_shared_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "cardauth-sim-0"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(SimulatorError):
        control._private_directory(shared)
    private = tmp_path / "mine"
    control._private_directory(private)
    assert private.stat().st_mode & 0o777 == 0o700
    assert private.stat().st_uid == os.getuid()


def test_vpcd_port_must_leave_room_for_the_second_slot() -> None:
    from simulator.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["--vpcd", "--vpcd-port", "65535"])
    assert caught.value.code == 2


def test_the_control_socket_and_language_go_after_the_command_too(
    server: control.ControlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator.cli import main

    assert main(["insert", "0", "doctor", "--control", str(server.path), "--lang", "en"]) == 0
    assert main(["--control", str(server.path), "status"]) == 0
    answers = capsys.readouterr().out
    assert '"persona": "doctor"' in answers
    with pytest.raises(SystemExit):
        main(["--lang", "en", "--help"])
    assert "The option --lang goes before or after" in capsys.readouterr().out
