"""The CIBA endpoints: the clients' ``…/ext/ciba/auth`` (:mod:`cardauth.oidc.ciba`)
and the professionals' bridges' ``…/ext/ciba/bridge/*`` (:mod:`cardauth.oidc.bridges`).

Rate limits, in the provider's store: authentication requests per client and per
professional (a client, or several, cannot flood one professional's bridge with
requests to approve), and at most ``MAX_PENDING`` requests waiting at once for
one professional.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from typing import Any

import limits
from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Flask, Response, request
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from cardauth import web
from cardauth.challenges import issue_challenge
from cardauth.errors import AssertionRefused, Refusal
from cardauth.flask import CardAuth, extension
from cardauth.oidc.bridges import Bridges, bridge_key, challenge_session
from cardauth.oidc.ciba import (
    MAX_PENDING,
    AccessDenied,
    BackchannelRequests,
    UnknownUserId,
    parse_request,
)
from cardauth.oidc.clients import AUTH_METHODS, Client
from cardauth.oidc.errors import (
    BackchannelUnknown,
    ConfigError,
    OtherProfessional,
    StoreUnavailable,
)
from cardauth.oidc.settings import OIDC, ProviderSettings
from cardauth.oidc.store import OidcStore
from cardauth.verify import VerifiedLogin

AUTH = f"{OIDC}/ext/ciba/auth"
BRIDGE = f"{OIDC}/ext/ciba/bridge"


class CibaEndpoints:
    def __init__(
        self,
        server: Any,
        clients: dict[str, Client],
        settings: ProviderSettings,
        store: OidcStore,
        refusals: web.Refusals,
    ) -> None:
        self.server = server
        self.clients = clients
        self.origin = settings.checked_origin().value
        self.requests = BackchannelRequests(store)
        self.bridges = Bridges(store, lifetime=settings.session_hours * 3600)
        self.refusals = refusals
        uri = "memory://" if settings.store == "memory" else settings.store
        self._limiter = FixedWindowRateLimiter(storage_from_string(uri))
        try:
            self._per_client = limits.parse_many(settings.ciba_client_limit)
            self._per_professional = limits.parse_many(settings.ciba_professional_limit)
        except ValueError:
            raise ConfigError("a limit is written like 30/minute") from None

    def register(self, app: Flask) -> None:
        app.add_url_rule(AUTH, "ciba_auth", self.authenticate, methods=["POST"])
        for name in ("challenge", "enrol", "pending", "answer"):
            view = getattr(self, f"bridge_{name}")
            app.add_url_rule(f"{BRIDGE}/{name}", f"ciba_bridge_{name}", view, methods=["POST"])

    @property
    def cardauth(self) -> CardAuth:
        return extension()

    def now(self) -> int:
        return int(self.cardauth.clock().timestamp())

    # -- the clients' endpoint (CIBA § 7) ----------------------------------------------

    def authenticate(self) -> Response:
        oauth_request = self.server.create_oauth2_request(request)
        try:
            client = self.server.authenticate_client(oauth_request, AUTH_METHODS, "backchannel")
            self._limit(self._per_client, "ciba-client", client.client_id)  # probes count too
            asked = parse_request(client, oauth_request.form)
            if not self.bridges.follow(asked.idnat):
                raise UnknownUserId("no bridge follows this professional's requests")
            self._limit(self._per_professional, "ciba-idnat", asked.idnat)
            now = self.now()
            if len(self.requests.waiting_for(asked.idnat, now)) >= MAX_PENDING:
                raise AccessDenied("too many requests wait for this professional")
            found, auth_req_id = self.requests.open(
                asked, client, challenge_for=self._challenge, now=now
            )
        except OAuth2Error as error:
            response: Response = self.server.handle_error_response(oauth_request, error)
            return response
        answer = web.json_answer(
            {
                "auth_req_id": auth_req_id,
                "expires_in": found.remaining(now),
                "interval": found.interval,
            }
        )
        answer.headers["Cache-Control"] = "no-store"
        return answer

    def _limit(self, chosen: list[limits.RateLimitItem], name: str, key: str) -> None:
        try:
            refused = next(
                (
                    item
                    for item in chosen
                    if not self._limiter.hit(item, "cardauth-oidc", name, key)
                ),
                None,
            )
        except Exception as exc:  # the storage's own errors: refused, not let through
            raise StoreUnavailable("the rate limits' store is unavailable") from exc
        if refused is not None:
            raise AccessDenied(f"too many requests ({name}: {refused})")

    def _challenge(self, ref: str, lifetime: int) -> str:
        cardauth = self.cardauth
        return issue_challenge(
            cardauth.challenges,
            session=f"ciba:{ref}",
            now=cardauth.clock(),
            lifetime=dt.timedelta(seconds=lifetime),
        )

    # -- the bridges' endpoints ------------------------------------------------------

    def bridge_challenge(self) -> Response:
        """A challenge for the card to enrol the bridge's key (``key``: its JWK)."""
        body = web.json_object(request, self.refusals, allowed=("key",), required=("key",))
        key = bridge_key(body["key"])
        cardauth = self.cardauth
        challenge = issue_challenge(
            cardauth.challenges,
            session=challenge_session(key),
            now=cardauth.clock(),
            lifetime=cardauth.challenge_lifetime,
        )
        return web.json_answer({"challenge": challenge})

    def bridge_enrol(self) -> Response:
        """The bridge's key, enrolled for the professional whose card signed the
        challenge issued to that key."""
        names = ("key", "challenge", "assertion")
        body = web.json_object(request, self.refusals, allowed=names, required=names)
        key = bridge_key(body["key"])
        login = self._verify(body["assertion"], body["challenge"], challenge_session(key))
        bridge = self.bridges.enrol(key, login.professional.idnat)
        return web.json_answer({"idnat": bridge.idnat, "expires_in": int(self.bridges.lifetime)})

    def bridge_pending(self) -> Response:
        """The requests waiting for the bridge's professional."""
        body = web.json_object(request, self.refusals, allowed=("request",), required=("request",))
        now = self.now()
        bridge, _ = self.bridges.signed_call(body, address=self._address("pending"), now=now)
        clients = self.clients
        waiting = [
            {
                "ref": found.ref,
                "client_id": found.client_id,
                "client_name": clients[found.client_id].display_name
                if found.client_id in clients
                else found.client_id,
                "binding_message": found.binding_message,
                "scope": found.scope,
                "challenge": found.challenge,
                "expires_in": found.remaining(now),
            }
            for found in self.requests.waiting_for(bridge.idnat, now)
        ]
        return web.json_answer({"idnat": bridge.idnat, "requests": waiting})

    def bridge_answer(self) -> Response:
        """The professional's answer: ``decision`` ``approve`` with the card's
        ``assertion`` over the request's challenge, or ``decline``."""
        body = web.json_object(request, self.refusals, allowed=("request",), required=("request",))
        now = self.now()
        bridge, signed = self.bridges.signed_call(body, address=self._address("answer"), now=now)
        found = self.requests.get(signed.get("ref"))
        if (
            found is None
            or found.remaining(now) <= 0
            or not hmac.compare_digest(found.idnat.encode(), bridge.idnat.encode())
            or self.requests.answer_of(found) is not None
        ):
            raise BackchannelUnknown("no such request waits for this professional")
        decision = signed.get("decision")
        if decision == "approve":
            login = self._verify(signed.get("assertion"), found.challenge, f"ciba:{found.ref}")
            if not hmac.compare_digest(login.professional.idnat.encode(), found.idnat.encode()):
                raise OtherProfessional("the card is another professional's")
            answer: dict[str, Any] = {
                "approved": True,
                "professional": login.professional.to_dict(),
                "auth_time": now,
                "sid": secrets.token_urlsafe(16),
            }
        elif decision == "decline":
            answer = {"approved": False}
        else:
            raise self.refusals.bad_request("decision is approve or decline")
        if not self.requests.answer(found, answer, now):
            raise BackchannelUnknown("the request was answered already")
        return web.json_answer({"ref": found.ref, "decision": decision})

    def _address(self, name: str) -> str:
        return f"{self.origin}{BRIDGE}/{name}"

    def _verify(self, assertion: object, challenge: object, session: str) -> VerifiedLogin:
        cardauth = self.cardauth
        if not isinstance(assertion, str) or not isinstance(challenge, str):
            raise AssertionRefused(Refusal.CHALLENGE_UNKNOWN, "an assertion over the challenge")
        return cardauth.verifier.verify(
            assertion,
            expected_origins=cardauth.origins,
            expected_challenge=challenge,
            session=session,
            challenges_store=cardauth.challenges,
            now=cardauth.clock(),
        )
