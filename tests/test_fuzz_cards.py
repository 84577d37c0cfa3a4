"""Fuzzing the card layer with what a card answers: arbitrary and mutated BER-TLV,
status words, truncated or garbage response APDUs, certificate bytes, ATRs.

Whatever a (faulty, hostile) card says, the card layer's only outcomes are a
value or a typed :class:`CardAuthError` with a stable code: never an IndexError,
a ValueError, a UnicodeDecodeError or a RecursionError. Settings: tests/fuzz_settings.py
(``CARDAUTH_FUZZ=long`` for the long run)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import TypeVar

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from cardauth import tlv
from cardauth.apdu import CommandApdu, Ins, ResponseApdu
from cardauth.cards import files, pin, pinpad, pkcs15, security
from cardauth.cards.algorithms import CardAlgorithm, HashReference, SignatureScheme, digest_info
from cardauth.cards.application import CardApplication
from cardauth.cards.atr import Atr
from cardauth.cards.cps import CpsCard, CpsHolder
from cardauth.cards.identify import extended_length_usable, identify_with_facts
from cardauth.cards.inventory import CertificateSummary, read_card
from cardauth.cards.vitale import VitaleCard, VitaleHolder
from cardauth.errors import CardAuthError
from cardauth.transport.base import CardLink, SlotState
from cardauth.transport.channel import CardChannel
from simulator.personas import load_cps, load_vitale
from simulator.pki import simulator_pki
from simulator.profiles import IDENTITY_FILE
from tests.fuzz_cards import (
    READER,
    STEERING_SW,
    MutatingLink,
    ScriptedLink,
    fresh_card,
    mutated,
)
from tests.fuzz_mutations import byte_mutations
from tests.fuzz_settings import fuzz

T = TypeVar("T")
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
STABLE_CODE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
DIGEST = hashlib.sha256(b"fuzz").digest()
CARD_PERSONAS = ["doctor", "pharmacist", "cpf-student", "patient", "parent", "unknown-card"]
PIN_FORMAT = pin.PinFormat(min_digits=4, max_digits=8, encoded_length=8)


def outcome(action: Callable[[], T]) -> T | CardAuthError:
    """The value of ``action``, or the typed refusal it raised: any other exception
    goes through and fails the test."""
    try:
        return action()
    except CardAuthError as error:
        refused = error
    assert STABLE_CODE.match(refused.code), refused
    str(refused), refused.to_dict()  # its message and context render
    return refused


def _channel(link: CardLink) -> CardChannel:
    return CardChannel(link, extended_length=extended_length_usable(link.atr, link.protocol))


def _read(card: CardApplication, path: bytes) -> bytes:
    files.select_file(card.channel, path)
    return files.read_file(card.channel)


def _real_answers(persona: str) -> tuple[bytes, bytes]:
    """The holder file and authentication certificate a persona's card holds."""
    card, facts = identify_with_facts(_channel(MutatingLink(fresh_card(persona), bytes)))
    if isinstance(card, CpsCard):
        return _read(card, IDENTITY_FILE.to_bytes(2, "big")), facts.certificate_der
    assert isinstance(card, VitaleCard)
    return files.read_file(card.channel, 0x01), facts.certificate_der


def _directories() -> list[bytes]:
    """The doctor's card's PKCS#15 files: ODF, AODF, PrKDF, CDF, DODF."""
    card, _ = identify_with_facts(_channel(MutatingLink(fresh_card("doctor"), bytes)))
    assert isinstance(card, CpsCard)
    return [
        _read(card, fid)
        for fid in (b"\x50\x31", b"\x70\x01", b"\x70\x02", b"\x70\x05", b"\x70\x04")
    ]


CPS_HOLDER, CPS_CERTIFICATE = _real_answers("doctor")
VITALE_HOLDER, VITALE_CERTIFICATE = _real_answers("parent")
ODF, AODF, PRKDF, CDF, DODF = _directories()
CA_CERTIFICATE = simulator_pki().cps_ca.certificate.public_bytes(Encoding.DER)
SIGNATURE_CERTIFICATE = (
    simulator_pki().cps_certificates(load_cps("doctor")).signature.public_bytes(Encoding.DER)
)
PATIENT_CERTIFICATE = simulator_pki().vitale_certificate(load_vitale("patient"))


# -- BER-TLV ------------------------------------------------------------------------------

TEXT_VALUES = st.one_of(
    st.sampled_from(
        [
            *(b"CPS", b"CPE", b"XYZ", b"899700420013", b"812345678901", b"DR", b"FONTAINE"),
            *(b"10", b"285037511542370", b"19850314", b"20991231", b"1", b"0", b"6", b"99"),
            b"\xff\xfe",
        ]
    ),
    st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=24),
)
PRIMITIVE_TAGS = st.sampled_from([0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x93, 0x5F20, 0x04])
CONSTRUCTED_TAGS = st.sampled_from([0x70, 0x65, 0x66, 0x67, 0xA0, 0x7F21, 0x30])


def _object(tag: int, value: bytes) -> bytes:
    return tlv.encode(tag, value)


TLV_OBJECTS = st.recursive(
    st.builds(_object, PRIMITIVE_TAGS, TEXT_VALUES)
    | st.builds(_object, CONSTRUCTED_TAGS, st.just(b"")),  # an empty template
    lambda inner: st.builds(
        _object, CONSTRUCTED_TAGS, st.lists(inner, min_size=1, max_size=7).map(b"".join)
    ),
    max_leaves=24,
)
PADDING = st.sampled_from([b"", b"\x00", b"\xff\xff"])
TLV_FILES = st.one_of(
    st.lists(st.one_of(TLV_OBJECTS, PADDING), max_size=6).map(b"".join),
    st.binary(max_size=300),
    byte_mutations(CPS_HOLDER),
    byte_mutations(VITALE_HOLDER),
    TLV_OBJECTS.flatmap(byte_mutations),
)


def _walk(objects: tuple[tlv.Tlv, ...], depth: int = 0) -> None:
    """Read every object as the card layer would: children of constructed ones
    (as deep as card data goes, and deeper), text of primitive ones."""
    for obj in objects:
        if obj.constructed and depth < 8:
            _walk(obj.children(), depth + 1)
        else:
            obj.text()


@fuzz(ci=300, long=20000)
@given(TLV_FILES)
@example(b"\x5f")  # a tag whose number goes on in bytes that are not there
@example(b"\x80\x84\xff\xff\xff\xff")  # a length beyond the data
@example(b"\x70\x80\x80\x01\x41\x00\x00")  # indefinite length, ended by 00 00
@example(b"\x70\x80" * 5000 + b"\x00\x00" * 5000)  # indefinite lengths nested deep
def test_any_tlv_reads_or_is_malformed_card_data(data: bytes) -> None:
    outcome(lambda: _walk(tlv.parse(data)))


@fuzz(ci=300, long=20000)
@given(TLV_FILES)
def test_any_cps_holder_file_reads_or_is_refused(data: bytes) -> None:
    holder = outcome(lambda: CpsHolder.from_tlv(data))
    if isinstance(holder, CpsHolder):
        holder.to_dict()


@fuzz(ci=300, long=20000)
@given(TLV_FILES)
def test_any_vitale_holder_file_reads_or_is_refused(data: bytes) -> None:
    holder = outcome(lambda: VitaleHolder.from_tlv(data))
    if isinstance(holder, VitaleHolder):
        holder.to_dict()


PKCS15_FILES = st.one_of(
    st.sampled_from([ODF, AODF, PRKDF, CDF, DODF]).flatmap(byte_mutations),
    st.lists(st.one_of(st.binary(max_size=80), PADDING), max_size=4).map(b"".join),
)
PKCS15_PARSERS: dict[str, Callable[[bytes], object]] = {
    "ODF": pkcs15.parse_odf,
    "AODF": pkcs15.parse_aodf,
    "PrKDF": pkcs15.parse_prkdf,
    "CDF": pkcs15.parse_cdf,
    "DODF": pkcs15.parse_dodf,
}


@fuzz(ci=400, long=20000)
@given(st.sampled_from(sorted(PKCS15_PARSERS)), PKCS15_FILES)
def test_any_pkcs15_directory_reads_or_is_malformed_card_data(kind: str, data: bytes) -> None:
    outcome(lambda: PKCS15_PARSERS[kind](data))


def test_the_real_pkcs15_directories_read() -> None:
    """The control: the doctor's card's directories decode to its PIN, keys, certificates."""
    assert len(pkcs15.parse_odf(ODF)) == 4
    assert [p.reference for p in pkcs15.parse_aodf(AODF)] == [1, 2]
    assert {k.key_reference for k in pkcs15.parse_prkdf(PRKDF)} == {0x81, 0x82}
    assert len(pkcs15.parse_cdf(CDF)) == 2
    assert next(d.label for d in pkcs15.parse_dodf(DODF)) == "CPS_ID_CARD"


def test_the_real_holder_files_read() -> None:
    """The control: unmutated, the files the fuzz tests start from read correctly."""
    assert str(CpsHolder.from_tlv(CPS_HOLDER).idnat) == "899700420013"
    assert VitaleHolder.from_tlv(VITALE_HOLDER).insured.surname


# -- status words, response APDUs, ATRs ------------------------------------------------


@fuzz(ci=200, long=10000)
@given(st.binary(max_size=300))
def test_any_response_apdu_parses_or_is_malformed(raw: bytes) -> None:
    response = outcome(lambda: ResponseApdu.from_bytes(raw))
    if isinstance(response, ResponseApdu):
        assert response.to_bytes() == raw


@fuzz(ci=200, long=10000)
@given(STEERING_SW)
def test_any_pin_status_word_is_a_status_or_a_typed_refusal(sw: int) -> None:
    link = ScriptedLink(b"\x3b\x00", lambda: sw.to_bytes(2, "big"))
    status = outcome(lambda: pin.pin_status(_channel(link), 0x01))
    if isinstance(status, pin.PinStatus):
        assert status.tries_left is None or 0 <= status.tries_left <= 15
    outcome(lambda: pin.check_pin_answer(sw, "VERIFY"))


@fuzz(ci=300, long=20000)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([fresh_card(p).atr for p in CARD_PERSONAS]).flatmap(byte_mutations),
    )
)
def test_any_atr_parses_or_is_malformed(raw: bytes) -> None:
    atr = outcome(lambda: Atr.parse(raw))
    if isinstance(atr, Atr):
        atr.compact_tlv()
        assert isinstance(atr.extended_length, bool)


# -- certificates ----------------------------------------------------------------------


def _der(tag: int, body: bytes) -> bytes:
    return tlv.encode(tag, body)


RANDOM_DER = st.recursive(
    st.builds(_der, st.sampled_from([0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x17]), st.binary()),
    lambda inner: st.builds(
        _der,
        st.sampled_from([0x30, 0x31, 0xA0, 0xA3]),
        st.lists(inner, min_size=1, max_size=5).map(b"".join),
    ),
    max_leaves=30,
)
CERTIFICATE_BYTES = st.one_of(
    st.sampled_from(
        [
            CPS_CERTIFICATE,
            VITALE_CERTIFICATE,
            CA_CERTIFICATE,
            SIGNATURE_CERTIFICATE,
            PATIENT_CERTIFICATE.public_bytes(Encoding.DER),
        ]
    ).flatmap(byte_mutations),
    RANDOM_DER,
    st.binary(max_size=200),
)


@fuzz(ci=400, long=20000)
@given(CERTIFICATE_BYTES)
def test_any_certificate_bytes_parse_or_are_malformed_card_data(der: bytes) -> None:
    certificate = outcome(lambda: CardApplication.parse_certificate(der))
    if not isinstance(certificate, CardAuthError):
        summary = CertificateSummary.of(certificate)
        summary.to_dict(NOW)


@pytest.mark.parametrize("der", [CPS_CERTIFICATE, VITALE_CERTIFICATE, CA_CERTIFICATE])
def test_the_real_certificates_parse(der: bytes) -> None:
    summary = CertificateSummary.of(CardApplication.parse_certificate(der))
    assert summary.to_dict(NOW)["status"] == "valid"


# -- whole conversations with a card whose answers are damaged ---------------------------


def _converse(link: CardLink) -> list[object]:
    """What the bridge and the CLI ask a card: identify it with its serial and
    certificate, read everything it says (holder, certificates, PIN status), then
    have it sign (after the PIN, for a CPS card)."""
    channel = _channel(link)
    found = outcome(lambda: identify_with_facts(channel))
    if isinstance(found, CardAuthError):
        return [found]
    card, _ = found
    slot = SlotState(READER, card_present=True, atr=link.atr)
    results: list[object] = [found, outcome(lambda: read_card(card, slot).to_dict(NOW))]
    if isinstance(card, CpsCard):
        results.append(outcome(lambda: card.verify_pin("1234")))
        results.append(outcome(lambda: card.authenticate(DIGEST)))
    elif isinstance(card, VitaleCard):
        results.append(outcome(lambda: card.authenticate(DIGEST, SignatureScheme.ES256)))
    return results


@fuzz(ci=300, long=15000)
@given(st.sampled_from(CARD_PERSONAS), st.data())
def test_a_card_whose_answers_are_damaged_gives_values_or_typed_errors(
    persona: str, data: st.DataObject
) -> None:
    _converse(MutatingLink(fresh_card(persona), lambda answer: data.draw(mutated(answer))))


@pytest.mark.parametrize(("persona", "steps"), [("doctor", 4), ("patient", 3)])
def test_an_undamaged_conversation_reads_and_signs(persona: str, steps: int) -> None:
    """The control: with answers kept as they are, every step gives a value."""
    results = _converse(MutatingLink(fresh_card(persona), bytes))
    assert len(results) == steps
    assert not any(isinstance(r, CardAuthError) for r in results), results


# -- answers scripted outright: chaining, file reads, PIN pads, signatures ---------------

RESPONSES = st.one_of(
    st.builds(lambda data, sw: data + sw.to_bytes(2, "big"), st.binary(max_size=260), STEERING_SW),
    st.binary(max_size=8),
)
OPERATIONS: dict[str, Callable[[CardChannel], object]] = {
    "transmit (GET RESPONSE, 6Cxx)": lambda channel: channel.transmit(
        CommandApdu(0x00, Ins.READ_BINARY, 0x81, 0, ne=256)
    ),
    "chip serial": files.read_chip_serial,
    "select": lambda channel: files.select_application(channel, b"\xa0\x00\x00\x00\x01"),
    "read file": lambda channel: files.read_file(channel, 0x01),
    "read certificate": lambda channel: files.read_der_file(channel, 0x02),
    "PIN status": lambda channel: pin.pin_status(channel, 0x01),
    "VERIFY": lambda channel: pin.verify_pin(channel, 0x01, "1234", PIN_FORMAT),
    "PIN pad features": pinpad.reader_features,
    "PIN pad VERIFY": lambda channel: pinpad.verify_pin_on_pinpad(channel, 0x01, PIN_FORMAT),
    "authenticate": lambda channel: security.authenticate(
        channel, 0x82, CardAlgorithm.RSA_PKCS1, digest_info(hashes.SHA256(), DIGEST)
    ),
    "sign a hash": lambda channel: security.sign_hash(
        channel, 0x81, HashReference.SHA256, CardAlgorithm.SHA256_RSA_PKCS1, DIGEST
    ),
    "unblock": lambda channel: pin.unblock_pin(
        channel,
        0x01,
        "4321",
        PIN_FORMAT,
        code_reference=0x02,
        code="12345678",
        code_format=PIN_FORMAT,
    ),
    "identify": identify_with_facts,
}


@fuzz(ci=600, long=30000)
@given(st.sampled_from(sorted(OPERATIONS)), st.booleans(), st.data())
def test_any_scripted_answers_give_values_or_typed_errors(
    operation: str, extended: bool, data: st.DataObject
) -> None:
    atr = bytes.fromhex("3B8E800180318066B1A1110100F683009000" if extended else "3B00")
    link = ScriptedLink(atr, lambda: data.draw(RESPONSES))
    outcome(lambda: OPERATIONS[operation](CardChannel(link, extended_length=extended)))


def test_a_get_response_chain_that_never_ends_is_malformed_card_data() -> None:
    """61xx answered by GET RESPONSE, whose answer says 61xx again, and again."""
    link = ScriptedLink(b"\x3b\x00", lambda: b"\x00" * 255 + b"\x61\x00")
    refused = outcome(
        lambda: CardChannel(link).transmit(CommandApdu(0x00, Ins.READ_BINARY, 0, 0, ne=256))
    )
    assert isinstance(refused, CardAuthError)
    assert refused.code == "card.bad_data"
    assert len(link.commands) < 300
