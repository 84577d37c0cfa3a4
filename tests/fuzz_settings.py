"""Hypothesis settings for the fuzz tests (tests/test_fuzz_*.py): bounded and
reproducible in CI, long on demand.

- ``ci`` (the default): a few hundred examples per target, derandomized (the same
  examples on every run, so CI never fails on a draw it cannot replay), no
  example database, no deadline (a card answer or a path validation may be slow
  on a loaded runner). All fuzz tests together stay under a minute on 2 cores.
- ``long``: selected by ``CARDAUTH_FUZZ=long``; many thousands of examples per
  target, randomized, failures kept in Hypothesis' example database so that the
  next run replays them first::

      CARDAUTH_FUZZ=long .venv/bin/pytest tests/test_fuzz_*.py --timeout=0 \\
          --hypothesis-show-statistics

  (``--timeout=0``: one long target runs past pytest's 120 s limit per test.)

  ``CARDAUTH_FUZZ_SCALE=N`` multiplies the long run's example counts by N.

A test takes its settings from :func:`fuzz`, with its own example counts for each
profile (a target whose example is expensive gets fewer)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = os.environ.get("CARDAUTH_FUZZ", "") == "long"
SCALE = max(1, int(os.environ.get("CARDAUTH_FUZZ_SCALE", "1")))
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "cardauth-fuzz-ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "cardauth-fuzz-long",
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=_QUIET,
)
PROFILE = "cardauth-fuzz-long" if LONG else "cardauth-fuzz-ci"


def fuzz(*, ci: int, long: int) -> settings:
    """Settings for one fuzz target: ``ci`` examples in CI, ``long`` (times the
    scale) when ``CARDAUTH_FUZZ=long``."""
    return settings(settings.get_profile(PROFILE), max_examples=long * SCALE if LONG else ci)
