"""A private pcscd with the vpcd driver, for tests and benchmarks.

The private daemon runs in a mount namespace of its own, with a private ``/run``
(so its socket never collides with the system's pcscd) and a reader
configuration of its own (so its vpcd slots listen on ports that are free, not
on the system's 35963). Clients reach it through ``PCSCLITE_CSOCK_NAME``, which
libpcsclite reads once, when a process first talks to PC/SC: set it (see
:attr:`PrivatePcscd.environment`) before that.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from simulator.errors import SimulatorError

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER_NAMES = ("Virtual PCD 00 00", "Virtual PCD 00 01")


class PcscdUnavailable(SimulatorError):
    """pcscd or the vpcd driver is not installed, or the daemon did not start."""

    code = "sim.pcscd_unavailable"


def free_port_pair() -> int:
    """A port p such that p and p + 1 are free on every interface (vpcd binds both)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("0.0.0.0", 0))  # noqa: S104 - testing what vpcd will bind
            port = int(probe.getsockname()[1])
        if port < 65535 and _free(port) and _free(port + 1):
            return port
    raise PcscdUnavailable("no two consecutive free ports for vpcd")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        # As vpcd does: a port whose last connections linger in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - testing what vpcd will bind
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM to the daemon if the
    process that started it dies (a test run killed with -9 leaves no pcscd behind).
    The setting survives exec of the unshare, sh and pcscd programs."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class PrivatePcscd:
    """Start with ``with PrivatePcscd(workdir) as pcscd:``; stopped on exit."""

    def __init__(self, workdir: Path, *, vpcd: bool = True, start_timeout: float = 15.0) -> None:
        self.workdir = workdir
        self.vpcd = vpcd
        self.start_timeout = start_timeout
        self.vpcd_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "pcscd.log"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "run" / "pcscd" / "pcscd.comm"

    @property
    def environment(self) -> dict[str, str]:
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    def log_text(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> PrivatePcscd:
        pcscd = shutil.which("pcscd") or (
            "/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None
        )
        if pcscd is None or (self.vpcd and not VPCD_DRIVER.exists()):
            raise PcscdUnavailable("pcscd and vsmartcard-vpcd must be installed (scripts/setup.sh)")
        config = self.workdir / "reader.conf.d"
        config.mkdir(parents=True, exist_ok=True)
        (self.workdir / "run").mkdir(exist_ok=True)
        if self.vpcd:
            # Keep the ports across a restart, so that plugged cards find their slots again.
            if not (self.vpcd_port and _free(self.vpcd_port) and _free(self.vpcd_port + 1)):
                self.vpcd_port = free_port_pair()
            (config / "vpcd").write_text(
                'FRIENDLYNAME "Virtual PCD"\n'
                f"DEVICENAME   /dev/null:0x{self.vpcd_port:X}\n"
                f"LIBPATH      {VPCD_DRIVER}\n"
                f"CHANNELID    0x{self.vpcd_port:X}\n"
            )
        namespace = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            namespace[1:1] = ["--user", "--map-root-user"]
        script = 'mount --bind "$1" /run && exec "$2" --foreground --info -c "$3"'
        command = [
            *namespace,
            "sh",
            "-c",
            script,
            "sh",
            str(self.workdir / "run"),
            pcscd,
            str(config),
        ]
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed command, our own paths
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PcscdUnavailable("pcscd exited at start", log=self.log_text()[-2000:])
            if self.socket_path.exists() and "daemon ready" in self.log_text():
                return
            time.sleep(0.05)
        self.stop()
        raise PcscdUnavailable("pcscd did not start in time", log=self.log_text()[-2000:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> PrivatePcscd:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
