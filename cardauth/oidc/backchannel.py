"""OpenID Connect Back-Channel Logout 1.0: when a provider session ends (the CPS
card left the reader, the professional logged out, the session's time is up),
every relying party that holds a session from it is told, server to server.

- **Who to tell** (:class:`SessionClients`): when a relying party receives tokens
  from a provider session, the pair (client, ``sub``) is added to the set of that
  session (its ``sid``), in the store, so that any process ends it. Ending the
  session takes the set out atomically: one process sends the tokens, once. The
  session's end by its age is scheduled in the store too, and a
  :class:`Sweeper` thread of each process ends those whose time has come.
- **What** (:func:`logout_token`, § 2.4): a JWT signed like the client's ID tokens,
  header ``typ`` ``logout+jwt`` (§ 2.4, explicit typing), with ``iss``, ``aud``,
  ``iat``, ``exp``, ``jti``, ``sub``, ``sid`` and ``events``
  ``{"http://schemas.openid.net/event/backchannel-logout": {}}``; never ``nonce``.
- **How** (:class:`Deliveries`, § 2.5): POSTed as ``logout_token`` form data to the
  client's ``backchannel_logout_uri``, from a small pool of background threads
  (never from the request that ended the session), each attempt bounded by a
  timeout, a few attempts for a relying party that does not answer or answers 5xx,
  redirects not followed; one relying party down does not delay the others. Each
  outcome goes to the audit trail.

A process that stops while tokens are being sent loses those not yet sent (the
relying parties' sessions then end with their own lifetime): docs/oidc.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from joserfc import jwt

from cardauth.oidc.clients import Client
from cardauth.oidc.errors import StoreUnavailable
from cardauth.oidc.grants import digest
from cardauth.oidc.keys import KeySet
from cardauth.oidc.store import OidcStore

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type, § 2.4
TOKEN_LIFETIME = 120  # seconds: the token is used at once, by a server
TIMEOUT = 3.0  # seconds per attempt
ATTEMPTS = 3
BACKOFF = 0.5  # seconds before the second attempt, doubled before each next one
WORKERS = 4
MAX_PENDING = 1000  # deliveries waiting for a worker; beyond, dropped (and audited)
_LOG = logging.getLogger("cardauth.oidc.backchannel")


_ENDS = "session-ends"  # the schedule of the provider sessions' ends
SWEEP_MARGIN = 3600.0  # seconds a session's set outlives its end, for the sweep to find it


class SessionClients:
    """Per provider session, the relying parties it logged in to, in the store."""

    def __init__(self, store: OidcStore, lifetime: float) -> None:
        self.store = store
        self.lifetime = lifetime

    @staticmethod
    def _key(sid: str) -> str:
        return f"sid-clients:{digest(sid)}"

    def record(self, sid: str, client_id: str, sub: str, *, ends_at: float) -> None:
        """``client_id`` holds a session from ``sid``, which ends at ``ends_at``
        (POSIX seconds) unless it ends before."""
        self.store.add(self._key(sid), json.dumps([client_id, sub]), self.lifetime + SWEEP_MARGIN)
        self.store.schedule(_ENDS, sid, ends_at)

    def due(self, now: float) -> list[str]:
        """The sessions whose end has come, each given to one caller only."""
        return self.store.take_due(_ENDS, now)

    def take(self, sid: str) -> list[tuple[str, str]]:
        """The (client, sub) pairs of ``sid``, which is then forgotten."""
        pairs = []
        for member in self.store.take_members(self._key(sid)):
            found = json.loads(member)
            pairs.append((str(found[0]), str(found[1])))
        return sorted(pairs)


class Sweeper:
    """Calls ``sweep`` every ``interval`` seconds in a thread of its own, until
    :meth:`close`. A store that does not answer is tried again next time."""

    def __init__(self, sweep: Callable[[], object], interval: float) -> None:
        self._sweep = sweep
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sweep()
            except StoreUnavailable:
                _LOG.warning("session sweep: the store is unavailable; trying again later")


def logout_token(
    client: Client, *, sid: str, sub: str, issuer: str, keys: KeySet, now: dt.datetime
) -> str:
    """§ 2.4, signed with the provider's current key of the client's ID token
    algorithm (what the relying party already checks ID tokens with)."""
    key = keys.signing_key(client.id_token_signed_response_alg, now)
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client.client_id,
        "iat": issued,
        "exp": issued + TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(24),
        "sub": sub,
        "sid": sid,
        "events": {EVENT: {}},
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": TOKEN_TYPE}
    return jwt.encode(header, claims, key.key)


@dataclass(frozen=True)
class Delivery:
    client_id: str
    uri: str
    token: str
    sub: str


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery: ``delivered``, ``refused`` (the relying party
    answered 4xx or a redirect), ``failed`` (no answer or 5xx after every attempt),
    ``dropped`` (too many pending)."""

    delivery: Delivery
    result: str
    attempts: int
    status: int | None
    reason: str | None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer (an HTTPError), not followed


class Deliveries:
    """Background delivery of logout tokens; ``report`` gets every outcome."""

    def __init__(
        self,
        report: Callable[[Outcome], None],
        *,
        timeout: float = TIMEOUT,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
    ) -> None:
        self._report = report
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="backchannel-logout")
        self._pending = threading.BoundedSemaphore(MAX_PENDING)

    def send(self, deliveries: list[Delivery]) -> None:
        """Queue ``deliveries``; returns at once."""
        for delivery in deliveries:
            if not self._pending.acquire(blocking=False):
                self._report(Outcome(delivery, "dropped", 0, None, "queue full"))
                continue
            self._pool.submit(self._deliver, delivery)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _deliver(self, delivery: Delivery) -> None:
        try:
            self._report(self._attempt_all(delivery))
        except Exception:  # a report that fails must not kill the worker
            _LOG.exception("back-channel logout report failed")
        finally:
            self._pending.release()

    def _attempt_all(self, delivery: Delivery) -> Outcome:
        status, reason = None, None
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                time.sleep(self._backoff * 2 ** (attempt - 2))
            status, reason = self._post(delivery)
            if status is not None and 200 <= status < 300:
                return Outcome(delivery, "delivered", attempt, status, None)
            if status is not None and status < 500:  # the relying party's answer: final
                return Outcome(delivery, "refused", attempt, status, reason)
        return Outcome(delivery, "failed", self._attempts, status, reason)

    def _post(self, delivery: Delivery) -> tuple[int | None, str | None]:
        body = urllib.parse.urlencode({"logout_token": delivery.token}).encode()
        request = urllib.request.Request(  # noqa: S310 - a registered http(s) URI
            delivery.uri,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as answer:
                return int(answer.status), None
        except urllib.error.HTTPError as error:
            return int(error.code), f"HTTP {error.code}"
        except (OSError, ValueError) as error:  # refused, reset, timeout, bad address
            return None, type(error).__name__


def deliveries_for(
    pairs: list[tuple[str, str]],
    *,
    sid: str,
    clients: Mapping[str, Client],
    issuer: str,
    keys: KeySet,
    now: dt.datetime,
) -> list[Delivery]:
    """A logout token for each relying party of the session that registered a
    ``backchannel_logout_uri``."""
    found = []
    for client_id, sub in pairs:
        client = clients.get(client_id)
        if client is None or client.backchannel_logout_uri is None:
            continue
        token = logout_token(client, sid=sid, sub=sub, issuer=issuer, keys=keys, now=now)
        found.append(Delivery(client_id, client.backchannel_logout_uri, token, sub))
    return found
