"""The bridge and the cards: the PIN is typed by the professional only, and sent
once per typing; three wrong PINs block the card and the page says what to do;
the verified-PIN state lasts an idle time and ends with the card; a card pulled
mid-login gives a clear error and the bridge goes on; two pages at once each get
their own assertion; a card is read once per insertion."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardauth.apdu import Ins
from cardauth.errors import UnexpectedStatus
from cardauth.jose import CompactJws
from cardauth.origins import Origin
from simulator.faults import Fault
from tests.bridge_flows import Page, answer, open_page, outcome, reload, resend
from tests.bridge_kit import TELESERVICE, BridgeScene, bridge_scene, get, post_json


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[BridgeScene]:
    yield from bridge_scene(tmp_path)


def _login_with_pin(scene: BridgeScene, challenge: str, pin: str = "1234") -> Page:
    page = open_page(scene, TELESERVICE.value, challenge)
    answer(scene, page, pin=pin)
    return page


# -- the PIN -------------------------------------------------------------------------


def test_a_wrong_pin_shows_the_tries_left_and_is_never_retried(scene: BridgeScene) -> None:
    cps = scene.card(0)
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    assert "Essais restants : 3" in page.html
    answer(scene, page, pin="0000")
    assert 'data-code="pin.wrong"' in page.html
    assert "Essais restants : 2" in page.html
    assert cps.pins_presented == 1
    for _ in range(3):  # the page and the API asked again: nothing more reaches the card
        get(scene.client(None), page.url)
        post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    assert cps.pins_presented == 1
    assert outcome(scene.client(), page)["status"] == "pending"
    answer(scene, page, pin="1234")
    assert cps.pins_presented == 2
    assert outcome(scene.client(), page)["status"] == "ok"


def test_three_wrong_pins_block_the_card_and_the_page_says_what_to_do(
    scene: BridgeScene,
) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    for tries_left in (2, 1):
        answer(scene, page, pin="0000")
        assert f"Essais restants : {tries_left}" in page.html
    answer(scene, page, pin="0000")
    assert 'data-code="pin.blocked"' in page.html
    assert "PUK" in page.html
    assert 'id="pin"' not in page.html  # no more PIN field
    assert scene.card(0).pins_presented == 3
    ended = outcome(scene.client(), page)
    assert (ended["status"], ended["error"]["code"]) == ("failed", "pin.blocked")
    assert "PUK" in ended["error"]["message"]  # in words, for the site's page to show
    later = open_page(scene, TELESERVICE.value, scene.challenge())
    assert 'id="blocked"' in later.html
    assert 'id="pin"' not in later.html  # nothing to type into, nothing to allow
    assert 'id="allow"' not in later.html
    assert 'id="decline"' in later.html  # but a way out
    answer(scene, later, action="decline")
    assert outcome(scene.client(), later)["status"] == "declined"
    assert scene.card(0).pins_presented == 3


def test_a_pin_that_is_not_four_digits_costs_no_try(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    for typed in ("12a4", "", "123456789"):
        answer(scene, page, pin=typed)
        assert 'data-code="pin.format"' in page.html
    assert scene.card(0).pins_presented == 0


def test_the_page_speaks_english_when_asked(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    english = get(scene.client(None), page.url, headers={"Accept-Language": "en-GB,en"})
    text = english.get_data(as_text=True)
    assert "Tries left: 3" in text
    assert "asks to identify you" in text


def test_the_pin_state_is_reused_while_fresh(scene: BridgeScene) -> None:
    client = scene.client()
    first = scene.challenge()
    page = _login_with_pin(scene, first)
    assert scene.verify(outcome(client, page)["assertion"], first).professional.surname
    second = scene.challenge()
    fast = post_json(client, "/v1/authenticate", {"challenge": second})
    assert fast.get_json()["status"] == "ok"
    login = scene.verify(fast.get_json()["assertion"], second)
    assert login.professional.idnat == "899700420013"
    assert scene.card(0).pins_presented == 1


def test_an_idle_pin_is_forgotten_by_the_card_too(tmp_path: Path) -> None:
    for scene in bridge_scene(tmp_path, pin_idle_seconds=0.3):
        _login_with_pin(scene, scene.challenge())
        time.sleep(0.8)
        status = scene.cards.pin_status()
        assert not status.verified  # the card logged out (its root application selected)
        again = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
        assert again.get_json()["status"] == "interaction_required"
        assert scene.card(0).pins_presented == 1


def test_a_login_that_fails_after_the_pin_leaves_it_unverified(scene: BridgeScene) -> None:
    """The PIN is typed, then the Vitale card refuses to co-sign: the CPS card logs out,
    whatever the idle time (nobody else may use the key the PIN unlocked)."""
    scene.card(1).faults.arm(Fault.WRONG_STATUS, ins=Ins.MANAGE_SECURITY_ENVIRONMENT, status=0x6A88)
    with pytest.raises(UnexpectedStatus):
        scene.cards.authenticate(
            origin=TELESERVICE, challenge=scene.challenge(), with_vitale=True, pin="1234"
        )
    assert scene.card(0).pins_presented == 1
    assert not scene.cards.pin_is_fresh()
    state = scene.card(0).process(bytes.fromhex("00200001"))  # VERIFY, no data: the state
    assert state == bytes.fromhex("63C3")  # the card itself says so


def test_removing_the_card_ends_the_pin_state(scene: BridgeScene) -> None:
    _login_with_pin(scene, scene.challenge())
    scene.remove(0)
    scene.insert(0, "doctor")
    presented = scene.card(0).pins_presented
    again = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    assert again.get_json()["status"] == "interaction_required"
    assert scene.card(0).pins_presented == presented  # nothing sent on the bridge's own


def test_the_readers_keypad_takes_the_pin(scene: BridgeScene) -> None:
    keypad = scene.readers.add_pinpad(0)
    scene.remove(0)
    scene.insert(0, "doctor")  # read again: the view now says the reader has a keypad
    challenge = scene.challenge()
    page = open_page(scene, TELESERVICE.value, challenge)
    assert 'id="keypad"' in page.html
    assert 'id="pin"' not in page.html
    typing = threading.Timer(0.2, keypad.type, args=("1234",))
    typing.start()
    answer(scene, page, keypad="on")
    typing.join()
    token = outcome(scene.client(), page)["assertion"]
    assert scene.verify(token, challenge).professional.idnat == "899700420013"
    assert scene.card(0).pins_presented == 1


# -- cards coming and going ---------------------------------------------------------


def test_no_card_says_so_and_a_card_inserted_later_works(scene: BridgeScene) -> None:
    scene.remove(0)
    challenge = scene.challenge()
    response = post_json(scene.client(), "/v1/authenticate", {"challenge": challenge})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "card.not_present"
    page = open_page(scene, TELESERVICE.value, challenge)
    assert 'id="no-card"' in page.html
    assert 'id="pin"' not in page.html
    assert 'id="reload"' in page.html  # the way on, once the card is in
    scene.insert(0, "doctor")
    reload(scene, page)
    answer(scene, page, pin="1234")
    assert outcome(scene.client(), page)["status"] == "ok"


def test_a_card_pulled_mid_login_is_a_clear_error_and_the_bridge_goes_on(
    scene: BridgeScene,
) -> None:
    _login_with_pin(scene, scene.challenge())
    cps = scene.card(0)
    process = cps.process

    def pulled_at_signature(raw: bytes) -> bytes:
        if raw[1] == Ins.MANAGE_SECURITY_ENVIRONMENT:
            scene.workstation.remove(0)  # gone between MSE SET and the signature
        return process(raw)

    cps.process = pulled_at_signature  # type: ignore[method-assign]
    response = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    cps.process = process  # type: ignore[method-assign]
    assert response.status_code in (409, 503)
    assert response.get_json()["error"]["code"] in ("transport.card_removed", "card.not_present")
    assert get(scene.client(), "/v1/status").status_code == 200
    scene.insert(0, "doctor")
    challenge = scene.challenge()
    page = _login_with_pin(scene, challenge)
    assert scene.verify(outcome(scene.client(), page)["assertion"], challenge)


def test_cards_are_found_whichever_slot_they_are_in(tmp_path: Path) -> None:
    for scene in bridge_scene(tmp_path, personas=("patient", "doctor")):
        challenge = scene.challenge()
        page = open_page(scene, TELESERVICE.value, challenge, vitale=True)
        assert 'id="vitale"' in page.html
        answer(scene, page, pin="1234")
        login = scene.verify(outcome(scene.client(), page)["assertion"], challenge)
        assert login.patient is not None
        assert login.professional.idnat == "899700420013"


def test_a_login_asking_for_the_vitale_card_without_it_says_so(scene: BridgeScene) -> None:
    scene.remove(1)
    page = open_page(scene, TELESERVICE.value, scene.challenge(), vitale=True)
    assert 'id="no-vitale"' in page.html
    answer(scene, page, pin="1234")
    assert 'data-code="card.not_present"' in page.html
    assert outcome(scene.client(), page)["status"] == "pending"


# -- two pages at once -----------------------------------------------------------------


def test_two_pages_at_once_each_get_their_own_assertion(scene: BridgeScene) -> None:
    other = Origin.parse("https://other.example")
    scene.consents.grant(other, now=dt.datetime.now(dt.UTC), days=1)
    _login_with_pin(scene, scene.challenge())
    results: queue.Queue[tuple[Origin, str, str]] = queue.Queue()

    def page_of(origin: Origin) -> None:
        client = scene.client(origin.value)
        for _ in range(8):
            challenge = scene.challenge()
            body = post_json(client, "/v1/authenticate", {"challenge": challenge}).get_json()
            results.put((origin, challenge, body["assertion"]))

    threads = [threading.Thread(target=page_of, args=(o,)) for o in (TELESERVICE, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.qsize() == 16
    while not results.empty():
        origin, challenge, token = results.get()
        payload = CompactJws.split(token).payload()
        assert (payload["aud"], payload["nonce"]) == (origin.value, challenge)
        assert scene.verify(token, challenge, origin=origin).origin == origin.value


# -- what the card is asked ------------------------------------------------------------


def test_a_card_is_read_once_and_a_repeated_login_costs_four_commands(
    scene: BridgeScene,
) -> None:
    cps = scene.card(0)
    read_at_insertion = cps.total_commands
    _login_with_pin(scene, scene.challenge())
    first_login = cps.total_commands - read_at_insertion
    before = cps.total_commands
    post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    warm = cps.total_commands - before
    assert warm <= 4  # SELECT, MSE SET, INTERNAL AUTHENTICATE, GET RESPONSE (T=0)
    # Serial (1), five PKCS#15 files (ODF, AODF, PrKDF, CDF, DODF: 2 each, 6Cxx then the
    # exact length), the certificate (5), the holder's identity object (2).
    assert cps.commands[Ins.READ_BINARY] == 18
    # At insertion (28): SELECT and READ of the serial, SELECT of the PKCS#15
    # application, then SELECT and two READs for each of the five directory files,
    # SELECT and five READs for the certificate, SELECT and two READs for the identity,
    # and the tries left; the login (5): VERIFY, SELECT, MSE SET, INTERNAL
    # AUTHENTICATE, GET RESPONSE.
    assert (read_at_insertion, first_login) == (28, 5)


def test_a_card_put_back_is_read_again(scene: BridgeScene) -> None:
    """What was read of a card is kept while it stays in, not by its serial: a card
    reports the serial it likes, and one claiming another's must not use what was
    read of the other."""
    cps = scene.card(0)
    inserted = cps.total_commands
    scene.remove(0)
    before = cps.total_commands
    scene.insert(0, "doctor")
    assert cps.total_commands - before == inserted


# -- events ------------------------------------------------------------------------------


def test_card_events_reach_an_approved_page(scene: BridgeScene) -> None:
    response = get(scene.client(), "/v1/events", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events: queue.Queue[dict[str, str]] = queue.Queue()
    stream = iter(response.response)

    def read(count: int) -> None:
        """Read ``count`` events, then stop reading (the test closes the stream)."""
        name = ""
        while count:
            chunk = next(stream)
            text = chunk.decode() if isinstance(chunk, bytes) else str(chunk)
            for line in text.splitlines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.put({"event": name, **json.loads(line.removeprefix("data: "))})
                    count -= 1

    reader = threading.Thread(target=read, args=(5,), daemon=True)
    reader.start()
    present = [events.get(timeout=5), events.get(timeout=5)]
    assert events.get(timeout=5) == {"event": "ready"}  # the cards already in come first
    seen = sorted(present, key=lambda e: e["slot"])
    assert [(e["kind"], e["state"]) for e in seen] == [("cps", "present"), ("vitale", "present")]
    scene.remove(0)
    removed = events.get(timeout=5)
    assert removed == {**seen[0], "state": "removed"}  # the same card, by its identifier
    scene.insert(0, "pharmacist")
    inserted = events.get(timeout=5)
    assert (inserted["state"], inserted["kind"]) == ("inserted", "cps")
    assert inserted["card"] != removed["card"]  # another insertion
    reader.join(timeout=5)
    response.close()


def test_slot_events_say_which_card_went(scene: BridgeScene) -> None:
    with scene.cards.subscribe() as events:
        scene.remove(1)
        removed = events.get(timeout=5)
        assert removed is not None
        assert (removed.slot, removed.state, removed.kind) == (
            scene.readers.slot_names[1],
            "removed",
            "vitale",
        )


# -- what the page asks, and when ------------------------------------------------------


def test_reloading_the_page_after_a_wrong_pin_sends_nothing(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    answer(scene, page, pin="0000")
    assert scene.card(0).pins_presented == 1
    resend(scene, page)  # the browser posts the same form again
    assert scene.card(0).pins_presented == 1
    assert 'data-code="bridge.form_spent"' in page.html
    assert "Essais restants : 2" in page.html  # the card's count, unchanged
    reload(scene, page)  # a reload of the page itself (a GET): nothing either
    assert scene.card(0).pins_presented == 1
    answer(scene, page, pin="1234")
    assert outcome(scene.client(), page)["status"] == "ok"


def test_an_expired_card_is_refused_before_its_pin(scene: BridgeScene) -> None:
    scene.remove(0)
    scene.insert(0, "cps-expired")
    refused = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "card.expired"
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    assert 'data-code="card.expired"' in page.html
    assert "31/12/2022" in page.html
    assert 'id="pin"' not in page.html
    assert 'id="decline"' in page.html  # the way out
    answer(scene, page, action="allow", pin="1234")  # a form forged or kept from before
    assert scene.card(0).pins_presented == 0
    assert 'data-code="card.expired"' in page.html


def test_logging_out_of_a_site_makes_the_next_login_ask_the_pin(scene: BridgeScene) -> None:
    _login_with_pin(scene, scene.challenge())
    fast = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    assert fast.get_json()["status"] == "ok"
    assert post_json(scene.client(), "/v1/logout", {}).get_json() == {"status": "ok"}
    again = post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge()})
    assert again.get_json() == {"status": "interaction_required"}
    assert not scene.card(0).verified_codes  # the card itself forgot it


def test_every_page_has_a_way_out(scene: BridgeScene) -> None:
    pages = []
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    pages.append(page.html)  # the PIN page: refuse
    scene.remove(0)
    pages.append(reload(scene, page).get_data(as_text=True))  # no card: refuse, reload
    scene.insert(0, "doctor")
    reload(scene, page)
    for _ in range(3):
        answer(scene, page, pin="0000")
    pages.append(page.html)  # blocked: close
    pages.append(get(scene.client(None), "/interaction/" + "x" * 32).get_data(as_text=True))
    for html in pages:
        assert 'id="decline"' in html or 'id="close"' in html, html
