"""Hostile cards for the card-layer fuzz tests: links (the :class:`CardLink`
protocol) whose answers Hypothesis chooses, either by mutating what a real
simulator card answers or by scripting every answer outright."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from cardauth.errors import TransportError
from cardauth.transport.base import CardProtocol
from simulator.card import VirtualCard
from simulator.personas import load
from simulator.profiles import build_card

READER = "fuzz reader 00 00"

# Status words that steer the card layer: chaining (61xx, 6Cxx), tries left (63Cx),
# end of file and past it, PIN blocked, security not satisfied, and plain ones.
STEERING_SW = st.one_of(
    st.sampled_from([0x9000, 0x6282, 0x6B00, 0x6983, 0x6982, 0x6A82, 0x6700, 0x6400, 0x6401]),
    st.integers(0x6100, 0x61FF),
    st.integers(0x6C00, 0x6CFF),
    st.integers(0x63C0, 0x63CF),
    st.integers(0x0000, 0xFFFF),
)


def fresh_card(persona: str) -> VirtualCard:
    """A new card of ``persona`` (its PIN state untouched by earlier examples)."""
    return build_card(load(persona))


@st.composite
def mutated(draw: st.DrawFn, answer: bytes) -> bytes:
    """``answer`` (a response APDU), most often as it is, else damaged the way a
    faulty or hostile card would damage it."""
    kind = draw(
        st.sampled_from(
            ["keep"] * 6 + ["flip", "truncate", "status", "append", "replace", "empty", "chain"]
        )
    )
    if kind == "keep":
        return answer
    if kind == "flip" and answer:
        position = draw(st.integers(0, len(answer) - 1))
        flipped = answer[position] ^ draw(st.integers(1, 255))
        return answer[:position] + bytes((flipped,)) + answer[position + 1 :]
    if kind == "truncate":
        return answer[: draw(st.integers(0, max(0, len(answer) - 1)))]
    if kind == "status":
        return answer[:-2] + draw(STEERING_SW).to_bytes(2, "big")
    if kind == "append":
        return answer + draw(st.binary(min_size=1, max_size=300))
    if kind == "replace":
        return draw(st.binary(max_size=300))
    if kind == "chain":  # announce more bytes than there are: GET RESPONSE follows
        return answer[:-2] + bytes((0x61, draw(st.integers(0, 255))))
    return b""


class MutatingLink:
    """A link to a real simulator card whose every answer passes through ``damage``
    on its way back (its commands reach the card unchanged)."""

    def __init__(self, card: VirtualCard, damage: Callable[[bytes], bytes]) -> None:
        self.card = card
        self.damage = damage

    @property
    def reader(self) -> str:
        return READER

    @property
    def atr(self) -> bytes:
        return self.card.atr

    @property
    def protocol(self) -> CardProtocol:
        return CardProtocol.T0 if self.card.spec.t0 else CardProtocol.T1

    def transmit(self, apdu: bytes) -> bytes:
        return self.damage(self.card.process(apdu))

    def begin_transaction(self, timeout: float) -> None:
        return None

    def end_transaction(self) -> None:
        return None

    def control(self, code: int, data: bytes) -> bytes:
        raise TransportError("no PIN pad on this reader", control_code=f"{code:08X}")

    def close(self, *, reset: bool = False) -> None:
        if reset:
            self.card.power_on()


class ScriptedLink:
    """A link whose answers (to commands and to reader controls) are whatever
    ``answer`` gives, whatever was asked."""

    def __init__(self, atr: bytes, answer: Callable[[], bytes]) -> None:
        self._atr = atr
        self.answer = answer
        self.commands: list[bytes] = []

    @property
    def reader(self) -> str:
        return READER

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> CardProtocol:
        return CardProtocol.T1

    def transmit(self, apdu: bytes) -> bytes:
        self.commands.append(apdu)
        return self.answer()

    def begin_transaction(self, timeout: float) -> None:
        return None

    def end_transaction(self) -> None:
        return None

    def control(self, code: int, data: bytes) -> bytes:
        return self.answer()

    def close(self, *, reset: bool = False) -> None:
        return None
