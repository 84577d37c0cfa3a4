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
        [sys.executable, str(BENCH / "card_layer.py"), "--rounds", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["apdus"] == {
        "first sight: serial, certificate, identity, tries left": 28,
        "first login with the PIN (PIN object read)": 5,
        "login on the kept PIN": 4,
        "document signature with the PIN, then log out": 7,
    }
    transactions = figures["transactions"]
    assert [t["apdus"] for t in transactions.values()] == [23, 4, 6, 7]
    assert all(t["ratio"] > 0 for t in transactions.values())


@pytest.mark.pcscd
def test_the_opensc_peer_benchmark_runs_and_counts_apdus() -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(BENCH / "opensc_peer.py")),
            "--rounds",
            "1",
            "--latency",
            "none",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert figures["cardauth_read"]["apdus"] == 18
    assert figures["cardauth_sign"]["apdus"] < figures["opensc_sign"]["apdus"] / 2
    assert figures["warm"] == {"login_with_pin": 5, "login_pin_kept": 4}


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


def test_verifier_scale_benchmark_runs() -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(BENCH / "verifier_scale.py")),
            *("--entries", "2000", "--cards", "5", "--rounds", "1", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout)
    assert set(figures["microseconds"]) == {"floor", "new_card", "seen_card"}
    assert figures["crl"]["entries"] == 2000
    assert figures["new_over_floor"] > 0
    assert figures["index_bytes"] > 0
    assert figures["refresh"]["refreshes"] == 5


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
    assert (figures["apdus_at_insertion"], figures["apdus_first_login"]) == (28, 5)
    assert 0 < figures["outside_card_ms"] < figures["total_ms"]


def test_login_throughput_benchmark_runs() -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(BENCH / "login.py")),
            *("--logins", "20", "--rounds", "1", "--connections", "2", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    figures = json.loads(result.stdout)  # every login was checked: 200, the doctor's identity
    assert set(figures["processes"]) == {"1", "2"}
    for measured in figures["processes"].values():
        assert measured["logins_per_second"] > 0
        assert measured["trivial_per_second"] > 0
        assert measured["login_cpu_ms"]["server"] > 0
    assert figures["login_scaling_2_over_1"] > 0


def test_oidc_login_benchmark_runs() -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(BENCH / "oidc.py")),
            *("--logins", "10", "--rounds", "1", "--connections", "2", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    figures = json.loads(result.stdout)  # every step of every login was checked
    assert set(figures["processes"]) == {"1", "2"}
    for measured in figures["processes"].values():
        assert measured["logins_per_second"] > 0
        assert measured["trivial_per_second"] > measured["logins_per_second"]
        assert measured["login_cpu_ms"]["server"] > 0
        assert measured["redis_commands_per_login"] > 0
    assert figures["login_scaling_2_over_1"] > 0
