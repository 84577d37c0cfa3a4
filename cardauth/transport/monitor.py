"""Card and reader events, delivered through a queue.

A monitor thread waits on the backend (PC/SC's SCardGetStatusChange, or the
virtual readers) and turns each change into events: reader attached or detached,
card inserted or removed. The first events describe what is already there (an
initial snapshot), so a consumer needs no separate query. Events go into a
queue and never run user code on the monitor thread (where a callback that
talks to the card would deadlock). When the backend fails (pcscd stopped), a
MONITOR_FAILED event is sent once; the monitor keeps trying, and when the
backend answers again it sends MONITOR_RECOVERED and the changes since.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from cardauth.errors import CardAuthError
from cardauth.transport.base import ReaderBackend, SlotState


class EventType(StrEnum):
    READER_ATTACHED = "reader_attached"
    READER_DETACHED = "reader_detached"
    CARD_INSERTED = "card_inserted"
    CARD_REMOVED = "card_removed"
    MONITOR_FAILED = "monitor_failed"
    MONITOR_RECOVERED = "monitor_recovered"


@dataclass(frozen=True, slots=True)
class CardEvent:
    type: EventType
    reader: str | None = None
    atr: bytes = b""
    error: CardAuthError | None = None


def diff_states(old: Mapping[str, SlotState], new: Mapping[str, SlotState]) -> list[CardEvent]:
    """The events that lead from ``old`` to ``new``, removals before insertions."""
    events: list[CardEvent] = []
    for reader, before in old.items():
        after = new.get(reader)
        replaced = after is not None and after.events != before.events
        if before.card_present and (after is None or not after.card_present or replaced):
            events.append(CardEvent(EventType.CARD_REMOVED, reader))
        if after is None:
            events.append(CardEvent(EventType.READER_DETACHED, reader))
    for reader, now in new.items():
        previous = old.get(reader)
        if previous is None:
            events.append(CardEvent(EventType.READER_ATTACHED, reader))
        replaced = previous is not None and now.events != previous.events
        inserted = previous is None or not previous.card_present or replaced
        if now.card_present and inserted:
            events.append(CardEvent(EventType.CARD_INSERTED, reader, now.atr))
    return events


class CardMonitor:
    """Watches a backend on a thread of its own; read events with :meth:`get`."""

    def __init__(
        self,
        backend: ReaderBackend,
        *,
        wait_timeout: float = 5.0,
        retry_interval: float = 0.5,
    ) -> None:
        self._backend = backend
        self._wait_timeout = wait_timeout
        self._retry_interval = retry_interval
        self._events: queue.Queue[CardEvent] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CardMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="card-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._backend.cancel()
        if self._thread is not None:
            self._thread.join(timeout=self._wait_timeout + 1)
            self._thread = None

    def __enter__(self) -> CardMonitor:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def get(self, timeout: float | None = None) -> CardEvent | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def events(self, timeout: float) -> Iterator[CardEvent]:
        """Events until none comes for ``timeout`` seconds."""
        while (event := self.get(timeout)) is not None:
            yield event

    def _run(self) -> None:
        known: dict[str, SlotState] = {}
        failed = False
        first = True
        while not self._stop.is_set():
            try:
                if first:
                    current = self._backend.slot_states()
                else:
                    current = self._backend.wait_for_change(known, self._wait_timeout)
            except CardAuthError as error:
                if not failed:
                    failed = True
                    self._events.put(CardEvent(EventType.MONITOR_FAILED, error=error))
                self._stop.wait(self._retry_interval)
                continue
            first = False
            if failed:
                failed = False
                self._events.put(CardEvent(EventType.MONITOR_RECOVERED))
            if self._stop.is_set():
                return
            for event in diff_states(known, current):
                self._events.put(event)
            known = current
