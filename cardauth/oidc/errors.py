"""The provider's refusals, each with a stable code (``oidc.*``, ``logout.*``).

OAuth 2.0 and OpenID Connect answer a relying party with their own error words
(``invalid_grant``, ``login_required``...: RFC 6749 § 5.2, OpenID Connect Core
§ 3.1.2.6), which Authlib produces and which stay as the specifications say. What a
person reads on the provider's own pages (a request that cannot go back to the
relying party: unknown client, redirect URI not registered; a logout that cannot
be done) is one of these errors, in French or English from the provider's catalog
(``cardauth/texts/oidc.toml``).
"""

from __future__ import annotations

from cardauth.errors import CardAuthError


class OidcError(CardAuthError):
    """Base of the provider's errors."""

    code = "oidc.error"


class ConfigError(OidcError):
    """The provider's configuration (its file, clients, keys) cannot be used: at
    start, or (a key set file broken since) while it answers, the server's fault."""

    code = "oidc.config"
    status = 500


class KeySetError(ConfigError):
    """The signing key set file cannot be used."""

    code = "oidc.keys"


class StoreUnavailable(OidcError):
    """The store of sessions, codes and tokens (Redis) does not answer: refused."""

    code = "oidc.store_unavailable"
    status = 503


class RequestRefused(OidcError):
    """An authorization request that cannot be sent back to the relying party
    (RFC 6749 § 4.1.2.1: an unknown client, a redirect URI that is not one of the
    client's, exactly), shown on the provider's page. ``error`` is the OAuth word."""

    code = "oidc.request_refused"
    status = 400

    def __init__(self, message: str, *, error: str, **context: object) -> None:
        super().__init__(message, error=error, **context)
        self.code = f"oidc.{error}" if error in PAGE_ERRORS else self.code


# The OAuth errors a person may meet on the provider's page, each with its text.
PAGE_ERRORS = frozenset(
    {"invalid_client", "invalid_request", "unauthorized_client", "server_error"}
)


class LogoutRefused(OidcError):
    """An RP-initiated logout that is refused: see the subclasses."""

    code = "logout.refused"
    status = 400


class LogoutHintInvalid(LogoutRefused):
    """``id_token_hint`` is not an ID token this provider issued and that is still
    valid (foreign, forged, expired)."""

    code = "logout.id_token_hint"


class LogoutRedirectInvalid(LogoutRefused):
    """``post_logout_redirect_uri`` is not one the client registered (or no client
    is known to check it against)."""

    code = "logout.redirect_uri"


class CardWatchRefused(OidcError):
    """A card removal reported without the provider session's watch token, or from
    another origin (``POST …/card-removed``): nothing ends."""

    code = "oidc.card_watch"
    status = 403


class RateLimited(OidcError):
    """Too many requests from one address (logins) or one client (token calls)."""

    code = "oidc.rate_limited"
    status = 429


class BadRequest(OidcError):
    code = "oidc.bad_request"
    status = 400


class NotJson(OidcError):
    code = "oidc.content_type"
    status = 415


class TooLarge(OidcError):
    code = "oidc.too_large"
    status = 413


class NotFound(OidcError):
    code = "oidc.not_found"
    status = 404


class MethodNotAllowed(OidcError):
    code = "oidc.method_not_allowed"
    status = 405


class Internal(OidcError):
    code = "oidc.internal"
    status = 500


class BridgeRefused(OidcError):
    """A call of a professional's bridge that follows CIBA requests, refused: see
    the subclasses (:mod:`cardauth.oidc.bridges`)."""

    code = "ciba.bridge_refused"
    status = 400


class BridgeKeyInvalid(BridgeRefused):
    """The key a bridge enrols is not a public EC P-256 JWK."""

    code = "ciba.bridge_key"


class BridgeUnknown(BridgeRefused):
    """A call signed by a key that is not enrolled, or no longer."""

    code = "ciba.bridge_unknown"
    status = 401


class BridgeProofInvalid(BridgeRefused):
    """A call whose signature, address, time or ``jti`` is not right."""

    code = "ciba.bridge_proof"
    status = 401


class BackchannelUnknown(BridgeRefused):
    """No such CIBA request waits for this bridge's professional (answered,
    expired, another professional's, or never made)."""

    code = "ciba.request_unknown"
    status = 404


class OtherProfessional(BridgeRefused):
    """A CIBA request approved with another professional's card than the one it
    names."""

    code = "ciba.other_professional"
    status = 403
