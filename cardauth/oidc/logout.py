"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the relying party
sends the browser to the ``end_session_endpoint`` with ``id_token_hint``,
``post_logout_redirect_uri`` and ``state``.

- ``id_token_hint`` must be an ID token this provider signed (a key it publishes),
  with its issuer, for a client it knows, and not expired. The specification lets a
  provider accept an expired one (§ 2); this one does not: the hint is what shows
  that the relying party asks, and an old token found in a log or a history would
  otherwise log anyone's browser out.
- ``post_logout_redirect_uri`` must be one the client registered, exactly (§ 3);
  the client is the hint's audience, or ``client_id`` when it agrees with it.
- Without a hint, the provider asks the professional to confirm on its own page
  (§ 2: protection against a logout forged by another site).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.errors import JoseError

from cardauth.oidc.clients import Client
from cardauth.oidc.errors import LogoutHintInvalid, LogoutRedirectInvalid
from cardauth.oidc.keys import ALGORITHMS, KeySet

MAX_HINT = 16 * 1024


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None
    redirect_uri: str | None
    state: str | None
    sid: str | None  # the session the hint names
    hinted: bool

    def redirect(self) -> str | None:
        if self.redirect_uri is None:
            return None
        if self.state is None:
            return self.redirect_uri
        parts = urlsplit(self.redirect_uri)
        query = f"{parts.query}&" if parts.query else ""
        return urlunsplit(parts._replace(query=query + urlencode({"state": self.state})))


def check_hint(
    hint: str, *, keys: KeySet, issuer: str, clients: Mapping[str, Client], now: dt.datetime
) -> tuple[Client, dict[str, Any]]:
    """The client and claims of an ID token this provider issued, still valid."""
    if len(hint) > MAX_HINT:
        raise LogoutHintInvalid("id_token_hint is too large")
    try:
        token = jwt.decode(hint, keys.verification_keys(now), algorithms=list(ALGORITHMS))
    except (JoseError, ValueError) as exc:
        raise LogoutHintInvalid(
            "id_token_hint is not an ID token of this provider", reason=type(exc).__name__
        ) from None
    found = token.claims
    if found.get("iss") != issuer:
        raise LogoutHintInvalid("id_token_hint was issued by another provider")
    expires = found.get("exp")
    if not isinstance(expires, int) or expires <= now.timestamp():
        raise LogoutHintInvalid("id_token_hint has expired")
    audience = found.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    client = next((clients[a] for a in audiences if isinstance(a, str) and a in clients), None)
    if client is None:
        raise LogoutHintInvalid("id_token_hint is for no known client")
    return client, found


def logout_request(
    params: Mapping[str, str],
    *,
    keys: KeySet,
    issuer: str,
    clients: Mapping[str, Client],
    now: dt.datetime,
) -> LogoutRequest:
    hint = params.get("id_token_hint")
    client_id = params.get("client_id")
    client, sid = None, None
    if hint:
        client, found = check_hint(hint, keys=keys, issuer=issuer, clients=clients, now=now)
        if client_id is not None and client_id != client.client_id:
            raise LogoutHintInvalid("client_id is not the id_token_hint's audience")
        sid = found.get("sid") if isinstance(found.get("sid"), str) else None
    elif client_id is not None:
        client = clients.get(client_id)
    redirect_uri = params.get("post_logout_redirect_uri")
    if redirect_uri is not None:
        if client is None:
            raise LogoutRedirectInvalid("post_logout_redirect_uri needs a known client")
        if not client.check_post_logout_redirect_uri(redirect_uri):
            raise LogoutRedirectInvalid(
                "post_logout_redirect_uri is not registered for this client",
                client_id=client.client_id,
            )
    state = params.get("state")
    return LogoutRequest(client, redirect_uri, state, sid, hinted=bool(hint))
