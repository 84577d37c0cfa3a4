"""Client-Initiated Backchannel Authentication (OpenID Connect CIBA Core 1.0), poll
mode, at PSC's address ``…/protocol/openid-connect/ext/ciba/auth``.

1. A client (desktop software's backend) posts ``scope`` (with ``openid``),
   ``login_hint`` (the professional's IdNat), ``binding_message`` and optionally
   ``acr_values`` and PSC's ``channel=CARD``, authenticated as at the token endpoint
   (CIBA § 7.1). The provider answers ``auth_req_id`` (random, kept in the store
   under its digest), ``expires_in`` and ``interval`` (§ 7.3).
2. The professional's bridge, enrolled for their IdNat (:mod:`cardauth.oidc.bridges`),
   finds the request, shows it on its own page, and answers with a card assertion
   over the request's challenge (approve) or a decline.
3. The client polls the token endpoint with ``grant_type=urn:openid:params:grant-type:ciba``
   and ``auth_req_id`` (§ 10.1): ``authorization_pending`` until the professional
   answers, ``slow_down`` (and an interval 5 seconds longer, § 11) when it polls
   faster than ``interval``, ``access_denied`` when declined, ``expired_token`` past
   ``expires_in``, ``invalid_grant`` for an auth_req_id unknown, already used, or
   another client's. Tokens are issued once: the auth_req_id is taken out of the
   store atomically, with a mark left that says it was used.

Everything is in the provider's store (Redis with several processes): a request
started on one process is answered and polled on any other.
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc8628 import AuthorizationPendingError, ExpiredTokenError, SlowDownError

from cardauth.errors import CardAuthError
from cardauth.identifiers import IdNat
from cardauth.oidc import claims
from cardauth.oidc.clients import CIBA_GRANT, SCOPES, Client
from cardauth.oidc.grants import CardLoginClaims, Holder, digest, services
from cardauth.oidc.store import OidcStore

LIFETIME = 120  # seconds, as PSC's expires_in
INTERVAL = 1  # seconds between polls, as PSC's
SLOW_DOWN_STEP = 5  # CIBA § 11 (and RFC 8628 § 3.5): the interval grows by 5 seconds
GRACE = 600  # a request's records outlive it, to answer expired_token and used ids
MAX_BINDING_MESSAGE = 64  # characters: read at a glance on the bridge's page
MAX_PENDING = 5  # requests waiting at once for one professional
CHANNELS = ("CARD",)  # PSC's channel; MOBILE (the e-CPS app) is not served here
_AUTH_REQ_ID_LENGTH = 43  # 32 random bytes in base64url


class UnknownUserId(OAuth2Error):
    """CIBA § 13: the hint names no professional this provider can reach."""

    error = "unknown_user_id"


class InvalidBindingMessage(OAuth2Error):
    """CIBA § 13: a binding message missing, too long, or not plain printable text."""

    error = "invalid_binding_message"


class AccessDenied(OAuth2Error):
    """CIBA § 13 (at the backchannel endpoint) and § 11 (when polling): refused."""

    error = "access_denied"
    status_code = 403


class PollAccessDenied(AccessDenied):
    """The professional declined: at the token endpoint, 400 as every § 11 error."""

    status_code = 400


def check_binding_message(value: object) -> str:
    """A short line of printable text: no control, format (bidi overrides, zero-width
    characters), private-use, unassigned or line-separator character, so that what
    the bridge's page shows is what the client's screen shows (CIBA § 7.1)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidBindingMessage("binding_message is required (the professional compares it)")
    if len(value) > MAX_BINDING_MESSAGE:
        raise InvalidBindingMessage(f"binding_message is {MAX_BINDING_MESSAGE} characters at most")
    for character in value:
        category = unicodedata.category(character)
        if (
            category[0] == "C"
            or category in ("Zl", "Zp")
            or (category == "Zs" and character != " ")
        ):
            raise InvalidBindingMessage("binding_message is printable text on one line")
    if unicodedata.normalize("NFC", value) != value:
        raise InvalidBindingMessage("binding_message is in Unicode normal form C")
    return value


@dataclass
class BackchannelRequest:
    """One CIBA request, as the store keeps it."""

    ref: str  # its name for the bridge (never the auth_req_id, the client's secret)
    client_id: str
    idnat: str
    scope: str
    binding_message: str
    challenge: str  # what the card signs to approve it
    created_at: int
    expires_at: int
    interval: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def remaining(self, now: int) -> int:
        return max(0, self.expires_at - now)


@dataclass(frozen=True)
class Approval(CardLoginClaims):
    """What the token endpoint needs of an approved request: Authlib's
    authorization-code interface (for the ID token's claims) and what
    :class:`~cardauth.oidc.grants.TokenRecord` keeps."""

    professional: dict[str, Any]
    auth_time: int
    sid: str
    grant: str
    scope: str

    def get_nonce(self) -> None:
        return None  # CIBA § 10.1.1: no nonce

    def get_scope(self) -> str:
        return self.scope


class BackchannelRequests:
    """The requests in the store.

    - ``ciba:{ref}``: the request; ``ciba-id:{digest(auth_req_id)}``: its ref;
    - ``ciba-for:{idnat}``: the refs of one professional's requests (a set);
    - ``ciba-answer:{ref}``: the professional's answer, written once (``SET NX``:
      the first answer stands, on whichever process it arrives);
    - ``ciba-poll:{ref}``: lives ``interval`` seconds after each poll (a poll that
      finds it is too early: ``slow_down``);
    - ``ciba-used:{digest}``: left when the tokens were issued.
    """

    def __init__(self, store: OidcStore) -> None:
        self.store = store

    def open(
        self, asked: Asked, client: Client, *, challenge_for: Callable[[str, int], str], now: int
    ) -> tuple[BackchannelRequest, str]:
        """Keep a new request: it and its ``auth_req_id`` (32 random bytes)."""
        ref = secrets.token_urlsafe(16)
        request = BackchannelRequest(
            ref=ref,
            client_id=client.client_id,
            idnat=asked.idnat,
            scope=asked.scope,
            binding_message=asked.binding_message,
            challenge=challenge_for(ref, asked.lifetime),
            created_at=now,
            expires_at=now + asked.lifetime,
            interval=INTERVAL,
        )
        auth_req_id = secrets.token_urlsafe(32)
        life = asked.lifetime + GRACE
        self.store.put(f"ciba:{request.ref}", request.to_json(), life)
        self.store.put(f"ciba-id:{digest(auth_req_id)}", request.ref, life)
        self.store.add(f"ciba-for:{request.idnat}", request.ref, LIFETIME)
        return request, auth_req_id

    def get(self, ref: object) -> BackchannelRequest | None:
        if not isinstance(ref, str) or not ref.isascii() or len(ref) != 22:
            return None
        found = self.store.get(f"ciba:{ref}")
        return BackchannelRequest(**json.loads(found)) if found is not None else None

    def save(self, request: BackchannelRequest, now: int) -> None:
        life = request.remaining(now) + GRACE
        self.store.put(f"ciba:{request.ref}", request.to_json(), life)

    def waiting_for(self, idnat: str, now: int) -> list[BackchannelRequest]:
        """The professional's requests not answered and not expired, oldest first."""
        found = [self.get(ref) for ref in self.store.members(f"ciba-for:{idnat}")]
        waiting = [
            request
            for request in found
            if request is not None
            and request.remaining(now) > 0
            and self.store.get(f"ciba-answer:{request.ref}") is None
        ]
        return sorted(waiting, key=lambda request: (request.created_at, request.ref))

    def answer(self, request: BackchannelRequest, answer: Mapping[str, Any], now: int) -> bool:
        """Record the professional's answer; False if one was recorded before."""
        life = request.remaining(now) + GRACE
        return self.store.put(f"ciba-answer:{request.ref}", json.dumps(answer), life, only_new=True)

    def find(self, auth_req_id: object) -> tuple[str, BackchannelRequest | None]:
        """The request an auth_req_id names (its digest too, to take it later)."""
        if not isinstance(auth_req_id, str) or len(auth_req_id) != _AUTH_REQ_ID_LENGTH:
            return "", None
        key = digest(auth_req_id)
        ref = self.store.get(f"ciba-id:{key}")
        return key, (self.get(ref) if ref is not None else None)

    def was_used(self, key: str) -> bool:
        return bool(key) and self.store.get(f"ciba-used:{key}") is not None

    def polled_too_soon(self, request: BackchannelRequest) -> bool:
        """Whether the previous poll was less than ``interval`` seconds ago; each
        poll starts a new interval."""
        return not self.store.put(f"ciba-poll:{request.ref}", "1", request.interval, only_new=True)

    def slow_down(self, request: BackchannelRequest, now: int) -> None:
        request.interval += SLOW_DOWN_STEP
        self.save(request, now)
        self.store.put(f"ciba-poll:{request.ref}", "1", request.interval)

    def answer_of(self, request: BackchannelRequest) -> dict[str, Any] | None:
        found = self.store.get(f"ciba-answer:{request.ref}")
        return json.loads(found) if found is not None else None

    def take(self, key: str) -> bool:
        """Whether this poll is the one that gets the tokens (one, however many
        processes race on the same auth_req_id)."""
        return (
            self.store.take_and_mark(f"ciba-id:{key}", f"ciba-used:{key}", "1", GRACE) is not None
        )


@dataclass(frozen=True)
class Asked:
    """An authentication request as the client sent it, validated."""

    scope: str
    idnat: str
    binding_message: str
    lifetime: int


def parse_request(client: Client, data: Mapping[str, Any]) -> Asked:
    """Validate an authentication request (CIBA § 7.1, § 7.2; PSC's ``channel``)."""
    if not client.check_grant_type(CIBA_GRANT):
        raise UnauthorizedClientError("this client is not registered for CIBA in poll mode")
    scope = data.get("scope")
    if not isinstance(scope, str) or "openid" not in scope.split():
        raise InvalidScopeError("scope must include openid (CIBA, section 7.1)")
    if any(name in data for name in ("id_token_hint", "login_hint_token")):
        raise InvalidRequestError("the professional is named by login_hint (the IdNat) only")
    if "client_notification_token" in data:
        raise InvalidRequestError("poll mode only: no client_notification_token")
    acr_values = data.get("acr_values")
    if acr_values is not None and claims.ACR not in str(acr_values).split():
        raise InvalidRequestError(f"a card approval reaches acr {claims.ACR} only")
    if data.get("channel", "CARD") not in CHANNELS:
        raise InvalidRequestError("channel is CARD (the CPS card in the bridge's reader)")
    return Asked(
        scope=" ".join(s for s in scope.split() if s in SCOPES),
        idnat=_idnat(data.get("login_hint")),
        binding_message=check_binding_message(data.get("binding_message")),
        lifetime=_expiry(data.get("requested_expiry")),
    )


def _idnat(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 40:
        raise UnknownUserId("login_hint is the professional's IdNat")
    try:
        parsed = IdNat.parse(value)
    except CardAuthError:
        raise UnknownUserId("login_hint is not an IdNat (8 + RPPS, 0 + ADELI...)") from None
    if str(parsed) != value:
        raise UnknownUserId("login_hint is an IdNat as written in the card's certificate")
    return value


def _expiry(value: object) -> int:
    """CIBA § 7.1 ``requested_expiry``: shorter than the provider's lifetime only."""
    if value is None:
        return LIFETIME
    text = str(value)
    if not (text.isascii() and text.isdigit() and len(text) <= 4 and int(text) >= 10):
        raise InvalidRequestError("requested_expiry is a number of seconds, 10 at least")
    return min(int(text), LIFETIME)


class CibaGrant(BaseGrant, TokenEndpointMixin):
    """The token endpoint's ``urn:openid:params:grant-type:ciba`` (CIBA § 10.1)."""

    GRANT_TYPE = CIBA_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]

    def validate_token_request(self) -> None:
        auth_req_id = self.request.form.get("auth_req_id")
        if not auth_req_id:
            raise InvalidRequestError("auth_req_id is required")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("this client is not registered for CIBA")
        found = services(self)
        requests = BackchannelRequests(found.store)
        key, backchannel = requests.find(auth_req_id)
        if backchannel is None:
            used = requests.was_used(key)
            raise InvalidGrantError("auth_req_id already used" if used else "unknown auth_req_id")
        if backchannel.client_id != client.client_id:
            raise InvalidGrantError("unknown auth_req_id")  # another client's: nothing said
        now = int(found.clock().timestamp())
        if backchannel.remaining(now) <= 0:
            raise ExpiredTokenError("the request expired: start a new one")
        answer = requests.answer_of(backchannel)
        if answer is None:
            if requests.polled_too_soon(backchannel):
                requests.slow_down(backchannel, now)
                raise SlowDownError(f"poll every {backchannel.interval} seconds at most")
            raise AuthorizationPendingError("the professional has not answered yet")
        if not answer.get("approved"):
            raise PollAccessDenied("the professional declined")
        if not requests.take(key):
            raise InvalidGrantError("auth_req_id already used")
        self.request.client = client
        self.request.user = Holder(answer["professional"], answer["sid"], answer["auth_time"])
        self.request.authorization_code = Approval(
            professional=answer["professional"],
            auth_time=int(answer["auth_time"]),
            sid=str(answer["sid"]),
            grant=digest("ciba:" + backchannel.ref),
            scope=backchannel.scope,
        )

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        approval = self.request.authorization_code
        token = self.generate_token(
            user=self.request.user, scope=approval.get_scope(), include_refresh_token=False
        )
        self.save_token(token)
        result = (200, token, self.TOKEN_RESPONSE_HEADER)
        self.execute_hook("after_create_token_response", result)  # the ID token, added
        return result
