"""The authorization code flow on Authlib's server, with what PSC expects and the
store that several processes share.

- Authorization requests (RFC 6749 § 4.1.1, OpenID Connect Core § 3.1.2.1): scope
  with ``openid`` (``scope_all`` as PSC's), ``nonce`` required, PKCE required with
  S256 only (RFC 7636; ``plain`` is refused), ``acr_values``, if given, must allow
  ``eidas1`` (the only level a card login reaches).
- Codes: random, kept in the store under their digest for 60 seconds, bound to the
  client, the redirect URI, the PKCE challenge, the nonce and the browser session.
  A code is taken out of the store atomically when it is exchanged (two processes
  racing on one code: one wins); a code presented again is refused, and the tokens
  issued from it are revoked (RFC 6749 § 4.1.2).
- Tokens: random access tokens, kept under their digest with the professional and
  their grant, for introspection (RFC 7662), revocation (RFC 7009) and userinfo.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from joserfc import jwk

from cardauth.oidc import claims
from cardauth.oidc.clients import Client
from cardauth.oidc.keys import KeySet, SigningKey
from cardauth.oidc.store import OidcStore


def digest(secret: str) -> str:
    """What the store keeps of a code or token (a stolen dump gives none of them)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Holder:
    """The professional logged in by card, as the session holds them."""

    professional: Mapping[str, Any]
    sid: str
    auth_time: int

    def get_user_id(self) -> str:
        return claims.subject(self.professional)


class CardLoginClaims:
    """What Authlib asks of a grant for an ID token's claims about the login: when
    it was, and that it was the card with its PIN (``acr``, ``amr``)."""

    auth_time: int

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str:
        return claims.ACR

    def get_amr(self) -> list[str]:
        return list(claims.AMR)


@dataclass
class CodeRecord(CardLoginClaims):
    """An authorization code's record (Authlib's ``AuthorizationCodeMixin``)."""

    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    professional: dict[str, Any]
    sid: str
    auth_time: int
    grant: str  # names the tokens issued from this code, to revoke them on a replay
    code: str = field(default="", repr=False)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def to_json(self) -> str:
        values = asdict(self)
        values.pop("code")
        return json.dumps(values)


@dataclass
class TokenRecord:
    """An access token's record (Authlib's ``TokenMixin``)."""

    client_id: str
    scope: str
    professional: dict[str, Any]
    sid: str
    grant: str
    issued_at: int
    expires_at: int
    revoked: bool = False
    token: str = field(default="", repr=False)  # the token itself: never stored

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> Holder:
        return Holder(self.professional, self.sid, self.issued_at)

    def get_client(self) -> str:
        return self.client_id


class Tokens:
    """Access tokens in the store: one record per token, a set per grant."""

    def __init__(self, store: OidcStore) -> None:
        self.store = store

    def save(self, access_token: str, record: TokenRecord) -> None:
        life = max(1, record.expires_at - int(time.time()))
        values = asdict(record)
        values.pop("token")
        self.store.put(f"token:{digest(access_token)}", json.dumps(values), life)
        self.store.add(f"grant:{record.grant}", digest(access_token), life)

    def find(self, access_token: str) -> TokenRecord | None:
        if not isinstance(access_token, str) or not 20 <= len(access_token) <= 200:
            return None
        found = self.store.get(f"token:{digest(access_token)}")
        if found is None:
            return None
        record = TokenRecord(**json.loads(found))
        if self.store.get(f"revoked-grant:{record.grant}") is not None:
            record.revoked = True
        return record

    def revoke(self, access_token: str) -> None:
        self.store.delete(f"token:{digest(access_token)}")
        self.store.replicated()  # a revocation a failover would undo is refused

    def revoke_grant(self, grant: str, lifetime: float) -> None:
        """Every token issued from one code, and any issued later from it (a replay
        that races the first exchange): the grant is marked, then its tokens go."""
        self.store.put(f"revoked-grant:{grant}", "1", lifetime)
        for token_digest in self.store.members(f"grant:{grant}"):
            self.store.delete(f"token:{token_digest}")
        self.store.replicated()


class UnmetAuthenticationRequirements(OAuth2Error):
    """``acr_values`` that a card login cannot satisfy (OpenID Connect Core § 3.1.2.6
    and the registered error ``unmet_authentication_requirements``)."""

    error = "unmet_authentication_requirements"


@dataclass
class Services:
    """What the grant classes need from the application (Authlib creates a grant
    per request, by class: they find these on the server)."""

    issuer: str
    store: OidcStore
    tokens: Tokens
    keys: KeySet
    id_token_lifetime: int
    access_token_lifetime: int
    clock: Callable[[], dt.datetime]
    code_lifetime: int = 60  # seconds (RFC 6749 § 4.1.2: "a maximum of 10 minutes")


def services(grant: Any) -> Services:
    found = grant.server.services
    assert isinstance(found, Services)
    return found


class CardCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        holder = request.user
        assert isinstance(holder, Holder)
        data = request.payload.data
        record = CodeRecord(
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            nonce=data.get("nonce"),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            professional=dict(holder.professional),
            sid=holder.sid,
            auth_time=holder.auth_time,
            grant=digest("grant:" + code),
        )
        found = services(self)
        found.store.put(f"code:{digest(code)}", record.to_json(), found.code_lifetime)

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        """Taken out of the store at once (atomically: one exchange per code), with a
        mark left that says it was used; a code used before revokes its tokens."""
        found = services(self)
        key = digest(code) if isinstance(code, str) else ""
        taken = found.store.take_and_mark(
            f"code:{key}", f"used-code:{key}", "1", found.access_token_lifetime
        )
        if taken is None:
            if found.store.get(f"used-code:{key}") is not None:  # RFC 6749 § 4.1.2
                found.tokens.revoke_grant(digest("grant:" + code), found.access_token_lifetime)
            return None
        record = CodeRecord(**json.loads(taken), code=code)
        if record.client_id != client.client_id:  # bound to the client it was issued to
            return None
        return record

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing left to do: the code left the store when it was queried."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Holder:
        return Holder(
            authorization_code.professional, authorization_code.sid, authorization_code.auth_time
        )


class PscRequirements:
    """What PSC's relying parties send, required: ``openid`` in the scope, the code
    in the query, and ``acr_values`` (when given) that a card login satisfies."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.validate)

    def validate(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if "openid" not in (data.get("scope") or "").split():
            raise InvalidScopeError(
                "scope must include openid (OpenID Connect Core, section 3.1.2.1)",
                redirect_uri=redirect_uri,
            )
        if data.get("response_mode", "query") != "query":
            # the code goes back in the query only: no form posted from the provider's
            # page (its CSP allows forms to itself), no fragment
            raise InvalidRequestError("response_mode is query", redirect_uri=redirect_uri)
        acr_values = data.get("acr_values")
        if acr_values is not None and claims.ACR not in acr_values.split():
            raise UnmetAuthenticationRequirements(
                f"a card login reaches acr {claims.ACR} only", redirect_uri=redirect_uri
            )


class RequiredS256(CodeChallenge):
    """PKCE required of every client, with S256 only (RFC 7636 § 4.2; the OAuth 2.0
    Security BCP: ``plain`` protects nothing once the request is seen)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: code_challenge", redirect_uri=redirect_uri)
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "PKCE is required with code_challenge_method S256", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("PKCE is required: code_verifier")
        super().validate_code_verifier(grant, result)


class CardOpenIDCode(OpenIDCode):
    """The ID token: PSC's claims, signed with the provider's current key of the
    client's algorithm (RS256 or ES256), its ``kid`` in the header."""

    def __init__(self) -> None:
        super().__init__(require_nonce=True)

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # a nonce is the relying party's to check, against its session

    def get_client_algorithm(self, client: Client) -> str:
        return client.id_token_signed_response_alg

    def resolve_client_private_key(self, client: Client) -> jwk.Key:
        return self._key(client).key

    def _key(self, client: Client) -> SigningKey:
        found = self._services
        return found.keys.signing_key(client.id_token_signed_response_alg, found.clock())

    def get_encode_header(self, client: Client) -> dict[str, str]:
        key = self._key(client)
        return {"alg": key.alg, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        found = self._services
        now = int(found.clock().timestamp())
        return {
            "iss": found.issuer,
            "aud": [client.client_id],
            "azp": client.client_id,
            "iat": now,
            "exp": now + found.id_token_lifetime,
        }

    def generate_user_info(self, user: Holder, scope: str) -> dict[str, Any]:
        return {**claims.userinfo(user.professional), "sid": user.sid}

    def __call__(self, grant: Any) -> None:
        self._services = services(grant)
        super().__call__(grant)


class PrivateKeyJwt(JWTBearerClientAssertion):
    """``private_key_jwt`` (OpenID Connect Core § 9, RFC 7523 § 2.2): the client signs
    an assertion with its key; each ``jti`` is accepted once (kept in the store)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, audiences: list[str], store: OidcStore) -> None:
        super().__init__(validate_jti=True)
        self._audiences = audiences
        self._store = store

    def get_audiences(self) -> list[str]:
        return self._audiences

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        key = f"jti:{digest(str(claims['sub']) + ':' + str(jti))}"
        return self._store.put(key, "1", 600, only_new=True)

    def resolve_client_public_key(self, client: Client) -> jwk.KeySet:
        return client.public_keys()
