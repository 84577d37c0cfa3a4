"""Helpers shared by the tests."""

from __future__ import annotations

from simulator.card import VirtualCard
from simulator.personas import load
from simulator.profiles import build_card


def card_for(persona: str, *, t0: bool = False) -> VirtualCard:
    """A fresh virtual card (its own PIN counter) for a bundled persona."""
    return build_card(load(persona), t0=t0)
