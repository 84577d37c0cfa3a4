"""The benchmarks run (briefly) and their APDU counts hold; timings are not asserted
here (they are read from the benchmark's own output, see bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.pcscd
def test_card_layer_benchmark_runs_and_counts_apdus() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "card_layer.py"), "--rounds", "3", "--apdus", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["apdus"] == {
        "identify_both_cards": 2,
        "read_cps_holder_and_certificate": 8,
        "pin_and_sign": 5,
    }
    assert figures["per_apdu"]["ratio"] > 0
    assert figures["read_holder_and_certificate"]["apdus"] == 8


def test_verifier_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "verifier.py"), "--rounds", "2", "--tokens", "10", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert set(figures["microseconds"]) == {"bare", "joserfc", "cardauth_warm", "cardauth_cold"}
    assert figures["cold_over_bare"] > figures["warm_over_bare"] > 0


def test_bridge_benchmark_runs_and_counts_apdus() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bridge.py"), "--logins", "20", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["apdus_warm"] == 4
    assert (figures["apdus_at_insertion"], figures["apdus_first_login"]) == (11, 5)
    assert 0 < figures["outside_card_ms"] < figures["total_ms"]
