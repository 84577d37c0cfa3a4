"""Helpers shared by the tests."""

from __future__ import annotations

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
