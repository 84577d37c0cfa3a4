"""The demo (``python -m examples.demo``) in a process of its own, for the browser
tests: started on free loopback ports with its cards in a private pcscd through
vpcd, its output in a file, cards moved through the control page's API as a
person would on the page; and the steps of a professional in the browser."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardauth.oidc.settings import REALM
from tests.support import LOOPBACK, free_port, stop_process

if TYPE_CHECKING:  # the browser tests' helpers; starting the demo needs no browser
    from playwright.sync_api import BrowserContext, Page

START_TIMEOUT = 60.0  # s: a private pcscd, the cards, three servers


@dataclass
class RunningDemo:
    process: subprocess.Popen[bytes]
    output: Path
    teleservice: str  # the origin browsers reach it at
    control: str
    bridge: str

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def cards(self, slot0: str | None, slot1: str | None) -> None:
        """Put these personas (None: no card) in the reader, through the control page."""
        slots = self._call("GET", "/api/slots")["slots"]
        for index, wanted in enumerate((slot0, slot1)):
            if slots[index].get("persona") not in (None, wanted):
                self._call("POST", f"/api/slots/{index}/remove", {})
            if wanted is not None and slots[index].get("persona") != wanted:
                self._call("POST", f"/api/slots/{index}/insert", {"persona": wanted})
        self._wait_until_the_bridge_sees(sum(wanted is not None for wanted in (slot0, slot1)))

    def _wait_until_the_bridge_sees(self, count: int) -> None:
        """pcscd notices a card some 100 ms after vpcd has it; a person is slower."""
        request = urllib.request.Request(
            f"{self.bridge}/v1/cards", headers={"Origin": self.teleservice}
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with urllib.request.urlopen(request, timeout=5) as response:
                if len(json.loads(response.read())["cards"]) == count:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the bridge never saw {count} cards")

    def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.control}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def start_demo(
    state: Path,
    output: Path,
    *,
    public_origin: str | None = None,
    extra: Sequence[str] = (),
) -> RunningDemo:
    """The demo, once it says it runs; ``public_origin``: the teleservice is reached
    there (behind an https front the caller runs), not at its loopback port;
    ``extra``: more of its options (``--oidc``...)."""
    ports = [free_port() for _ in range(3)]
    command = [
        sys.executable,
        "-m",
        "examples.demo",
        "--readers",
        "pcscd",
        "--bridge-port",
        str(ports[0]),
        "--teleservice-port",
        str(ports[1]),
        "--control-port",
        str(ports[2]),
        "--state-dir",
        str(state),
        "--lang",
        "en",
        *(["--public-origin", public_origin] if public_origin else []),
        *extra,
    ]
    with output.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[1],
        )
    bridge, teleservice, control = (f"http://{LOOPBACK}:{port}" for port in ports)
    demo = RunningDemo(process, output, public_origin or teleservice, control, bridge)
    deadline = time.monotonic() + START_TIMEOUT
    while "Ctrl-C" not in demo.log():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise AssertionError(f"the demo did not start:\n{demo.log()}")
        time.sleep(0.1)
    return demo


@contextmanager
def running_oidc_demo(
    state: Path, output: Path, clients_toml: str, *, port: int | None = None
) -> Iterator[tuple[RunningDemo, str]]:
    """The demo with cardauth-oidc (on ``port``, or a free one) and the relying
    parties of ``clients_toml``; yields it and the provider's issuer, and stops it."""
    port = port or free_port()
    clients = state.parent / f"{state.name}-clients.toml"
    clients.write_text(clients_toml, encoding="utf-8")
    running = start_demo(
        state, output, extra=["--oidc", "--oidc-port", str(port), "--oidc-clients", str(clients)]
    )
    try:
        yield running, f"http://{LOOPBACK}:{port}{REALM}"
    finally:
        stop_process(running.process)


def teleservice_page(browser: BrowserContext, demo: RunningDemo) -> Iterator[Page]:
    """The teleservice's page, open in ``browser`` (a fixture's body)."""
    opened = browser.new_page()
    opened.goto(f"{demo.teleservice}/")
    try:
        yield opened
    finally:
        opened.close()


def open_bridge_page(page: Page, browser: BrowserContext, demo: RunningDemo) -> Page:
    """Click the teleservice's login button: the bridge's own page opens in a window."""
    with browser.expect_page() as opened:
        page.click("#login")
    popup = opened.value
    popup.wait_for_url(f"{demo.bridge}/interaction/*")
    popup.wait_for_load_state()
    return popup


def submit(popup: Page, button: str) -> None:
    """Click a button of the bridge's page: its form posts to the bridge, which shows
    the page again by GET."""
    with popup.expect_response(lambda response: response.request.method == "POST") as posted:
        popup.click(button)
    assert posted.value.status == 303, posted.value.status
    popup.wait_for_load_state()
