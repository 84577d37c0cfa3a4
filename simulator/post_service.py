"""A loopback HTTP service that answers one DER request POSTed to it with one DER
answer: what the test PKI's OCSP responder (RFC 6960 Appendix A) and its
time-stamping authority (RFC 3161 § 3.4) have in common."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from simulator.vpcd import require_loopback

MAX_REQUEST = 16 * 1024


class PostService:
    """Serves :meth:`answer_post` on loopback, on a thread of its own, until stopped:
    a subclass answers a request's DER body with its DER answer, or None when the
    service is down (HTTP 503)."""

    def __init__(self, name: str, content_type: str) -> None:
        self.name = name
        self.content_type = content_type
        self._server: ThreadingHTTPServer | None = None

    def answer_post(self, body: bytes) -> bytes | None:
        raise NotImplementedError

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        require_loopback(host)
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                declared = self.headers.get("Content-Length") or "0"
                length = int(declared) if declared.isascii() and declared.isdigit() else -1
                if length < 0:
                    self.send_error(400)
                    return
                if not 0 < length <= MAX_REQUEST:
                    self.send_error(413 if length else 411)
                    return
                body = service.answer_post(self.rfile.read(length))
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
        return self

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
