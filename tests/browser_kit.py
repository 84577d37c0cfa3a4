"""What the browser tests share: Debian's Chromium, headless, driven by Playwright
(never Playwright's own browser build), and a line printed past pytest's capture
(where the artifacts are)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STEP_MS = 10_000  # ms, for one step in the browser (a page, a popup, an answer)


def chromium(
    playwright: Playwright, profile: Path, *, locale: str, flags: Sequence[str] = ()
) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile in ``profile`` (and ``flags``
    besides the usual ones)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: scripts/setup.sh installs Debian's chromium"
    context = playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_FLAGS, *flags],
        locale=locale,
        viewport={"width": 900, "height": 700},
    )
    context.set_default_timeout(STEP_MS)
    try:
        yield context
    finally:
        context.close()


def announce(config: pytest.Config, line: str) -> None:
    """Print ``line`` past pytest's capture (a fixture's output is kept otherwise)."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")
