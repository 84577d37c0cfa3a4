"""Shared fixtures: virtual cards, in-process readers, and a private pcscd with the
vpcd driver that the tests start themselves (never mocked, never skipped)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from cardauth.cards.application import CardApplication
from cardauth.cards.identify import open_card
from cardauth.transport.base import ReaderBackend
from simulator.card import VirtualCard
from simulator.pcscd import READER_NAMES, PrivatePcscd
from simulator.readers import VirtualReaders
from simulator.workstation import Workstation, virtual_workstation, vpcd_workstation

PRESENCE_TIMEOUT = 10.0


# CI sets it (.ci/run): there every test runs, none is skipped, as CI installs what the
# pcscd, Redis and browser tests need (scripts/setup.sh).
NO_SKIPS = "CARDAUTH_NO_SKIPS"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get(NO_SKIPS):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    for report in skipped:
        reporter.write_line(f"\nskipped where none may be: {report.nodeid}", red=True)
    if skipped:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _default_language(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages follow the locale: every test starts from the same one (French, the
    default for a locale that names no language)."""
    for variable in ("CARDAUTH_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePcscd]:
    """A private pcscd for the whole session. libpcsclite reads the socket name once
    per process, so it is set before this process first talks to PC/SC."""
    daemon = PrivatePcscd(tmp_path_factory.mktemp("pcscd")).start()
    os.environ.update(daemon.environment)
    try:
        yield daemon
    finally:
        daemon.stop()


@dataclass
class Station:
    """A dual-slot reader, the cards a test puts in it, and the backend that sees them."""

    kind: str
    backend: ReaderBackend
    workstation: Workstation
    readers: tuple[str, str]
    opened: list[CardApplication] = field(default_factory=list)

    def insert(self, slot: int, persona: str) -> VirtualCard:
        self.workstation.insert(slot, persona)
        self.wait_for(slot, present=True)
        card = self.workstation.card_in(slot)
        assert card is not None
        return card

    def remove(self, slot: int) -> None:
        self.workstation.remove(slot)
        self.wait_for(slot, present=False)

    def wait_for(self, slot: int, *, present: bool) -> None:
        """pcscd notices vpcd cards by polling: wait until it agrees with us."""
        deadline = time.monotonic() + PRESENCE_TIMEOUT
        while True:
            state = self.backend.slot_states().get(self.readers[slot])
            if state is not None and state.card_present == present:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"slot {slot} never became present={present}")
            time.sleep(0.02)

    def open(self, slot: int) -> CardApplication:
        card = open_card(self.backend, self.readers[slot])
        self.opened.append(card)
        return card

    def close(self) -> None:
        for card in self.opened:
            card.channel.close()
        self.workstation.close()
        self.backend.close()


def _inprocess_station() -> Station:
    workstation, readers = virtual_workstation()
    names = readers.slot_names
    return Station("inprocess", readers, workstation, (names[0], names[1]))


def _pcscd_station(daemon: PrivatePcscd) -> Station:
    from cardauth.transport.pcsc import PcscBackend

    workstation = vpcd_workstation(port=daemon.vpcd_port)
    station = Station("pcscd", PcscBackend(), workstation, READER_NAMES)
    for slot in (0, 1):  # a previous test's cards must be gone for pcscd too
        station.wait_for(slot, present=False)
    return station


@pytest.fixture(params=["inprocess", pytest.param("pcscd", marks=pytest.mark.pcscd)])
def station(request: pytest.FixtureRequest) -> Iterator[Station]:
    """The same tests run on in-process readers and through the real pcscd."""
    if request.param == "inprocess":
        made = _inprocess_station()
    else:
        made = _pcscd_station(request.getfixturevalue("pcscd"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def pcscd_station(pcscd: PrivatePcscd) -> Iterator[Station]:
    made = _pcscd_station(pcscd)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def readers() -> VirtualReaders:
    return VirtualReaders()
