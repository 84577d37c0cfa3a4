"""Browser sessions kept in the provider's store, not in a cookie nor in a process.

The cookie holds a random identifier only; the session (the card login's pending
challenge, then the professional the verifier certified) is in the store
(Redis when the provider runs as several processes), so any process answers any
request of a login, and a logout ends the session everywhere.

Clearing a session (what the card login does when it succeeds, and a logout) gives
it a new identifier when it is saved: the identifier a browser held before logging
in is worth nothing after (no session fixation).

A store that does not answer (Redis down, a failover going on) refuses the
request: a session that cannot be read is opened empty and marked
``unavailable`` (the provider raises it before anything else runs:
:func:`require_store`), and a session that cannot be kept turns the answer into the
refusal (``refuse``): a browser is never told it logged in when its session is lost.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from cardauth.oidc.errors import StoreUnavailable
from cardauth.oidc.store import OidcStore

COOKIE = "cardauth_oidc"
_PREFIX = "session:"


class StoredSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def changed(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, changed)
        self.sid = sid
        self.modified = False
        self.renew = False
        self.unavailable: StoreUnavailable | None = None

    def clear(self) -> None:
        super().clear()
        self.renew = True  # a new identifier when saved


class StoreSessionInterface(SessionInterface):
    def __init__(
        self,
        store: OidcStore,
        *,
        lifetime: float,
        secure: bool,
        refuse: Callable[[StoreUnavailable], Response],
    ) -> None:
        self.store = store
        self.lifetime = lifetime
        self.secure = secure
        self.refuse = refuse

    def open_session(self, app: Flask, request: Request) -> StoredSession:
        sid = request.cookies.get(COOKIE)
        if sid and len(sid) == 43 and sid.isascii():
            try:
                found = self.store.get(_PREFIX + sid)
            except StoreUnavailable as error:
                empty = StoredSession()
                empty.unavailable = error
                return empty
            if found is not None:
                return StoredSession(json.loads(found), sid)
        return StoredSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, StoredSession) or session.unavailable is not None:
            return  # it could not be read: the refusal is the answer, nothing to keep
        try:
            self._save(session, response)
        except StoreUnavailable as error:
            refusal = self.refuse(error)
            response.status_code = refusal.status_code
            response.headers.clear()
            response.headers.extend(refusal.headers)
            response.set_data(refusal.get_data())

    def _save(self, session: StoredSession, response: Response) -> None:
        if session.renew and session.sid is not None:
            self.store.delete(_PREFIX + session.sid)
            self.store.replicated()  # an ended session a failover would bring back: refused
            session.sid = None
        if not session:
            if session.sid is not None or session.renew:
                if session.sid is not None:
                    self.store.delete(_PREFIX + session.sid)
                response.delete_cookie(COOKIE, path="/", secure=self.secure, httponly=True)
            return
        if not (session.modified or session.renew) and session.sid is not None:
            return
        sid = session.sid or secrets.token_urlsafe(32)
        self.store.put(_PREFIX + sid, json.dumps(dict(session)), self.lifetime)
        if sid != session.sid:
            response.set_cookie(
                COOKIE,
                sid,
                httponly=True,
                secure=self.secure,
                samesite="Lax",  # sent on the relying party's redirect here (a top-level GET)
                path="/",
            )
            session.sid = sid

    def end(self, sid: str) -> None:
        self.store.delete(_PREFIX + sid)


def require_store() -> None:
    """Before anything else of a request: the session's store answered (a
    ``before_request`` hook of the provider)."""
    found = session
    if isinstance(found, StoredSession) and found.unavailable is not None:
        raise found.unavailable
