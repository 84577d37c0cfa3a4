"""Errors of the simulator, with stable codes like the rest of cardauth."""

from __future__ import annotations

from cardauth.errors import CardAuthError


class SimulatorError(CardAuthError):
    """Base of the simulator's errors."""

    code = "sim.error"


class NotLoopback(SimulatorError):
    """A vpcd address that is not loopback: cards are plugged in on this machine only."""

    code = "sim.not_loopback"


class VpcdUnreachable(SimulatorError):
    """The vpcd slot does not accept the card (pcscd or its vpcd driver is not running)."""

    code = "sim.vpcd_unreachable"
    status = 503  # on the control page: the card could not be moved now


class SlotOccupied(SimulatorError):
    """A card is already in that slot."""

    code = "sim.slot_occupied"
    status = 409


class PersonaError(SimulatorError):
    """A persona is unknown, or its file does not describe a valid card."""

    code = "sim.persona"
