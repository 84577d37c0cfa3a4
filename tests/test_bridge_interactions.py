"""Logins waiting on the bridge's page: one per site (a new one replaces it), places
that no other site can take from an approved one, forgotten when they expire,
never handed to another site, a form good for one answer, and a page that never
collects its outcomes cannot grow the bridge's memory."""

from __future__ import annotations

import pytest

from cardauth.errors import CardAuthError
from cardauth.origins import Origin
from tests.bridge_kit import request_id
from webbridge.errors import BadRequest, Busy, InteractionUnknown, Replaced
from webbridge.interactions import (
    LIFETIME_SECONDS,
    MAX_KEPT,
    MAX_OPEN_UNAPPROVED,
    MAX_UNOPENED,
    UNOPENED_SECONDS,
    Interaction,
    Interactions,
    State,
)
from webbridge.operations import Assertion, Login

SITE = Origin.parse("https://teleservice.example")
ASSERTION = Assertion("a.b.c")
LOGIN = Login(challenge="A" * 43, with_vitale=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_login(
    interactions: Interactions, origin: Origin = SITE, *, approved: bool = True
) -> Interaction:
    return interactions.create(
        origin=origin,
        operation=LOGIN,
        request_id=request_id(),
        page_id=request_id(),
        approved=approved,
    )


def sites(count: int, prefix: str = "s") -> list[Origin]:
    return [Origin.parse(f"https://{prefix}{n}.attacker.example") for n in range(count)]


def test_a_new_login_of_a_site_replaces_the_one_waiting() -> None:
    interactions = Interactions()
    first = open_login(interactions)
    second = open_login(interactions)
    assert first.state is State.FAILED
    assert isinstance(first.error, Replaced)
    assert first.finished.is_set()  # the page waiting on it is told at once
    assert second.state is State.PENDING
    other = open_login(interactions, Origin.parse("https://other.example"))
    assert second.state is State.PENDING  # another site's login replaces nothing of it
    assert other.state is State.PENDING


def test_sites_not_approved_never_take_an_approved_sites_place() -> None:
    interactions = Interactions()
    for site in sites(10 * MAX_UNOPENED):
        open_login(interactions, site, approved=False)
    trusted = open_login(interactions, SITE, approved=True)
    assert trusted.state is State.PENDING


def test_unopened_logins_of_sites_not_approved_are_bounded_oldest_dropped() -> None:
    interactions = Interactions()
    flood = [open_login(interactions, site, approved=False) for site in sites(MAX_UNOPENED)]
    newcomer = open_login(interactions, Origin.parse("https://first-time.example"), approved=False)
    assert newcomer.state is State.PENDING  # a new site is never refused for the flood
    assert flood[0].state is State.FAILED
    assert isinstance(flood[0].error, Busy)
    assert all(i.state is State.PENDING for i in flood[1:])


def test_a_login_whose_page_is_shown_is_never_dropped_for_unopened_ones() -> None:
    interactions = Interactions()
    shown = open_login(interactions, Origin.parse("https://first-time.example"), approved=False)
    interactions.open(shown.id)
    for site in sites(3 * MAX_UNOPENED):
        open_login(interactions, site, approved=False)
    assert shown.state is State.PENDING


def test_a_login_whose_page_is_not_opened_soon_is_dropped() -> None:
    clock = Clock()
    interactions = Interactions(monotonic=clock)
    unopened = open_login(interactions, approved=False)
    shown = open_login(interactions, Origin.parse("https://other.example"), approved=False)
    interactions.open(shown.id)
    clock.now += UNOPENED_SECONDS
    with pytest.raises(InteractionUnknown):
        interactions.get(unopened.id)
    assert interactions.get(shown.id).state is State.PENDING  # a page open waits longer


def test_pages_open_for_sites_not_approved_are_bounded() -> None:
    interactions = Interactions()
    for site in sites(MAX_OPEN_UNAPPROVED):
        interactions.open(open_login(interactions, site, approved=False).id)
    one_more = open_login(interactions, Origin.parse("https://one-more.example"), approved=False)
    with pytest.raises(Busy):
        interactions.open(one_more.id)
    assert one_more.state is State.PENDING  # still there once a page is closed
    trusted = open_login(interactions, SITE, approved=True)
    assert interactions.open(trusted.id) is trusted  # an approved site's page always opens


def test_identifiers_serve_once_and_the_outcome_goes_to_its_site_only() -> None:
    interactions = Interactions()
    login = open_login(interactions)
    with pytest.raises(InteractionUnknown):
        interactions.for_request(login.request_id, Origin.parse("https://other.example"))
    same = request_id()
    refused: list[tuple[object, object]] = [
        (login.request_id, request_id()),  # used already
        (request_id(), login.id),
        ("short", request_id()),  # malformed
        (request_id(), 7),
        (same, same),  # one identifier for both
    ]
    for sent_request, sent_page in refused:
        with pytest.raises(BadRequest):
            interactions.create(
                origin=SITE,
                operation=LOGIN,
                request_id=sent_request,
                page_id=sent_page,
                approved=True,
            )


def test_an_expired_login_fails_and_is_forgotten() -> None:
    clock = Clock()
    interactions = Interactions(monotonic=clock)
    waiting = open_login(interactions)
    interactions.open(waiting.id)
    clock.now += LIFETIME_SECONDS
    with pytest.raises(InteractionUnknown):
        interactions.for_request(waiting.request_id, SITE)
    assert waiting.state is State.FAILED
    assert isinstance(waiting.error, InteractionUnknown)
    assert waiting.finished.is_set()  # a page waiting on it is woken


def test_the_first_outcome_stands() -> None:
    interactions = Interactions()
    login = open_login(interactions)
    open_login(interactions)  # replaces it while, say, its PIN is being checked
    assert not login.finish(State.OK, result=ASSERTION)
    assert login.state is State.FAILED
    assert login.result is None


def test_the_form_token_is_good_for_one_answer() -> None:
    login = open_login(Interactions())
    token = login.form_token()
    assert login.form_token() == token  # the page shown again: the same form
    assert not login.take_token(None)
    assert not login.take_token("x" * 32)
    assert not login.take_token("é" * 32)  # not ASCII: refused, not a crash
    assert login.take_token(token)
    assert not login.take_token(token)  # sent again: spent
    assert login.form_token() != token


def test_a_collected_outcome_is_not_given_twice_but_its_page_still_shows() -> None:
    interactions = Interactions()
    login = open_login(interactions)
    login.finish(State.DECLINED)
    interactions.collect(login)
    with pytest.raises(InteractionUnknown):
        interactions.for_request(login.request_id, SITE)
    assert interactions.get(login.id).state is State.DECLINED


def test_outcomes_never_collected_are_bounded() -> None:
    interactions = Interactions()
    refused = CardAuthError("refused")
    finished = []
    for site in sites(MAX_KEPT + 50):
        login = open_login(interactions, site)
        login.finish(State.FAILED, error=refused)
        finished.append(login)
    waiting = open_login(interactions)  # a login still waiting is never the one forgotten
    for login in finished[: 50 + 1]:
        with pytest.raises(InteractionUnknown):
            interactions.for_request(login.request_id, login.origin)
    assert interactions.for_request(finished[-1].request_id, finished[-1].origin).error is refused
    assert interactions.for_request(waiting.request_id, SITE).state is State.PENDING


def test_an_answer_not_collected_yet_outlives_a_flood_of_other_sites_logins() -> None:
    interactions = Interactions()
    answered = open_login(interactions, Origin.parse("https://first-time.example"), approved=False)
    interactions.open(answered.id)
    answered.finish(State.OK, result=ASSERTION, answered=True)
    for site in sites(4 * MAX_KEPT):  # dropped unopened: nobody could read them
        open_login(interactions, site, approved=False)
    for site in sites(2 * MAX_KEPT, prefix="t"):  # shown, then replaced: unreadable too
        interactions.open(open_login(interactions, site, approved=False).id)
        open_login(interactions, site, approved=False)
    found = interactions.for_request(answered.request_id, answered.origin)
    assert found.result == ASSERTION


def test_a_login_nobody_can_read_about_is_forgotten_at_once() -> None:
    interactions = Interactions()
    unread = open_login(interactions, approved=False)
    open_login(interactions, approved=False)  # replaces it: its page was never shown
    with pytest.raises(InteractionUnknown):
        interactions.get(unread.id)
    readable = open_login(interactions, Origin.parse("https://approved.example"))
    open_login(interactions, Origin.parse("https://approved.example"))
    assert interactions.get(readable.id).state is State.FAILED  # its site reads why


def test_a_losing_answer_does_not_make_the_login_readable() -> None:
    interactions = Interactions()
    login = open_login(interactions, approved=False)
    interactions.open(login.id)
    open_login(interactions, approved=False)  # replaced while the PIN was checked
    assert not login.finish(State.OK, result=ASSERTION, answered=True)
    assert not login.readable


def test_errors_kept_for_the_page_hold_no_frames() -> None:
    """A PIN typed is a local of the frames that checked it: an error kept for the
    page (minutes) must not keep them, nor the PIN."""
    login = open_login(Interactions())

    def check(pin: str) -> None:
        try:
            raise ValueError(pin)
        except ValueError as low:
            raise CardAuthError("wrong") from low

    for keep in (login.tell, lambda error: login.finish(State.FAILED, error=error)):
        try:
            check("0007")
        except CardAuthError as error:
            keep(error)
    assert login.notice is not None
    assert login.error is not None
    for kept in (login.notice, login.error):
        assert kept.__traceback__ is None
        assert kept.__cause__ is not None
        assert kept.__cause__.__traceback__ is None
