"""PC/SC readers through pyscard's low-level ``scard`` module (the only place that
imports pyscard).

Bytes go in and out as ``bytes``; every PC/SC failure becomes a typed
:class:`~cardauth.errors.TransportError` that keeps the PC/SC result code. The
PC/SC context is established again when pcscd restarts. pcsc-lite's own waiting
for a card held by another process is turned off (``PCSCLITE_NO_BLOCKING``) so
that our waits have a deadline and end in :class:`~cardauth.errors.CardBusy`.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from cardauth.errors import (
    CardBusy,
    CardMute,
    CardRemoved,
    CardReset,
    NoCard,
    NoReader,
    PcscUnavailable,
    ReaderNotFound,
    TransportError,
    TransportTimeout,
)
from cardauth.transport.base import CardProtocol, SlotState

# Read by libpcsclite when the first context is established: SCardConnect,
# SCardStatus and SCardTransmit then answer "sharing violation" instead of waiting
# for as long as another application holds the card.
os.environ.setdefault("PCSCLITE_NO_BLOCKING", "1")

from smartcard import scard  # noqa: TID251 - this module is the PC/SC boundary

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
_POLL_INTERVAL = 0.005


def _u32(value: int) -> int:
    return value & 0xFFFFFFFF


SCARD_S_SUCCESS = 0
SCARD_E_CANCELLED = _u32(scard.SCARD_E_CANCELLED)
SCARD_E_INVALID_HANDLE = _u32(scard.SCARD_E_INVALID_HANDLE)
SCARD_E_NO_READERS_AVAILABLE = _u32(scard.SCARD_E_NO_READERS_AVAILABLE)
SCARD_E_NO_SERVICE = _u32(scard.SCARD_E_NO_SERVICE)
SCARD_E_NO_SMARTCARD = _u32(scard.SCARD_E_NO_SMARTCARD)
SCARD_E_PROTO_MISMATCH = _u32(scard.SCARD_E_PROTO_MISMATCH)
SCARD_E_NOT_TRANSACTED = _u32(scard.SCARD_E_NOT_TRANSACTED)
SCARD_E_READER_UNAVAILABLE = _u32(scard.SCARD_E_READER_UNAVAILABLE)
SCARD_E_SERVICE_STOPPED = _u32(scard.SCARD_E_SERVICE_STOPPED)
SCARD_E_SHARING_VIOLATION = _u32(scard.SCARD_E_SHARING_VIOLATION)
SCARD_E_TIMEOUT = _u32(scard.SCARD_E_TIMEOUT)
SCARD_F_COMM_ERROR = _u32(scard.SCARD_F_COMM_ERROR)
SCARD_E_UNKNOWN_READER = _u32(scard.SCARD_E_UNKNOWN_READER)
SCARD_W_REMOVED_CARD = _u32(scard.SCARD_W_REMOVED_CARD)
SCARD_W_RESET_CARD = _u32(scard.SCARD_W_RESET_CARD)
SCARD_W_UNPOWERED_CARD = _u32(scard.SCARD_W_UNPOWERED_CARD)
SCARD_W_UNRESPONSIVE_CARD = _u32(scard.SCARD_W_UNRESPONSIVE_CARD)

_CONTEXT_LOST = frozenset(
    (SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, SCARD_E_INVALID_HANDLE, SCARD_F_COMM_ERROR)
)

_ERRORS: dict[int, tuple[type[TransportError], str]] = {
    SCARD_E_NO_SERVICE: (PcscUnavailable, "the PC/SC service (pcscd) is not running"),
    SCARD_E_SERVICE_STOPPED: (PcscUnavailable, "the PC/SC service (pcscd) stopped"),
    SCARD_E_INVALID_HANDLE: (PcscUnavailable, "the PC/SC service (pcscd) was restarted"),
    SCARD_F_COMM_ERROR: (PcscUnavailable, "the PC/SC service (pcscd) stopped answering"),
    SCARD_E_NO_READERS_AVAILABLE: (NoReader, "no smart-card reader is attached"),
    SCARD_E_UNKNOWN_READER: (ReaderNotFound, "the reader is not attached"),
    SCARD_E_READER_UNAVAILABLE: (ReaderNotFound, "the reader was detached"),
    SCARD_E_NO_SMARTCARD: (NoCard, "no card in the reader"),
    SCARD_W_REMOVED_CARD: (CardRemoved, "the card was removed"),
    SCARD_W_RESET_CARD: (CardReset, "the card was reset by another application"),
    SCARD_W_UNRESPONSIVE_CARD: (CardMute, "the card does not answer"),
    SCARD_W_UNPOWERED_CARD: (CardMute, "the card is not powered"),
    SCARD_E_PROTO_MISMATCH: (CardMute, "the card's answer to reset offers no usable protocol"),
    SCARD_E_SHARING_VIOLATION: (CardBusy, "the card is held by another application"),
    SCARD_E_TIMEOUT: (TransportTimeout, "the PC/SC operation timed out"),
    # pcsc-lite answers "not transacted" when the card vanishes during an exchange.
    SCARD_E_NOT_TRANSACTED: (CardRemoved, "the exchange with the card was interrupted"),
}


def pcsc_error(result: int, operation: str, reader: str | None = None) -> TransportError:
    """The typed error for a PC/SC result code; the code itself stays in the context."""
    code = _u32(result)
    error_class, message = _ERRORS.get(code, (TransportError, "PC/SC failure"))
    context: dict[str, Any] = {"pcsc_result": f"0x{code:08X}", "operation": operation}
    if reader is not None:
        context["reader"] = reader
    return error_class(message, **context)


class _Pending:
    """The answer to a PC/SC call that runs on another thread, so that its caller can
    stop waiting. An answer that comes after the caller gave up (or was interrupted)
    is undone by ``undo``: a transaction is ended, a connection closed, so that the
    card is never left held by nobody."""

    def __init__(self, undo: Callable[[Any], None]) -> None:
        self._undo = undo
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self.value: Any = None

    def resolve(self, value: Any) -> None:
        with self._lock:
            if self._abandoned:
                self._undo(value)
                return
            self.value = value
            self._done.set()

    def wait(self, timeout: float) -> bool:
        """True with ``value`` set if answered within ``timeout``; else abandoned."""
        try:
            answered = self._done.wait(timeout)
        except BaseException:  # KeyboardInterrupt, SystemExit: nobody will use the answer
            self.abandon()
            raise
        if answered:
            return True
        with self._lock:
            if self._done.is_set():
                return True
            self._abandoned = True
            return False

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            if self._done.is_set():
                self._undo(self.value)

    @property
    def abandoned(self) -> bool:
        return self._abandoned


class _TransactionGate:
    """SCardBeginTransaction with a deadline.

    pcsc-lite's SCardBeginTransaction waits, for as long as another connection (in
    any process) holds the card, and cannot be interrupted. So it runs on a worker
    thread of the link: the caller waits for it at most ``timeout`` seconds, then
    gets CardBusy; a transaction obtained after the caller gave up is ended at once.
    """

    def __init__(self, handle: int, reader: str) -> None:
        self._handle = handle
        self._reader = reader
        self._requests: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._serve, name="pcsc-transaction", daemon=True)
        self._worker.start()

    def begin(self, timeout: float) -> None:
        pending = _Pending(self._end_if_obtained)
        self._requests.put(pending)
        if not pending.wait(timeout):
            raise CardBusy(
                "the card is held by another application",
                reader=self._reader,
                operation="SCardBeginTransaction",
            )
        if pending.value != SCARD_S_SUCCESS:
            raise pcsc_error(pending.value, "SCardBeginTransaction", self._reader)

    def _end_if_obtained(self, result: int) -> None:
        if result == SCARD_S_SUCCESS:
            scard.SCardEndTransaction(self._handle, scard.SCARD_LEAVE_CARD)

    def _serve(self) -> None:
        while (pending := self._requests.get()) is not None:
            pending.resolve(_u32(scard.SCardBeginTransaction(self._handle)))

    def close(self) -> None:
        self._requests.put(None)


class PcscLink:
    """A shared connection to the card in one PC/SC reader, on a PC/SC context of its
    own: pcsc-lite serialises the calls made on one context, so links to two cards
    (and the monitor) never wait for each other."""

    def __init__(self, context: int, reader: str, handle: int, protocol: int) -> None:
        self._context = context
        self._reader = reader
        self._handle = handle
        self._protocol = protocol
        self._atr = self._read_atr()
        self._gate = _TransactionGate(handle, reader)

    def _open_handle(self) -> int:
        if not self._handle:
            raise CardRemoved("the connection to the card was closed", reader=self._reader)
        return self._handle

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> CardProtocol:
        return CardProtocol(self._protocol)

    def _read_atr(self) -> bytes:
        result, _reader, _state, _protocol, atr = scard.SCardStatus(self._handle)
        if result != SCARD_S_SUCCESS:
            raise pcsc_error(result, "SCardStatus", self._reader)
        return bytes(atr)

    def transmit(self, apdu: bytes) -> bytes:
        result, response = scard.SCardTransmit(self._open_handle(), self._protocol, list(apdu))
        if result != SCARD_S_SUCCESS:
            raise pcsc_error(result, "SCardTransmit", self._reader)
        return bytes(response)

    def begin_transaction(self, timeout: float) -> None:
        self._open_handle()
        self._gate.begin(timeout)

    def end_transaction(self) -> None:
        result = scard.SCardEndTransaction(self._open_handle(), scard.SCARD_LEAVE_CARD)
        if result != SCARD_S_SUCCESS:
            raise pcsc_error(result, "SCardEndTransaction", self._reader)

    def control(self, code: int, data: bytes) -> bytes:
        result, response = scard.SCardControl(self._open_handle(), code, list(data))
        if result != SCARD_S_SUCCESS:
            raise pcsc_error(result, "SCardControl", self._reader)
        return bytes(response)

    def close(self, *, reset: bool = False) -> None:
        if self._handle:
            # Disconnecting first also wakes a worker blocked in SCardBeginTransaction.
            disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
            scard.SCardDisconnect(self._handle, disposition)
            self._handle = 0
            self._gate.close()
        if self._context:
            scard.SCardReleaseContext(self._context)
            self._context = 0


class PcscBackend:
    """Readers and cards seen through pcscd."""

    def __init__(self, *, connect_timeout: float = 5.0) -> None:
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._context: int | None = None
        self._monitor_context: int | None = None

    # -- contexts ------------------------------------------------------------------

    def _establish(self) -> int:
        result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if result != SCARD_S_SUCCESS:
            raise pcsc_error(result, "SCardEstablishContext")
        return int(context)

    def _with_context(self, call: Callable[[int], tuple[int, Any]], operation: str) -> Any:
        """Run ``call`` with the main context, establishing it again once if pcscd
        restarted since it was made."""
        for attempt in range(2):
            with self._lock:
                if self._context is None:
                    self._context = self._establish()
                context = self._context
            result, value = call(context)
            result = _u32(result)
            if result in _CONTEXT_LOST and attempt == 0:
                self._drop_context(context)
                continue
            if result != SCARD_S_SUCCESS:
                raise pcsc_error(result, operation)
            return value
        raise PcscUnavailable("the PC/SC service (pcscd) is not running", operation=operation)

    def _drop_context(self, context: int) -> None:
        with self._lock:
            if self._context == context:
                self._context = None
        scard.SCardReleaseContext(context)

    # -- readers and cards ---------------------------------------------------------

    def list_readers(self) -> list[str]:
        readers = self._with_context(lambda c: scard.SCardListReaders(c, []), "SCardListReaders")
        if not readers:
            raise NoReader("no smart-card reader is attached")
        return list(readers)

    def connect(self, reader: str) -> PcscLink:
        """Connect in shared mode. pcscd makes SCardConnect wait while another
        application holds a transaction on the card, whatever PCSCLITE_NO_BLOCKING
        says, so the call runs on a thread and the wait ends after
        ``connect_timeout`` with CardBusy (a connection made later is closed)."""
        pending = _Pending(_close_late_connection)
        threading.Thread(
            target=_connect, args=(reader, pending), name="pcsc-connect", daemon=True
        ).start()
        if not pending.wait(self.connect_timeout):
            raise CardBusy(
                "the card is held by another application", reader=reader, operation="SCardConnect"
            )
        outcome = pending.value
        if isinstance(outcome, TransportError):
            raise outcome
        context, handle, protocol = outcome
        try:
            return PcscLink(context, reader, handle, protocol)
        except BaseException:
            _close_late_connection(outcome)
            raise

    # -- states and events ---------------------------------------------------------

    def slot_states(self) -> dict[str, SlotState]:
        context = self._establish()
        try:
            return _query_states(context, {}, 0)
        finally:
            scard.SCardReleaseContext(context)

    def wait_for_change(
        self, known: Mapping[str, SlotState], timeout: float
    ) -> dict[str, SlotState]:
        context = self._monitoring_context()
        try:
            return _query_states(context, known, max(0, int(timeout * 1000)))
        except PcscUnavailable:
            self._drop_monitor_context()  # pcscd went away: the next call starts afresh
            raise

    def _monitoring_context(self) -> int:
        # Waiting gets a context of its own, so that cancel() wakes only the waiter.
        with self._lock:
            if self._monitor_context is None:
                self._monitor_context = self._establish()
            return self._monitor_context

    def _drop_monitor_context(self) -> None:
        with self._lock:
            context, self._monitor_context = self._monitor_context, None
        if context is not None:
            scard.SCardReleaseContext(context)

    def cancel(self) -> None:
        with self._lock:
            context = self._monitor_context
        if context is not None:
            scard.SCardCancel(context)

    def close(self) -> None:
        self._drop_monitor_context()
        with self._lock:
            context, self._context = self._context, None
        if context is not None:
            scard.SCardReleaseContext(context)


def _connect(reader: str, pending: _Pending) -> None:
    """SCardConnect on a context of its own, for PcscBackend.connect's thread."""
    try:
        result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if _u32(result) != SCARD_S_SUCCESS:
            pending.resolve(pcsc_error(result, "SCardEstablishContext", reader))
            return
        protocols = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        while True:
            result, handle, protocol = scard.SCardConnect(
                context, reader, scard.SCARD_SHARE_SHARED, protocols
            )
            result = _u32(result)
            if result != SCARD_E_SHARING_VIOLATION or pending.abandoned:
                break
            time.sleep(_POLL_INTERVAL)  # held exclusively by another application
        if result != SCARD_S_SUCCESS:
            scard.SCardReleaseContext(context)
            pending.resolve(pcsc_error(result, "SCardConnect", reader))
            return
        pending.resolve((int(context), int(handle), int(protocol)))
    except Exception as error:  # reported to the waiting caller, never lost on this thread
        failure = TransportError(
            "PC/SC failure", operation="SCardConnect", reader=reader, reason=str(error)
        )
        pending.resolve(failure)


def _close_late_connection(outcome: object) -> None:
    if isinstance(outcome, tuple):
        context, handle, _protocol = outcome
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)


def _query_states(
    context: int, known: Mapping[str, SlotState], timeout_ms: int
) -> dict[str, SlotState]:
    """Read every slot's state, waiting up to ``timeout_ms`` for one to differ from
    ``known`` (a reader attached or detached, a card inserted or removed)."""
    result, readers = scard.SCardListReaders(context, [])
    result = _u32(result)
    if result not in (SCARD_S_SUCCESS, SCARD_E_NO_READERS_AVAILABLE):
        raise pcsc_error(result, "SCardListReaders")
    readers = list(readers or [])
    if set(readers) != set(known):
        # The reader list itself changed: ask for every state afresh, at once.
        known, timeout_ms = {}, 0
    # The PnP pseudo-reader wakes us when a reader is attached or detached; its
    # current-state counter (upper 16 bits) is the number of readers we know.
    query = [(r, _encode_state(known.get(r))) for r in readers]
    query.append((PNP_NOTIFICATION, len(readers) << 16))
    result, states = scard.SCardGetStatusChange(context, timeout_ms, query)
    result = _u32(result)
    if result in (SCARD_E_TIMEOUT, SCARD_E_CANCELLED) and known:
        return dict(known)  # same readers, nothing changed
    if result not in (SCARD_S_SUCCESS, SCARD_E_TIMEOUT, SCARD_E_CANCELLED):
        raise pcsc_error(result, "SCardGetStatusChange")
    return {
        name: _decode_state(name, event_state, atr)
        for name, event_state, atr in states
        if name != PNP_NOTIFICATION and not event_state & scard.SCARD_STATE_UNKNOWN
    }


def _encode_state(state: SlotState | None) -> int:
    if state is None:
        return int(scard.SCARD_STATE_UNAWARE)
    flags = scard.SCARD_STATE_PRESENT if state.card_present else scard.SCARD_STATE_EMPTY
    if state.mute:
        flags |= scard.SCARD_STATE_MUTE
    return int((state.events << 16) | flags)


def _decode_state(reader: str, event_state: int, atr: list[int]) -> SlotState:
    present = bool(event_state & scard.SCARD_STATE_PRESENT)
    return SlotState(
        reader=reader,
        card_present=present,
        atr=bytes(atr) if present else b"",
        mute=bool(event_state & scard.SCARD_STATE_MUTE),
        events=(event_state >> 16) & 0xFFFF,
    )
