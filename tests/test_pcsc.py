"""What only the real PC/SC stack can show: pcscd absent or without readers,
transactions across processes, pcscd restarts, and the usual PC/SC tools seeing
our virtual cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cardauth.errors import CardBusy, CardRemoved
from cardauth.transport.base import SlotState
from cardauth.transport.channel import CardChannel
from cardauth.transport.monitor import CardMonitor, EventType
from cardauth.transport.pcsc import PcscBackend
from simulator.pcscd import PrivatePcscd
from tests.conftest import Station

pytestmark = pytest.mark.pcscd


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CARDAUTH_LANG", "LC_ALL")}
    return subprocess.run(
        [sys.executable, "-m", "cardauth.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **(env or {})},
        check=False,
    )


def test_pcscd_not_running_is_a_typed_error(tmp_path: Path) -> None:
    absent = {"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    result = run_cli("--lang", "en", "readers", env=absent)
    assert result.returncode == 1
    assert "[transport.no_service]" in result.stderr
    assert "pcscd" in result.stderr
    assert "(cardauth readers --simulate)" in result.stderr  # what to do without a reader
    as_json = run_cli("readers", "--json", env=absent)
    assert json.loads(as_json.stdout)["error"]["code"] == "transport.no_service"


def test_pcscd_without_readers_is_a_typed_error(tmp_path: Path) -> None:
    with PrivatePcscd(tmp_path, vpcd=False) as empty:
        result = run_cli("cards", env={**empty.environment, "LANG": "fr_FR.UTF-8"})
    assert result.returncode == 1
    assert "[transport.no_reader]" in result.stderr
    assert "Aucun lecteur" in result.stderr
    assert "(cardauth cards --simulate)" in result.stderr


def test_readers_without_a_reader_say_what_to_do(tmp_path: Path) -> None:
    with PrivatePcscd(tmp_path, vpcd=False) as empty:
        result = run_cli("readers", env={**empty.environment, "LANG": "fr_FR.UTF-8"})
    assert result.returncode == 0  # an empty listing, not a failure
    assert "Aucun lecteur de cartes n'est branché. Branchez le lecteur" in result.stdout
    assert "(cardauth readers --simulate)" in result.stdout


HOLD_SCRIPT = """
import sys, time
from cardauth.transport.pcsc import PcscBackend
link = PcscBackend().connect(sys.argv[1])
link.begin_transaction(5)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
link.end_transaction()
link.close()
"""


def test_transaction_excludes_another_process(pcscd_station: Station) -> None:
    pcscd_station.insert(0, "doctor")
    channel = CardChannel(
        pcscd_station.backend.connect(pcscd_station.readers[0]), transaction_timeout=0.5
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, pcscd_station.readers[0], "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(CardBusy), channel.transaction():
            pass
        assert time.monotonic() - started < 1.5
        holder.wait(timeout=10)
        channel.transaction_timeout = 5
        with channel.transaction():  # the abandoned attempt did not keep the card locked
            pass
    finally:
        channel.close()
        holder.kill()
        holder.wait()


def test_connect_has_a_deadline_while_another_process_holds_the_card(
    pcscd_station: Station,
) -> None:
    pcscd_station.insert(0, "doctor")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, pcscd_station.readers[0], "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        backend = PcscBackend(connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(CardBusy):
            backend.connect(pcscd_station.readers[0])
        assert time.monotonic() - started < 1.5
        holder.wait(timeout=10)
        backend.connect(pcscd_station.readers[0]).close()  # and the late one was closed
        backend.close()
    finally:
        holder.kill()
        holder.wait()


def test_closed_link_fails_at_once(pcscd_station: Station) -> None:
    pcscd_station.insert(0, "doctor")
    link = pcscd_station.backend.connect(pcscd_station.readers[0])
    link.close()
    started = time.monotonic()
    with pytest.raises(CardRemoved):
        link.begin_transaction(3.0)
    with pytest.raises(CardRemoved):
        link.transmit(bytes.fromhex("00A4000C023F00"))
    assert time.monotonic() - started < 0.5


def test_a_reader_that_went_away_is_reported_at_once(pcscd_station: Station) -> None:
    known = dict(pcscd_station.backend.slot_states())
    known["Phantom Reader 00 00"] = SlotState("Phantom Reader 00 00", card_present=True)
    started = time.monotonic()
    states = pcscd_station.backend.wait_for_change(known, timeout=3.0)
    assert time.monotonic() - started < 1.0
    assert set(states) == set(pcscd_station.readers)


def test_pcscd_restart_is_survived(pcscd: PrivatePcscd, pcscd_station: Station) -> None:
    pcscd_station.insert(0, "doctor")
    with CardMonitor(pcscd_station.backend, wait_timeout=0.5, retry_interval=0.2) as monitor:
        list(monitor.events(timeout=1.0))  # the initial snapshot
        pcscd.stop()
        failed = monitor.get(timeout=5)
        assert failed is not None
        assert failed.type is EventType.MONITOR_FAILED
        assert failed.error is not None
        assert failed.error.code == "transport.no_service", failed.error.context
        pcscd.start()  # same ports: the plugged card finds its slot again
        kinds = [e.type for e in monitor.events(timeout=3.0)]
        assert EventType.MONITOR_RECOVERED in kinds
        assert EventType.CARD_INSERTED in kinds
    pcscd_station.wait_for(0, present=True)
    assert pcscd_station.open(0).serial() == "80250000010000100001"


def test_pcsc_scan_sees_both_atrs(pcscd: PrivatePcscd, pcscd_station: Station) -> None:
    pcscd_station.insert(0, "doctor")
    pcscd_station.insert(1, "patient")
    result = subprocess.run(
        ["pcsc_scan", "-n", "-t", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **pcscd.environment},
        check=False,
    )
    assert "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00" in result.stdout
    assert "3B 75 13 00 00 47 09 EA 90 00" in result.stdout


def test_opensc_tool_selects_the_cps_application(
    pcscd: PrivatePcscd, pcscd_station: Station
) -> None:
    pcscd_station.insert(0, "doctor")
    select = "00:A4:04:0C:08:80:25:00:00:01:FF:01:00"
    result = subprocess.run(
        ["opensc-tool", "--reader", "0", "--card-driver", "default", "--send-apdu", select],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **pcscd.environment},
        check=False,
    )
    assert "SW1=0x90, SW2=0x00" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("swapped", [False, True])
def test_cards_json_against_the_simulator_shows_both_cards_whichever_slot(
    pcscd: PrivatePcscd, pcscd_station: Station, tmp_path: Path, swapped: bool
) -> None:
    """The issue's acceptance: ``cardauth cards --json`` against ``cardauth-sim --vpcd``."""
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator.cli",
            "--lang",
            "fr",
            "--vpcd",
            "--vpcd-port",
            str(pcscd.vpcd_port),
            "--vitale",
            "parent",
            "--control",
            str(tmp_path / "control.sock"),
            *(["--swap"] if swapped else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for slot in (0, 1):
            pcscd_station.wait_for(slot, present=True)
        result = run_cli("cards", "--json", env=pcscd.environment)
        listing = run_cli("readers", "--json", env=pcscd.environment)
    finally:
        simulator.terminate()
        output, _ = simulator.communicate(timeout=10)
    assert simulator.returncode == 0
    assert "Cartes retirées" in output  # it stopped cleanly and unplugged the cards
    assert result.returncode == 0, result.stderr
    cps_slot, vitale_slot = (1, 0) if swapped else (0, 1)
    readers = {r["reader"]: r for r in json.loads(result.stdout)["readers"]}
    cps = readers[pcscd_station.readers[cps_slot]]
    vitale = readers[pcscd_station.readers[vitale_slot]]
    assert cps["kind"] == "cps"
    assert cps["holder"]["idnat"] == "899700420013"
    assert cps["certificates"]["authentication"]["status"] == "valid"
    assert cps["pin"] == {"verified": False, "tries_left": 3, "blocked": False}
    assert vitale["kind"] == "vitale"
    assert vitale["holder"]["insured"]["nir"] == "178016912304552"
    assert len(vitale["holder"]["beneficiaries"]) == 2
    assert vitale["pin"] is None
    kinds = {r["reader"]: r["kind"] for r in json.loads(listing.stdout)["readers"]}
    assert kinds == {
        pcscd_station.readers[cps_slot]: "cps",
        pcscd_station.readers[vitale_slot]: "vitale",
    }
