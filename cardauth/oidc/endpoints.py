"""Token introspection (RFC 7662), revocation (RFC 7009) and userinfo (OpenID
Connect Core § 5.3), on the tokens the store holds.

A client introspects and revokes its own tokens only (RFC 7662 § 4: the server
decides who may learn what; a token of another client is "not active" to it).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from joserfc import jwt

from cardauth.oidc import claims
from cardauth.oidc.clients import Client
from cardauth.oidc.grants import Services, TokenRecord

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class _OwnTokens:
    services: Services

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        if token_type_hint not in (None, "access_token"):
            return None  # no refresh tokens are issued
        record = self.services.tokens.find(token_string)
        if record is not None:
            record.token = token_string
        return record


class Introspection(_OwnTokens, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def __init__(self, server: Any, services: Services) -> None:
        super().__init__(server)
        self.services = services

    def check_permission(self, token: TokenRecord, client: Client, request: Any) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: TokenRecord) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": "Bearer",
            "scope": token.scope,
            "sub": claims.subject(token.professional),
            "username": claims.subject(token.professional),
            "aud": token.client_id,
            "iss": self.services.issuer,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "acr": claims.ACR,
            "sid": token.sid,
        }


class Revocation(_OwnTokens, RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def __init__(self, server: Any, services: Services) -> None:
        super().__init__(server)
        self.services = services

    def revoke_token(self, token: TokenRecord, request: Any) -> None:
        self.services.tokens.revoke(token.token)


def userinfo_answer(
    record: TokenRecord, client: Client | None, services: Services
) -> tuple[str | dict[str, Any], str]:
    """The claims as JSON, or as a JWT signed for the client when it registered
    ``userinfo_signed_response_alg`` (OpenID Connect Core § 5.3.2): the body and
    its media type."""
    body = claims.userinfo(record.professional)
    if client is None or client.userinfo_signed_response_alg is None:
        return body, "application/json"
    key = services.keys.signing_key(client.userinfo_signed_response_alg, services.clock())
    now = int(services.clock().timestamp())
    signed = {**body, "iss": services.issuer, "aud": client.client_id, "iat": now}
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, signed, key.key, algorithms=[key.alg]), "application/jwt"
