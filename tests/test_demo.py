"""The demo's composition with in-process readers (where pcscd is missing): every
part answers on its port, and close() stops them all. The demo on the real pcscd, in
a browser, is tests/test_e2e_browser.py."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from examples.demo import Demo, Ports
from tests.support import free_port


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
