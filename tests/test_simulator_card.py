"""The virtual card's ISO 7816-4 interpreter, command by command, status word by
status word. The card is driven with raw APDUs, as a reader would."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding

from cardauth import tlv
from cardauth.cards import cps, vitale
from cardauth.cards.algorithms import SignatureScheme
from simulator.card import VirtualCard
from simulator.personas import load_cps, load_vitale
from simulator.pki import simulator_pki
from tests.support import card_for

PIN = "31323334FFFFFFFF"  # "1234", ASCII padded with FF
WRONG_PIN = "39393939FFFFFFFF"
PUK = "3132333435363738"
SELECT_IAS = "00A4040C08" + cps.IAS_AID.hex()
SELECT_VITALE = "00A4040C0B" + vitale.VITALE_AID.hex()


def send(card: VirtualCard, apdu: str) -> tuple[bytes, int]:
    response = card.process(bytes.fromhex(apdu.replace(" ", "")))
    return response[:-2], int.from_bytes(response[-2:], "big")


@pytest.fixture
def doctor() -> VirtualCard:
    """The doctor's card answering as a T=1 card (data straight in the response)."""
    card = card_for("doctor", t0=False)
    card.power_on()
    return card


def sw(card: VirtualCard, apdu: str) -> int:
    return send(card, apdu)[1]


# -- dispatch ----------------------------------------------------------------------


def test_unknown_instruction_is_6d00(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 50 00 00") == 0x6D00


def test_unknown_class_is_6e00(doctor: VirtualCard) -> None:
    assert sw(doctor, "80 A4 00 0C 02 3F00") == 0x6E00


def test_truncated_command_is_6700(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4") == 0x6700
    assert sw(doctor, "00 A4 04 0C 08 8025") == 0x6700


def test_extended_length_is_refused_by_a_short_only_card(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 B0 00 00 00 05 00") == 0x6700
    assert sw(doctor, "00 B0 00 00 00 00 FD") == 0x6700  # even for a value a short Le holds


def test_cps_and_vitale_cards_speak_t0_as_their_atrs_say() -> None:
    assert card_for("doctor").spec.t0
    assert card_for("patient").spec.t0


# -- SELECT ------------------------------------------------------------------------


def test_select_application_by_aid(doctor: VirtualCard) -> None:
    assert sw(doctor, SELECT_IAS) == 0x9000
    fcp, status = send(doctor, "00A40400 08" + cps.IAS_AID.hex() + "00")
    assert status == 0x9000
    assert fcp[0] == 0x62
    assert cps.IAS_AID in fcp


def test_select_unknown_aid_is_6a82(doctor: VirtualCard) -> None:
    assert sw(doctor, "00A4040C05A000000001") == 0x6A82


def test_select_by_path_from_mf(doctor: VirtualCard) -> None:
    fcp, status = send(doctor, "00 A4 08 00 02 D003 00")
    assert status == 0x9000
    (template,) = tlv.parse(fcp)
    assert template.tag == 0x62
    assert tlv.require(template.children(), 0x80).value == (12).to_bytes(2, "big")  # size


def test_select_path_including_mf_as_real_cards_accept(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 09 0C 04 3F00D003") == 0x9000


def test_select_by_fid_parent_and_mf(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 00 0C 02 0001") == 0x9000  # the IAS DF, child of the MF
    assert sw(doctor, "00 A4 02 0C 02 C001") == 0x9000  # an EF of the current DF
    assert sw(doctor, "00 A4 01 0C 02 C001") == 0x6A82  # an EF is not a DF
    assert sw(doctor, "00 A4 03 0C") == 0x9000  # parent
    assert sw(doctor, "00 A4 00 0C") == 0x9000  # MF when no data


def test_select_with_unsupported_parameters(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 04 0D 08" + cps.IAS_AID.hex()) == 0x6A86  # next occurrence
    assert sw(doctor, "00 A4 07 0C 02 3F00") == 0x6A86
    assert sw(doctor, "00 A4 00 0C 03 3F0000") == 0x6700


# -- READ BINARY and GET RESPONSE --------------------------------------------------


def test_read_binary_with_offsets(doctor: VirtualCard) -> None:
    send(doctor, "00 A4 08 0C 02 D003")
    whole, status = send(doctor, "00 B0 00 00 0C")
    assert status == 0x9000
    assert whole[:2] == b"\x5a\x0a"
    part, status = send(doctor, "00 B0 00 07 05")
    assert (part, status) == (whole[7:], 0x9000)


def test_read_past_the_end_is_6282_then_6b00(doctor: VirtualCard) -> None:
    send(doctor, "00 A4 08 0C 02 D003")
    data, status = send(doctor, "00 B0 00 08 00")
    assert (len(data), status) == (4, 0x6282)
    assert sw(doctor, "00 B0 00 0D 01") == 0x6B00


def test_read_without_current_ef_is_6986(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 B0 00 00 10") == 0x6986


def test_read_by_short_file_identifier(doctor: VirtualCard) -> None:
    send(doctor, SELECT_IAS)
    data, status = send(doctor, "00 B0 81 00 00")
    assert status == 0x6282
    holder = cps.CpsHolder.from_tlv(data)
    assert holder.surname == "FONTAINE"
    assert sw(doctor, "00 B0 9F 00 00") == 0x6A82  # no file with SFI 1F


def test_read_binary_without_le_is_6700(doctor: VirtualCard) -> None:
    send(doctor, SELECT_IAS)
    assert sw(doctor, "00 B0 81 00") == 0x6700


def test_extended_read_on_a_card_that_takes_it() -> None:
    card = card_for("doctor", t0=False)
    card.spec.extended_length = True
    card.power_on()
    send(card, SELECT_IAS)
    certificate, status = send(card, "00 B0 82 00 00 10 00")
    expected = simulator_pki().cps_certificates(load_cps("doctor")).authentication
    assert status == 0x6282
    assert certificate == expected.public_bytes(Encoding.DER)


def test_t0_card_hands_data_out_through_61xx_and_get_response() -> None:
    card = card_for("doctor", t0=True)
    card.power_on()
    data, status = send(card, "00 A4 04 00 08" + cps.IAS_AID.hex() + "00")
    assert (data, status >> 8) == (b"", 0x61)
    fcp, status = send(card, f"00 C0 00 00 {status & 0xFF:02X}")
    assert status == 0x9000
    assert fcp[0] == 0x62


def test_t0_card_answers_a_wrong_le_with_6cxx() -> None:
    card = card_for("doctor", t0=True)
    card.power_on()
    send(card, "00 A4 08 0C 02 D003")
    assert sw(card, "00 B0 00 00 00") == 0x6C0C
    data, status = send(card, "00 B0 00 00 0C")
    assert (len(data), status) == (12, 0x9000)


def test_get_response_without_pending_data_is_6985(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 C0 00 00 10") == 0x6985


def test_get_response_in_parts() -> None:
    card = card_for("doctor", t0=True)
    card.power_on()
    _, status = send(card, "00 A4 04 00 08" + cps.IAS_AID.hex() + "00")
    total = status & 0xFF
    first, status = send(card, "00 C0 00 00 05")
    assert (len(first), status) == (5, 0x6100 | (total - 5))
    rest, status = send(card, f"00 C0 00 00 {total - 5:02X}")
    assert status == 0x9000
    assert (first + rest)[0] == 0x62


def test_command_chaining_joins_the_parts(doctor: VirtualCard) -> None:
    assert sw(doctor, "10 A4 04 0C 04 8025 0000") == 0x9000
    assert sw(doctor, "00 A4 04 0C 04 01FF 0100") == 0x9000  # the whole AID, selected


def test_chaining_broken_by_another_command_is_refused(doctor: VirtualCard) -> None:
    assert sw(doctor, "10 A4 04 0C 04 8025 0000") == 0x9000
    assert sw(doctor, "00 B0 00 00 01") == 0x6985


# -- PIN ---------------------------------------------------------------------------


def test_empty_verify_tells_tries_left_without_spending_one(doctor: VirtualCard) -> None:
    send(doctor, SELECT_IAS)
    for _ in range(5):
        assert sw(doctor, "00 20 00 01") == 0x63C3
    assert doctor.pin(cps.PIN_REFERENCE).tries_left == 3


def test_wrong_pin_counts_down_then_blocks(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C2
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C1
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C0
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x6983  # even the right PIN
    assert sw(doctor, "00 20 00 01") == 0x6983


def test_right_pin_resets_the_counter_and_verifies(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C2
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x9000
    assert sw(doctor, "00 20 00 01") == 0x9000  # verified
    assert doctor.pin(cps.PIN_REFERENCE).tries_left == 3


def test_verify_reset_status_with_p1_ff(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    assert sw(doctor, "00 20 FF 01") == 0x9000
    assert sw(doctor, "00 20 00 01") == 0x63C3


def test_verify_wrong_length_spends_no_try(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 01 04 31323334") == 0x6700
    assert doctor.pin(cps.PIN_REFERENCE).tries_left == 3


def test_verify_unknown_reference_is_6a88(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 07 08" + PIN) == 0x6A88


def test_power_on_forgets_the_verified_pin(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    doctor.power_on()
    assert sw(doctor, "00 20 00 01") == 0x63C3


def test_change_reference_data(doctor: VirtualCard) -> None:
    new = "35363738FFFFFFFF"
    assert sw(doctor, "00 24 00 01 10" + WRONG_PIN + new) == 0x63C2
    assert sw(doctor, "00 24 00 01 10" + PIN + "3536FFFFFFFFFFFF") == 0x6A80  # 2 digits
    assert sw(doctor, "00 24 00 01 10" + PIN + new) == 0x9000
    doctor.power_on()
    assert sw(doctor, "00 20 00 01 08" + new) == 0x9000


def test_reset_retry_counter_with_the_puk(doctor: VirtualCard) -> None:
    for _ in range(3):
        send(doctor, "00 20 00 01 08" + WRONG_PIN)
    assert sw(doctor, "00 20 00 01") == 0x6983
    assert sw(doctor, "00 2C 01 01 08 3030303030303030") == 0x63C9  # wrong PUK
    assert sw(doctor, "00 2C 01 01 08" + PUK) == 0x9000  # unblocked, PIN kept
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x9000


def test_reset_retry_counter_with_a_new_pin(doctor: VirtualCard) -> None:
    new = "39383736FFFFFFFF"
    assert sw(doctor, "00 2C 00 01 10" + PUK + new) == 0x9000
    assert sw(doctor, "00 20 00 01 08" + new) == 0x9000


def test_blocked_puk_is_6983(doctor: VirtualCard) -> None:
    for _ in range(10):
        send(doctor, "00 2C 01 01 08 3030303030303030")
    assert sw(doctor, "00 2C 01 01 08" + PUK) == 0x6983


def test_pin_value_never_appears_in_repr(doctor: VirtualCard) -> None:
    assert "1234" not in repr(doctor.pin(cps.PIN_REFERENCE))
    assert "3132" not in repr(doctor.pin(cps.PIN_REFERENCE))


# -- keys and signatures -----------------------------------------------------------

DIGEST = hashlib.sha256(b"challenge").digest()
DIGEST_INFO = SignatureScheme.RS256.card_input(DIGEST).hex()
MSE_AUTH = "00 22 41 A4 06 800102 840182"
MSE_SIGN = "00 22 41 B6 06 800102 840181"


def _doctor_authentication_key() -> rsa.RSAPublicKey:
    key = simulator_pki().cps_certificates(load_cps("doctor")).authentication.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def test_internal_authenticate_needs_the_pin(doctor: VirtualCard) -> None:
    send(doctor, SELECT_IAS)
    assert sw(doctor, MSE_AUTH) == 0x9000
    assert sw(doctor, "00 88 00 00 33" + DIGEST_INFO + "00") == 0x6982
    send(doctor, "00 20 00 01 08" + PIN)
    signature, status = send(doctor, "00 88 00 00 33" + DIGEST_INFO + "00")
    assert status == 0x9000
    public_key = _doctor_authentication_key()
    public_key.verify(signature, b"challenge", padding.PKCS1v15(), hashes.SHA256())


def test_authentication_key_stays_usable_while_the_pin_is_verified(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    send(doctor, MSE_AUTH)
    assert sw(doctor, "00 88 00 00 33" + DIGEST_INFO + "00") == 0x9000
    assert sw(doctor, "00 88 00 00 33" + DIGEST_INFO + "00") == 0x9000


def test_signature_key_needs_the_pin_before_each_signature(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    assert sw(doctor, MSE_SIGN) == 0x9000
    assert sw(doctor, "00 2A 9E 9A 33" + DIGEST_INFO + "00") == 0x9000
    assert sw(doctor, "00 2A 9E 9A 33" + DIGEST_INFO + "00") == 0x6982


def test_pss_signature_verifies() -> None:
    card = card_for("doctor", t0=False)
    card.power_on()
    send(card, "00 20 00 01 08" + PIN)
    send(card, "00 22 41 A4 06 800105 840182")
    signature, status = send(card, "00 88 00 00 20" + DIGEST.hex() + "00")
    assert status == 0x9000
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    _doctor_authentication_key().verify(signature, b"challenge", pss, hashes.SHA256())


def test_security_operation_without_environment_is_6985(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    assert sw(doctor, "00 88 00 00 33" + DIGEST_INFO + "00") == 0x6985


@pytest.mark.parametrize(
    ("mse", "expected"),
    [
        ("00 22 41 A4 06 800102 840181", 0x6A88),  # the signature key is not for AT
        ("00 22 41 B6 06 800102 840182", 0x6A88),  # the authentication key is not for DST
        ("00 22 41 A4 06 800102 840199", 0x6A88),  # no such key
        ("00 22 41 A4 06 800104 840182", 0x6A80),  # ECDSA on an RSA key
        ("00 22 41 A4 06 8001EE 840182", 0x6A80),  # unknown algorithm
        ("00 22 41 A4 03 840182", 0x6A80),  # no algorithm
        ("00 22 41 A4 03 848182", 0x6A80),  # malformed template
        ("00 22 41 B8 06 800102 840182", 0x6A86),  # confidentiality template
        ("00 22 F3 A4", 0x6A86),  # RESTORE
    ],
)
def test_manage_security_environment_refusals(doctor: VirtualCard, mse: str, expected: int) -> None:
    assert sw(doctor, mse) == expected


def test_signature_data_that_is_not_a_digest_info_is_6a80(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    send(doctor, MSE_AUTH)
    assert sw(doctor, "00 88 00 00 20" + DIGEST.hex() + "00") == 0x6A80


def test_internal_authenticate_with_no_data_is_6700(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + PIN)
    send(doctor, MSE_AUTH)
    assert sw(doctor, "00 88 00 00 00") == 0x6700


def test_pso_with_other_parameters_is_6a86(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 2A 80 86 02 0102") == 0x6A86


def test_vitale_key_signs_without_pin() -> None:
    card = card_for("patient", t0=False)
    card.power_on()
    assert sw(card, SELECT_VITALE) == 0x9000
    assert sw(card, "00 22 41 A4 06 800104 840181") == 0x9000
    signature, status = send(card, "00 88 00 00 20" + DIGEST.hex() + "00")
    assert (status, len(signature)) == (0x9000, 64)
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key = simulator_pki().vitale_certificate(load_vitale("patient")).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, b"challenge", ec.ECDSA(hashes.SHA256()))


def test_mute_card_stops_its_answer_to_reset_at_the_first_byte() -> None:
    card = card_for("mute-card")
    assert card.power_on() == b"\x3b"


def test_commands_are_counted_by_instruction(doctor: VirtualCard) -> None:
    send(doctor, SELECT_IAS)
    send(doctor, "00 B0 81 00 00")
    send(doctor, "00 B0 81 00 00")
    assert doctor.commands[0xA4] == 1
    assert doctor.commands[0xB0] == 2
    assert doctor.total_commands == 3
