"""Moving APDUs between the host and cards: the reader interface, the APDU channel
with its protocol handling and transactions, and card events."""

from cardauth.transport.base import CardLink, CardProtocol, ReaderBackend, SlotState
from cardauth.transport.channel import CardChannel

__all__ = ["CardChannel", "CardLink", "CardProtocol", "ReaderBackend", "SlotState"]
