"""The mechanism that gives PC/SC calls a deadline: an answer that comes after its
caller gave up is undone, whether the caller timed out or was interrupted."""

from __future__ import annotations

import threading

import pytest

from cardauth.transport.pcsc import _Pending


def test_answer_in_time_is_kept() -> None:
    undone: list[object] = []
    pending = _Pending(undone.append)
    threading.Timer(0.05, pending.resolve, args=("handle",)).start()
    assert pending.wait(2.0)
    assert pending.value == "handle"
    assert undone == []


def test_late_answer_is_undone() -> None:
    undone: list[object] = []
    pending = _Pending(undone.append)
    assert not pending.wait(0.05)
    pending.resolve("late handle")
    assert undone == ["late handle"]


def test_interrupted_caller_undoes_an_answer_already_there() -> None:
    undone: list[object] = []
    pending = _Pending(undone.append)
    pending.resolve("transaction")

    class Interrupt(BaseException):
        pass

    def interrupted_wait(timeout: float | None = None) -> bool:
        raise Interrupt

    pending._done.wait = interrupted_wait  # type: ignore[method-assign]
    with pytest.raises(Interrupt):
        pending.wait(1.0)
    assert undone == ["transaction"]


def test_interrupted_caller_undoes_a_later_answer() -> None:
    undone: list[object] = []
    pending = _Pending(undone.append)
    pending.abandon()
    pending.resolve("transaction")
    assert undone == ["transaction"]
