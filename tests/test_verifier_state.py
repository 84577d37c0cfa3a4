"""What the verifier keeps from one login to the next, and what it must not: a
challenge is used up by a refused attempt too; expected origins are read afresh
when they can change; revocation answers are kept with the chain's verdict by a
Verifier (not by a one-shot call); a responder that does not answer costs one
timeout, then is left alone for a while."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from cardauth.challenges import issue_challenge
from cardauth.errors import AssertionRefused
from cardauth.origins import Origin
from cardauth.revocation import (
    OCSP_BACKOFF_SECONDS,
    OcspTransport,
    OcspUnreachable,
    RevocationChecker,
    RevocationPolicy,
)
from cardauth.verify import Verifier, verify_assertion
from simulator.ocsp import OcspResponder
from simulator.pki import simulator_pki
from tests.verifier_kit import NOW, ORIGIN, SESSION, Forge, Scene, crl_checker, trust_store


def _checker_with(
    transport: OcspTransport, *, use_crl: bool = True, ocsp_timeout: float = 3.0
) -> RevocationChecker:
    pki = simulator_pki()
    policy = RevocationPolicy(
        ocsp_responder="http://ocsp.invalid/", use_crl=use_crl, ocsp_timeout=ocsp_timeout
    )
    crls = [pki.crl(authority, NOW) for authority in pki.authorities]
    return RevocationChecker(policy=policy, crls=crls, transport=transport)


def test_a_refused_attempt_uses_up_its_challenge() -> None:
    """An older copy of the session cookie still names the challenge: a second try
    with it, even an honest one, finds the challenge gone."""
    scene = Scene(Verifier(trust=trust_store(), revocation=crl_checker()))
    forge = Forge()
    pharmacist = dataclasses.replace(forge, cps_persona="pharmacist")
    with pytest.raises(AssertionRefused) as first:
        scene.verify(forge.assertion(scene.challenge, key=pharmacist.cps_key))
    assert first.value.code == "assertion.signature"
    with pytest.raises(AssertionRefused) as second:
        scene.verify(forge.assertion(scene.challenge))
    assert second.value.code == "challenge.unknown"


def test_expected_origins_in_a_list_are_read_again() -> None:
    """A teleservice that withdraws an origin from its list is obeyed at once."""
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())
    allowed = [ORIGIN]
    forge = Forge()
    scene = Scene(verifier)
    verifier.verify(
        forge.assertion(scene.challenge),
        expected_origins=allowed,
        expected_challenge=scene.challenge,
        session=SESSION,
        challenges_store=scene.store,
        now=NOW,
    )
    allowed[0] = Origin.parse("https://new.teleservice.example")
    challenge = issue_challenge(scene.store, session=SESSION, now=NOW)
    with pytest.raises(AssertionRefused) as refused:
        verifier.verify(
            forge.assertion(challenge),
            expected_origins=allowed,
            expected_challenge=challenge,
            session=SESSION,
            challenges_store=scene.store,
            now=NOW,
        )
    assert refused.value.code == "origin.mismatch"


def test_revocation_answers_serve_every_login_of_a_card_the_verifier_has_seen() -> None:
    """Three logins with the same card through one Verifier: the responder is asked
    once per certificate of the path, at the first; the next ones use the cached
    verdict, revocation answer included (the verifier's one cache)."""
    responder = OcspResponder(clock=lambda: NOW)
    checker = _checker_with(lambda url, body, timeout: responder.respond(body), use_crl=False)
    forge, scene = Forge(), Scene(Verifier(trust=trust_store(), revocation=checker))
    for _ in range(3):
        challenge = issue_challenge(scene.store, session=SESSION, now=NOW)
        login = scene.verify(forge.assertion(challenge), expected_challenge=challenge)
        assert login.professional.idnat == "899700420013"
    assert responder.requests == 2  # the card's certificate, its CA's


def test_a_cas_answer_serves_every_new_card_it_issued() -> None:
    """At national scale most logins are of a card not seen before: each costs its
    own certificate's OCSP exchange, never its CA's again."""
    responder = OcspResponder(clock=lambda: NOW)
    checker = _checker_with(lambda url, body, timeout: responder.respond(body), use_crl=False)
    scene = Scene(Verifier(trust=trust_store(), revocation=checker))
    forge = Forge()
    for persona in ("doctor", "pharmacist", "nurse"):
        card = dataclasses.replace(forge, cps_persona=persona)
        challenge = issue_challenge(scene.store, session=SESSION, now=NOW)
        scene.verify(card.assertion(challenge), expected_challenge=challenge)
    assert responder.requests == 4  # three cards, and their CA once


def test_the_one_shot_verify_assertion_keeps_nothing() -> None:
    """verify_assertion makes a Verifier for one call: each call asks the responder
    about the card again (a service keeps one Verifier); what the checker it is
    given knows of the CA serves both."""
    responder = OcspResponder(clock=lambda: NOW)
    checker = _checker_with(lambda url, body, timeout: responder.respond(body), use_crl=False)
    forge, scene = Forge(), Scene(Verifier(trust=trust_store(), revocation=checker))
    for _ in range(2):
        challenge = issue_challenge(scene.store, session=SESSION, now=NOW)
        verify_assertion(
            forge.assertion(challenge),
            expected_origins=(ORIGIN,),
            expected_challenge=challenge,
            session=SESSION,
            challenges_store=scene.store,
            trust=trust_store(),
            revocation=checker,
            now=NOW,
        )
    assert responder.requests == 3  # the card twice, its CA once


def test_a_silent_responder_costs_one_timeout_then_is_left_alone() -> None:
    """The responder never answers: the first login waits ocsp_timeout once (not
    once per certificate) and the CRLs answer; the next logins do not ask it until
    the back-off is over."""
    calls: list[str] = []
    released = threading.Event()

    def silent(url: str, body: bytes, timeout: float) -> bytes:
        calls.append(url)
        released.wait(5)
        raise OcspUnreachable("no answer")

    checker = _checker_with(silent, ocsp_timeout=0.2)
    forge = Forge()
    try:
        started = time.monotonic()
        for persona in ("doctor", "pharmacist", "nurse"):
            scene = Scene(Verifier(trust=trust_store(), revocation=checker))
            token = dataclasses.replace(forge, cps_persona=persona).assertion(scene.challenge)
            assert scene.verify(token).professional is not None
        elapsed = time.monotonic() - started
    finally:
        released.set()
    assert calls == ["http://ocsp.invalid/"]
    assert elapsed < OCSP_BACKOFF_SECONDS  # three logins, one wait of 0.2 s
