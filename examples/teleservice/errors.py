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


class PrescriptionForbidden(TeleserviceError):
    """The professional's card may not sign prescriptions (roles.PRESCRIBERS)."""

    code = "prescription.forbidden"
    status = 403


class PrescriptionFields(TeleserviceError):
    """The prescription's form is not what the service takes (a name missing or too
    long, no medication, too many lines, characters the document cannot carry)."""

    code = "prescription.fields"
    status = 400


class PrescriptionCertificate(TeleserviceError):
    """The certificate sent for the signature is not a signature certificate of a
    CA the service trusts, valid today."""

    code = "prescription.certificate"
    status = 400


class PrescriptionOtherProfessional(TeleserviceError):
    """The signature certificate is another professional's than the one logged in."""

    code = "prescription.other_professional"
    status = 403


class PrescriptionNotPending(TeleserviceError):
    """No prescription waits for this signature: unknown, already signed (each
    prepared one is finished once), another professional's, or expired."""

    code = "prescription.not_pending"
    status = 409


class PrescriptionBusy(TeleserviceError):
    """Too many prescriptions wait for a signature (the store is bounded)."""

    code = "prescription.busy"
    status = 503


class PrescriptionNotFound(TeleserviceError):
    """No signed prescription of this professional under this identifier."""

    code = "prescription.not_found"
    status = 404


class VerificationUpload(TeleserviceError):
    """The upload to verify is not one PDF file (no file, or not a PDF)."""

    code = "verification.upload"
    status = 400
