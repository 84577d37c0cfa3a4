"""Faults through the real pcscd (vpcd driver): a card pulled mid-command, a card
that gives no answer or garbage, a reset by another application, pcscd stopped
and started again under a running CardService. After each, errors are typed, no
card is left held, no PIN try is spent, and the next login succeeds."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest

from cardauth.apdu import Ins
from cardauth.cards.cps import CpsCard
from cardauth.errors import CardAuthError, CardReset, PinRequired
from cardauth.origins import Origin
from simulator.faults import Fault
from simulator.pcscd import PrivatePcscd
from tests.conftest import Station
from webbridge.cards import CardService

pytestmark = pytest.mark.pcscd

ORIGIN = Origin.parse("https://teleservice.example")
DIGEST = bytes(32)

RESET_SCRIPT = """
import sys
from smartcard import scard
_, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
_, handle, _ = scard.SCardConnect(context, sys.argv[1], scard.SCARD_SHARE_SHARED,
                                  scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
print(hex(scard.SCardDisconnect(handle, scard.SCARD_RESET_CARD) & 0xFFFFFFFF), flush=True)
"""


def assert_not_held(station: Station, slot: int = 0) -> None:
    link = station.backend.connect(station.readers[slot])
    try:
        link.begin_transaction(1.0)
        link.end_transaction()
    finally:
        link.close()


def open_cps(station: Station) -> CpsCard:
    card = station.open(0)
    assert isinstance(card, CpsCard)
    return card


@pytest.mark.parametrize("fault", [Fault.REMOVAL, Fault.MUTE, Fault.GARBAGE])
def test_a_fault_through_pcscd_is_typed_and_the_next_login_succeeds(
    pcscd_station: Station, fault: Fault
) -> None:
    card = pcscd_station.insert(0, "doctor")
    cps = open_cps(pcscd_station)
    cps.verify_pin("1234")
    card.faults.arm(fault, ins=Ins.INTERNAL_AUTHENTICATE)
    with pytest.raises(CardAuthError) as failure:
        cps.authenticate(DIGEST)
    assert failure.value.code.split(".")[0] in ("transport", "card", "apdu")
    if fault in (Fault.REMOVAL, Fault.MUTE):  # dropped out, then plugged in again by vpcd
        time.sleep(1.0)
        pcscd_station.wait_for(0, present=True)
    assert_not_held(pcscd_station)
    again = open_cps(pcscd_station)
    if not again.pin_status().verified:
        again.verify_pin("1234")
    assert len(again.authenticate(DIGEST)) == 256
    assert card.pin(1).tries_left == 3
    assert card.pins_presented <= 2


def test_a_reset_by_another_application_is_card_reset(pcscd_station: Station) -> None:
    card = pcscd_station.insert(0, "doctor")
    cps = open_cps(pcscd_station)
    cps.verify_pin("1234")
    reset = subprocess.run(
        [sys.executable, "-c", RESET_SCRIPT, pcscd_station.readers[0]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert reset.stdout.strip() == "0x0"
    with pytest.raises(CardReset):  # PC/SC SCARD_W_RESET_CARD
        cps.pin_status()
    assert_not_held(pcscd_station)
    again = open_cps(pcscd_station)
    assert not again.pin_status().verified  # the reset took the verified PIN with it
    again.verify_pin("1234")
    again.authenticate(DIGEST)
    assert card.pins_presented == 2


def test_the_card_service_survives_a_pcscd_restart(
    pcscd: PrivatePcscd, pcscd_station: Station
) -> None:
    card = pcscd_station.insert(0, "doctor")
    service = CardService(pcscd_station.backend, pin_idle_seconds=300).start()
    try:

        def login(pin: str | None) -> str:
            challenge = "c" * 43
            return service.authenticate(
                origin=ORIGIN, challenge=challenge, with_vitale=False, pin=pin
            )

        login("1234")
        pcscd.stop()
        with pytest.raises(CardAuthError) as failure:
            login(None)
        assert failure.value.code in ("transport.no_service", "card.not_present")
        pcscd.start()  # same vpcd ports: the card finds its slot again
        pcscd_station.wait_for(0, present=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                login(None)
            except PinRequired:  # powered afresh: the PIN is typed again
                login("1234")
                break
            except CardAuthError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert card.pins_presented == 2
        assert card.pin(1).tries_left == 3
        assert_not_held(pcscd_station)
    finally:
        service.stop()
    assert dt.datetime.now(dt.UTC)
