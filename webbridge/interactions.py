"""Logins waiting for the professional on the bridge's own page.

A page that needs the professional (a site not approved yet, or a PIN to type)
opens the bridge's page in a window of its own, by a form POST whose Origin
header the browser sets: that origin, never a value from the body, is the one
the assertion will carry. The page picks a random request identifier and polls
for the outcome with it; the bridge's page has an identifier of its own, in its
address, and a token that its form must send back.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from cardauth.errors import CardAuthError
from cardauth.origins import Origin
from webbridge.errors import BadRequest, Busy, Cancelled, InteractionUnknown

LIFETIME_SECONDS = 300.0  # as long as a teleservice's challenge
MAX_PENDING = 16
MAX_PENDING_PER_ORIGIN = 4  # beyond, a site's oldest waiting login is cancelled
MAX_KEPT = 256  # outcomes not collected yet; beyond, the oldest finished are forgotten
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")


class State(StrEnum):
    PENDING = "pending"
    OK = "ok"
    DECLINED = "declined"
    FAILED = "failed"


@dataclass(eq=False)
class Interaction:
    """One login waiting on the bridge's page."""

    id: str  # in the page's address
    request_id: str  # the asking page's, to fetch the outcome
    origin: Origin
    challenge: str
    with_vitale: bool
    token: str  # the page's form sends it back
    expires_at: float  # monotonic
    state: State = State.PENDING
    assertion: str | None = None
    error: CardAuthError | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def finish(
        self, state: State, *, assertion: str | None = None, error: CardAuthError | None = None
    ) -> None:
        self.state, self.assertion, self.error = state, assertion, error
        self.finished.set()

    def outcome(self) -> dict[str, object]:
        """What the asking page gets: the assertion once, or why there is none."""
        answer: dict[str, object] = {"status": self.state.value}
        if self.assertion is not None:
            answer["assertion"] = self.assertion
        if self.error is not None:
            answer["error"] = {"code": self.error.code}
        return answer


class Interactions:
    """The pending interactions, at most MAX_PENDING, each for LIFETIME_SECONDS."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._by_id: dict[str, Interaction] = {}
        self._by_request: dict[str, Interaction] = {}
        self._lock = threading.Lock()

    def create(
        self, *, origin: Origin, challenge: str, with_vitale: bool, request_id: str
    ) -> Interaction:
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            raise BadRequest("request_id is 22 to 64 base64url characters")
        with self._lock:
            self._purge()
            if request_id in self._by_request:
                raise BadRequest("request_id already used")
            self._cancel_oldest_of(origin)
            if sum(i.state is State.PENDING for i in self._by_id.values()) >= MAX_PENDING:
                raise Busy("too many logins waiting")
            interaction = Interaction(
                id=secrets.token_urlsafe(24),
                request_id=request_id,
                origin=origin,
                challenge=challenge,
                with_vitale=with_vitale,
                token=secrets.token_urlsafe(24),
                expires_at=self._monotonic() + LIFETIME_SECONDS,
            )
            self._keep(interaction)
            return interaction

    def record_failure(self, *, origin: Origin, request_id: str, error: CardAuthError) -> None:
        """A login the bridge refused to open: the asking page learns why when it
        collects the outcome (when its request id is usable and not taken)."""
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            return
        with self._lock:
            if request_id in self._by_request:
                return
            failed = Interaction(
                id=secrets.token_urlsafe(24),
                request_id=request_id,
                origin=origin,
                challenge="",
                with_vitale=False,
                token=secrets.token_urlsafe(24),
                expires_at=self._monotonic() + LIFETIME_SECONDS,
            )
            failed.finish(State.FAILED, error=error)
            self._keep(failed)

    def _keep(self, interaction: Interaction) -> None:
        """Store ``interaction``; past MAX_KEPT, forget the oldest finished ones (a
        page that never collects its outcomes cannot grow the bridge's memory)."""
        finished = (i for i in list(self._by_id.values()) if i.state is not State.PENDING)
        for _ in range(len(self._by_id) - MAX_KEPT + 1):
            oldest = next(finished, None)
            if oldest is None:
                break
            del self._by_id[oldest.id]
            self._by_request.pop(oldest.request_id, None)
        self._by_id[interaction.id] = interaction
        self._by_request[interaction.request_id] = interaction

    def _cancel_oldest_of(self, origin: Origin) -> None:
        waiting = [
            i for i in self._by_id.values() if i.origin == origin and i.state is State.PENDING
        ]
        for interaction in waiting[: max(0, len(waiting) - MAX_PENDING_PER_ORIGIN + 1)]:
            interaction.finish(State.FAILED, error=Cancelled("a newer login of the site"))

    def get(self, interaction_id: str) -> Interaction:
        with self._lock:
            self._purge()
            found = self._by_id.get(interaction_id)
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
        """The asking page has the outcome: it is not kept any longer."""
        with self._lock:
            self._by_id.pop(interaction.id, None)
            self._by_request.pop(interaction.request_id, None)

    def _purge(self) -> None:
        now = self._monotonic()
        for interaction in [i for i in self._by_id.values() if i.expires_at <= now]:
            if interaction.state is State.PENDING:
                interaction.finish(State.FAILED, error=InteractionUnknown("expired"))
            del self._by_id[interaction.id]
            self._by_request.pop(interaction.request_id, None)
