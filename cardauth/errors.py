"""The errors of cardauth: one base class, each refusal with a stable code.

Every error carries a ``code`` that never changes between releases (scripts and
teleservices match on it), an English ``message`` for logs and developers, and a
``context`` of safe values (status words, PC/SC result codes, reader names, tries
left) that explain it. A PIN, a NIR or key material never goes into an error.
What a health professional reads is produced from the code and the context by
:mod:`cardauth.messages`, in French or English.
"""

from __future__ import annotations

from enum import StrEnum


class CardAuthError(Exception):
    """Base of every error raised by cardauth."""

    code: str = "cardauth.error"  # stable; a class's own, or a refusal's reason
    # The HTTP status where a web service answers it (None: cardauth.web.http_status
    # says, by what the error means).
    status: int | None = None

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        if "code" in context or "message" in context:
            raise TypeError("'code' and 'message' are not context keys")
        self.message = message
        self.context: dict[str, object] = context

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description: code, English message and context."""
        return {**self.context, "code": self.code, "message": self.message}


# -- identifiers -------------------------------------------------------------------


class InvalidIdentifier(CardAuthError):
    """An identifier (NIR, RPPS, ADELI, IdNat, FINESS) is malformed or fails its check."""

    code = "identifier.invalid"


# -- APDU and card data ------------------------------------------------------------


class MalformedApdu(CardAuthError):
    """A command or response APDU does not follow ISO 7816-4 encoding."""

    code = "apdu.malformed"


class MalformedCardData(CardAuthError):
    """Bytes read from a card (TLV, certificate, serial number) do not parse."""

    code = "card.bad_data"


class UnexpectedStatus(CardAuthError):
    """The card answered a command with a status word the caller did not expect."""

    code = "card.unexpected_status"

    def __init__(self, message: str, *, sw: int, command: str, **context: object) -> None:
        super().__init__(message, sw=f"{sw:04X}", command=command, **context)
        self.sw = sw


# -- PC/SC transport ---------------------------------------------------------------


class TransportError(CardAuthError):
    """A failure between the host and the card (PC/SC or a virtual reader)."""

    code = "transport.failure"


class PcscUnavailable(TransportError):
    """The PC/SC service (pcscd) is not running or cannot be reached."""

    code = "transport.no_service"


class NoReader(TransportError):
    """No smart-card reader is attached."""

    code = "transport.no_reader"


class ReaderNotFound(TransportError):
    """The named reader is not (or no longer) attached."""

    code = "transport.reader_not_found"


class NoCard(TransportError):
    """The reader holds no card."""

    code = "transport.no_card"


class CardRemoved(TransportError):
    """The card was removed, or removed and inserted again, during an operation."""

    code = "transport.card_removed"


class CardReset(TransportError):
    """The card was reset by another application; its state (PIN, selection) is lost."""

    code = "transport.card_reset"


class CardMute(TransportError):
    """The card does not answer (no ATR, or no response to a command)."""

    code = "transport.card_mute"


class CardBusy(TransportError):
    """Another operation (in this or another process) holds the card for too long."""

    code = "transport.card_busy"


class TransportTimeout(TransportError):
    """Waiting for a reader or a card took longer than allowed."""

    code = "transport.timeout"


# -- card applications -------------------------------------------------------------


class PartMissing(CardAuthError):
    """A part of cardauth that this command needs is not installed (the card stack
    on a teleservice's server, the simulator on a workstation): ``package`` names
    what to install."""

    code = "install.part_missing"


class CardError(CardAuthError):
    """A failure in a card application (CPS, Vitale)."""

    code = "card.error"


class UnknownCard(CardError):
    """The card in the reader is neither a CPS nor a Vitale card."""

    code = "card.unknown"


class CardNotPresent(CardError):
    """No card of the kind asked for (CPS or Vitale) is in any reader."""

    code = "card.not_present"


class CardOutOfValidity(CardError):
    """The card's certificate is not valid now: expired, or not valid yet (a new
    card sent ahead of its date). Said before the PIN is asked for, since no
    teleservice would accept what the card signs."""

    code = "card.out_of_validity"


class CardExpired(CardOutOfValidity):
    code = "card.expired"


class CardNotYetValid(CardOutOfValidity):
    code = "card.not_yet_valid"


class PinError(CardError):
    """Base of PIN refusals."""

    code = "pin.error"


class PinFormatInvalid(PinError):
    """The PIN typed does not have the card's format; nothing was sent to the card."""

    code = "pin.format"


class WrongPin(PinError):
    """The card refused the PIN; ``tries_left`` tries remain before it blocks."""

    code = "pin.wrong"

    def __init__(self, message: str, *, tries_left: int, **context: object) -> None:
        super().__init__(message, tries_left=tries_left, **context)
        self.tries_left = tries_left


class PinBlocked(PinError):
    """The PIN is blocked after too many wrong tries: the PUK unblocks it."""

    code = "pin.blocked"


class PinEntryTimeout(PinError):
    """Nobody typed the PIN on the reader's keypad in time; no try was spent."""

    code = "pin.timeout"


class PinEntryCancelled(PinError):
    """The holder cancelled PIN entry on the reader's keypad; no try was spent."""

    code = "pin.cancelled"


class PinRequired(PinError):
    """The operation needs the PIN to be verified first."""

    code = "pin.required"


class PukError(PinError):
    """Base of unblocking-code (PUK) refusals."""

    code = "puk.error"


class WrongPuk(PukError):
    """The card refused the unblocking code; ``tries_left`` tries remain."""

    code = "puk.wrong"

    def __init__(self, message: str, *, tries_left: int, **context: object) -> None:
        super().__init__(message, tries_left=tries_left, **context)
        self.tries_left = tries_left


class PukBlocked(PukError):
    """The unblocking code is blocked too: the card must be replaced."""

    code = "puk.blocked"


# -- assertions and their verification ---------------------------------------------


class InvalidOrigin(CardAuthError):
    """A web origin that is not in its canonical https form."""

    code = "origin.invalid"


class Refusal(StrEnum):
    """Why the verifier refused an assertion: each reason is a stable code."""

    # structure and JOSE
    TOO_LARGE = "assertion.too_large"
    MALFORMED = "assertion.malformed"
    DUPLICATE_KEY = "assertion.duplicate_key"
    TYPE = "assertion.type"
    CRITICAL = "assertion.crit"
    FORBIDDEN_HEADER = "assertion.forbidden_header"
    ALGORITHM = "assertion.algorithm"
    ALGORITHM_MISMATCH = "assertion.algorithm_mismatch"
    SIGNATURE = "assertion.signature"
    CLAIMS = "assertion.claims"
    CARD_SERIAL = "assertion.card_serial"
    EXPIRED = "assertion.expired"
    ISSUED_IN_FUTURE = "assertion.issued_in_future"
    LIFETIME = "assertion.lifetime"
    # origin
    ORIGIN_INVALID = "origin.invalid"
    ORIGIN_MISMATCH = "origin.mismatch"
    # challenge
    CHALLENGE_MALFORMED = "challenge.malformed"
    CHALLENGE_UNKNOWN = "challenge.unknown"
    CHALLENGE_EXPIRED = "challenge.expired"
    CHALLENGE_SESSION = "challenge.session"
    CHALLENGE_STORE = "challenge.store_unavailable"
    # certificates
    CERTIFICATE_MALFORMED = "certificate.malformed"
    CHAIN_TOO_LONG = "certificate.chain_too_long"
    CHAIN_ROOT = "certificate.chain_root"
    CHAIN_REPEATED = "certificate.chain_repeated"
    CHAIN_ORDER = "certificate.chain_order"
    CERTIFICATE_EXPIRED = "certificate.expired"
    CERTIFICATE_NOT_YET_VALID = "certificate.not_yet_valid"
    CA_EXPIRED = "certificate.ca_expired"
    SELF_SIGNED = "certificate.self_signed"
    NOT_A_CA = "certificate.not_a_ca"
    UNTRUSTED = "certificate.untrusted"
    USAGE = "certificate.usage"
    WRONG_CARD = "certificate.wrong_card"
    IDENTITY = "certificate.identity"
    # revocation
    REVOKED = "revocation.revoked"
    REVOCATION_UNKNOWN = "revocation.unknown"
    REVOCATION_UNAVAILABLE = "revocation.unavailable"
    REVOCATION_STALE = "revocation.stale"
    CRL_INVALID = "revocation.crl_invalid"
    OCSP_INVALID = "revocation.ocsp_invalid"
    OCSP_SIGNATURE = "revocation.ocsp_signature"
    OCSP_RESPONDER = "revocation.ocsp_responder"
    OCSP_CERT_ID = "revocation.ocsp_cert_id"
    OCSP_NONCE = "revocation.ocsp_nonce"
    OCSP_TIME = "revocation.ocsp_time"
    # Vitale co-assertion
    VITALE_BINDING = "vitale.binding"
    VITALE_MISSING = "vitale.missing"
    # a patient lookup signed by another card than the logged-in professional's
    OTHER_PROFESSIONAL = "lookup.other_professional"


class RequestNotJson(CardAuthError):
    """A call that takes JSON only was sent something else."""

    code = "request.json"
    status = 415


class RequestMalformed(CardAuthError):
    """A call's body is not the JSON object it takes."""

    code = "request.malformed"
    status = 400


class RequestTooLarge(CardAuthError):
    """A call's body is larger than the call takes."""

    code = "request.too_large"
    status = 413


class LoginRequired(CardAuthError):
    """A teleservice's page or call that needs a professional logged in by card."""

    code = "login.required"
    status = 401


class AssertionRefused(CardAuthError):
    """A refusal by the verifier, with the reason as its stable code. ``jws`` in
    the context says which JWS is at fault: ``cps`` (the assertion) or ``vitale``
    (the co-assertion it carries)."""

    code = "assertion.refused"

    def __init__(self, refusal: Refusal, message: str, **context: object) -> None:
        super().__init__(message, **context)
        self.refusal = refusal
        self.code = refusal.value

    @property
    def service_unavailable(self) -> bool:
        """The service could not check (its challenge store or revocation sources are
        down): a 503, to try again later, not the card's fault."""
        return self.refusal in UNAVAILABLE_REFUSALS


UNAVAILABLE_REFUSALS = frozenset(
    (Refusal.CHALLENGE_STORE, Refusal.REVOCATION_UNAVAILABLE, Refusal.REVOCATION_STALE)
)
