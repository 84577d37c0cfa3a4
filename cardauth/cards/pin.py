"""PIN handling common to card applications (ISO/IEC 7816-4 § 11.5.6 to 11.5.10).

Every function sends at most one command that can spend a try, and only with a
PIN the caller got from the holder: nothing here ever retries. The PIN format is
checked before anything is sent, so a mistyped PIN (letters, wrong length) never
costs a try. The tries left come from the card (63Cx) on every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardauth.apdu import CommandApdu, Ins, ResponseApdu, StatusWord, describe_sw, tries_left_of
from cardauth.cards.pkcs15 import Pin, PinType
from cardauth.errors import (
    MalformedCardData,
    PinBlocked,
    PinFormatInvalid,
    PukBlocked,
    UnexpectedStatus,
    WrongPin,
    WrongPuk,
)
from cardauth.transport.channel import CardChannel


@dataclass(frozen=True, slots=True)
class PinFormat:
    """What a PIN looks like and how it is sent: ASCII digits padded to the stored
    length (with FF on CPS cards), as the card's PKCS#15 PIN object says."""

    min_digits: int
    max_digits: int
    encoded_length: int
    pad: int = 0xFF

    @classmethod
    def of(cls, pin: Pin) -> PinFormat:
        """The format of a PKCS#15 PIN object; only ASCII digits are supported."""
        if (
            pin.pin_type is not PinType.ASCII_NUMERIC
            or not 1 <= pin.min_length <= pin.stored_length
        ):
            raise MalformedCardData("the card's PIN object is not one of ASCII digits")
        maximum = min(pin.max_length or pin.stored_length, pin.stored_length)
        pad = pin.pad_char if pin.needs_padding and pin.pad_char is not None else 0xFF
        return cls(pin.min_length, maximum, pin.stored_length, pad)

    def encode(self, pin: str, *, what: str = "PIN") -> bytes:
        if not (pin.isascii() and pin.isdigit() and self.min_digits <= len(pin) <= self.max_digits):
            raise PinFormatInvalid(
                f"the {what} must be {self._describe()} digits",
                min_digits=self.min_digits,
                max_digits=self.max_digits,
            )
        return pin.encode("ascii").ljust(self.encoded_length, bytes((self.pad,)))

    def _describe(self) -> str:
        if self.min_digits == self.max_digits:
            return str(self.min_digits)
        return f"{self.min_digits} to {self.max_digits}"


@dataclass(frozen=True, slots=True)
class PinStatus:
    """What the card says of a PIN without spending a try."""

    verified: bool
    tries_left: int | None  # None when the card does not tell (PIN verified)
    blocked: bool

    def to_dict(self) -> dict[str, object]:
        return {"verified": self.verified, "tries_left": self.tries_left, "blocked": self.blocked}


def pin_status(channel: CardChannel, reference: int) -> PinStatus:
    """VERIFY with no data: 9000 when verified, 63Cx with the tries left, 6983 blocked."""
    response = channel.transmit(CommandApdu(0x00, Ins.VERIFY, 0x00, reference))
    if response.sw == StatusWord.OK:
        return PinStatus(verified=True, tries_left=None, blocked=False)
    if response.sw == StatusWord.AUTHENTICATION_METHOD_BLOCKED:
        return PinStatus(verified=False, tries_left=0, blocked=True)
    tries = tries_left_of(response.sw)
    if tries is not None:
        return PinStatus(verified=False, tries_left=tries, blocked=tries == 0)
    raise _unexpected(response, "VERIFY (status)")


def verify_pin(channel: CardChannel, reference: int, pin: str, pin_format: PinFormat) -> None:
    """Present the PIN once. WrongPin (with tries left) or PinBlocked on refusal."""
    encoded = pin_format.encode(pin)
    response = channel.transmit(CommandApdu(0x00, Ins.VERIFY, 0x00, reference, encoded))
    check_pin_answer(response.sw, "VERIFY")


def change_pin(
    channel: CardChannel, reference: int, old: str, new: str, pin_format: PinFormat
) -> None:
    """CHANGE REFERENCE DATA: old PIN then new PIN."""
    data = pin_format.encode(old) + pin_format.encode(new, what="new PIN")
    response = channel.transmit(CommandApdu(0x00, Ins.CHANGE_REFERENCE_DATA, 0x00, reference, data))
    check_pin_answer(response.sw, "CHANGE REFERENCE DATA")


def unblock_pin(
    channel: CardChannel,
    reference: int,
    new_pin: str | None,
    pin_format: PinFormat,
    *,
    code_reference: int,
    code: str,
    code_format: PinFormat,
) -> None:
    """Unblock as IAS-ECC does: VERIFY of the unblocking code under its own reference,
    then RESET RETRY COUNTER with P1 = 02 and the new PIN, or P1 = 03 to keep the PIN
    (ISO 7816-4 § 11.5.10). The caller logs out afterwards."""
    new = pin_format.encode(new_pin, what="new PIN") if new_pin is not None else b""
    encoded = code_format.encode(code, what="PUK")
    response = channel.transmit(CommandApdu(0x00, Ins.VERIFY, 0x00, code_reference, encoded))
    if response.sw == StatusWord.AUTHENTICATION_METHOD_BLOCKED:
        raise PukBlocked("the unblocking code is blocked")
    tries = tries_left_of(response.sw)
    if tries == 0:
        raise PukBlocked("the unblocking code is now blocked")
    if tries is not None:
        raise WrongPuk("wrong unblocking code", tries_left=tries)
    if response.sw != StatusWord.OK:
        raise _unexpected(response, "VERIFY (unblocking code)")
    p1 = 0x02 if new else 0x03
    response = channel.transmit(CommandApdu(0x00, Ins.RESET_RETRY_COUNTER, p1, reference, new))
    if response.sw != StatusWord.OK:
        raise _unexpected(response, "RESET RETRY COUNTER")


def check_pin_answer(sw: int, command: str) -> None:
    """Return on 9000; WrongPin (tries left) or PinBlocked on refusal."""
    if sw == StatusWord.OK:
        return
    if sw == StatusWord.AUTHENTICATION_METHOD_BLOCKED:
        raise PinBlocked("the PIN is blocked", tries_left=0)
    tries = tries_left_of(sw)
    if tries == 0:
        raise PinBlocked("wrong PIN: the PIN is now blocked", tries_left=0)
    if tries is not None:
        raise WrongPin("wrong PIN", tries_left=tries)
    raise UnexpectedStatus(f"{command} answered {describe_sw(sw)}", sw=sw, command=command)


def _unexpected(response: ResponseApdu, command: str) -> UnexpectedStatus:
    return UnexpectedStatus(
        f"{command} answered {describe_sw(response.sw)}", sw=response.sw, command=command
    )
