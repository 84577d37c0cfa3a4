"""A WSGI application served by waitress (a production server) on a socket the
caller bound, that stops when asked, open connections included.

waitress's own ``close()`` closes the listening socket only: a browser's
keep-alive connection, or an event stream, would keep its loop (and the program)
running. :meth:`Served.close` closes those too.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

from cardauth.errors import CardAuthError

STOP_WAIT_SECONDS = 5


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a program's main thread to wait on: the
    handler only sets it (closing a server must not run inside a signal handler)."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stopping


class Served:
    """``app`` on ``listener``: :meth:`run` serves until :meth:`close` (from another
    thread, or a signal handler); :meth:`start` runs it in a thread of its own."""

    def __init__(
        self,
        app: Any,
        listener: socket.socket,
        *,
        ident: str,
        threads: int = 8,
        channel_timeout: int = 30,
        max_request_body_size: int = 1024 * 1024,
    ) -> None:
        self._map: dict[int, Any] = {}
        self._closing = threading.Event()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        server = create_server(
            app,
            map=self._map,
            sockets=[listener],
            threads=threads,
            channel_timeout=channel_timeout,
            max_request_body_size=max_request_body_size,
            ident=ident,
        )
        if not isinstance(server, BaseWSGIServer):  # one listening socket, one server
            raise TypeError("waitress made a server of several sockets")
        self._server = server

    def run(self) -> None:
        self._running.set()
        try:
            self._server.run()
        except OSError:
            if not self._closing.is_set():
                raise
        finally:
            self._running.clear()

    def start(self, name: str) -> Served:
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()
        self._running.wait(STOP_WAIT_SECONDS)
        return self

    def close(self) -> None:
        """Stop: the listening socket and the open connections closed (by the serving
        loop itself, when it runs), the workers stopped. Not from a signal handler:
        set an event there, and close from a thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        if self._running.is_set():
            trigger: Any = self._server.trigger  # a waitress.trigger.trigger (not an int)
            try:
                trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
            except OSError:  # the loop ended meanwhile, and closed its trigger with it
                wasyncore.close_all(self._map)
            if self._thread is not None:
                self._thread.join(STOP_WAIT_SECONDS)
        else:
            wasyncore.close_all(self._map)
        self._server.task_dispatcher.shutdown(timeout=STOP_WAIT_SECONDS)


class CannotListen(CardAuthError):
    """The port is taken (by another copy of the program?) or not allowed."""

    code = "serve.cannot_listen"


def is_loopback_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 loopback address (127.0.0.0/8), the only kind the
    product's local servers listen on (a name is not: it could resolve elsewhere)."""
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port`` 0: one the system chooses)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        message = f"cannot listen on {host}:{port} ({exc.strerror})"
        raise CannotListen(message, port=port, reason=exc.strerror) from None
    return listener
