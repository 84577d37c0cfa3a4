"""Plug virtual cards into the real pcscd through vsmartcard's vpcd driver.

The vpcd driver (Debian package ``vsmartcard-vpcd``) makes pcscd show reader
slots that wait for a virtual card on TCP ports (35963 and 35964 by default).
A card is "inserted" by connecting to the slot's port and "removed" by closing
the connection. The framing (vsmartcard's vpcd protocol): every message is a
2-byte big-endian length then the bytes; a 1-byte message is a control (00 power
off, 01 power on, 02 reset: no reply; 04 get ATR: reply with the ATR); anything
else is an APDU, answered by exactly one framed response.

vpcd sends each message's length and body in two separate writes, so a reader
that waits for the body with plain ``recv`` sits out a delayed ACK (about 40 ms)
on every APDU. Setting ``TCP_QUICKACK`` before each read (Linux resets it after
use) and ``TCP_NODELAY`` for our replies brings an exchange down to a fraction
of a millisecond.

A card's faults (simulator/faults.py) reach pcscd as a real card's would: a card
pulled during a command closes the connection (pcscd sees it removed; the slot
plugs it in again). vpcd has no timeout and no way to report a reset: a card that
gives no answer (mute, or reset: its state is lost) drops out the same way.

vpcd listens on all interfaces: anyone who can reach its port can insert a card.
It belongs on development and test machines only; we connect on loopback only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time

from simulator.card import VirtualCard
from simulator.errors import NotLoopback, SimulatorError, SlotOccupied, VpcdUnreachable
from simulator.faults import CardEvent, Fault

log = logging.getLogger(__name__)

DEFAULT_PORTS = (35963, 35964)
_POWER_OFF, _POWER_ON, _RESET, _GET_ATR = 0x00, 0x01, 0x02, 0x04
_MAX_MESSAGE = 0xFFFF
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def require_loopback(host: str) -> None:
    """Refuse any host that is not a loopback address: a vpcd port reached over a
    network would let others insert cards."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise NotLoopback("vpcd is reached on loopback only", host=host)


class VpcdSlot:
    """One vpcd slot of pcscd, into which a virtual card can be inserted.

    While a card is inserted, a thread answers pcscd's requests; if pcscd goes
    away (restart), the slot keeps trying to plug the card in again until it is
    removed.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", *, reconnect: bool = True) -> None:
        require_loopback(host)
        if not 1 <= port <= 65535:
            raise SimulatorError("not a TCP port", port=port)
        self.host = host
        self.port = port
        self.reconnect = reconnect
        self._card: VirtualCard | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._socket_lock = threading.Lock()  # the socket changes hands under it

    @property
    def card(self) -> VirtualCard | None:
        return self._card

    def insert(self, card: VirtualCard, *, timeout: float = 5.0) -> None:
        """Connect ``card`` to the slot; VpcdUnreachable if vpcd does not answer."""
        if self._card is not None:
            raise SlotOccupied("the slot already holds a card", port=self.port)
        sock = self._connect(timeout)
        self._card = card
        self._stop.clear()
        self._socket = sock
        self._thread = threading.Thread(target=self._serve, name=f"vpcd-{self.port}", daemon=True)
        self._thread.start()

    def remove(self) -> VirtualCard | None:
        """Disconnect the card: pcscd sees it removed."""
        card, self._card = self._card, None
        with self._socket_lock:
            self._stop.set()
        self._close_socket()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        return card

    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError as error:
                if time.monotonic() >= deadline:
                    raise VpcdUnreachable(
                        "vpcd does not answer: is pcscd running with the vpcd driver?",
                        host=self.host,
                        port=self.port,
                        reason=str(error),
                    ) from error
                time.sleep(0.1)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock

    def _close_socket(self) -> None:
        with self._socket_lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                sock = self._socket
                card = self._card
                if sock is not None and card is not None:
                    with contextlib.suppress(OSError):
                        _serve_connection(sock, card)
                self._close_socket()
                if self._stop.is_set() or not self.reconnect:
                    return
                self._plug_again()
        finally:
            self._close_socket()  # whatever happened, a removed card is not left plugged

    def _plug_again(self) -> None:
        """pcscd closed the connection (restart): plug the card in again when it is back."""
        while not self._stop.is_set():
            try:
                sock = self._connect(timeout=0.5)
            except VpcdUnreachable:
                continue
            with self._socket_lock:
                plugged = not self._stop.is_set()
                if plugged:
                    self._socket = sock
            if not plugged:  # removed meanwhile
                sock.close()
                return
            log.info("card plugged in again on vpcd port %d", self.port)
            return


def _serve_connection(sock: socket.socket, card: VirtualCard) -> None:
    """Answer pcscd's messages until the connection closes."""
    while True:
        message = _read_message(sock)
        if message is None:
            return
        if len(message) == 1:
            reply = _control(card, message[0])
            if reply is not None:
                _send_message(sock, reply)
            continue
        try:
            response = card.process(message)
        except CardEvent as event:
            if event.fault is Fault.REMOVAL:
                return  # pulled: the connection closes, and the slot plugs the card in again
            response = b""  # reset: vpcd cannot tell pcscd, the command gets no answer
        if not response:  # vpcd waits for ever on an empty answer: the card drops out
            return
        _send_message(sock, response)


def _control(card: VirtualCard, code: int) -> bytes | None:
    if code in (_POWER_ON, _RESET):
        card.power_on()
        return None
    if code == _GET_ATR:
        return card.atr
    return None  # power off, or a control we do not know: nothing to answer


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_message(sock: socket.socket) -> bytes | None:
    header = _read_exactly(sock, 2)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length == 0:
        return b""
    return _read_exactly(sock, length)


def _send_message(sock: socket.socket, payload: bytes) -> None:
    if len(payload) > _MAX_MESSAGE:
        raise SimulatorError("response too long for vpcd", length=len(payload))
    sock.sendall(len(payload).to_bytes(2, "big") + payload)
