"""The bridge's refusals, each with a stable code and an HTTP status."""

from __future__ import annotations

from cardauth.errors import CardAuthError, CardError


class BridgeError(CardAuthError):
    """Base of the bridge's own refusals; ``status`` is the HTTP answer."""

    code = "bridge.error"
    status = 400


class BridgeConfigError(BridgeError):
    """The bridge's configuration file or command line is wrong."""

    code = "bridge.config"


class NotLoopback(BridgeConfigError):
    """Asked to listen on an address other than a loopback one."""

    code = "bridge.not_loopback"


class CannotListen(BridgeConfigError):
    """The port is taken (another bridge?) or not allowed."""

    code = "bridge.cannot_listen"


class HostForbidden(BridgeError):
    """The Host header is not the bridge's own loopback name and port (DNS rebinding)."""

    code = "bridge.host"
    status = 403


class OriginRequired(BridgeError):
    """An API call without an Origin header, or with ``null``."""

    code = "bridge.origin_required"
    status = 403


class OriginForbidden(BridgeError):
    """The calling origin is neither configured nor approved by the professional."""

    code = "bridge.origin_forbidden"
    status = 403


class ContentTypeRequired(BridgeError):
    """A state-changing call without ``Content-Type: application/json``."""

    code = "bridge.content_type"
    status = 415


class BodyTooLarge(BridgeError):
    code = "bridge.too_large"
    status = 413


class BadRequest(BridgeError):
    """The body is not the JSON object the call takes."""

    code = "bridge.bad_request"
    status = 400


class NotFound(BridgeError):
    """No such path (the API is versioned: ``/v1/...``)."""

    code = "bridge.not_found"
    status = 404


class MethodNotAllowed(BridgeError):
    """The path does not take this method (the ``Allow`` header says which do)."""

    code = "bridge.method_not_allowed"
    status = 405


class Internal(BridgeError):
    """The bridge failed on its own (a bug): nothing the page or the card did."""

    code = "bridge.internal"
    status = 500


class RateLimited(BridgeError):
    """Too many authentication requests from this origin for now."""

    code = "bridge.rate_limited"
    status = 429


class InteractionUnknown(BridgeError):
    """No pending consent or PIN request by that identifier (or it expired)."""

    code = "bridge.interaction_unknown"
    status = 404


class InteractionDeclined(BridgeError):
    """The professional refused the site on the bridge's page, or closed it."""

    code = "bridge.declined"
    status = 403


class Cancelled(BridgeError):
    """The asking page gave up the login."""

    code = "bridge.cancelled"
    status = 409


class Replaced(BridgeError):
    """The site asked for another login since: this one no longer waits."""

    code = "bridge.replaced"
    status = 409


class FormSpent(BridgeError):
    """The bridge's form was sent again (a reload, the back button): it is acted
    upon once only."""

    code = "bridge.form_spent"
    status = 409


class Busy(BridgeError):
    """Too many requests waiting at once (pending interactions, event streams)."""

    code = "bridge.busy"
    status = 503


class HashMalformed(BridgeError):
    """The hash to sign is not 32 bytes (SHA-256) in canonical base64url."""

    code = "document.hash_malformed"
    status = 400


class HashAlgorithmUnsupported(BridgeError):
    """The hash to sign is said to be of another algorithm than SHA-256."""

    code = "document.hash_algorithm"
    status = 400


class CertificateMalformed(BridgeError):
    """The signing certificate a site names for its document is not DER in canonical
    base64url."""

    code = "document.certificate_malformed"
    status = 400


class DocumentNameInvalid(BridgeError):
    """The document's name, shown on the bridge's page, is empty, too long, or has
    characters that could hide what it says (control, bidirectional, invisible)."""

    code = "document.name_invalid"
    status = 400


class OtherSigner(CardError):
    """The CPS card in the reader is not the one whose signing certificate the site
    prepared the document for (another card was inserted since)."""

    code = "card.other_signer"
    status = 409


class ProviderUnreachable(BridgeError):
    """An OpenID Connect provider the bridge follows does not answer (CIBA)."""

    code = "ciba.provider_unreachable"
    status = 502


class ProviderRefused(BridgeError):
    """An OpenID Connect provider the bridge follows refused its call (CIBA); the
    provider's own code is in ``provider_code``."""

    code = "ciba.provider_refused"
    status = 502


class CibaRequestGone(BridgeError):
    """A software's request (CIBA) that no longer waits: answered, expired, or not
    listed by the provider."""

    code = "ciba.request_gone"
    status = 404
