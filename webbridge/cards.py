"""The cards in the readers, as the bridge keeps them.

A monitor thread follows insertions and removals. A card is read once when it
comes in (serial, certificate, a CPS card's PKCS#15 objects, identity object and
PIN's tries left, in one transaction) and what was read is kept while it stays in: a
later login costs the card only its signature. The verified-PIN state is kept too,
for ``pin_idle_seconds`` after its last use, and only after a login that went well;
removing the card forgets everything at once, and an idle PIN is reset on the card
(it logs out: :mod:`cardauth.cards.session`), so the key cannot be used afterwards.

A document signature (the non-repudiation key) never uses that state: each one
presents the PIN typed for it, and the card logs out after it
(:mod:`cardauth.cards.signature`), which ends a login's PIN state too.

Operations on one card run one at a time (a lock per slot, and the card layer's
PC/SC transactions across processes). A VERIFY is sent only with a PIN that the
professional typed, once, or on the reader's keypad; never on the bridge's own.
"""

from __future__ import annotations

import datetime as dt
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.x509.oid import NameOID

from cardauth.assertion import build_assertion
from cardauth.cards.application import CardApplication, CardFacts, CardKind
from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.identify import APPLICATIONS, connect_channel, identify_with_facts
from cardauth.cards.pin import PinStatus
from cardauth.cards.session import PinSource, log_out, pin_session
from cardauth.cards.signature import DocumentSignature, sign_digest
from cardauth.cards.vitale import VitaleCard
from cardauth.errors import (
    CardAuthError,
    CardExpired,
    CardNotPresent,
    CardNotYetValid,
    CardOutOfValidity,
    CardRemoved,
    PinBlocked,
    PinRequired,
    TransportError,
    UnknownCard,
    WrongPin,
)
from cardauth.origins import Origin
from cardauth.transport.base import ReaderBackend
from cardauth.transport.monitor import CardEvent, CardMonitor, EventType
from webbridge.errors import OtherSigner

EVENT_QUEUE_SIZE = 64
CardT = TypeVar("CardT", bound=CardApplication)


@dataclass(frozen=True, slots=True)
class CardView:
    """What the bridge shows of a card: on its own page, and to approved origins."""

    reader: str
    kind: str  # "cps", "vitale", "unknown" (neither), "unreadable" (did not answer)
    holder: str | None = None  # given name and surname
    card_type: str | None = None  # CPS, CPE, CPF
    profession: str | None = None
    pinpad: bool = False  # the reader has a keypad for the PIN
    error: str | None = None  # the code of what went wrong reading it
    valid_from: dt.datetime | None = None  # the certificate's validity (a read card's)
    valid_until: dt.datetime | None = None

    def validity_error(self, now: dt.datetime) -> CardOutOfValidity | None:
        """Why the card cannot log in at ``now`` (its certificate is not valid then),
        or None: asked before the PIN, since no teleservice accepts what it signs."""
        return _validity_error(self.kind, self.valid_from, self.valid_until, now)

    def to_dict(self) -> dict[str, object]:
        return {
            "slot": self.reader,
            "kind": self.kind,
            "holder": self.holder,
            "card_type": self.card_type,
            "profession": self.profession,
            "pinpad": self.pinpad,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class SlotEvent:
    """A card event for pages: ``present``, ``inserted`` or ``removed``, per slot,
    with the kind of card and ``card``, an identifier of this insertion of it
    (random, nothing of the card's: a page tells a card swapped meanwhile by it)."""

    slot: str
    state: str
    kind: str
    card: str

    def to_dict(self) -> dict[str, str]:
        return {"slot": self.slot, "state": self.state, "kind": self.kind, "card": self.card}


class _Slot:
    """One reader slot: the card in it, what was read of it, its PIN state."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self.lock = threading.RLock()
        self.card: CardApplication | None = None
        self.facts: CardFacts | None = None
        self.view: CardView | None = None
        self.pin_until: float | None = None  # monotonic deadline of the verified PIN
        self.pin: PinStatus | None = None  # as the card last said, kept up to date
        self.insertion = ""  # names this insertion of the card, for pages' events

    def forget(self) -> None:
        """The card went away (or must be read again): nothing of it is kept."""
        if self.card is not None:
            self.card.channel.close()
        self.card = self.facts = self.view = None
        self.pin_until = self.pin = None
        self.insertion = ""


class CardService:
    """The bridge's cards: start it, ask it for views and assertions, stop it."""

    def __init__(
        self,
        backend: ReaderBackend,
        *,
        pin_idle_seconds: float,
        pin_entry_timeout: int = 60,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._pin_idle = pin_idle_seconds
        self._pin_entry_timeout = pin_entry_timeout
        self._clock = clock
        self._monotonic = monotonic
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._listeners: set[queue.Queue[SlotEvent | None]] = set()
        self._listeners_lock = threading.Lock()
        self._monitor = CardMonitor(backend, wait_timeout=1.0)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> CardService:
        self._monitor.start()
        for target, name in ((self._dispatch, "card-events"), (self._expire_pins, "pin-idle")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._monitor.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._listeners_lock:
            for listener in self._listeners:
                listener.put_nowait(None)
        with self._slots_lock:
            slots = list(self._slots.values())
        for slot in slots:
            with slot.lock:
                self._reset_pin(slot)
                slot.forget()

    # -- what pages and approved origins see ----------------------------------------

    def readers(self) -> list[str]:
        return sorted(self._backend.slot_states())

    def views(self) -> list[CardView]:
        """The cards present now, read if they were not yet."""
        views = []
        for reader, state in sorted(self._backend.slot_states().items()):
            if state.card_present:
                slot = self._slot(reader)
                with slot.lock:
                    views.append(self._load(slot))
        return views

    def known_readers(self) -> set[str]:
        """The readers whose card the bridge has read (and not seen go since)."""
        with self._slots_lock:
            return {reader for reader, slot in self._slots.items() if slot.view is not None}

    def present(self) -> list[SlotEvent]:
        """A ``present`` event for each card in the readers now."""
        events = []
        for view in self.views():
            slot = self._slot(view.reader)
            events.append(SlotEvent(view.reader, "present", view.kind, slot.insertion))
        return events

    def cps_view(self) -> CardView:
        return self._find(CardKind.CPS)[1]

    def pin_status(self) -> PinStatus:
        """The CPS card's PIN (for the page: tries left): as read with the card, then
        as the card answered each PIN since; asked again (without spending a try)
        when that is not known or says blocked."""
        slot, _view = self._find(CardKind.CPS)
        with slot.lock, self._card_errors(slot):
            # "Blocked" is asked again: an answer damaged on the way must not leave
            # the page without a PIN field until the card is pulled.
            if slot.pin is None or slot.pin.blocked:
                slot.pin = _held(slot, CpsCard).pin_status()
            return slot.pin

    def pin_is_fresh(self) -> bool:
        """Whether a login would go without the PIN now (verified, not idle too long)."""
        try:
            slot, _view = self._find(CardKind.CPS)
        except CardAuthError:
            return False
        return self._fresh(slot)

    # -- events --------------------------------------------------------------------

    @contextmanager
    def subscribe(self) -> Iterator[queue.Queue[SlotEvent | None]]:
        """A queue of card events (None when the service stops)."""
        listener: queue.Queue[SlotEvent | None] = queue.Queue(EVENT_QUEUE_SIZE)
        with self._listeners_lock:
            self._listeners.add(listener)
        try:
            yield listener
        finally:
            with self._listeners_lock:
                self._listeners.discard(listener)

    # -- logins --------------------------------------------------------------------

    def authenticate(
        self,
        *,
        origin: Origin,
        challenge: str,
        with_vitale: bool,
        pin: PinSource | None = None,
    ) -> str:
        """An assertion for ``origin`` and ``challenge``, signed by the CPS card (and
        co-signed by the Vitale card). ``pin``: the PIN typed on the bridge's page,
        Keypad.ENTRY to have it typed on the reader, or None to use the verified PIN
        state, if it is fresh (PinRequired otherwise)."""
        slot, view = self._find(CardKind.CPS)
        vitale_slot, vitale_view = self._find(CardKind.VITALE) if with_vitale else (None, None)
        now = self._clock()
        for card_view in (view, vitale_view):
            problem = card_view.validity_error(now) if card_view is not None else None
            if problem is not None:
                raise problem
        with slot.lock, self._card_errors(slot):
            cps = _held(slot, CpsCard)
            if pin is None and not self._fresh(slot):
                raise PinRequired("the PIN must be typed for this login")
            keep = self._pin_idle > 0  # idle 0: logged out in the same hold, no program between
            with (
                self._pin_outcome(slot, presented=pin is not None),
                pin_session(cps, pin, keep=keep, keypad_timeout=self._pin_entry_timeout),
            ):
                token = self._sign(slot, cps, origin, challenge, vitale_slot)
            slot.pin_until = self._monotonic() + self._pin_idle if keep else None
            if not keep:
                slot.pin = None  # logged out: asked again when needed
            return token

    # -- document signatures ---------------------------------------------------------

    def signing_certificate(self, *, expected: bytes | None = None) -> bytes:
        """The CPS card's signature certificate (DER), when it is valid today (none is
        handed out that no signature could be verified with) and, if given, the
        ``expected`` one (OtherSigner otherwise). Public data: no PIN."""
        slot, _view = self._find(CardKind.CPS)
        with slot.lock, self._card_errors(slot):
            return self._signing_certificate(_held(slot, CpsCard), expected)

    def sign_document(
        self, digest: bytes, pin: PinSource, *, expected_certificate: bytes | None = None
    ) -> DocumentSignature:
        """The non-repudiation key's signature over ``digest`` (SHA-256), after one
        VERIFY of ``pin``: typed on the bridge's page for this signature, or on the
        reader's keypad. Never the PIN state of a login, which this ends (the card
        logs out after signing). A signature certificate that is not valid today, or
        not the ``expected_certificate``, is refused before the PIN."""
        slot, _view = self._find(CardKind.CPS)
        with slot.lock, self._card_errors(slot):
            cps = _held(slot, CpsCard)
            self._signing_certificate(cps, expected_certificate)
            try:
                with self._pin_outcome(slot, presented=True):
                    return sign_digest(cps, digest, pin, keypad_timeout=self._pin_entry_timeout)
            finally:
                if slot.pin is not None and slot.pin.verified:
                    slot.pin = None  # the card logged out after the signature: ask it again

    def _signing_certificate(self, cps: CpsCard, expected: bytes | None) -> bytes:
        """``cps``'s signature certificate, refused when it is not ``expected`` (if
        given) or not valid today (under the slot's lock)."""
        der = cps.certificate_der(KeyRole.SIGNATURE)
        if expected is not None and der != expected:
            raise OtherSigner("the card is not the one the document was prepared for")
        certificate = cps.parse_certificate(der)
        problem = _validity_error(
            CardKind.CPS.value,
            certificate.not_valid_before_utc,
            certificate.not_valid_after_utc,
            self._clock(),
        )
        if problem is not None:
            raise problem
        return der

    def log_out(self) -> None:
        """The card forgets the verified PIN (it logs out): the next login asks it."""
        try:
            slot, _view = self._find(CardKind.CPS)
        except CardAuthError:
            return  # no CPS card: no PIN verified anywhere
        with slot.lock:
            self._reset_pin(slot)

    @contextmanager
    def _pin_outcome(self, slot: _Slot, *, presented: bool) -> Iterator[None]:
        """Keep what the card answered to the PIN (tries left, blocked, verified)."""
        if presented:
            slot.pin_until = None  # whatever the outcome, the old state is gone
        try:
            yield
        except WrongPin as wrong:
            slot.pin = PinStatus(verified=False, tries_left=wrong.tries_left, blocked=False)
            raise
        except PinBlocked:
            slot.pin = PinStatus(verified=False, tries_left=0, blocked=True)
            raise
        if presented:
            slot.pin = PinStatus(verified=True, tries_left=None, blocked=False)

    def _sign(
        self,
        slot: _Slot,
        cps: CpsCard,
        origin: Origin,
        challenge: str,
        vitale_slot: _Slot | None,
    ) -> str:
        try:
            if vitale_slot is None:
                return build_assertion(
                    cps, origin=origin, challenge=challenge, now=self._clock(), facts=slot.facts
                )
            with vitale_slot.lock, self._card_errors(vitale_slot):
                vitale = _held(vitale_slot, VitaleCard)
                return build_assertion(
                    cps,
                    origin=origin,
                    challenge=challenge,
                    now=self._clock(),
                    facts=slot.facts,
                    vitale=vitale,
                    vitale_facts=vitale_slot.facts,
                )
        except PinRequired:
            slot.pin_until = slot.pin = None  # the card forgot it (reset, another program)
            raise

    # -- slots ---------------------------------------------------------------------

    def _slot(self, reader: str) -> _Slot:
        with self._slots_lock:
            slot = self._slots.get(reader)
            if slot is None:
                slot = self._slots[reader] = _Slot(reader)
            return slot

    def _find(self, kind: CardKind) -> tuple[_Slot, CardView]:
        """The slot holding a card of ``kind``, whichever slot it is in."""
        for reader, state in sorted(self._backend.slot_states().items()):
            if not state.card_present:
                continue
            slot = self._slot(reader)
            with slot.lock:
                view = self._load(slot)
                if view.kind == kind.value and slot.card is not None:
                    return slot, view
        raise CardNotPresent(f"no {kind.name} card in any reader", kind=kind.value)

    def _load(self, slot: _Slot) -> CardView:
        """Read the card in ``slot`` if it was not yet (under the slot's lock)."""
        if slot.view is not None:
            return slot.view
        try:
            channel = connect_channel(self._backend, slot.reader)
        except CardAuthError as error:
            return CardView(slot.reader, "unreadable", error=error.code)
        try:
            with channel.transaction():
                card, facts = identify_with_facts(channel)
                view = _view_of(slot.reader, card, facts)
                pin = card.pin_status() if isinstance(card, CpsCard) else None
        except UnknownCard:
            channel.close()
            view = CardView(slot.reader, "unknown")
            slot.insertion = slot.insertion or secrets.token_urlsafe(9)
            if not _atr_of_a_known_card(channel.atr):
                slot.view = view  # kept while it stays in: nothing will change it
            # A CPS or Vitale ATR whose application did not answer is a card that
            # faltered (a damaged answer, a reset): it is identified again next time.
            return view
        except CardAuthError as error:
            channel.close()
            return CardView(slot.reader, "unreadable", error=error.code)
        slot.card, slot.facts, slot.view, slot.pin = card, facts, view, pin
        slot.insertion = secrets.token_urlsafe(9)
        return view

    @contextmanager
    def _card_errors(self, slot: _Slot) -> Iterator[None]:
        """A card that went away or stopped answering is read again next time."""
        try:
            yield
        except TransportError:
            slot.forget()
            raise

    def _fresh(self, slot: _Slot) -> bool:
        return slot.pin_until is not None and self._monotonic() < slot.pin_until

    def _reset_pin(self, slot: _Slot) -> None:
        """Have the card forget the verified PIN (best effort: a card that is gone
        has forgotten it already)."""
        slot.pin_until = slot.pin = None
        card = slot.card
        if isinstance(card, CpsCard):
            try:
                log_out(card)
            except CardAuthError:
                slot.forget()  # reset as it closed: the card was read again next time

    # -- threads -------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            event = self._monitor.get(timeout=0.5)
            if event is not None:
                self._handle(event)

    def _handle(self, event: CardEvent) -> None:
        if event.type is EventType.MONITOR_FAILED:
            with self._slots_lock:
                slots = list(self._slots.values())
            for slot in slots:
                self._removed(slot)
            return
        if event.reader is None:
            return
        slot = self._slot(event.reader)
        if event.type in (EventType.CARD_REMOVED, EventType.READER_DETACHED):
            self._removed(slot)
        elif event.type is EventType.CARD_INSERTED:
            with slot.lock:
                slot.forget()  # a new card: nothing of the previous one is kept
                view = self._load(slot)
                insertion = slot.insertion
            self._publish(SlotEvent(slot.reader, "inserted", view.kind, insertion))

    def _removed(self, slot: _Slot) -> None:
        with slot.lock:
            had, insertion = slot.view, slot.insertion
            slot.forget()
        if had is not None:
            self._publish(SlotEvent(slot.reader, "removed", had.kind, insertion))

    def _publish(self, event: SlotEvent) -> None:
        with self._listeners_lock:
            for listener in list(self._listeners):
                try:
                    listener.put_nowait(event)
                except queue.Full:  # a stream that stopped reading: it gets closed
                    self._listeners.discard(listener)
                    listener.queue.clear()
                    listener.put_nowait(None)

    def _expire_pins(self) -> None:
        while not self._stop.wait(0.25):
            with self._slots_lock:
                slots = list(self._slots.values())
            for slot in slots:
                deadline = slot.pin_until
                if deadline is not None and self._monotonic() >= deadline:
                    with slot.lock:
                        if slot.pin_until is not None and self._monotonic() >= slot.pin_until:
                            self._reset_pin(slot)


def _held(slot: _Slot, kind: type[CardT]) -> CardT:
    """The card of ``kind`` in ``slot``, under its lock; it may have gone since the
    slot was found (the monitor forgets a removed card at once)."""
    card = slot.card
    if not isinstance(card, kind) or slot.facts is None:
        raise CardRemoved("the card was removed", reader=slot.reader)
    return card


def _view_of(reader: str, card: CardApplication, facts: CardFacts) -> CardView:
    """The card's view: the holder's name (and a professional's title) from the
    certificate, decoded in full (a damaged certificate is the card's error, never a
    crash); a CPS card's type from its holder data, read here in the caller's
    transaction."""
    certificate = card.parse_certificate(facts.certificate_der)
    valid_from, valid_until = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if isinstance(card, CpsCard):
        return CardView(
            reader,
            CardKind.CPS.value,
            holder=_name_of(certificate),
            card_type=card.identity().card_type.value,
            profession=_title_of(certificate),
            pinpad=_has_pinpad(card),
            valid_from=valid_from,
            valid_until=valid_until,
        )
    return CardView(
        reader,
        CardKind.VITALE.value,
        holder=_name_of(certificate),
        valid_from=valid_from,
        valid_until=valid_until,
    )


def _validity_error(
    kind: str, valid_from: dt.datetime | None, valid_until: dt.datetime | None, now: dt.datetime
) -> CardOutOfValidity | None:
    """Why a card's certificate is of no use at ``now`` (expired, not valid yet), or None."""
    if valid_until is not None and now > valid_until:
        return CardExpired(
            "the card's certificate expired", kind=kind, date=valid_until.strftime("%d/%m/%Y")
        )
    if valid_from is not None and now < valid_from:
        return CardNotYetValid(
            "the card's certificate is not valid yet",
            kind=kind,
            date=valid_from.strftime("%d/%m/%Y"),
        )
    return None


def _atr_of_a_known_card(atr: bytes) -> bool:
    return any(application.matches_atr(atr) for application in APPLICATIONS)


def _has_pinpad(card: CardApplication) -> bool:
    return isinstance(card, CpsCard) and card.has_pinpad()


def _title_of(certificate: x509.Certificate) -> str | None:
    titles = certificate.subject.get_attributes_for_oid(NameOID.TITLE)
    return str(titles[0].value) if titles else None


def _name_of(certificate: x509.Certificate) -> str | None:
    subject = certificate.subject
    parts = [
        str(attribute.value)
        for oid in (NameOID.GIVEN_NAME, NameOID.SURNAME)
        for attribute in subject.get_attributes_for_oid(oid)
    ]
    return " ".join(parts) or None
