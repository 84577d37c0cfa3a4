"""The card layer's document signature (cardauth.cards.signature): the PIN
presented for each signature, the non-repudiation key only, the card logged out
after, the signature checked against the signature certificate before it goes out;
on in-process readers and through the real pcscd (the ``station`` fixture)."""

from __future__ import annotations

import hashlib

import pytest

from cardauth.apdu import Ins
from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.identify import identify
from cardauth.cards.signature import sign_digest
from cardauth.errors import MalformedApdu, MalformedCardData, PinFormatInvalid, WrongPin
from cardauth.transport.channel import CardChannel
from simulator.card import VirtualCard
from tests.conftest import Station
from tests.fuzz_cards import MutatingLink, fresh_card
from tests.signing_kit import DOCTOR_CERTIFICATES, verifies

DIGEST = hashlib.sha256(b"a report's signed attributes").digest()


def open_doctor(station: Station) -> tuple[CpsCard, VirtualCard]:
    """The doctor's card in slot 0: as the card layer opens it, and the virtual card
    (to count what it was sent)."""
    virtual = station.insert(0, "doctor")
    card = station.open(0)
    assert isinstance(card, CpsCard)
    return card, virtual


def test_a_digest_is_signed_by_the_signature_key_after_its_own_pin(station: Station) -> None:
    card, virtual = open_doctor(station)
    signed = sign_digest(card, DIGEST, "1234")
    assert signed.certificate_der == card.certificate_der(KeyRole.SIGNATURE)
    assert verifies(DOCTOR_CERTIFICATES.signature, signed.signature, DIGEST)
    assert not verifies(DOCTOR_CERTIFICATES.authentication, signed.signature, DIGEST)
    assert virtual.pins_presented == 1
    assert virtual.commands[Ins.INTERNAL_AUTHENTICATE] == 0
    assert not virtual.verified_codes  # logged out after the signature
    assert not card.pin_status().verified


def test_a_pin_verified_earlier_does_not_sign_with_a_wrong_one(station: Station) -> None:
    """A login's PIN state is no consent: the PIN typed for the signature is
    presented, and a wrong one signs nothing (the card forgets the earlier one)."""
    card, virtual = open_doctor(station)
    card.verify_pin("1234")
    with pytest.raises(WrongPin):
        sign_digest(card, DIGEST, "0000")
    assert virtual.commands[Ins.PERFORM_SECURITY_OPERATION] == 0
    assert not virtual.verified_codes


@pytest.mark.parametrize("digest", [b"", DIGEST[:31], DIGEST + b"\0", DIGEST * 2])
def test_a_digest_that_is_not_sha256_reaches_no_card(station: Station, digest: bytes) -> None:
    card, virtual = open_doctor(station)
    sent = virtual.total_commands
    with pytest.raises(MalformedApdu):
        sign_digest(card, digest, "1234")
    assert virtual.total_commands == sent
    assert virtual.pins_presented == 0


def test_a_malformed_pin_costs_no_try(station: Station) -> None:
    card, virtual = open_doctor(station)
    with pytest.raises(PinFormatInvalid):
        sign_digest(card, DIGEST, "12a4")
    assert virtual.pins_presented == 0
    assert virtual.pin(0x01).tries_left == 3


def test_a_signature_damaged_on_the_way_is_refused_and_the_card_logged_out() -> None:
    """The signature comes back with a byte flipped (a reader that lost a bit, a
    fault): checked against the signature certificate, it is refused, never handed
    out, and the PIN is not left verified."""
    armed: list[bool] = [False]
    damaged: list[bytes] = []

    def damage(answer: bytes) -> bytes:
        if armed[0] and not damaged and len(answer) == 256 + 2 and answer[-2:] == b"\x90\x00":
            damaged.append(answer)
            return answer[:10] + bytes([answer[10] ^ 1]) + answer[11:]
        return answer

    virtual = fresh_card("doctor")
    card = identify(CardChannel(MutatingLink(virtual, damage)))
    assert isinstance(card, CpsCard)
    card.certificate(KeyRole.SIGNATURE)  # read whole beforehand: only the signature is damaged
    armed[0] = True
    with pytest.raises(MalformedCardData):
        sign_digest(card, DIGEST, "1234")
    assert damaged
    assert virtual.commands[Ins.PERFORM_SECURITY_OPERATION] == 2  # signed, then refused here
    assert not virtual.verified_codes
