"""Logins, and requests for the signing certificate or a signature, waiting for
the professional on the bridge's own page (their kinds: :mod:`webbridge.operations`).

A page that needs the professional (a site not approved yet, a PIN to type, a
document to sign) opens an interaction by ``POST /v1/interactions``, a CORS
request: its Origin header is the browser's for every pair of schemes (an https
page calling the bridge on ``http://127.0.0.1`` included), and that origin, never a
value from the body, is the one the assertion will carry and the one the page
names. The page picks two random identifiers: the
request identifier, with which it collects the outcome, and the page identifier,
the address of the bridge's page that it then shows in its window. The bridge's
page has a form token of its own, good for one answer.

Places: each site has one interaction waiting at most, whatever its kind (a new
one replaces it). A site
the professional approved always gets its place. The others share bounded places:
a login whose page nobody opened within a minute is dropped, and past
``MAX_UNOPENED`` the oldest unopened one is dropped, so that no site can keep
the places full without opening windows on the professional's screen.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from cardauth.errors import CardAuthError
from cardauth.origins import Origin
from webbridge.errors import BadRequest, Busy, InteractionUnknown, Replaced
from webbridge.operations import Operation, Result

LIFETIME_SECONDS = 300.0  # as long as a teleservice's challenge
UNOPENED_SECONDS = 60.0  # a login whose page was not opened by then is dropped
MAX_UNOPENED = 16  # logins of sites not approved whose page is not open yet
MAX_OPEN_UNAPPROVED = 16  # pages open for sites not approved (each took a click)
MAX_KEPT = 256  # outcomes not collected yet; beyond, the oldest finished are forgotten
_IDENTIFIER = re.compile(r"[A-Za-z0-9_-]{22,64}")


class State(StrEnum):
    PENDING = "pending"
    OK = "ok"
    DECLINED = "declined"
    FAILED = "failed"


@dataclass(eq=False)
class Interaction:
    """One login, or signing request, waiting on the bridge's page."""

    id: str  # the page's identifier, in its address
    request_id: str  # the asking page's, to fetch the outcome
    origin: Origin
    operation: Operation  # what the site asks for
    approved: bool  # the site was approved when it asked
    created_at: float  # monotonic
    expires_at: float  # monotonic
    token: str = ""  # the one answer the page's form may send
    opened: bool = False  # the bridge's page was shown
    answered: bool = False  # the professional's answer ended it
    collected: bool = False  # the asking page has the outcome
    notice: CardAuthError | None = None  # what the page says once, after an answer
    state: State = State.PENDING
    result: Result | None = None  # what the site gets once the professional allowed it
    error: CardAuthError | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    _finishing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def finish(
        self,
        state: State,
        *,
        result: Result | None = None,
        error: CardAuthError | None = None,
        answered: bool = False,
    ) -> bool:
        """End the login, unless it ended already (the first outcome stands: a login
        replaced while its PIN was checked does not come back to life); ``answered``:
        by the professional's answer on the page (its site may read it from now on)."""
        with self._finishing:
            if self.state is not State.PENDING:
                return False
            self.state, self.result = state, result
            self.error = detached(error) if error is not None else None
            self.answered = answered
            self.finished.set()
            return True

    def tell(self, notice: CardAuthError) -> None:
        """What the page says once, the next time it is shown (a wrong PIN...)."""
        self.notice = detached(notice)

    @property
    def readable(self) -> bool:
        """Whether the asking site may ever read this login's outcome."""
        return self.approved or self.answered

    def form_token(self) -> str:
        """The token of the page's form: the same however often the page is shown,
        until an answer spends it."""
        with self._finishing:
            if not self.token:
                self.token = secrets.token_urlsafe(24)
            return self.token

    def take_token(self, given: str | None) -> bool:
        """Whether ``given`` is the form's current token, which is then spent: the
        same form sent again (a reload, the back button) is never acted upon."""
        with self._finishing:
            expected = self.token
            # Compared as bytes: a str with characters beyond ASCII would raise.
            if not expected or given is None:
                return False
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return False
            self.token = ""
            return True

    def outcome(self, describe: Callable[[CardAuthError], str]) -> dict[str, object]:
        """What the asking page gets: the result once (the assertion, the
        certificate, the signature), or why there is none (its code, and a sentence
        that ``describe`` gives in the page's language)."""
        answer: dict[str, object] = {"status": self.state.value}
        if self.result is not None:
            answer.update(self.result.to_dict())
        if self.error is not None:
            answer["error"] = {"code": self.error.code, "message": describe(self.error)}
        return answer


class Interactions:
    """The logins waiting on the bridge's page, and their outcomes until collected."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._by_id: dict[str, Interaction] = {}
        self._by_request: dict[str, Interaction] = {}
        self._lock = threading.Lock()

    def create(
        self,
        *,
        origin: Origin,
        operation: Operation,
        request_id: object,
        page_id: object,
        approved: bool,
    ) -> Interaction:
        """An interaction for ``origin``, which replaces the site's one still waiting
        (a login, a signature: one at a time per site)."""
        request_id, page_id = _identifier("request_id", request_id), _identifier("page_id", page_id)
        if request_id == page_id:
            raise BadRequest("request_id and page_id differ")
        with self._lock:
            self._purge()
            if {request_id, page_id} & (self._by_request.keys() | self._by_id.keys()):
                raise BadRequest("identifier already used")
            for waiting in self._pending(lambda i: i.origin == origin):
                self._end(waiting, Replaced("a newer login of the site"))
            if not approved:
                unopened = self._pending(lambda i: not i.approved and not i.opened)
                for dropped in unopened[: max(0, len(unopened) - MAX_UNOPENED + 1)]:
                    self._end(dropped, Busy("too many logins waiting"))
            now = self._monotonic()
            interaction = Interaction(
                id=page_id,
                request_id=request_id,
                origin=origin,
                operation=operation,
                approved=approved,
                created_at=now,
                expires_at=now + (LIFETIME_SECONDS if approved else UNOPENED_SECONDS),
            )
            self._keep(interaction)
            return interaction

    def open(self, page_id: str) -> Interaction:
        """The interaction whose page is being shown: from now on it waits for the
        professional as long as a challenge lives."""
        with self._lock:
            self._purge()
            found = self._by_id.get(page_id)
            if found is None:
                raise InteractionUnknown("no such login waiting (it may have expired)")
            if found.state is State.PENDING and not found.opened:
                if not found.approved:
                    shown = self._pending(lambda i: not i.approved and i.opened)
                    if len(shown) >= MAX_OPEN_UNAPPROVED:
                        raise Busy("too many login pages open")
                found.opened = True
                found.expires_at = found.created_at + LIFETIME_SECONDS
            return found

    def _end(self, interaction: Interaction, error: CardAuthError) -> None:
        """End a login the professional did not answer (under the lock). One that
        nobody will ever read about (its site may not, its page was never shown) is
        forgotten at once: it takes no place among the outcomes kept."""
        interaction.finish(State.FAILED, error=error)
        if not interaction.readable and not interaction.opened:
            self._forget(interaction)

    def _forget(self, interaction: Interaction) -> None:
        """Drop ``interaction`` from both indexes (under the lock)."""
        self._by_id.pop(interaction.id, None)
        if self._by_request.get(interaction.request_id) is interaction:
            del self._by_request[interaction.request_id]

    def _pending(self, which: Callable[[Interaction], bool]) -> list[Interaction]:
        """Pending interactions that ``which`` selects, oldest first (under the lock)."""
        return [i for i in self._by_id.values() if i.state is State.PENDING and which(i)]

    def _keep(self, interaction: Interaction) -> None:
        """Store ``interaction``; past MAX_KEPT, forget finished ones (a page that
        never collects its outcomes cannot grow the bridge's memory): first those
        whose outcome was collected or can never be read, oldest first, and only then
        the outcomes a site has yet to collect (a professional's answer is the last
        thing lost to other sites' logins)."""
        finished = [i for i in self._by_id.values() if i.state is not State.PENDING]
        finished.sort(key=lambda i: i.readable and not i.collected)  # stable: oldest first
        for oldest in finished[: max(0, len(self._by_id) - MAX_KEPT + 1)]:
            self._forget(oldest)
        self._by_id[interaction.id] = interaction
        self._by_request[interaction.request_id] = interaction

    def get(self, page_id: str) -> Interaction:
        with self._lock:
            self._purge()
            found = self._by_id.get(page_id)
        if found is None:
            raise InteractionUnknown("no such login waiting (it may have expired)")
        return found

    def for_request(self, request_id: str, origin: Origin) -> Interaction:
        """The interaction that ``origin`` asked for under ``request_id``."""
        with self._lock:
            self._purge()
            found = self._by_request.get(request_id)
        if found is None or found.origin != origin:
            raise InteractionUnknown("no such login for this site (it may have expired)")
        return found

    def collect(self, interaction: Interaction) -> None:
        """The asking page has the outcome: it is not given again. The bridge's page
        still shows it until the login would have expired (or MAX_KEPT pushes it
        out), so that the professional reads how it ended."""
        with self._lock:
            interaction.collected = True
            if self._by_request.get(interaction.request_id) is interaction:
                del self._by_request[interaction.request_id]

    def _purge(self) -> None:
        now = self._monotonic()
        for interaction in [i for i in self._by_id.values() if i.expires_at <= now]:
            interaction.finish(State.FAILED, error=InteractionUnknown("expired"))
            self._forget(interaction)


def _identifier(name: str, value: object) -> str:
    """A random identifier a page chose: 22 to 64 base64url characters."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise BadRequest(f"{name} is 22 to 64 base64url characters")
    return value


def detached(error: CardAuthError) -> CardAuthError:
    """``error`` without its traceback (nor those of the errors it came from): kept
    for minutes, the frames of a PIN check would keep the PIN typed in memory."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return error
