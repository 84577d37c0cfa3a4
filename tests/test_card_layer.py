"""The card layer, run twice: on in-process virtual readers, and through pyscard and
a real pcscd with the vpcd driver (the ``station`` fixture)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding

from cardauth.apdu import CommandApdu, Ins
from cardauth.cards import pin
from cardauth.cards.algorithms import SignatureScheme
from cardauth.cards.application import CardApplication, CardKind
from cardauth.cards.cps import CardType, CpsCard, KeyRole
from cardauth.cards.identify import find_card, identify, open_card
from cardauth.cards.session import pin_session
from cardauth.cards.vitale import Relationship, VitaleCard
from cardauth.errors import (
    CardBusy,
    CardMute,
    CardNotPresent,
    CardRemoved,
    MalformedCardData,
    NoCard,
    PinBlocked,
    PinFormatInvalid,
    PinRequired,
    UnexpectedStatus,
    UnknownCard,
    WrongPin,
    WrongPuk,
)
from cardauth.identifiers import IdNatType
from cardauth.transport.channel import CardChannel
from cardauth.transport.monitor import CardMonitor, EventType
from simulator.faults import Fault
from simulator.personas import load_cps
from simulator.pki import simulator_pki
from simulator.readers import VirtualReaders
from tests.conftest import Station
from tests.fuzz_cards import MutatingLink, fresh_card
from tests.support import card_for

CHALLENGE = b"teleservice challenge"
DIGEST = hashlib.sha256(CHALLENGE).digest()


def open_cps(station: Station, slot: int = 0) -> CpsCard:
    card = station.open(slot)
    assert isinstance(card, CpsCard)
    return card


def open_vitale(station: Station, slot: int = 1) -> VitaleCard:
    card = station.open(slot)
    assert isinstance(card, VitaleCard)
    return card


@pytest.mark.parametrize("swapped", [False, True])
def test_cards_are_identified_whichever_slot_they_are_in(station: Station, swapped: bool) -> None:
    cps_slot, vitale_slot = (1, 0) if swapped else (0, 1)
    station.insert(cps_slot, "doctor")
    station.insert(vitale_slot, "patient")
    assert station.open(cps_slot).KIND is CardKind.CPS
    assert station.open(vitale_slot).KIND is CardKind.VITALE
    found = find_card(station.backend, CardKind.VITALE)
    station.opened.append(found)
    assert found.channel.reader == station.readers[vitale_slot]


def test_identification_costs_one_apdu_per_card(station: Station) -> None:
    cps_card = station.insert(0, "doctor")
    vitale_card = station.insert(1, "patient")
    station.open(0)
    station.open(1)
    assert cps_card.commands == {Ins.SELECT: 1}
    assert vitale_card.commands == {Ins.SELECT: 1}


def test_cps_holder_data(station: Station) -> None:
    station.insert(0, "doctor")
    holder = open_cps(station).holder()
    assert holder.card_type is CardType.CPS
    assert holder.idnat.type is IdNatType.RPPS
    assert holder.idnat.identifier == "99700420013"
    assert (holder.civility, holder.given_name, holder.surname) == ("DR", "Élise", "FONTAINE")
    assert (holder.profession_code, holder.profession) == ("10", "Médecin")
    assert holder.specialty == "SM54"


def test_cpe_holder_has_a_structure_identifier(station: Station) -> None:
    station.insert(0, "cpe-employee")
    holder = open_cps(station).holder()
    assert holder.card_type is CardType.CPE
    assert holder.idnat.type is IdNatType.FINESS_STAFF
    assert (holder.idnat.identifier, holder.idnat.suffix) == ("990000010", "SEC0042")
    assert holder.profession_code is None


def test_cps_certificates_tell_authentication_from_signature(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    authentication = card.certificate(KeyRole.AUTHENTICATION)
    signature = card.certificate(KeyRole.SIGNATURE)
    assert authentication.subject == signature.subject
    assert authentication.subject.rfc4514_string().startswith("CN=899700420013")
    auth_usage = authentication.extensions.get_extension_for_class(x509.KeyUsage).value
    sign_usage = signature.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (auth_usage.key_encipherment, auth_usage.content_commitment) == (True, False)
    assert (sign_usage.content_commitment, sign_usage.key_encipherment) == (True, False)


def test_card_serial_comes_from_ef_sn_icc(station: Station) -> None:
    station.insert(0, "doctor")
    assert open_cps(station).serial() == "80250000010000100001"


def test_vitale_holder_with_beneficiaries(station: Station) -> None:
    station.insert(1, "parent")
    holder = open_vitale(station).holder()
    assert holder.insured.nir.value == "178016912304552"
    assert [p.given_name for p in holder.beneficiaries] == ["Léa", "Hugo"]
    assert [p.rank for p in holder.beneficiaries] == [1, 2]
    assert {p.relationship for p in holder.beneficiaries} == {Relationship.CHILD}
    assert holder.beneficiaries[0].birth_date == dt.date(2015, 6, 3)
    assert holder.insurer is not None
    assert holder.insurer.fund == "691"


def test_vitale_certificate_binds_the_nir(station: Station) -> None:
    station.insert(1, "patient-corsica")
    card = open_vitale(station)
    certificate = card.certificate()
    assert card.holder().insured.nir.value == "263022A00401181"
    assert "CN=263022A00401181" in certificate.subject.rfc4514_string()


# -- PIN ---------------------------------------------------------------------------


def test_pin_status_spends_no_try(station: Station) -> None:
    virtual = station.insert(0, "doctor")
    card = open_cps(station)
    for _ in range(4):
        assert card.pin_status() == pin.PinStatus(verified=False, tries_left=3, blocked=False)
    assert virtual.pin(0x01).tries_left == 3


def test_wrong_pin_reports_tries_left(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    with pytest.raises(WrongPin) as caught:
        card.verify_pin("0000")
    assert caught.value.tries_left == 2
    assert caught.value.code == "pin.wrong"
    assert card.pin_status().tries_left == 2


def test_third_wrong_pin_blocks_and_the_puk_unblocks(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    for expected in (2, 1):
        with pytest.raises(WrongPin) as caught:
            card.verify_pin("9999")
        assert caught.value.tries_left == expected
    with pytest.raises(PinBlocked):
        card.verify_pin("9999")
    with pytest.raises(PinBlocked):
        card.verify_pin("1234")  # the right PIN no longer helps
    assert card.pin_status().blocked
    with pytest.raises(WrongPuk) as wrong_puk:
        card.unblock_pin("00000000")
    assert wrong_puk.value.tries_left == 9
    card.unblock_pin("12345678", new_pin="4321")
    card.verify_pin("4321")
    assert card.pin_status().verified


def test_a_blocked_card_says_so_without_a_try(station: Station) -> None:
    virtual = station.insert(0, "cps-blocked")
    card = open_cps(station)
    assert card.pin_status() == pin.PinStatus(verified=False, tries_left=0, blocked=True)
    assert virtual.commands[Ins.VERIFY] == 1  # the empty VERIFY only


@pytest.mark.parametrize("typed", ["123", "123456789", "12a4", "", "\uff11\uff12\uff13\uff14"])
def test_malformed_pin_is_refused_before_reaching_the_card(station: Station, typed: str) -> None:
    virtual = station.insert(0, "doctor")
    card = open_cps(station)
    with pytest.raises(PinFormatInvalid):
        card.verify_pin(typed)
    assert virtual.commands[Ins.VERIFY] == 0
    assert virtual.pin(0x01).tries_left == 3


def test_verify_sends_exactly_one_command_and_never_retries(station: Station) -> None:
    virtual = station.insert(0, "doctor")
    card = open_cps(station)
    with pytest.raises(WrongPin):
        card.verify_pin("0000")
    assert virtual.commands[Ins.VERIFY] == 1


def test_change_pin(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    card.change_pin("1234", "2468")
    with pytest.raises(WrongPin):
        card.verify_pin("1234")
    card.verify_pin("2468")


# -- signatures ----------------------------------------------------------------------


def _rsa_key(card: CpsCard, role: KeyRole = KeyRole.AUTHENTICATION) -> rsa.RSAPublicKey:
    key = card.certificate(role).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_authentication_needs_the_pin(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    with pytest.raises(PinRequired):
        card.authenticate(DIGEST)


def test_authentication_signature_verifies_with_the_certificate(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    card.verify_pin("1234")
    signature = card.authenticate(DIGEST)
    _rsa_key(card).verify(signature, CHALLENGE, padding.PKCS1v15(), hashes.SHA256())


def test_a_cps_card_signs_rs256_only(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    with pytest.raises(MalformedCardData):
        card.authenticate(DIGEST, SignatureScheme.ES256)


def test_non_repudiation_key_needs_the_pin_for_each_signature(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    card.verify_pin("1234")
    signature = card.sign(DIGEST)
    _rsa_key(card, KeyRole.SIGNATURE).verify(
        signature, CHALLENGE, padding.PKCS1v15(), hashes.SHA256()
    )
    with pytest.raises(PinRequired):
        card.sign(DIGEST)


def test_vitale_card_signs_without_pin(station: Station) -> None:
    station.insert(1, "patient")
    card = open_vitale(station)
    signature = card.authenticate(DIGEST)
    key = card.certificate().public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key.verify(der, CHALLENGE, ec.ECDSA(hashes.SHA256()))


def test_t0_card_gives_the_same_results(station: Station) -> None:
    virtual = station.insert(0, "doctor")
    virtual.spec.t0 = True
    card = open_cps(station)
    assert card.holder().surname == "FONTAINE"
    certificate = card.certificate()
    card.verify_pin("1234")
    _rsa_key(card).verify(card.authenticate(DIGEST), CHALLENGE, padding.PKCS1v15(), hashes.SHA256())
    assert virtual.commands[Ins.GET_RESPONSE] >= 1  # the signature came through 61xx
    assert certificate.serial_number > 0


def test_host_chains_long_command_data(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    virtual = station.workstation.card_in(0)
    assert virtual is not None
    long_select = CommandApdu(0x00, Ins.SELECT, 0x04, 0x0C, b"\x01" * 300)
    response = card.channel.transmit(long_select)
    assert response.sw == 0x6700  # the card got all 300 bytes (an AID that long is wrong)
    assert virtual.commands[Ins.SELECT] >= 3  # 255 + 45 bytes, plus the identification


# -- refusals ------------------------------------------------------------------------


def test_unknown_card_is_refused(station: Station) -> None:
    station.insert(0, "unknown-card")
    with pytest.raises(UnknownCard) as caught:
        station.open(0)
    assert caught.value.code == "card.unknown"


def test_mute_card_is_refused(station: Station) -> None:
    station.insert(0, "mute-card")
    with pytest.raises(CardMute):
        station.open(0)


def test_empty_slot_has_no_card(station: Station) -> None:
    with pytest.raises(NoCard) as caught:
        station.open(0)
    assert caught.value.code == "transport.no_card"


def test_no_cps_card_anywhere(station: Station) -> None:
    station.insert(1, "patient")
    with pytest.raises(CardNotPresent):
        find_card(station.backend, CardKind.CPS)


def test_unexpected_status_word_keeps_the_status(station: Station) -> None:
    station.insert(1, "patient")
    card = open_vitale(station)
    with pytest.raises(UnexpectedStatus) as caught:
        pin.pin_status(card.channel, 0x01)  # a Vitale card has no PIN
    assert caught.value.sw == 0x6A88
    assert caught.value.context["sw"] == "6A88"


def test_card_removed_mid_operation(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    card.holder()
    station.remove(0)
    with pytest.raises(CardRemoved) as caught:
        card.holder()
    assert caught.value.code == "transport.card_removed"


def test_reinserted_card_works_again(station: Station) -> None:
    station.insert(0, "doctor")
    open_cps(station).holder()
    station.remove(0)
    station.insert(0, "doctor")
    assert open_cps(station).holder().surname == "FONTAINE"


def test_transaction_keeps_other_connections_out(station: Station) -> None:
    station.insert(0, "doctor")
    first = open_cps(station)
    second_link = station.backend.connect(station.readers[0])
    second = CardChannel(second_link, transaction_timeout=0.3)
    try:
        with first.channel.transaction(), pytest.raises(CardBusy), second.transaction():
            pass
        with second.transaction():  # free again once the first lets go
            pass
    finally:
        second.close()


def test_monitor_reports_insertion_and_removal(station: Station) -> None:
    station.insert(1, "patient")
    with CardMonitor(station.backend, wait_timeout=1.0) as monitor:
        snapshot = list(monitor.events(timeout=1.0))
        assert [e.type for e in snapshot].count(EventType.READER_ATTACHED) == 2
        inserted = [e for e in snapshot if e.type is EventType.CARD_INSERTED]
        assert [e.reader for e in inserted] == [station.readers[1]]
        station.insert(0, "doctor")
        event = monitor.get(timeout=5)
        assert event is not None
        assert (event.type, event.reader) == (EventType.CARD_INSERTED, station.readers[0])
        station.remove(1)
        event = monitor.get(timeout=5)
        assert event is not None
        assert (event.type, event.reader) == (EventType.CARD_REMOVED, station.readers[1])


def test_extended_length_card_sends_its_certificate_in_one_response() -> None:
    virtual = card_for("doctor", t0=False)
    # T=1 (TD1 = 01), historical bytes 80 73 00 00 40: card capabilities with
    # "extended Lc and Le" (ISO 7816-4 § 12.1.1), then the check byte TCK.
    atr = bytes.fromhex("3B 85 80 01 80 73 00 00 40")
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    virtual.spec.atr = atr + bytes((tck,))
    virtual.spec.extended_length = True
    readers = VirtualReaders()
    readers.insert(0, virtual)
    card = open_card(readers, readers.slot_names[0])
    assert isinstance(card, CpsCard)
    assert card.channel.extended_length
    with card.channel.transaction():
        certificate = card.certificate()
    assert certificate.subject.rfc4514_string().startswith("CN=899700420013")
    # One READ BINARY per file, the 1,191-byte certificate included: EF.ODF, the PrKDF
    # (the authentication key's id), the CDF, the certificate.
    assert virtual.commands[Ins.READ_BINARY] == 4


def test_extended_length_is_not_used_over_t0() -> None:
    virtual = card_for("doctor")  # T=0, as its ATR says
    virtual.spec.atr = bytes.fromhex("3B 05 80 73 00 00 40")  # announces extended, T=0 only
    readers = VirtualReaders()
    readers.insert(0, virtual)
    card = open_card(readers, readers.slot_names[0])
    assert not card.channel.extended_length


def test_a_damaged_certificate_is_a_typed_error() -> None:
    der = bytearray(
        simulator_pki()
        .cps_certificates(load_cps("doctor"))
        .authentication.public_bytes(Encoding.DER)
    )
    at = der.index(b"FONTAINE")
    der[at] = 0xC3  # a UTF-8 lead byte followed by an ASCII letter: invalid
    with pytest.raises(MalformedCardData):
        CardApplication.parse_certificate(bytes(der))


# -- PIN sessions and what a session leaves on the card ------------------------------


def test_a_pin_session_logs_out_when_it_ends(station: Station) -> None:
    virtual = station.insert(0, "doctor")
    card = open_cps(station)
    with pin_session(card, "1234"):
        card.authenticate(DIGEST)
    assert card.pin_status().verified is False
    assert virtual.pin(0x01).tries_left == 3


def test_a_failed_session_logs_out_even_when_the_pin_was_to_be_kept(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    with pytest.raises(CardNotPresent), pin_session(card, "1234", keep=True):
        raise CardNotPresent("no Vitale card", kind="vitale")  # the signing went wrong
    assert card.pin_status().verified is False


def test_a_log_out_the_card_refuses_resets_the_card(station: Station) -> None:
    virtual = station.insert(0, "doctor")
    card = open_cps(station)
    virtual.faults.arm(Fault.WRONG_STATUS, ins=Ins.SELECT, status=0x6F00)
    with pytest.raises(UnexpectedStatus), pin_session(card, "1234"):
        card.authenticate(DIGEST)  # selects the application: refused
    assert open_cps(station).pin_status().verified is False  # reset as its link closed


def test_changing_the_pin_logs_out(station: Station) -> None:
    station.insert(0, "doctor")
    card = open_cps(station)
    card.change_pin("1234", "2468")
    assert card.pin_status().verified is False


def test_a_certificate_damaged_on_the_way_is_read_again_next_time() -> None:
    """The certificate's first part comes back with its inner SEQUENCE tag damaged (a
    reader that flipped a byte): it is refused, and not kept; the next read is good."""
    damaged: list[bytes] = []

    def damage(answer: bytes) -> bytes:
        if not damaged and answer[:2] == b"\x30\x82" and len(answer) > 100:
            damaged.append(answer)
            return answer[:4] + b"\xcf" + answer[5:]
        return answer

    card = identify(CardChannel(MutatingLink(fresh_card("doctor"), damage)))
    assert isinstance(card, CpsCard)
    with pytest.raises(MalformedCardData):
        card.certificate()
    assert damaged
    assert card.certificate().subject.rfc4514_string().startswith("CN=899700420013")
