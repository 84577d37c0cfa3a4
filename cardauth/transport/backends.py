"""Where the commands find their readers: PC/SC through pyscard, or the simulator's
virtual readers (``--simulate``), each an installable part of its own.

A teleservice installs cardauth without the card stack; a workstation installs it
without the simulator (docs/install.md). So neither pyscard nor the simulator is
imported here by name: pyscard when PC/SC is asked for, the simulator through the
entry point it declares (group ``cardauth.readers``, name ``simulated``). A part that
is not installed is a typed error that names the package to install.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from typing import cast

from cardauth.errors import PartMissing
from cardauth.transport.base import ReaderBackend

ENTRY_POINT_GROUP = "cardauth.readers"
SIMULATED = "simulated"
CARDS_PACKAGE = "cardauth[cards]"
SIMULATOR_PACKAGE = "cardauth-simulator"


def open_backend(*, simulate: bool, personas: Sequence[str] = ()) -> ReaderBackend:
    """The workstation's PC/SC readers, or, with ``simulate``, the simulator's
    in-process virtual readers holding ``personas`` (its default cards if none)."""
    if simulate:
        return simulated_readers()(personas)
    try:
        from cardauth.transport.pcsc import PcscBackend  # noqa: PLC0415 - pyscard if asked
    except ImportError as error:
        raise PartMissing(
            "pyscard is not installed", part="cards", package=CARDS_PACKAGE
        ) from error
    return PcscBackend()


def simulated_readers() -> Callable[[Sequence[str]], ReaderBackend]:
    """The simulator's factory of virtual readers, found through its entry point."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=SIMULATED)
    if not found:
        raise PartMissing(
            "the simulator is not installed", part="simulator", package=SIMULATOR_PACKAGE
        )
    entry_point = next(iter(found))  # a development install and a wheel may both say it
    return cast("Callable[[Sequence[str]], ReaderBackend]", entry_point.load())


def personas_of(text: str) -> list[str]:
    """``--personas doctor,patient`` as a list (empty: the simulator's defaults)."""
    return [name for name in text.split(",") if name]
