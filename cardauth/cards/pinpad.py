"""Secure PIN entry on the reader's own keypad (PC/SC part 10, CCID
FEATURE_VERIFY_PIN_DIRECT), so that the PIN never passes through the computer.

The host asks the reader which features it has (CM_IOCTL_GET_FEATURE_REQUEST),
then sends it a PIN_VERIFY_STRUCTURE: a VERIFY command whose PIN bytes the reader
fills in from its keypad. The answer is the card's status word, or the reader's
own 6400 (timeout) / 6401 (cancelled).
"""

from __future__ import annotations

import struct

from cardauth.apdu import Ins
from cardauth.cards.pin import PinFormat, check_pin_answer
from cardauth.errors import PinEntryCancelled, PinEntryTimeout, TransportError
from cardauth.transport.channel import CardChannel

SCARD_CTL_CODE_BASE = 0x42000000  # pcsc-lite: SCARD_CTL_CODE(code) = 0x42000000 + code
CM_IOCTL_GET_FEATURE_REQUEST = SCARD_CTL_CODE_BASE + 3400
FEATURE_VERIFY_PIN_DIRECT = 0x06
SW_ENTRY_TIMEOUT = 0x6400
SW_ENTRY_CANCELLED = 0x6401
DEFAULT_TIMEOUT_SECONDS = 30
LANGUAGE_FRENCH = 0x040C


def reader_features(channel: CardChannel) -> dict[int, int]:
    """The part 10 features of the reader: feature tag -> control code. Empty for a
    reader without any (or one that does not answer the request)."""
    try:
        answer = channel.link.control(CM_IOCTL_GET_FEATURE_REQUEST, b"")
    except TransportError:
        return {}
    features: dict[int, int] = {}
    for offset in range(0, len(answer) - len(answer) % 6, 6):  # tag, 04, code (big-endian)
        tag, length = answer[offset], answer[offset + 1]
        if length == 4:
            features[tag] = int.from_bytes(answer[offset + 2 : offset + 6], "big")
    return features


def has_pinpad(channel: CardChannel) -> bool:
    return FEATURE_VERIFY_PIN_DIRECT in reader_features(channel)


def verify_structure(reference: int, pin_format: PinFormat, timeout: int) -> bytes:
    """PIN_VERIFY_STRUCTURE (PC/SC part 10 § 2.5.2) for ASCII digits padded with FF."""
    apdu = bytes((0x00, Ins.VERIFY, 0x00, reference, pin_format.encoded_length))
    apdu += b"\xff" * pin_format.encoded_length  # the reader writes the digits over these
    return (
        struct.pack(
            "<BBBBBHBBHB3sI",
            timeout,  # bTimerOut
            timeout,  # bTimerOut2
            0x82,  # bmFormatString: byte units, PIN at offset 0 of the data, left, ASCII
            pin_format.encoded_length,  # bmPINBlockString: no length field, block of 8 bytes
            0x00,  # bmPINLengthFormat
            (pin_format.min_digits << 8) | pin_format.max_digits,  # wPINMaxExtraDigit
            0x02,  # bEntryValidationCondition: the validation key
            0x01,  # bNumberMessage
            LANGUAGE_FRENCH,  # wLangId
            0x00,  # bMsgIndex
            b"\x00\x00\x00",  # bTeoPrologue
            len(apdu),  # ulDataLength
        )
        + apdu
    )


def verify_pin_on_pinpad(
    channel: CardChannel,
    reference: int,
    pin_format: PinFormat,
    *,
    timeout: int = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Have the holder type the PIN on the reader. Sends one VERIFY, never retries."""
    code = reader_features(channel).get(FEATURE_VERIFY_PIN_DIRECT)
    if code is None:
        raise TransportError("the reader has no PIN pad", reader=channel.reader)
    answer = channel.link.control(code, verify_structure(reference, pin_format, timeout))
    if len(answer) != 2:
        raise TransportError("the PIN pad gave no status word", reader=channel.reader)
    sw = int.from_bytes(answer, "big")
    if sw == SW_ENTRY_TIMEOUT:
        raise PinEntryTimeout("no PIN was typed on the reader in time")
    if sw == SW_ENTRY_CANCELLED:
        raise PinEntryCancelled("PIN entry was cancelled on the reader")
    check_pin_answer(sw, "VERIFY (PIN pad)")
