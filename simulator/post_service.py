"""A loopback HTTP service that answers one DER request POSTed to it with one DER
answer: what the test PKI's OCSP responder (RFC 6960 Appendix A) and its
time-stamping authority (RFC 3161 § 3.4) have in common."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from simulator.vpcd import require_loopback

MAX_REQUEST = 16 * 1024

# The DER answer to a request's body; None: the service is down (HTTP 503).
Answer = Callable[[bytes], bytes | None]


class PostService:
    """Serves ``answer`` on loopback, on a thread of its own, until stopped."""

    def __init__(self, name: str, content_type: str, answer: Answer) -> None:
        self.name = name
        self.content_type = content_type
        self.answer = answer
        self._server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_REQUEST:
                    self.send_error(413 if length else 411)
                    return
                body = service.answer(self.rfile.read(length))
                if body is None:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", service.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: tests and the demo print what matters

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True).start()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} service is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
