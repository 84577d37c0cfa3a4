"""Logins waiting on the bridge's page: bounded per site and in all, forgotten when
they expire, never handed to another site, and a page that never collects its
outcomes cannot grow the bridge's memory."""

from __future__ import annotations

import pytest

from cardauth.errors import CardAuthError
from cardauth.origins import Origin
from tests.bridge_kit import request_id
from webbridge.errors import BadRequest, Busy, Cancelled, InteractionUnknown
from webbridge.interactions import (
    LIFETIME_SECONDS,
    MAX_KEPT,
    MAX_PENDING,
    MAX_PENDING_PER_ORIGIN,
    Interactions,
    State,
)

SITE = Origin.parse("https://teleservice.example")
CHALLENGE = "A" * 43


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_login(interactions: Interactions, origin: Origin = SITE) -> str:
    rid = request_id()
    interactions.create(origin=origin, challenge=CHALLENGE, with_vitale=False, request_id=rid)
    return rid


def test_a_site_keeps_its_newest_logins_waiting() -> None:
    interactions = Interactions()
    first = open_login(interactions)
    later = [open_login(interactions) for _ in range(MAX_PENDING_PER_ORIGIN)]
    oldest = interactions.for_request(first, SITE)
    assert oldest.state is State.FAILED
    assert isinstance(oldest.error, Cancelled)
    assert all(interactions.for_request(rid, SITE).state is State.PENDING for rid in later)


def test_logins_waiting_are_bounded_in_all() -> None:
    interactions = Interactions()
    sites = [Origin.parse(f"https://s{n}.teleservice.example") for n in range(MAX_PENDING)]
    for site in sites:
        open_login(interactions, site)
    with pytest.raises(Busy):
        open_login(interactions, Origin.parse("https://one-more.example"))


def test_a_request_id_serves_once_and_for_its_site_only() -> None:
    interactions = Interactions()
    rid = open_login(interactions)
    with pytest.raises(BadRequest):
        interactions.create(origin=SITE, challenge=CHALLENGE, with_vitale=False, request_id=rid)
    with pytest.raises(InteractionUnknown):
        interactions.for_request(rid, Origin.parse("https://other.example"))
    with pytest.raises(BadRequest):
        interactions.create(origin=SITE, challenge=CHALLENGE, with_vitale=False, request_id="short")


def test_an_expired_login_fails_and_is_forgotten() -> None:
    clock = Clock()
    interactions = Interactions(monotonic=clock)
    rid = open_login(interactions)
    waiting = interactions.for_request(rid, SITE)
    clock.now += LIFETIME_SECONDS
    with pytest.raises(InteractionUnknown):
        interactions.for_request(rid, SITE)
    assert waiting.state is State.FAILED
    assert isinstance(waiting.error, InteractionUnknown)
    assert waiting.finished.is_set()  # a page waiting on it is woken


def test_outcomes_never_collected_are_bounded() -> None:
    interactions = Interactions()
    refused = CardAuthError("refused")
    rids = [request_id() for _ in range(MAX_KEPT + 50)]
    for rid in rids:
        interactions.record_failure(origin=SITE, request_id=rid, error=refused)
    waiting = open_login(interactions)  # a login still waiting is never the one forgotten
    for rid in rids[: 50 + 1]:
        with pytest.raises(InteractionUnknown):
            interactions.for_request(rid, SITE)
    assert interactions.for_request(rids[-1], SITE).state is State.FAILED
    assert interactions.for_request(waiting, SITE).state is State.PENDING
