"""The verifier's one cache: bounded, and a kept verdict never outlives what made
it valid (the certificates' validity, the revocation answer's window, the CRLs in
use), nor serves a refused token."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509

from cardauth.challenges import issue_challenge
from cardauth.errors import AssertionRefused
from cardauth.revocation import OcspTransport, RevocationChecker, RevocationPolicy
from cardauth.verdict_cache import VerdictCache
from cardauth.verify import Verifier
from simulator.ocsp import OcspResponder
from simulator.personas import load_cps
from simulator.pki import simulator_pki
from tests.verifier_kit import (
    NOW,
    SESSION,
    Forge,
    Scene,
    card_like,
    crl_checker,
    reissued_cps_ca,
    trust_store,
    x5c,
)

LATER = NOW + dt.timedelta(hours=1)


def _login(
    verifier: Verifier,
    token_for: Forge,
    *,
    now: dt.datetime = NOW,
    card: x509.Certificate | None = None,
) -> object:
    """One login at ``now`` (with ``card`` in x5c instead of the persona's)."""
    scene = Scene(verifier, now=now)
    forge = dataclasses.replace(token_for, now=now)
    header = forge.header(chain=x5c(card)) if card is not None else None
    return scene.verify(forge.assertion(scene.challenge, header=header))


# -- the cache alone ---------------------------------------------------------------


def test_the_cache_keeps_at_most_its_size_the_least_recently_used_out_first() -> None:
    cache: VerdictCache[str] = VerdictCache(max_entries=3)
    crls = object()
    for key in "abcd":
        cache.put(key, key.upper(), not_before=NOW, not_after=LATER, crls=crls)
    assert len(cache) == 3
    assert cache.get("a", now=NOW, crls=crls) is None  # the oldest went out
    assert cache.get("b", now=NOW, crls=crls) == "B"  # b is now the most recent
    cache.put("e", "E", not_before=NOW, not_after=LATER, crls=crls)
    assert cache.get("c", now=NOW, crls=crls) is None
    assert [cache.get(k, now=NOW, crls=crls) for k in "bde"] == ["B", "D", "E"]


def test_a_kept_verdict_serves_only_within_its_window_and_with_its_crls() -> None:
    cache: VerdictCache[str] = VerdictCache()
    crls, refreshed = object(), object()
    cache.put("k", "verdict", not_before=NOW, not_after=LATER, crls=crls)
    assert cache.get("k", now=NOW - dt.timedelta(seconds=1), crls=crls) is None
    assert cache.get("k", now=LATER, crls=crls) == "verdict"
    assert cache.get("k", now=NOW, crls=refreshed) is None
    assert cache.get("k", now=NOW, crls=crls) is None  # dropped once its CRLs went
    cache.put("k", "verdict", not_before=NOW, not_after=LATER, crls=crls)
    assert cache.get("k", now=LATER + dt.timedelta(microseconds=1), crls=crls) is None
    assert len(cache) == 0


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache: VerdictCache[str] = VerdictCache(max_entries=0)
    cache.put("k", "v", not_before=NOW, not_after=LATER, crls=None)
    assert len(cache) == 0


# -- through the verifier ------------------------------------------------------------


def _counting_ocsp() -> tuple[RevocationChecker, OcspResponder]:
    responder = OcspResponder(clock=lambda: NOW)
    transport: OcspTransport = lambda url, body, timeout: responder.respond(body)  # noqa: E731
    policy = RevocationPolicy(ocsp_responder="http://ocsp.invalid/", use_crl=False)
    return RevocationChecker(policy=policy, transport=transport), responder


def test_a_card_seen_before_is_not_asked_about_again_while_its_verdict_is_kept() -> None:
    checker, responder = _counting_ocsp()
    verifier = Verifier(trust=trust_store(), revocation=checker)
    for _ in range(3):
        _login(verifier, Forge())
    assert responder.requests == 2  # the card, its CA: once
    assert len(verifier.cache) == 1


def test_the_cache_is_bounded_and_a_card_pushed_out_is_checked_again() -> None:
    checker, responder = _counting_ocsp()
    verifier = Verifier(trust=trust_store(), revocation=checker, cache_size=2)
    doctor, pharmacist, nurse = (
        dataclasses.replace(Forge(), cps_persona=p) for p in ("doctor", "pharmacist", "nurse")
    )
    for forge in (doctor, pharmacist, nurse):
        _login(verifier, forge)
    assert len(verifier.cache) == 2
    asked = responder.requests
    _login(verifier, nurse)  # kept: nothing asked
    assert responder.requests == asked
    _login(verifier, doctor)  # pushed out: its card asked about again (its CA's answer kept)
    assert responder.requests == asked + 1
    assert len(verifier.cache) == 2


def test_every_new_card_is_a_new_verdict() -> None:
    """Cards of the same holder with serial numbers of their own are distinct chains."""
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())
    forge = Forge()
    for _ in range(3):
        _login(verifier, forge, card=card_like(forge.cps_certificate, simulator_pki().cps_ca.key))
    assert len(verifier.cache) == 3


def test_refused_tokens_leave_nothing_in_the_cache() -> None:
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())
    revoked = dataclasses.replace(Forge(), cps_persona="cps-revoked")
    with pytest.raises(AssertionRefused) as refused:
        _login(verifier, revoked)
    assert refused.value.code == "revocation.revoked"
    assert len(verifier.cache) == 0


def test_a_crl_refresh_that_revokes_a_card_is_obeyed_at_once() -> None:
    """The card's verdict is cached; the new CRL lists it: the next login is refused,
    not served from the cache."""
    pki = simulator_pki()
    checker = crl_checker()
    verifier = Verifier(trust=trust_store(), revocation=checker)
    _login(verifier, Forge())
    assert len(verifier.cache) == 1
    doctor = dataclasses.replace(
        load_cps("doctor"),
        certificate=dataclasses.replace(
            load_cps("doctor").certificate, revoked_on=(NOW - dt.timedelta(days=1)).date()
        ),
    )
    checker.replace_crls([pki.crl(pki.cps_ca, NOW, personas=[doctor]), pki.crl(pki.cps_root, NOW)])
    with pytest.raises(AssertionRefused) as refused:
        _login(verifier, Forge())
    assert refused.value.code == "revocation.revoked"


def test_a_verdict_does_not_outlive_the_crls_next_update() -> None:
    """Verified when the CRL was fresh; a week and a day later the same card is
    refused as stale, however recently it was seen."""
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())
    _login(verifier, Forge())
    with pytest.raises(AssertionRefused) as refused:
        _login(verifier, Forge(), now=NOW + dt.timedelta(days=8))
    assert refused.value.code == "revocation.stale"


def test_a_verdict_does_not_serve_before_the_crl_was_issued() -> None:
    """A clock set back a day: the verdict kept is not used before its time, and the
    CRL, dated in the future from there, is refused."""
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())
    _login(verifier, Forge())
    with pytest.raises(AssertionRefused) as refused:
        _login(verifier, Forge(), now=NOW - dt.timedelta(days=1))
    assert refused.value.code == "revocation.crl_invalid"


def test_a_verdict_does_not_outlive_the_card_certificate() -> None:
    forge = Forge()
    after = forge.cps_certificate.not_valid_after_utc + dt.timedelta(days=1)
    verifier = Verifier(trust=trust_store(), revocation=crl_checker(after - dt.timedelta(days=1)))
    _login(verifier, forge, now=after - dt.timedelta(days=1, seconds=1))
    assert len(verifier.cache) == 1
    with pytest.raises(AssertionRefused) as refused:
        _login(verifier, forge, now=after)
    assert refused.value.code == "certificate.expired"


def test_a_verdict_does_not_outlive_an_intermediate_offered_in_x5c() -> None:
    """x5c carries, after the card, its CA's certificate issued again (same name and
    key: a CA renewed without a new key) that expires in a day: every certificate
    offered must be valid, so two days later the same header is refused, not served
    from the cache."""
    forge = Forge()
    short = reissued_cps_ca(NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))
    header = forge.header(chain=x5c(forge.cps_certificate, short))
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())

    def login(now: dt.datetime) -> object:
        scene = Scene(verifier, now=now)
        token = dataclasses.replace(forge, now=now).assertion(scene.challenge, header=header)
        return scene.verify(token)

    login(NOW)
    assert len(verifier.cache) == 1
    with pytest.raises(AssertionRefused) as refused:
        login(NOW + dt.timedelta(days=2))
    assert refused.value.code == "certificate.ca_expired"


def test_a_reloaded_trust_directory_starts_with_an_empty_cache() -> None:
    """A reload of the trust directory is a new Verifier: nothing kept carries over."""
    checker = crl_checker()
    first = Verifier(trust=trust_store(), revocation=checker)
    _login(first, Forge())
    assert len(first.cache) == 1
    assert len(Verifier(trust=trust_store(), revocation=checker).cache) == 0


def test_a_co_signed_login_caches_both_cards() -> None:
    verifier = Verifier(trust=trust_store(), revocation=crl_checker())
    forge = Forge()
    for _ in range(2):
        scene = Scene(verifier)
        challenge = issue_challenge(scene.store, session=SESSION, now=NOW)
        login = scene.verify(
            forge.assertion(challenge, vitale=forge.vitale(challenge)),
            expected_challenge=challenge,
            require_vitale=True,
        )
        assert login.patient is not None
    assert len(verifier.cache) == 2
