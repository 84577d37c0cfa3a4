"""The demo's composition with in-process readers (where pcscd is missing): every
part answers on its port, and close() stops them all; on its private pcscd, it says
how cardauth reads its cards from another terminal. The demo on the real pcscd, in
a browser, is tests/test_e2e_browser.py (and the prescriptions,
tests/test_e2e_prescriptions.py)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from examples.demo import Demo, Ports
from tests.demo_kit import start_demo
from tests.support import free_port, stop_process


def test_the_demo_runs_on_in_process_readers_and_stops(tmp_path: Path) -> None:
    said: list[str] = []
    demo = Demo(
        tmp_path,
        ports=Ports(free_port(), free_port(), free_port()),
        readers="in-process",
        say=said.append,
        language="en",
    )
    demo.start()
    try:
        demo.announce()
        assert any(demo.teleservice_url in line for line in said)
        assert any("no other command sees them" in line for line in said)
        with urllib.request.urlopen(f"{demo.teleservice_url}/", timeout=5) as page:
            assert page.status == 200
        with urllib.request.urlopen(f"{demo.control_url}/api/slots", timeout=5) as slots:
            personas = [slot["persona"] for slot in json.loads(slots.read())["slots"]]
        assert personas == ["doctor", "patient"]
        cards = urllib.request.Request(
            f"{demo.bridge_url}/v1/cards", headers={"Origin": demo.teleservice_url}
        )
        with urllib.request.urlopen(cards, timeout=5) as answer:
            kinds = [card["kind"] for card in json.loads(answer.read())["cards"]]
        assert sorted(kinds) == ["cps", "vitale"]
    finally:
        demo.close()
    for url in (demo.teleservice_url, demo.control_url, demo.bridge_url):
        with pytest.raises(urllib.error.URLError, match="refused"):  # nobody listens any more
            urllib.request.urlopen(f"{url}/", timeout=2)


def test_the_demo_runs_what_signed_prescriptions_need_and_says_where(tmp_path: Path) -> None:
    """The test PKI's OCSP responder and time-stamping authority (prescriptions are
    signed B-LT), named in the trust the teleservice reads; the prescription and
    verification pages printed; both services stopped by close()."""
    said: list[str] = []
    demo = Demo(
        tmp_path,
        ports=Ports(free_port(), free_port(), free_port()),
        readers="in-process",
        say=said.append,
        language="en",
    )
    demo.start()
    try:
        demo.announce()
        assert demo.ocsp is not None
        assert demo.tsa is not None
        services = (demo.ocsp.url, demo.tsa.url)
        assert any(all(url in line for url in services) for line in said)
        assert any(f"{demo.teleservice_url}/prescriptions" in line for line in said)
        assert any(f"{demo.teleservice_url}/verify" in line for line in said)
        trust = (tmp_path / "trust" / "trust.toml").read_text()
        assert f'ocsp_responder = "{demo.ocsp.url}"' in trust
    finally:
        demo.close()
    for url in services:  # nobody answers there any more
        with pytest.raises(urllib.error.URLError, match="refused"):
            urllib.request.urlopen(urllib.request.Request(url, data=b""), timeout=2)


@pytest.mark.pcscd
def test_the_demo_prints_how_cardauth_reads_its_cards(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Its cards are in a private pcscd: the demo prints the command line, with the
    socket libpcsclite reads from PCSCLITE_CSOCK_NAME, that shows them to cardauth."""
    logs = tmp_path_factory.mktemp("demo-output")
    demo = start_demo(tmp_path_factory.mktemp("demo"), logs / "demo.log")
    try:
        said = demo.log().splitlines()
        hint = said.index(
            "  To read these cards from another terminal, point cardauth at the demo's pcscd:"
        )
        *settings, program, command = shlex.split(said[hint + 1])
        assert (Path(program).name, command) == ("cardauth", "readers")
        environment = dict(setting.split("=", 1) for setting in settings)
        assert list(environment) == ["PCSCLITE_CSOCK_NAME"]
        shown = subprocess.run(
            [sys.executable, "-m", "cardauth.cli", command, "--json"],  # this checkout's
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        stop_process(demo.process)
    assert shown.returncode == 0, shown.stderr
    assert [r["kind"] for r in json.loads(shown.stdout)["readers"]] == ["cps", "vitale"]
