"""A PIN session on a CPS card: "verify the PIN, sign, put the PIN state back", in one
card transaction, written once for every caller (the bridge, the command line).

Inside the session the PIN is presented at most once, and only as the holder
typed it (on the bridge's page, at a prompt, or on the reader's keypad): nothing
here retries. When the session ends the card logs out (its root application is
selected again, which resets its security status), unless the caller keeps the
PIN verified on purpose (the bridge, for a short idle time).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

from cardauth.cards import pinpad
from cardauth.cards.cps import CpsCard
from cardauth.errors import CardAuthError, TransportError


class Keypad(Enum):
    """The PIN is typed on the reader's keypad (not a value the host ever sees)."""

    ENTRY = "keypad"


PinSource = str | Keypad


def present_pin(
    card: CpsCard, pin: PinSource, *, keypad_timeout: int = pinpad.DEFAULT_TIMEOUT_SECONDS
) -> None:
    """One VERIFY: with the PIN the holder typed, or on the reader's keypad."""
    if pin is Keypad.ENTRY:
        card.verify_pin_on_pinpad(timeout=keypad_timeout)
    else:
        card.verify_pin(pin)


@contextmanager
def pin_session(
    card: CpsCard,
    pin: PinSource | None,
    *,
    keep: bool = False,
    keypad_timeout: int = pinpad.DEFAULT_TIMEOUT_SECONDS,
) -> Iterator[CpsCard]:
    """Hold the card for one transaction: present ``pin`` (None: use the PIN state
    the card has, as the bridge's fast path does), let the caller sign, then log
    out, unless ``keep`` and the signing went well (a failed session never leaves
    the PIN verified). A wrong PIN ends the session at once (WrongPin, PinBlocked);
    nothing was verified, so there is nothing to put back."""
    with card.transaction():
        if pin is not None:
            present_pin(card, pin, keypad_timeout=keypad_timeout)
        failed = True
        try:
            yield card
            failed = False
        finally:
            if failed or not keep:
                log_out(card, quietly=failed)


def log_out(card: CpsCard, *, quietly: bool = False) -> None:
    """Log the card out. A card that went away has forgotten the PIN with everything
    else; a card that does not answer the log-out is reset as its connection closes,
    so that the PIN is not left verified either way. When a session is already
    failing (``quietly``), its own error is the one the caller sees."""
    try:
        card.log_out()
    except TransportError:
        return
    except CardAuthError:
        card.channel.close(reset=True)
        if not quietly:
            raise
