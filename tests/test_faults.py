"""Faults on in-process virtual readers (simulator/faults.py): whatever a card or a
reader does wrong, the card layer and the bridge's CardService answer with a typed
error, leave no card held in a transaction, spend no PIN try that nobody typed, and
the next login with a good card succeeds without a restart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardauth.apdu import Ins
from cardauth.errors import (
    CardAuthError,
    CardNotPresent,
    CardRemoved,
    CardReset,
    MalformedCardData,
    PinBlocked,
    PinRequired,
    ReaderNotFound,
)
from cardauth.transport.channel import CardChannel
from simulator.errors import PersonaError
from simulator.faults import CPS3_LATENCY, CardFaults, Fault, FaultSettings
from simulator.personas import load_file
from simulator.profiles import build_card
from tests.bridge_kit import TELESERVICE, BridgeScene, bridge_scene

PIN = "1234"
DOCTOR = "899700420013"
# Every code a faulty card or reader may cause: stable, and each has its message.
FAULT_CODES = {
    "apdu.malformed",
    "card.bad_data",
    "card.not_present",
    "card.unexpected_status",
    "pin.blocked",
    "pin.required",
    "pin.wrong",
    "transport.card_busy",
    "transport.card_mute",
    "transport.card_removed",
    "transport.card_reset",
    "transport.reader_not_found",
}
# Where a fault can strike a login: the PIN, the key's set-up, the signature, and
# the signature's collection (T=0: 61xx then GET RESPONSE).
LOGIN_COMMANDS = {
    "verify": Ins.VERIFY,
    "select": Ins.SELECT,
    "mse_set": Ins.MANAGE_SECURITY_ENVIRONMENT,
    "internal_authenticate": Ins.INTERNAL_AUTHENTICATE,
    "get_response": Ins.GET_RESPONSE,
}


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[BridgeScene]:
    yield from bridge_scene(tmp_path)


def login(scene: BridgeScene, *, pin: str | None = PIN, with_vitale: bool = False) -> str:
    challenge = scene.challenge()
    token = scene.cards.authenticate(
        origin=TELESERVICE, challenge=challenge, with_vitale=with_vitale, pin=pin
    )
    verified = scene.verify(token, challenge)
    assert verified.professional.idnat == DOCTOR
    assert verified.origin == TELESERVICE.value
    return token


def login_as_a_person_would(scene: BridgeScene) -> int:
    """The PIN state as it is, and the PIN typed when the card asks: PINs typed."""
    try:
        login(scene, pin=None)
    except PinRequired:
        login(scene, pin=PIN)
        return 1
    return 0


def assert_not_held(scene: BridgeScene, slot: int = 0) -> None:
    """A second connection can take the card at once."""
    link = scene.readers.connect(scene.readers.slot_names[slot])
    try:
        link.begin_transaction(0.2)
        link.end_transaction()
    finally:
        link.close()


def replug_and_wait(scene: BridgeScene, slot: int) -> None:
    """Plug the reader back in, then wait until the bridge has seen its card come in
    again (after its removal), as a person waits for the reader's light."""
    reader = scene.readers.slot_names[slot]
    with scene.cards.subscribe() as events:
        scene.readers.replug(slot)
        seen = None
        while seen is None or (seen.slot, seen.state) != (reader, "inserted"):
            seen = events.get(timeout=5)
            assert seen is not None


def wait_for_event(scene: BridgeScene, events: object, state: str) -> None:
    import queue

    assert isinstance(events, queue.Queue)
    while True:
        event = events.get(timeout=5)
        assert event is not None
        if event.state == state:
            return


# -- settings --------------------------------------------------------------------------


def test_faults_are_read_from_a_persona_file(tmp_path: Path) -> None:
    source = Path("simulator/personas/doctor.toml").read_text(encoding="utf-8")
    path = tmp_path / "slow-doctor.toml"
    path.write_text(
        source + '\n[faults]\nlatency = "cps3"\nseed = 7\nremoval = 0.01\nmute = 0.02\n',
        encoding="utf-8",
    )
    persona = load_file(path)
    settings = build_card(persona).faults.settings
    assert settings.apdu_latency == CPS3_LATENCY.apdu_latency
    assert settings.signature_latency == (0.150, 0.400)
    assert (settings.seed, settings.removal, settings.mute, settings.reset) == (7, 0.01, 0.02, 0)


@pytest.mark.parametrize(
    "table",
    ['latency = "fast"', "removal = 2.0", 'mute = "often"', "apdu_latency_ms = [60]", "oops = 1"],
)
def test_a_bad_faults_table_is_refused_naming_it(tmp_path: Path, table: str) -> None:
    source = Path("simulator/personas/doctor.toml").read_text(encoding="utf-8")
    path = tmp_path / "bad.toml"
    path.write_text(f"{source}\n[faults]\n{table}\n", encoding="utf-8")
    with pytest.raises(PersonaError, match="faults"):
        load_file(path)


def test_the_same_seed_gives_the_same_faults() -> None:
    settings = FaultSettings.uniform(0.1, seed=42)
    runs = []
    for _ in range(2):
        faults = CardFaults(settings)
        runs.append([faults.before(b"\x00\xa4\x00\x00") for _ in range(200)])
    assert runs[0] == runs[1]
    assert len({f for f in runs[0] if f is not None}) == len(Fault)


def test_latencies_follow_the_settings() -> None:
    delays: list[float] = []
    faults = CardFaults(CPS3_LATENCY, sleep=delays.append)
    for _ in range(50):
        faults.before(b"\x00\xb0\x00\x00\x00")
    faults.signing()
    assert all(0.020 <= d <= 0.060 for d in delays[:50])
    assert 0.150 <= delays[50] <= 0.400


def test_a_login_at_cps3_speed_succeeds_within_its_deadlines(scene: BridgeScene) -> None:
    scene.card(0).faults.configure(CPS3_LATENCY)
    started = dt.datetime.now(dt.UTC)
    login(scene)  # 5 commands and a signature: about half a second
    elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
    assert 5 * 0.020 + 0.150 <= elapsed < 5.0


# -- one fault at each step of a login -------------------------------------------------


@pytest.mark.parametrize("command", LOGIN_COMMANDS)
@pytest.mark.parametrize("fault", list(Fault))
def test_a_fault_during_a_login_is_typed_and_the_next_login_succeeds(
    scene: BridgeScene, fault: Fault, command: str
) -> None:
    cps = scene.card(0)
    with scene.cards.subscribe() as events:
        cps.faults.arm(fault, ins=LOGIN_COMMANDS[command])
        typed = 1
        failure: CardAuthError | None = None
        try:
            login(scene)
        except CardAuthError as error:
            failure = error
        assert failure is None or failure.code in FAULT_CODES, failure
        if fault is Fault.REMOVAL:  # pulled and put back: the bridge reads it again
            wait_for_event(scene, events, "inserted")
    cps.faults.disarm()
    assert_not_held(scene)
    typed += login_as_a_person_would(scene)
    assert_not_held(scene)
    assert cps.pin(1).tries_left == 3
    assert cps.pins_presented <= typed


def test_a_fault_while_the_card_is_read_at_insertion_leaves_it_readable_later(
    scene: BridgeScene,
) -> None:
    scene.remove(0)
    cps = scene.workstation.card_for(load_file(Path("simulator/personas/doctor.toml")))
    cps.faults.arm(Fault.WRONG_STATUS, ins=Ins.READ_BINARY)
    scene.workstation.insert(0, "doctor")
    views = scene.cards.views()  # read again when asked, if the first read failed
    assert any(v.kind == "cps" for v in views) or any(v.error for v in views)
    login(scene)
    assert_not_held(scene)


def test_a_damaged_signature_is_never_handed_out(scene: BridgeScene) -> None:
    """Found by the soak: a signature that lost bytes on the way (its status word
    still 9000) became an assertion that no verifier accepts."""
    login(scene)
    scene.card(0).faults.arm(Fault.TRUNCATED, ins=Ins.GET_RESPONSE)
    with pytest.raises(MalformedCardData, match="signature"):
        login(scene, pin=None)
    # A failed login never leaves the PIN verified: the card logged out, so the next
    # login asks the PIN (once), and goes through.
    assert login_as_a_person_would(scene) == 1


def test_a_false_blocked_answer_does_not_stick(scene: BridgeScene) -> None:
    """A VERIFY answered 6983 on the way (the card is not blocked) must not leave
    the bridge's page saying "blocked" until the card is pulled."""
    cps = scene.card(0)
    cps.faults.arm(Fault.WRONG_STATUS, ins=Ins.VERIFY, status=0x6983)
    with pytest.raises(PinBlocked):
        login(scene)
    status = scene.cards.pin_status()  # asked again: the card took the PIN
    assert (status.blocked, status.verified) == (False, True)
    login(scene)
    assert cps.pins_presented == 2


def test_a_damaged_certificate_is_a_typed_error(scene: BridgeScene) -> None:
    """A Vitale certificate read whole but damaged (its DER length intact) made the
    bridge's card views raise ValueError instead of a typed error."""
    scene.remove(1)
    vitale = scene.workstation.card_for(load_file(Path("simulator/personas/patient.toml")))
    process = vitale.process

    def damaged(raw: bytes) -> bytes:
        answer = process(raw)
        if raw[1] == Ins.READ_BINARY and raw[2] == 0x82 and len(answer) > 8:
            return answer[:4] + b"\x00" + answer[5:]  # the tbsCertificate tag
        return answer

    vitale.process = damaged  # type: ignore[method-assign]
    scene.workstation.insert(1, "patient")
    views = {v.reader: v for v in scene.cards.views()}
    vitale_view = views[scene.readers.slot_names[1]]
    assert (vitale_view.kind, vitale_view.error) == ("unreadable", "card.bad_data")
    with pytest.raises(CardNotPresent):
        login(scene, with_vitale=True)
    vitale.process = process  # type: ignore[method-assign]
    login(scene, with_vitale=True)


def test_a_cps_card_whose_probe_faltered_is_identified_again(scene: BridgeScene) -> None:
    """Found by the soak: a CPS card whose application probe got a wrong status
    word was kept as an "unknown card" until it was pulled out."""
    scene.remove(0)
    cps = scene.workstation.card_for(load_file(Path("simulator/personas/doctor.toml")))
    cps.faults.arm(Fault.WRONG_STATUS, ins=Ins.SELECT, status=0x6A82)  # EF.SN.ICC
    cps.faults.arm(Fault.WRONG_STATUS, ins=Ins.SELECT, status=0x6A82)  # CPS application
    cps.faults.arm(Fault.WRONG_STATUS, ins=Ins.SELECT, status=0x6A82)  # Vitale application
    with scene.cards.subscribe() as events:
        scene.workstation.insert(0, "doctor")
        inserted = events.get(timeout=5)
    assert inserted is not None
    assert inserted.kind == "unknown"
    assert scene.cards.cps_view().kind == "cps"
    login(scene)


# -- resets and readers ----------------------------------------------------------------


def test_a_reset_is_seen_by_every_connection_opened_before(scene: BridgeScene) -> None:
    reader = scene.readers.slot_names[0]
    first = CardChannel(scene.readers.connect(reader))
    second = scene.readers.connect(reader)
    login(scene)
    scene.card(0).faults.arm(Fault.RESET)
    try:
        with pytest.raises(CardReset):
            first.link.transmit(bytes.fromhex("00A4000C023F00"))
        with pytest.raises(CardReset):
            second.transmit(bytes.fromhex("00A4000C023F00"))
        with pytest.raises(CardReset):  # until it reconnects
            second.transmit(bytes.fromhex("00A4000C023F00"))
    finally:
        first.close()
        second.close()
    assert_not_held(scene)
    with pytest.raises(CardReset):  # the bridge's own connection sees it too, once
        login(scene, pin=None)
    with pytest.raises(PinRequired):  # connected again: the card forgot the PIN
        login(scene, pin=None)
    login(scene)


def test_an_unplugged_reader_disappears_and_comes_back(scene: BridgeScene) -> None:
    login(scene)
    reader = scene.readers.slot_names[0]
    link = scene.readers.connect(reader)
    scene.readers.unplug(0)
    assert reader not in scene.readers.list_readers()
    with pytest.raises(ReaderNotFound):
        link.transmit(bytes.fromhex("00A4000C023F00"))
    with pytest.raises(ReaderNotFound):
        scene.readers.connect(reader)
    with pytest.raises(CardAuthError) as refused:
        login(scene, pin=None)
    assert refused.value.code in FAULT_CODES
    replug_and_wait(scene, 0)
    with pytest.raises(CardRemoved):  # a connection from before the unplugging
        link.transmit(bytes.fromhex("00A4000C023F00"))
    link.close()
    assert login_as_a_person_would(scene) == 1  # powered afresh: the PIN again
    assert_not_held(scene)


def test_a_reader_unplugged_mid_login_is_a_typed_error(scene: BridgeScene) -> None:
    login(scene)
    cps = scene.card(0)
    process = cps.process

    def unplugged(raw: bytes) -> bytes:
        if raw[1] == Ins.INTERNAL_AUTHENTICATE:
            scene.readers.unplug(0)
        return process(raw)

    cps.process = unplugged  # type: ignore[method-assign]
    with pytest.raises(CardAuthError) as refused:
        login(scene, pin=None)
    cps.process = process  # type: ignore[method-assign]
    assert refused.value.code in FAULT_CODES
    replug_and_wait(scene, 0)
    assert_not_held(scene)
    login_as_a_person_would(scene)


# -- many faults at once ---------------------------------------------------------------


def test_random_faults_on_both_cards_give_typed_errors_only(scene: BridgeScene) -> None:
    cps, vitale = scene.card(0), scene.card(1)
    cps.faults.configure(FaultSettings.uniform(0.02, seed=5))
    vitale.faults.configure(FaultSettings.uniform(0.02, seed=6))
    typed, codes = 0, set()
    for index in range(150):
        try:
            typed += login_as_a_person_would_with_vitale(scene, with_vitale=index % 3 == 0)
        except CardAuthError as error:
            codes.add(error.code)
    assert codes <= FAULT_CODES
    assert sum(cps.faults.counts.values()) > 0
    cps.faults.configure(FaultSettings())
    vitale.faults.configure(FaultSettings())
    assert_not_held(scene, 0)
    assert_not_held(scene, 1)
    login_as_a_person_would_with_vitale(scene, with_vitale=True)
    assert cps.pin(1).tries_left == 3


def login_as_a_person_would_with_vitale(scene: BridgeScene, *, with_vitale: bool) -> int:
    try:
        login(scene, pin=None, with_vitale=with_vitale)
    except PinRequired:
        login(scene, pin=PIN, with_vitale=with_vitale)
        return 1
    return 0
