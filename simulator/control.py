"""Control of a running simulator from another process, over a Unix socket.

``cardauth-sim --vpcd`` listens on a socket only its user can open (mode 0600,
in ``$XDG_RUNTIME_DIR`` or a private directory under /tmp); ``cardauth-sim
insert``, ``remove``, ``swap`` and ``status`` send one JSON request per line and
read one JSON answer. Requests are untrusted input: anything malformed gets an
error answer, never a crash of the simulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from cardauth.errors import CardAuthError
from simulator.errors import SimulatorError
from simulator.workstation import Workstation

MAX_REQUEST = 4096


class ControlUnavailable(SimulatorError):
    """No simulator is listening on the control socket."""

    code = "sim.control_unavailable"


def default_socket_path() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "cardauth-sim.sock"
    return Path(tempfile.gettempdir()) / f"cardauth-sim-{os.getuid()}" / "control.sock"


def _private_directory(path: Path) -> None:
    """Create ``path`` for this user alone, and refuse one that someone else prepared
    (in a shared /tmp, another user could otherwise squat the control socket)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.lstat()
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise SimulatorError(
            "the control socket's directory is not private to this user", path=str(path)
        )


def handle_request(workstation: Workstation, request: Any) -> dict[str, Any]:
    """Apply one request to the workstation; the answer always says ok or why not."""
    try:
        if not isinstance(request, dict):
            raise SimulatorError("a request is a JSON object")
        operation = request.get("op")
        if operation == "insert":
            workstation.insert(_slot(request), _persona(request))
        elif operation == "remove":
            workstation.remove(_slot(request))
        elif operation == "swap":
            workstation.swap()
        elif operation != "status":
            raise SimulatorError("unknown operation", op=str(operation)[:32])
    except CardAuthError as error:
        return {"ok": False, "error": error.to_dict()}
    return {"ok": True, "slots": [s.to_dict() for s in workstation.status()]}


def _slot(request: dict[str, Any]) -> int:
    slot = request.get("slot")
    if not isinstance(slot, int) or isinstance(slot, bool):
        raise SimulatorError("slot must be a number")
    return slot


def _persona(request: dict[str, Any]) -> str:
    persona = request.get("persona")
    if not isinstance(persona, str) or not persona or len(persona) > 256:
        raise SimulatorError("persona must be a name or a .toml path")
    return persona


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        while raw := self.rfile.readline(MAX_REQUEST + 1):
            if len(raw) > MAX_REQUEST:
                error = SimulatorError("request too long", limit=MAX_REQUEST)
                self._answer({"ok": False, "error": error.to_dict()})
                return
            try:
                request = json.loads(raw)
            except (ValueError, RecursionError):
                request = None
            self._answer(handle_request(self.server.workstation, request))

    def _answer(self, answer: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, workstation: Workstation) -> None:
        self.workstation = workstation
        super().__init__(str(path), _Handler)


class ControlServer:
    """Serves control requests for ``workstation`` on ``path`` until closed."""

    def __init__(self, workstation: Workstation, path: Path | None = None) -> None:
        if path is None:
            path = default_socket_path()
            if path.parent.name.startswith("cardauth-sim-"):  # the fallback under /tmp
                _private_directory(path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        if self.path.exists() and not _someone_listens(self.path):
            self.path.unlink()  # left over by a simulator that was killed
        previous = os.umask(0o177)
        try:
            self._server = _Server(self.path, workstation)
        except OSError as exc:
            raise SimulatorError(
                "the control socket is in use: is another simulator running?", path=str(self.path)
            ) from exc
        finally:
            os.umask(previous)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _someone_listens(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def send(
    request: dict[str, Any], path: Path | None = None, timeout: float = 10.0
) -> dict[str, Any]:
    """Send one request to the running simulator and return its answer."""
    path = path or default_socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise ControlUnavailable(
                "no simulator is running (start one with cardauth-sim --vpcd)", path=str(path)
            ) from exc
        sock.sendall(json.dumps(request).encode() + b"\n")
        with sock.makefile("rb") as answer:
            line = answer.readline(MAX_REQUEST * 4)
    try:
        decoded = json.loads(line)
    except ValueError as exc:
        raise SimulatorError("the simulator gave no answer") from exc
    if not isinstance(decoded, dict):
        raise SimulatorError("the simulator gave no answer")
    return decoded
