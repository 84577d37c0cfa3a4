"""Following the CIBA requests of OpenID Connect providers (cardauth-oidc,
docs/oidc.md): a desktop software asks a provider to authenticate the
professional; the professional's bridge shows the request on its own page
(``/ciba``), and the card answers.

The bridge follows the providers it is configured with (``--oidc-provider
ISSUER``, or ``oidc_providers`` in its file), and only those. For each:

1. **Enrolment** (once per bridge run, on the professional's click and PIN on the
   bridge's page): the bridge holds a P-256 key, in memory only, and asks the
   provider for a challenge issued to that key; the card signs it in an ordinary
   card login bound to the provider's origin; the provider then knows that this key
   serves the professional whose certificate signed (their IdNat).
2. **Following**: every ``POLL_SECONDS``, a call signed with that key
   (``…/ext/ciba/bridge/pending``) lists the requests waiting for that
   professional: the software's name, the binding message, the scopes, and the
   challenge of each.
3. **Answering**, on the bridge's page: approving takes the PIN, and the card signs
   an assertion over the provider's origin and that request's challenge (the
   provider verifies it like a card login); declining sends a signed decline. A
   card pulled, a wrong PIN, a cancelled PIN entry: nothing is sent, the request
   still waits (until it expires).

What the provider lists is read as untrusted: a name or message that could hide
what it says on the page (controls, bidi overrides) is not shown, nor answered.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from cardauth.cards.session import Keypad
from cardauth.errors import CardAuthError, InvalidOrigin
from cardauth.jose import b64url_encode, canonical_json, serialize
from cardauth.origins import Origin
from webbridge.errors import (
    BridgeConfigError,
    CibaRequestGone,
    ProviderRefused,
    ProviderUnreachable,
)
from webbridge.operations import MAX_DOCUMENT_NAME, parse_document_name

POLL_SECONDS = 2.0
TIMEOUT_SECONDS = 10.0
BRIDGE_PATH = "/protocol/openid-connect/ext/ciba/bridge"
PROOF_TYPE = "cardauth-bridge+jwt"
MAX_ANSWER = 64 * 1024
_REF_LENGTH = 22

Authenticate = Callable[[Origin, str, "str | Keypad"], str]


@dataclass(frozen=True)
class Provider:
    """A provider the bridge follows: its issuer, and the origin card assertions
    for it are bound to."""

    issuer: str
    origin: Origin

    @classmethod
    def parse(cls, issuer: str, *, allow_development: bool) -> Provider:
        text = issuer.rstrip("/")
        scheme, _, rest = text.partition("://")
        host, slash, path = rest.partition("/")
        try:
            origin = Origin.parse(f"{scheme}://{host}", allow_development=allow_development)
        except InvalidOrigin as error:
            raise BridgeConfigError(
                f"oidc provider refused: {error.message}", setting="oidc_providers"
            ) from None
        if not slash or not path or any(c in path for c in "?#\\ "):
            raise BridgeConfigError(
                "an OpenID Connect provider is named by its issuer (origin and path)",
                setting="oidc_providers",
            )
        return cls(f"{origin.value}/{path}", origin)


class BridgeKey:
    """The key the bridge enrols with a provider (ES256), in memory only: a new run
    of the bridge enrols again."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        numbers = self._key.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big")),
        }
        # RFC 7638 § 3: SHA-256 of the required members, sorted, without spaces.
        self.thumbprint = b64url_encode(hashlib.sha256(canonical_json(self.jwk)).digest())

    def sign(self, payload: dict[str, Any]) -> str:
        header = {"alg": "ES256", "typ": PROOF_TYPE, "kid": self.thumbprint}

        def es256(data: bytes) -> bytes:  # RFC 7518 § 3.4: r || s
            r, s = utils.decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return serialize(header, payload, es256)


@dataclass(frozen=True)
class Waiting:
    """A request waiting for the professional, as the page shows it."""

    ref: str
    client_name: str
    binding_message: str
    scopes: tuple[str, ...]
    challenge: str
    expires_at: float  # monotonic


@dataclass
class Follower:
    """One provider followed: enrolment, the requests waiting, the answers."""

    provider: Provider
    post: Callable[[str, Mapping[str, Any]], dict[str, Any]]
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    key: BridgeKey = field(default_factory=BridgeKey)
    idnat: str | None = None  # the professional the enrolment proved
    problem: CardAuthError | None = None  # why the last refresh failed
    _waiting: dict[str, Waiting] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def address(self, name: str) -> str:
        return f"{self.provider.issuer}{BRIDGE_PATH}/{name}"

    def enrol(self, authenticate: Authenticate, pin: str | Keypad) -> str:
        """Enrol the bridge's key with the card (the PIN typed for it)."""
        answer = self.post(self.address("challenge"), {"key": self.key.jwk})
        challenge = answer.get("challenge")
        if not isinstance(challenge, str):
            raise ProviderRefused("the provider gave no challenge")
        assertion = authenticate(self.provider.origin, challenge, pin)
        body = {"key": self.key.jwk, "challenge": challenge, "assertion": assertion}
        enrolled = self.post(self.address("enrol"), body)
        idnat = enrolled.get("idnat")
        if not isinstance(idnat, str) or not idnat.isascii() or not 1 <= len(idnat) <= 40:
            raise ProviderRefused("the provider's enrolment names no professional")
        with self._lock:
            self.idnat, self.problem = idnat, None
            self._waiting.clear()
        self.refresh()
        return idnat

    def signed(self, name: str, **members: Any) -> dict[str, Any]:
        claims = {
            "htu": self.address(name),
            "iat": int(self.clock()),
            "jti": secrets.token_urlsafe(24),
            **members,
        }
        return self.post(self.address(name), {"request": self.key.sign(claims)})

    def refresh(self) -> None:
        """The requests waiting now (nothing when not enrolled). A bridge the
        provider no longer knows (its enrolment ended) must enrol again."""
        if self.idnat is None:
            return
        try:
            answer = self.signed("pending")
        except ProviderRefused as refused:
            with self._lock:
                if refused.context.get("provider_code") == "ciba.bridge_unknown":
                    self.idnat = None
                self.problem = refused
                self._waiting.clear()
            return
        except ProviderUnreachable as unreachable:
            with self._lock:
                self.problem = unreachable
            return
        now = self.monotonic()
        found = answer.get("requests")
        listed = found if isinstance(found, list) else []
        waiting = [w for w in (_waiting(item, now) for item in listed) if w is not None]
        with self._lock:
            self.problem = None
            self._waiting = {w.ref: w for w in waiting}

    def waiting(self) -> list[Waiting]:
        now = self.monotonic()
        with self._lock:
            return [w for w in self._waiting.values() if w.expires_at > now]

    def find(self, ref: str) -> Waiting:
        found = next((w for w in self.waiting() if w.ref == ref), None)
        if found is None:
            raise CibaRequestGone("this request no longer waits (answered or expired)")
        return found

    def approve(self, ref: str, authenticate: Authenticate, pin: str | Keypad) -> None:
        """The card signs the request's challenge for the provider's origin (a card
        pulled, a wrong PIN: the card layer's error, and nothing is sent)."""
        waiting = self.find(ref)
        assertion = authenticate(self.provider.origin, waiting.challenge, pin)
        self._answer(ref, "approve", assertion=assertion)

    def decline(self, ref: str) -> None:
        self._answer(self.find(ref).ref, "decline")

    def _answer(self, ref: str, decision: str, **members: str) -> None:
        try:
            self.signed("answer", ref=ref, decision=decision, **members)
        finally:
            with self._lock:
                self._waiting.pop(ref, None)


def _waiting(value: object, now: float) -> Waiting | None:
    """One listed request, if every part of it can be shown as it is."""
    if not isinstance(value, dict):
        return None
    ref, challenge, expires_in = value.get("ref"), value.get("challenge"), value.get("expires_in")
    scope = value.get("scope")
    try:
        name = parse_document_name(value.get("client_name"))
        message = parse_document_name(value.get("binding_message"))
    except CardAuthError:
        return None
    if not (
        isinstance(ref, str)
        and len(ref) == _REF_LENGTH
        and ref.isascii()
        and isinstance(challenge, str)
        and isinstance(scope, str)
        and len(scope) <= MAX_DOCUMENT_NAME
        and type(expires_in) is int
        and 0 < expires_in <= 3600
    ):
        return None
    return Waiting(ref, name, message, tuple(scope.split()), challenge, now + expires_in)


def post_json(url: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST ``body`` as JSON to a provider; its JSON answer, or its refusal as
    :class:`ProviderRefused` (with the provider's code), or
    :class:`ProviderUnreachable`."""
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - https or a development loopback origin, checked at start
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            return _json_object(answer.read(MAX_ANSWER + 1))
    except urllib.error.HTTPError as error:
        refusal = _json_object(error.read(MAX_ANSWER + 1), strict=False).get("error")
        code = refusal.get("code") if isinstance(refusal, dict) else None
        raise ProviderRefused(
            f"the provider refused ({error.code})",
            provider_code=code if isinstance(code, str) else None,
            status=502,
        ) from None
    except (OSError, ValueError) as error:
        raise ProviderUnreachable(
            "the provider does not answer", reason=type(error).__name__
        ) from None


def _json_object(data: bytes, *, strict: bool = True) -> dict[str, Any]:
    try:
        value = json.loads(data) if len(data) <= MAX_ANSWER else None
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    if strict:
        raise ValueError("the provider's answer is not a JSON object")
    return {}


class Followers:
    """Every provider followed, refreshed in a thread of their own."""

    def __init__(self, followers: list[Follower], *, poll_seconds: float = POLL_SECONDS) -> None:
        self.all = followers
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cardauth-ciba", daemon=True)

    def start(self) -> Followers:
        if self.all:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=TIMEOUT_SECONDS + 1)

    def get(self, index: int) -> Follower:
        if not 0 <= index < len(self.all):
            raise CibaRequestGone("no such provider is followed")
        return self.all[index]

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            for follower in self.all:
                follower.refresh()
