"""The errors of cardauth: one base class, each refusal with a stable code.

Every error carries a ``code`` that never changes between releases (scripts and
teleservices match on it), an English ``message`` for logs and developers, and a
``context`` of safe values (status words, PC/SC result codes, reader names, tries
left) that explain it. A PIN, a NIR or key material never goes into an error.
What a health professional reads is produced from the code and the context by
:mod:`cardauth.messages`, in French or English.
"""

from __future__ import annotations

from typing import ClassVar


class CardAuthError(Exception):
    """Base of every error raised by cardauth."""

    code: ClassVar[str] = "cardauth.error"

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


class CardError(CardAuthError):
    """A failure in a card application (CPS, Vitale)."""

    code = "card.error"


class UnknownCard(CardError):
    """The card in the reader is neither a CPS nor a Vitale card."""

    code = "card.unknown"


class CardNotPresent(CardError):
    """No card of the kind asked for (CPS or Vitale) is in any reader."""

    code = "card.not_present"


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
