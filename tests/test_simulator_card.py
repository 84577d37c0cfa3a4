"""The virtual card's interpreter, command by command, status word by status word,
driven with raw APDUs as a reader would. The CPS card answers as a real CPS3 does:
where a real card's bytes are public (docs/simulator.md names the source of each),
the test compares with them; each refusal a real card makes, and each command form
no public trace shows, is named here with its status word."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding

from cardauth import tlv
from cardauth.cards import cps, vitale
from cardauth.cards.algorithms import digest_info
from simulator.card import VirtualCard
from simulator.filesystem import DedicatedFile, ElementaryFile, build_tree
from simulator.hashing import _compress
from simulator.personas import load_cps, load_vitale
from simulator.pki import simulator_pki
from simulator.security import AccessRules
from tests.support import card_for

PIN = "31323334FFFFFFFF"  # "1234", ASCII padded with FF
WRONG_PIN = "39393939FFFFFFFF"
PUK = "3132333435363738"
NEW_PIN = "34333231FFFFFFFF"  # "4321"
SELECT_ROOT = "00A4040C08" + cps.ROOT_AID.hex()
SELECT_CPS3 = "00A4040C0D" + cps.PKCS15_AID.hex()
SELECT_VITALE = "00A4040C0B" + vitale.VITALE_AID.hex()
CHALLENGE = b"challenge"
DIGEST = hashlib.sha256(CHALLENGE).digest()
DIGEST_INFO = digest_info(hashes.SHA256(), DIGEST)
MSE_AUTHENTICATION = "00 22 41 A4 06 80 01 02 84 01 82"
MSE_HASH = "00 22 41 AA 03 80 01 40"
MSE_SIGNATURE = "00 22 41 B6 06 80 01 42 84 01 81"
PSO_HASH_WHOLE = "00 2A 90 A0 22 90 20" + DIGEST.hex()
PSO_CDS = "00 2A 9E 9A 00"

# Bytes of real CPS3 cards (OpenSC issues #2220, #2223, #2262, #2275).
REAL_EF_ATR = bytes.fromhex(
    "804301B8460404B0ECC14703940180 4F088025000001FF0100 E010020201040202010402020100020201"
    "00 780806062B8122F87802 82029000".replace(" ", "")
)
REAL_EF_ATR_FCP = bytes.fromhex(
    "622580020039820101830 22F01880 1E8A1128C077B45FFFFFF45009C077BFFFFFFFFFF008A0105".replace(
        " ", ""
    )
)
REAL_EF_DIR_FCP = bytes.fromhex(
    "6225800200658201018302 2F00 8801F0A1128C077B45FFFFFF45009C077BFFFFFFFFFF008A0105".replace(
        " ", ""
    )
)
REAL_SN_ICC_FCP = bytes.fromhex(
    "62258002000C820101 8302D003 8801E0A1128C077BFFFFFFFFFF009C077BFFFFFFFFFF008A0105".replace(
        " ", ""
    )
)
REAL_MF_FCP = bytes.fromhex(
    "621E8201388302 3F00 84088025000001FF0100A1088C067AFFFFFFFF458A0105".replace(" ", "")
)
REAL_PIN_DESCRIPTOR = bytes.fromhex("7016BF810112A0109A01039B0103A1088C06F3000013FF00")
GET_PIN_DESCRIPTOR = "00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80"


def send(card: VirtualCard, apdu: str) -> tuple[bytes, int]:
    response = card.process(bytes.fromhex(apdu.replace(" ", "")))
    return response[:-2], int.from_bytes(response[-2:], "big")


def sw(card: VirtualCard, apdu: str) -> int:
    return send(card, apdu)[1]


def ok(card: VirtualCard, apdu: str) -> bytes:
    data, status = send(card, apdu)
    assert status == 0x9000, f"{apdu}: {status:04X}"
    return data


@pytest.fixture
def doctor() -> VirtualCard:
    """The doctor's card answering as a T=1 card (data straight in the response)."""
    card = card_for("doctor", t0=False)
    card.power_on()
    return card


@pytest.fixture
def t0_doctor() -> VirtualCard:
    """The doctor's card as its ATR says: T=0, data through 61xx and GET RESPONSE."""
    card = card_for("doctor")
    card.power_on()
    return card


def _key(role: str) -> rsa.RSAPublicKey:
    certificates = simulator_pki().cps_certificates(load_cps("doctor"))
    certificate = (
        certificates.authentication if role == "authentication" else certificates.signature
    )
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


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


# -- the files of a real CPS3 ---------------------------------------------------------


def test_the_mf_is_the_ias_root_application_with_a_real_cards_fcp(doctor: VirtualCard) -> None:
    assert ok(doctor, "00 A4 04 04 08" + cps.ROOT_AID.hex()) == REAL_MF_FCP


def test_ef_atr_holds_the_real_capability_object(doctor: VirtualCard) -> None:
    assert ok(doctor, "00 A4 09 04 04 3F00 2F01") == REAL_EF_ATR_FCP
    assert ok(doctor, "00 B0 00 00 39") == REAL_EF_ATR


def test_ef_dir_is_as_large_as_a_real_cards_and_names_both_applications(
    doctor: VirtualCard,
) -> None:
    assert ok(doctor, "00 A4 09 04 04 3F00 2F00") == REAL_EF_DIR_FCP
    records = [t.children() for t in tlv.parse(ok(doctor, "00 B0 00 00 65"))]
    assert [tlv.require(r, 0x50).value for r in records] == [b"CPX IAS CL", b"CPX IAS"]
    assert [tlv.require(r, 0x4F).value for r in records] == [
        cps.PKCS15_CONTACTLESS_AID,
        cps.PKCS15_AID,
    ]


def test_ef_sn_icc_by_path_as_the_cards_middleware_reads_it(doctor: VirtualCard) -> None:
    assert ok(doctor, "00 A4 09 04 04 3F00 D003") == REAL_SN_ICC_FCP
    assert ok(doctor, "00 B0 00 00 0C") == bytes.fromhex("5A0A80250000010000100001")


def test_ef_sn_icc_by_short_identifier_as_opensc_reads_it(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_ROOT)
    assert ok(doctor, "00 B0 9C 00 0C")[:7] == bytes.fromhex("5A0A8025000001")


def test_a_file_a_real_card_lacks_is_6a82(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 09 04 04 3F00 D010") == 0x6A82  # EF.ACTUA, absent on real cards


# -- SELECT: the forms a CPS3 accepts and those it refuses -----------------------------


def test_select_mf_by_file_id(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 00 0C 02 3F00") == 0x9000
    assert ok(doctor, "00 A4 02 04 02 3F00") == REAL_MF_FCP  # as OpenSC selects the MF


def test_select_the_mf_by_name_without_p2_answers_no_data(doctor: VirtualCard) -> None:
    assert send(doctor, "00 A4 04 00 08" + cps.ROOT_AID.hex()) == (b"", 0x9000)


def test_select_an_application_with_p2_00_is_6a86(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 04 00 0D" + cps.PKCS15_AID.hex()) == 0x6A86  # OpenSC 1a3666364
    assert sw(doctor, SELECT_CPS3) == 0x9000


def test_select_a_file_with_p2_00_is_6a86(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 A4 02 00 02 A001") == 0x6A86  # OpenSC 20f359ea0
    assert sw(doctor, "00 A4 02 0C 02 A001") == 0x9000


def test_a_relative_path_from_another_df_is_6a82(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 A4 09 04 02 2F00") == 0x6A82  # OpenSC fc0df4e5d
    assert sw(doctor, "00 A4 09 04 04 3F00 2F00") == 0x9000


@pytest.mark.parametrize(
    "apdu",
    [
        "00 A4 08 0C 02 D003",  # path from the MF: seen in no trace of a real card
        "00 A4 01 0C 02 0001",  # child DF: seen in no trace either
        "00 A4 04 0D 08 8025000001FF0100",  # next occurrence
        "00 A4 04 08 08 8025000001FF0100",  # file management data
    ],
)
def test_select_forms_never_seen_on_a_real_card_are_6a86(doctor: VirtualCard, apdu: str) -> None:
    assert sw(doctor, apdu) == 0x6A86


def test_select_unknown_aid_is_6a82(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 A4 04 0C 05 A000000001") == 0x6A82


def test_select_the_parent(doctor: VirtualCard) -> None:
    ok(doctor, "00 A4 09 0C 04 3F00 0001")
    assert sw(doctor, "00 A4 03 0C") == 0x9000
    assert sw(doctor, "00 A4 09 0C 02 2F00") == 0x9000  # back in the MF


# -- READ BINARY and GET RESPONSE --------------------------------------------------------


def test_read_binary_with_offsets(doctor: VirtualCard) -> None:
    ok(doctor, "00 A4 09 0C 04 3F00 2F01")
    assert ok(doctor, "00 B0 00 05 04") == REAL_EF_ATR[5:9]


def test_read_past_the_end_is_6282_then_6b00(doctor: VirtualCard) -> None:
    ok(doctor, "00 A4 09 0C 04 3F00 D003")
    assert send(doctor, "00 B0 00 08 10") == (bytes.fromhex("00100001"), 0x6282)
    assert sw(doctor, "00 B0 00 20 01") == 0x6B00


def test_read_without_current_ef_is_6986(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 B0 00 00 01") == 0x6986


def test_read_binary_without_le_is_6700(doctor: VirtualCard) -> None:
    ok(doctor, "00 A4 09 0C 04 3F00 D003")
    assert sw(doctor, "00 B0 00 00") == 0x6700


def test_t0_card_hands_data_out_through_61xx_and_get_response(t0_doctor: VirtualCard) -> None:
    data, status = send(t0_doctor, "00 A4 04 04 08" + cps.ROOT_AID.hex())
    assert (data, status) == (b"", 0x6120)  # as the real card answered
    assert ok(t0_doctor, "00 C0 00 00 20") == REAL_MF_FCP


def test_t0_card_answers_a_wrong_le_with_6cxx(t0_doctor: VirtualCard) -> None:
    ok(t0_doctor, SELECT_ROOT)
    assert sw(t0_doctor, "00 B0 9C 00 C0") == 0x6C0C  # OpenSC asks 192 bytes, then 12
    assert len(ok(t0_doctor, "00 B0 9C 00 0C")) == 12


def test_get_response_without_pending_data_is_6985(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 C0 00 00 10") == 0x6985


def test_get_response_in_parts(t0_doctor: VirtualCard) -> None:
    send(t0_doctor, "00 A4 04 04 08" + cps.ROOT_AID.hex())
    first, status = send(t0_doctor, "00 C0 00 00 05")
    assert (first, status) == (REAL_MF_FCP[:5], 0x611B)
    assert ok(t0_doctor, "00 C0 00 00 1B") == REAL_MF_FCP[5:]


def test_command_chaining_joins_the_parts(doctor: VirtualCard) -> None:
    assert sw(doctor, "10 A4 04 0C 04 8025 0000") == 0x9000
    assert sw(doctor, "00 A4 04 0C 04 01FF 0100") == 0x9000  # the whole AID, selected


def test_chaining_broken_by_another_command_is_refused(doctor: VirtualCard) -> None:
    assert sw(doctor, "10 A4 04 0C 04 8025 0000") == 0x9000
    assert sw(doctor, "00 B0 00 00 01") == 0x6985


# -- GET DATA of the security objects ----------------------------------------------------


def test_the_pins_descriptor_is_a_real_cards(doctor: VirtualCard) -> None:
    ok(doctor, "00 A4 09 0C 02 3F00")
    assert ok(doctor, GET_PIN_DESCRIPTOR) == REAL_PIN_DESCRIPTOR


def test_the_pins_descriptor_tells_the_tries_left(doctor: VirtualCard) -> None:
    send(doctor, "00 20 00 01 08" + WRONG_PIN)
    answer = ok(doctor, GET_PIN_DESCRIPTOR)
    assert bytes.fromhex("9B0102") in answer


def test_the_pins_lengths(doctor: VirtualCard) -> None:
    answer = ok(doctor, "00 CB 3F FF 0B 4D 09 70 07 BF 81 01 03 7F 41 80")
    assert answer == bytes.fromhex("700DBF8101097F4106800108810104")


def test_an_object_outside_the_current_df_is_6a88(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, GET_PIN_DESCRIPTOR) == 0x6A88  # a real card, from DF 0002: 6A88
    assert sw(doctor, "00 CB 3F FF 0A 4D 08 70 06 BF 90 02 02 A0 80") == 0x9000
    ok(doctor, "00 A4 09 0C 02 3F00")
    assert sw(doctor, "00 CB 3F FF 0A 4D 08 70 06 BF 90 02 02 A0 80") == 0x6A88


def test_a_keys_descriptor_gives_its_size_in_bytes(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    answer = ok(doctor, "00 CB 3F FF 0A 4D 08 70 06 BF 90 02 02 A0 80")
    descriptor = tlv.require(tlv.require(tlv.parse(answer), 0x70).children(), 0xBF9002)
    assert (
        tlv.require(tlv.require(descriptor.children(), 0xA0).children(), 0x80).value == b"\x01\x00"
    )


def test_a_private_key_has_no_public_part_6a86(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 CB 3F FF 0B 4D 09 70 07 BF 90 02 03 7F 48 80") == 0x6A86


def test_the_unblocking_environment_names_the_unblocking_code(doctor: VirtualCard) -> None:
    answer = ok(doctor, "00 CB 3F FF 0A 4D 08 70 06 BF FB 03 02 7B 80")
    assert bytes.fromhex("A406830102950108") in answer  # AT: CHV 02, user password


def test_a_malformed_header_list_is_6a80(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 CB 3F FF 04 4D 02 70 00") == 0x6A80
    assert sw(doctor, "00 CB 3F FF 03 01 02 03") == 0x6A80


# -- PIN ---------------------------------------------------------------------------------


def test_empty_verify_tells_tries_left_without_spending_one(doctor: VirtualCard) -> None:
    for _ in range(4):
        assert sw(doctor, "00 20 00 01") == 0x63C3
    assert doctor.pin(0x01).tries_left == 3


def test_wrong_pin_counts_down_then_blocks(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C2
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C1
    assert sw(doctor, "00 20 00 01 08" + WRONG_PIN) == 0x63C0
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x6983
    assert sw(doctor, "00 20 00 01") == 0x6983


def test_right_pin_resets_the_counter_and_verifies(doctor: VirtualCard) -> None:
    sw(doctor, "00 20 00 01 08" + WRONG_PIN)
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x9000
    assert sw(doctor, "00 20 00 01") == 0x9000
    assert doctor.pin(0x01).tries_left == 3


def test_the_pin_is_global_verified_from_the_application(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x9000


def test_verify_p1_ff_is_not_an_ias_ecc_form(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    assert sw(doctor, "00 20 FF 01") == 0x6A86
    assert sw(doctor, "00 20 00 01") == 0x9000  # still verified


def test_selecting_the_root_application_logs_out(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    ok(doctor, SELECT_CPS3)  # the PKCS#15 application: the PIN stays verified
    assert sw(doctor, "00 20 00 01") == 0x9000
    ok(doctor, SELECT_ROOT)
    assert sw(doctor, "00 20 00 01") == 0x63C3


def test_verify_wrong_length_spends_no_try(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 01 04 31323334") == 0x6700
    assert doctor.pin(0x01).tries_left == 3


def test_verify_unknown_reference_is_6a88(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 20 00 05 08" + PIN) == 0x6A88


def test_power_on_forgets_the_verified_pin(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    doctor.power_on()
    assert sw(doctor, "00 20 00 01") == 0x63C3


def test_change_reference_data(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 24 00 01 10" + WRONG_PIN + NEW_PIN) == 0x63C2
    assert sw(doctor, "00 24 00 01 10" + PIN + NEW_PIN) == 0x9000
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x63C2
    assert sw(doctor, "00 20 00 01 08" + NEW_PIN) == 0x9000


def test_the_unblocking_code_cannot_be_changed(doctor: VirtualCard) -> None:
    assert sw(doctor, "00 24 00 02 10" + PUK + PUK) == 0x6982


def test_unblock_as_ias_ecc_does_verify_the_code_then_reset_with_a_new_pin(
    doctor: VirtualCard,
) -> None:
    for _ in range(3):
        sw(doctor, "00 20 00 01 08" + WRONG_PIN)
    assert sw(doctor, "00 2C 02 01 08" + NEW_PIN) == 0x6982  # the code not verified
    assert sw(doctor, "00 20 00 02 08" + "3030303030303030") == 0x63C9
    assert sw(doctor, "00 20 00 02 08" + PUK) == 0x9000
    assert sw(doctor, "00 2C 02 01 08" + NEW_PIN) == 0x9000
    assert sw(doctor, "00 20 00 01 08" + NEW_PIN) == 0x9000


def test_unblock_keeping_the_pin(doctor: VirtualCard) -> None:
    for _ in range(3):
        sw(doctor, "00 20 00 01 08" + WRONG_PIN)
    ok(doctor, "00 20 00 02 08" + PUK)
    assert sw(doctor, "00 2C 03 01") == 0x9000
    assert sw(doctor, "00 20 00 01 08" + PIN) == 0x9000


@pytest.mark.parametrize("p1", ["00", "01"])
def test_the_unblocking_code_inside_reset_retry_counter_is_refused(
    doctor: VirtualCard, p1: str
) -> None:
    assert sw(doctor, f"00 2C {p1} 01 10" + PUK + NEW_PIN) == 0x6A86


def test_pin_value_never_appears_in_repr(doctor: VirtualCard) -> None:
    assert "1234" not in repr(doctor.pin(0x01))
    assert "3132" not in repr(doctor.pin(0x01))


# -- authentication: MSE SET AT, INTERNAL AUTHENTICATE ------------------------------------


def _authenticate(card: VirtualCard, data: bytes) -> tuple[bytes, int]:
    ok(card, SELECT_CPS3)
    ok(card, MSE_AUTHENTICATION)
    return send(card, f"00 88 00 00 {len(data):02X}{data.hex()} 00")


def test_internal_authenticate_needs_the_pin(doctor: VirtualCard) -> None:
    assert _authenticate(doctor, DIGEST_INFO)[1] == 0x6982


def test_internal_authenticate_signs_a_digest_info(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    signature, status = _authenticate(doctor, DIGEST_INFO)
    assert status == 0x9000
    _key("authentication").verify(signature, CHALLENGE, padding.PKCS1v15(), hashes.SHA256())
    assert _authenticate(doctor, DIGEST_INFO)[1] == 0x9000  # the PIN stays verified


def test_internal_authenticate_pads_any_data_as_a_card_does(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    signature, status = _authenticate(doctor, b"any data")
    assert status == 0x9000
    assert (
        _key("authentication").recover_data_from_signature(signature, padding.PKCS1v15(), None)
        == b"any data"
    )


def test_internal_authenticate_takes_at_most_40_percent_of_the_modulus(
    doctor: VirtualCard,
) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    assert _authenticate(doctor, b"\x01" * 103)[1] == 0x6A80
    assert _authenticate(doctor, b"\x01" * 102)[1] == 0x9000


def test_a_key_outside_the_current_df_is_6a88(doctor: VirtualCard) -> None:
    assert sw(doctor, MSE_AUTHENTICATION) == 0x6A88  # the MF is current; the keys are in 0001


def test_the_signature_key_does_not_authenticate(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 22 41 A4 06 80 01 02 84 01 81") == 0x6A80  # not its algorithm


def test_pss_is_not_a_cps3_algorithm(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 22 41 A4 06 80 01 05 84 01 82") == 0x6A80


@pytest.mark.parametrize(
    "mse",
    [
        "00 22 41 B8 06 80 01 1A 84 01 82",  # decipher: not simulated
        "00 22 F2 01",  # restore a stored environment: not used by a CPS3's middleware
        "00 22 81 A4 06 80 01 02 84 01 82",  # SET for verification
    ],
)
def test_other_security_environments_are_6a86(doctor: VirtualCard, mse: str) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, mse) == 0x6A86


def test_manage_security_environment_with_missing_data_is_6a80(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 22 41 A4 03 84 01 82") == 0x6A80
    assert sw(doctor, "00 22 41 A4 02 84 01") == 0x6A80


def test_internal_authenticate_without_environment_is_6985(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, f"00 88 00 00 {len(DIGEST_INFO):02X}{DIGEST_INFO.hex()}") == 0x6985


def test_internal_authenticate_with_no_data_is_6700(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    ok(doctor, MSE_AUTHENTICATION)
    assert sw(doctor, "00 88 00 00 00") == 0x6700


def test_selecting_another_df_clears_the_environment(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    ok(doctor, SELECT_CPS3)
    ok(doctor, MSE_AUTHENTICATION)
    ok(doctor, "00 A4 09 0C 02 3F00")
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, f"00 88 00 00 {len(DIGEST_INFO):02X}{DIGEST_INFO.hex()}") == 0x6985


# -- the non-repudiation signature: HT, DST, PSO HASH, PSO CDS ---------------------------


def _prepare_signature(card: VirtualCard) -> None:
    ok(card, "00 20 00 01 08" + PIN)
    ok(card, SELECT_CPS3)
    ok(card, MSE_HASH)
    ok(card, MSE_SIGNATURE)


def _verifies(signature: bytes, message: bytes = CHALLENGE) -> None:
    _key("signature").verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def test_signature_of_a_hash_computed_on_the_host(doctor: VirtualCard) -> None:
    _prepare_signature(doctor)
    ok(doctor, PSO_HASH_WHOLE)
    _verifies(ok(doctor, PSO_CDS))


def test_signature_of_a_message_the_card_hashes(doctor: VirtualCard) -> None:
    _prepare_signature(doctor)
    ok(
        doctor,
        f"00 2A 90 A0 {len(CHALLENGE) + 4:02X} 90 00 80 {len(CHALLENGE):02X}{CHALLENGE.hex()}",
    )
    _verifies(ok(doctor, PSO_CDS))


def test_signature_of_a_long_message_from_its_intermediate_hash(doctor: VirtualCard) -> None:
    """As OpenSC's iasecc_qsign_data_sha256 and the card's own middleware send it: the
    SHA-256 state after the whole blocks, their bit count, then the last block."""
    message = bytes(range(256)) + b"tail"
    state = [
        0x6A09E667,
        0xBB67AE85,
        0x3C6EF372,
        0xA54FF53A,
        0x510E527F,
        0x9B05688C,
        0x1F83D9AB,
        0x5BE0CD19,
    ]
    for offset in range(0, 256, 64):
        state = _compress(state, message[offset : offset + 64])
    hashed = struct.pack(">8I", *state) + (256 * 8).to_bytes(8, "big")
    body = tlv.encode(0x90, hashed) + tlv.encode(0x80, message[256:])
    _prepare_signature(doctor)
    ok(doctor, f"00 2A 90 A0 {len(body):02X}{body.hex()}")
    _verifies(ok(doctor, PSO_CDS), message)


def test_signature_with_the_hash_in_pso_cds_as_the_cards_middleware_sends_it(
    doctor: VirtualCard,
) -> None:
    _prepare_signature(doctor)
    _verifies(ok(doctor, f"00 2A 9E 9A 20 {DIGEST.hex()} 00"))


def test_the_signature_key_needs_the_pin_before_each_signature(doctor: VirtualCard) -> None:
    _prepare_signature(doctor)
    ok(doctor, PSO_HASH_WHOLE)
    ok(doctor, PSO_CDS)
    ok(doctor, PSO_HASH_WHOLE)
    assert sw(doctor, PSO_CDS) == 0x6982


def test_pso_cds_without_a_hash_is_6985(doctor: VirtualCard) -> None:
    _prepare_signature(doctor)
    assert sw(doctor, PSO_CDS) == 0x6985


def test_pso_hash_without_a_hash_template_is_6985(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, PSO_HASH_WHOLE) == 0x6985


def test_a_hash_of_the_wrong_size_is_refused(doctor: VirtualCard) -> None:
    _prepare_signature(doctor)
    assert sw(doctor, "00 2A 90 A0 16 90 14" + "00" * 20) == 0x6A80  # SHA-1 size, SHA-256 set
    assert sw(doctor, "00 2A 9E 9A 14" + "00" * 20 + "00") == 0x6700


def test_the_authentication_key_does_not_sign_documents(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 22 41 B6 06 80 01 42 84 01 82") == 0x6A80


def test_pso_decipher_is_6a86(doctor: VirtualCard) -> None:
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, "00 2A 80 86 02 81 00") == 0x6A86


# -- GET CHALLENGE, the Vitale card, counting ----------------------------------------------


def test_get_challenge_gives_eight_bytes_only(doctor: VirtualCard) -> None:
    assert len(ok(doctor, "00 84 00 00 08")) == 8
    assert sw(doctor, "00 84 00 00 10") == 0x6700


def test_vitale_key_signs_without_pin() -> None:
    card = card_for("patient", t0=False)
    card.power_on()
    ok(card, SELECT_VITALE)
    ok(card, "00 22 41 A4 06 80 01 04 84 01 81")
    signature = ok(card, f"00 88 00 00 20 {DIGEST.hex()} 00")
    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    key = simulator_pki().vitale_certificate(load_vitale("patient")).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(der, CHALLENGE, ec.ECDSA(hashes.SHA256()))


def test_the_vitale_certificate_is_read_by_short_identifier() -> None:
    card = card_for("patient", t0=False)
    card.power_on()
    ok(card, SELECT_VITALE)
    expected = simulator_pki().vitale_certificate(load_vitale("patient"))
    assert send(card, "00 B0 82 00 00")[0] == expected.public_bytes(Encoding.DER)[:256]


def test_mute_card_stops_its_answer_to_reset_at_the_first_byte() -> None:
    card = card_for("mute-card")
    assert card.power_on() == b"\x3b"


def test_commands_are_counted_by_instruction(doctor: VirtualCard) -> None:
    send(doctor, SELECT_ROOT)
    send(doctor, "00 B0 9C 00 0C")
    send(doctor, "00 B0 9C 00 0C")
    assert doctor.commands[0xA4] == 1
    assert doctor.commands[0xB0] == 2
    assert doctor.total_commands == 3


# -- each key in its own template; access rules name their code ---------------------------


@pytest.mark.parametrize(
    "mse",
    [
        "00 22 41 B6 06 80 01 02 84 01 82",  # the authentication key set for a signature
        "00 22 41 A4 06 80 01 42 84 01 81",  # the signature key set for authentication
        "00 22 41 A4 06 80 01 02 83 01 82",  # tag 83 names a public key, not this one
    ],
)
def test_a_key_is_set_in_its_own_template_only(doctor: VirtualCard, mse: str) -> None:
    ok(doctor, "00 20 00 01 08" + PIN)
    ok(doctor, SELECT_CPS3)
    assert sw(doctor, mse) == 0x6A80
    assert sw(doctor, PSO_CDS) == 0x6985  # nothing was set: no signature, no crash


def test_unblocking_spends_one_of_the_codes_uses(doctor: VirtualCard) -> None:
    ok(doctor, "00 20 00 02 08" + PUK)
    ok(doctor, "00 2C 03 01")
    assert bytes.fromhex("9D020063") in ok(doctor, "00 CB 3F FF 0A 4D 08 70 06 BF 81 02 02 A0 80")


def test_a_read_rule_wants_the_code_it_names_not_any_code() -> None:
    """A file readable after the PIN (SCB 11: the code of SE 1, the PIN) stays closed
    when only the unblocking code is verified."""
    card = card_for("doctor", t0=False)
    protected = ElementaryFile(
        0xB001, b"secret", access=AccessRules(bytes.fromhex("7BFFFFFFFFFF11"))
    )
    card.spec = replace(
        card.spec,
        mf=build_tree(DedicatedFile(0x3F00, cps.ROOT_AID, (*card.spec.mf.children, protected))),
    )
    card.power_on()
    ok(card, "00 A4 00 0C 02 B001")
    ok(card, "00 20 00 02 08" + PUK)
    assert sw(card, "00 B0 00 00 06") == 0x6982
    ok(card, "00 20 00 01 08" + PIN)
    assert ok(card, "00 B0 00 00 06") == b"secret"
