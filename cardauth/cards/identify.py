"""Which card is in a reader: CPS or Vitale, by ATR and application probe.

The ATR says which application to try first; the probe (SELECT by AID) decides.
A card is never recognised by the slot it sits in: the professional may put
either card in either slot.
"""

from __future__ import annotations

from cardauth.cards import files
from cardauth.cards.application import CardApplication, CardFacts, CardKind
from cardauth.cards.atr import Atr
from cardauth.cards.cps import CpsCard
from cardauth.cards.vitale import VitaleCard
from cardauth.errors import (
    CardAuthError,
    CardNotPresent,
    MalformedCardData,
    UnexpectedStatus,
    UnknownCard,
)
from cardauth.transport.base import CardProtocol, ReaderBackend
from cardauth.transport.channel import CardChannel

APPLICATIONS: tuple[type[CardApplication], ...] = (CpsCard, VitaleCard)


def identify(channel: CardChannel) -> CardApplication:
    """The card application on ``channel``; UnknownCard when it is neither."""
    with channel.transaction():
        by_atr = sorted(APPLICATIONS, key=lambda app: not app.matches_atr(channel.atr))
        for application in by_atr:
            if application.probe(channel):
                card = application(channel)
                card.mark_selected()
                return card
    raise UnknownCard(
        "the card is neither a CPS nor a Vitale card", reader=channel.reader, atr=channel.atr.hex()
    )


def extended_length_usable(atr: bytes, protocol: CardProtocol) -> bool:
    """Whether the ATR's card capabilities announce extended Lc/Le, and the protocol
    can carry it (T=0 carries short APDUs only, ISO 7816-3 § 12.2)."""
    if protocol is not CardProtocol.T1:
        return False
    try:
        return Atr.parse(atr).extended_length
    except MalformedCardData:
        return False


def connect_channel(backend: ReaderBackend, reader: str) -> CardChannel:
    """A channel to the card in ``reader``, with extended length if usable."""
    link = backend.connect(reader)
    return CardChannel(link, extended_length=extended_length_usable(link.atr, link.protocol))


def open_card(backend: ReaderBackend, reader: str) -> CardApplication:
    """Connect to the card in ``reader`` and identify it (the connection is closed
    again if that fails)."""
    channel = connect_channel(backend, reader)
    try:
        return identify(channel)
    except BaseException:
        channel.close()
        raise


def identify_with_facts(channel: CardChannel) -> tuple[CardApplication, CardFacts]:
    """Identify the card and read its serial and certificate, in the caller's
    transaction and in the order that costs the card the fewest commands: the chip
    serial (under the MF) first, then the application probe, which leaves the
    application selected for the certificate (and whatever the caller reads next)."""
    with channel.transaction():
        try:
            serial: str | None = files.read_chip_serial(channel)
        except (MalformedCardData, UnexpectedStatus):
            serial = None  # an unknown card, most likely: identify says so
        card = identify(channel)
        if serial is not None:
            card.adopt_serial(serial)
        return card, CardFacts(
            card.serial(), card.certificate_der()
        )  # no serial: the card says why


def find_card(backend: ReaderBackend, kind: CardKind) -> CardApplication:
    """The first card of ``kind`` in any reader slot; CardNotPresent if none."""
    for reader, state in backend.slot_states().items():
        if not state.card_present:
            continue
        try:
            card = open_card(backend, reader)
        except CardAuthError:
            continue  # another card, one that went away, or one that answers oddly
        if card.KIND is kind:
            return card
        card.channel.close()
    raise CardNotPresent(f"no {kind.name} card in any reader", kind=kind.value)
