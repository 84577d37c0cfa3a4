"""The teleservice's own refusals: each a stable code (docs/teleservice.md), a
message for people in :mod:`examples.teleservice.messages`, and an HTTP status."""

from __future__ import annotations

from cardauth.errors import CardAuthError


class TeleserviceError(CardAuthError):
    """Base of the teleservice's refusals."""

    code = "teleservice.error"
    status = 400


class LookupFields(TeleserviceError):
    """The lookup body carries something else than the assertion (a NIR, a birth
    date...): the patient comes from the Vitale card only."""

    code = "lookup.fields"
    status = 400


class LookupForbidden(TeleserviceError):
    """The professional's card type and profession give no access (roles.py)."""

    code = "lookup.forbidden"
    status = 403


class LookupRateLimited(TeleserviceError):
    code = "lookup.rate_limited"
    status = 429


class LoginRateLimited(TeleserviceError):
    """Too many challenges or login attempts from one address (a flood, not a person)."""

    code = "login.rate_limited"
    status = 429


class SeedError(TeleserviceError):
    """The seed file cannot make a database."""

    code = "seed.invalid"


class SettingsError(TeleserviceError):
    code = "settings.invalid"


class NotFound(TeleserviceError):
    code = "teleservice.not_found"
    status = 404


class MethodNotAllowed(TeleserviceError):
    code = "teleservice.method_not_allowed"
    status = 405


class Failed(TeleserviceError):
    """Something went wrong in the teleservice itself (its log says what)."""

    code = "teleservice.internal"
    status = 500
