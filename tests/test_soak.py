"""The soak (bench/soak.py), bounded for CI: 2000 logins through the bridge's
CardService or 45 seconds, whichever comes first, with random faults on every
card and the workstation moving now and then. Longer runs: ``bench/soak.py
--seconds 600``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
# tracemalloc, from the middle of the run to its end (after a garbage collection):
# runs of 2000 logins grow by 20-40 KB there (caches filling, the allocator). A leak
# of one assertion (about 4 KB) per login would add some 3.6 MB over the ~900 logins
# of the second half; 256 KiB catches any per-login leak above about 300 bytes.
MEMORY_TOLERANCE = 256 * 1024


def test_thousands_of_logins_with_faults_stay_correct_and_flat() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "soak.py"), "--count", "2000", "--seconds", "45", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout)
    assert figures["authentications"] >= 500, figures  # at least that many, even on a slow CI
    assert figures["crashes"] == 0, figures["crash_samples"]
    assert figures["wrong_identities"] == 0
    assert figures["refused_by_verifier"] == {}
    assert figures["verified"] == figures["succeeded"] > figures["authentications"] // 2
    assert sum(figures["faults"].values()) > 0
    assert all(code.count(".") == 1 for code in figures["failures"]), figures["failures"]
    assert figures["pin_tries_lost"] == 0
    assert figures["pins_presented"] <= figures["pins_typed"]
    assert figures["memory_growth_bytes"] < MEMORY_TOLERANCE, figures
    assert figures["fds"][0] == figures["fds"][1] == figures["fds"][2]
    assert figures["threads"][1] == figures["threads"][2]
