"""Helpers shared by the tests."""

from __future__ import annotations

import signal
import socket
import subprocess

from simulator.card import VirtualCard
from simulator.personas import load
from simulator.profiles import build_card


def card_for(persona: str, *, t0: bool | None = None) -> VirtualCard:
    """A fresh virtual card (its own PIN counter) for a bundled persona; ``t0``
    overrides the protocol its ATR gives (T=0 for the CPS and Vitale ATRs)."""
    card = build_card(load(persona))
    if t0 is not None:
        card.spec.t0 = t0
    return card


LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM) -> int:
    """Stop ``process`` with ``sig`` (killed if it does not stop); its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT * 3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
    return process.returncode
