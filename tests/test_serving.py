"""Serving on loopback: a server stops when asked, even with a connection open (a
browser's keep-alive, an event stream), and a port taken is a typed error."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from cardauth.serving import CannotListen, Served, is_loopback_address, listen


def endless(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """An event stream that never ends by itself."""
    start_response("200 OK", [("Content-Type", "text/event-stream")])

    def stream() -> Iterator[bytes]:
        while True:
            yield b": keep-alive\n\n"
            time.sleep(0.05)

    return stream()


def test_close_ends_open_streams_and_the_serving_thread() -> None:
    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    served = Served(endless, listener, ident="test").start("test-server")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/")
    answer = connection.getresponse()
    assert answer.read(5) == b": kee"  # the stream flows
    started = time.monotonic()
    served.close()
    assert time.monotonic() - started < 5
    with pytest.raises(ConnectionRefusedError):  # nobody listens any more
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/")
    connection.close()


def test_a_port_taken_is_a_typed_error() -> None:
    taken = listen("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(CannotListen) as refused:
            listen("127.0.0.1", taken.getsockname()[1])
        assert refused.value.code == "serve.cannot_listen"
        assert refused.value.context["reason"]
    finally:
        taken.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("0.0.0.0", False),  # every interface
        ("192.168.1.10", False),
        ("::1", False),  # the servers listen on IPv4 only
        ("localhost", False),  # a name could resolve elsewhere
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_only_ipv4_loopback_addresses_count(host: str, loopback: bool) -> None:
    assert is_loopback_address(host) is loopback
