"""A virtual smart card: an ISO/IEC 7816-4 command interpreter over a file system,
PIN objects and on-card keys.

The card answers every command with an exact status word: what it knows it
executes, and everything else gets the status a real card would give (6D00 for
an unknown instruction, 6E00 for an unknown class, 6A86 for parameters it does
not support...). With ``t0`` set it behaves like a T=0 card: data come back
through 61xx and GET RESPONSE, and a wrong Le is answered 6Cxx, so that the
host's handling of both is exercised.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cardauth import tlv
from cardauth.apdu import (
    SHORT_MAX_NE,
    CommandApdu,
    Ins,
    ResponseApdu,
    StatusWord,
    sw_bytes_available,
    sw_tries_left,
    sw_wrong_le,
)
from cardauth.cards.algorithms import CardAlgorithm
from cardauth.cards.security import CRT_AUTHENTICATION, CRT_DIGITAL_SIGNATURE
from cardauth.errors import MalformedApdu, MalformedCardData
from simulator.faults import NO_FAULTS, CardEvent, CardFaults, Fault, FaultSettings
from simulator.filesystem import MF_FID, DedicatedFile, ElementaryFile, find_application
from simulator.security import CardKey, KeyAccess, KeyOperation, PinObject

CLA_INTERINDUSTRY = 0x00
CLA_CHAINING = 0x10


_TEMPLATES = {
    KeyOperation.INTERNAL_AUTHENTICATE: CRT_AUTHENTICATION,
    KeyOperation.COMPUTE_SIGNATURE: CRT_DIGITAL_SIGNATURE,
}

# PSO COMPUTE DIGITAL SIGNATURE: P1 = 9E (signature out), P2 = 9A (data to sign in).
PSO_CDS = (0x9E, 0x9A)


class CardStatus(Exception):
    """Internal: ends a command with a status word (never leaves the interpreter)."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass(slots=True)
class _SecurityEnvironment:
    key_reference: int
    algorithm: CardAlgorithm


@dataclass(slots=True)
class _Session:
    """Volatile state, cleared at every power-on or reset."""

    current_df: DedicatedFile
    current_ef: ElementaryFile | None = None
    verified: set[int] = field(default_factory=set)
    environments: dict[int, _SecurityEnvironment] = field(default_factory=dict)
    pending: bytes = b""  # response data waiting for GET RESPONSE
    chain: bytes = b""  # command data received so far under command chaining
    chain_header: tuple[int, int, int] | None = None


@dataclass
class CardSpec:
    """Everything that makes one card: built by a profile, run by VirtualCard."""

    atr: bytes
    mf: DedicatedFile
    pins: dict[int, PinObject]
    keys: dict[int, CardKey]
    puk_for_pin: dict[int, int] = field(default_factory=dict)  # PIN reference -> PUK reference
    t0: bool = False  # profiles set it from the ATR: T=0 when T=1 is not offered
    extended_length: bool = False
    mute: bool = False  # a truncated ATR, and so no protocol: nothing gets through
    label: str = "virtual card"
    faults: FaultSettings = NO_FAULTS  # what may go wrong (simulator/faults.py)


class VirtualCard:
    """A card that processes command APDUs. Thread-safe: one command at a time."""

    def __init__(self, spec: CardSpec) -> None:
        self.spec = spec
        self.commands: Counter[int] = Counter()  # INS byte -> count, for tests and benches
        self.pins_presented = 0  # VERIFY commands carrying a PIN (not status queries, resets)
        self.faults = CardFaults(spec.faults)
        self._lock = threading.Lock()
        self._session = _Session(spec.mf)
        self._handlers: dict[int, Callable[[CommandApdu], ResponseApdu]] = {
            Ins.SELECT: self._select,
            Ins.READ_BINARY: self._read_binary,
            Ins.GET_RESPONSE: self._get_response,
            Ins.VERIFY: self._verify,
            Ins.CHANGE_REFERENCE_DATA: self._change_reference_data,
            Ins.RESET_RETRY_COUNTER: self._reset_retry_counter,
            Ins.MANAGE_SECURITY_ENVIRONMENT: self._manage_security_environment,
            Ins.PERFORM_SECURITY_OPERATION: self._perform_security_operation,
            Ins.INTERNAL_AUTHENTICATE: self._internal_authenticate,
        }

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())

    @property
    def atr(self) -> bytes:
        """The answer to reset. A mute card gets no further than its first byte, so
        that no reader can agree a protocol with it (PC/SC: "protocol mismatch")."""
        return self.spec.atr[:1] if self.spec.mute else self.spec.atr

    def power_on(self) -> bytes:
        """Cold or warm reset: volatile state goes, the ATR comes back."""
        with self._lock:
            self._session = _Session(self.spec.mf)
        return self.atr

    def pin(self, reference: int) -> PinObject:
        return self.spec.pins[reference]

    def process(self, raw: bytes) -> bytes:
        """Execute one command APDU and return the response APDU bytes, as the card's
        faults let them through. CardEvent when the card is pulled or reset meanwhile
        (for the reader holding it to act out)."""
        with self._lock:
            fault = self.faults.before(raw)
            if fault is Fault.RESET:
                self._session = _Session(self.spec.mf)
                raise CardEvent(fault)
            if fault is Fault.REMOVAL:
                if self.faults.executes_before_removal():
                    self._process(raw)
                raise CardEvent(fault)
            return self.faults.after(fault, self._process(raw).to_bytes())

    # -- dispatch ------------------------------------------------------------------

    def _process(self, raw: bytes) -> ResponseApdu:
        try:
            command = CommandApdu.from_bytes(raw)
        except MalformedApdu:
            return ResponseApdu(b"", StatusWord.WRONG_LENGTH)
        self.commands[command.ins] += 1
        if command.ins == Ins.VERIFY and command.p1 == 0x00 and command.data:
            self.pins_presented += 1
        extended_form = len(raw) > 5 and raw[4] == 0  # ISO 7816-4 § 5.1: 00 then 2-byte fields
        if extended_form and (self.spec.t0 or not self.spec.extended_length):
            return ResponseApdu(b"", StatusWord.WRONG_LENGTH)
        if command.ins != Ins.GET_RESPONSE:
            self._session.pending = b""
        try:
            command = self._unchain(command)
            if command.cla != CLA_INTERINDUSTRY:
                raise CardStatus(StatusWord.CLA_NOT_SUPPORTED)
            handler = self._handlers.get(command.ins)
            if handler is None:
                raise CardStatus(StatusWord.INS_NOT_SUPPORTED)
            response = handler(command)
        except CardStatus as status:
            return ResponseApdu(b"", status.sw)
        if command.ins == Ins.GET_RESPONSE:
            return response
        return self._deliver(command, response)

    def _unchain(self, command: CommandApdu) -> CommandApdu:
        """Command chaining (ISO 7816-4 § 5.3.3): CLA bit 10 means more data follows."""
        session = self._session
        header = (command.ins, command.p1, command.p2)
        if command.cla & CLA_CHAINING:
            if session.chain_header not in (None, header):
                session.chain, session.chain_header = b"", None
                raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
            session.chain += command.data
            session.chain_header = header
            raise CardStatus(StatusWord.OK)
        if session.chain_header is None:
            return command
        if session.chain_header != header:
            session.chain, session.chain_header = b"", None
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        data = session.chain + command.data
        session.chain, session.chain_header = b"", None
        return CommandApdu(command.cla, command.ins, command.p1, command.p2, data, command.ne)

    def _deliver(self, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
        """Fit response data to Ne; in T=0, go through 61xx or 6Cxx as a real card does."""
        data = response.data
        if not data:
            return response
        if self.spec.t0:
            if command.data or command.ne is None:  # case 3 or 4: the data wait for GET RESPONSE
                self._session.pending = data
                return ResponseApdu(b"", sw_bytes_available(min(len(data), SHORT_MAX_NE)))
            if command.ne != len(data) and len(data) < SHORT_MAX_NE:  # case 2 with a wrong Le
                return ResponseApdu(b"", sw_wrong_le(len(data)))
        if command.ne is not None and len(data) > command.ne:
            self._session.pending = data[command.ne :]
            remaining = min(len(self._session.pending), SHORT_MAX_NE)
            return ResponseApdu(data[: command.ne], sw_bytes_available(remaining))
        return response

    # -- file commands -------------------------------------------------------------

    def _select(self, command: CommandApdu) -> ResponseApdu:
        """SELECT (ISO 7816-4 § 11.1.1): by FID, child DF, EF, parent, AID or path."""
        if command.p2 & 0x03:  # only the first occurrence is supported
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        return_fcp = command.p2 & 0x0C in (0x00, 0x04)
        if command.p2 & 0x0C == 0x08:  # FMD
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        target = self._resolve_selection(command.p1, command.data)
        if target is None:
            raise CardStatus(StatusWord.FILE_NOT_FOUND)
        session = self._session
        if isinstance(target, DedicatedFile):
            session.current_df, session.current_ef = target, None
        else:
            session.current_ef = target
            session.current_df = self._parent_of(target)
        return ResponseApdu(target.fcp() if return_fcp else b"", StatusWord.OK)

    def _resolve_selection(self, p1: int, data: bytes) -> ElementaryFile | DedicatedFile | None:
        current = self._session.current_df
        if p1 == 0x04:
            if not 1 <= len(data) <= 16:
                raise CardStatus(StatusWord.WRONG_LENGTH)
            return find_application(self.spec.mf, data)
        if p1 == 0x03:
            if data:
                raise CardStatus(StatusWord.WRONG_LENGTH)
            return current.parent or self.spec.mf
        if p1 in (0x08, 0x09):
            return self._resolve_path(p1, data)
        if p1 not in (0x00, 0x01, 0x02):
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        if p1 == 0x00 and not data:
            return self.spec.mf
        if len(data) != 2:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        fid = int.from_bytes(data, "big")
        found = self._by_fid(fid)
        if p1 == 0x01 and not isinstance(found, DedicatedFile):
            return None
        if p1 == 0x02 and not isinstance(found, ElementaryFile):
            return None
        return found

    def _by_fid(self, fid: int) -> ElementaryFile | DedicatedFile | None:
        """Search order of ISO 7816-4 § 7.1.1: MF, children, the DF itself, its parent's."""
        current = self._session.current_df
        if fid == MF_FID:
            return self.spec.mf
        if fid == current.fid:
            return current
        found = current.child(fid)
        if found is None and current.parent is not None:
            found = current.parent if current.parent.fid == fid else current.parent.child(fid)
        return found

    def _resolve_path(self, p1: int, data: bytes) -> ElementaryFile | DedicatedFile | None:
        if not data or len(data) % 2:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        fids = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        node: ElementaryFile | DedicatedFile | None = self._session.current_df
        if p1 == 0x08 or fids[0] == MF_FID:
            node = self.spec.mf
            if fids[0] == MF_FID:
                fids = fids[1:]
        for fid in fids:
            if not isinstance(node, DedicatedFile):
                return None
            node = node.child(fid)
        return node

    def _parent_of(self, ef: ElementaryFile) -> DedicatedFile:
        return next(df for df in self.spec.mf.walk() if ef in df.children)

    def _read_binary(self, command: CommandApdu) -> ResponseApdu:
        """READ BINARY (ISO 7816-4 § 11.2.3), by current EF or short file identifier."""
        if command.ne is None or command.data:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        session = self._session
        if command.p1 & 0x80:
            if command.p1 & 0x60:
                raise CardStatus(StatusWord.INCORRECT_P1_P2)
            ef = session.current_df.by_sfi(command.p1 & 0x1F)
            if ef is None:
                raise CardStatus(StatusWord.FILE_NOT_FOUND)
            session.current_ef = ef
            offset = command.p2
        else:
            if session.current_ef is None:
                raise CardStatus(StatusWord.COMMAND_NOT_ALLOWED_NO_CURRENT_EF)
            ef = session.current_ef
            offset = (command.p1 << 8) | command.p2
        if offset > len(ef.data):
            raise CardStatus(StatusWord.WRONG_P1_P2)
        chunk = ef.data[offset : offset + command.ne]
        if len(chunk) < command.ne and not self.spec.t0:
            return ResponseApdu(chunk, StatusWord.END_OF_FILE)
        return ResponseApdu(chunk, StatusWord.OK)

    def _get_response(self, command: CommandApdu) -> ResponseApdu:
        """GET RESPONSE (ISO 7816-4 § 11.4.2): the next part of a pending response."""
        session = self._session
        if command.p1 or command.p2:
            raise CardStatus(StatusWord.WRONG_P1_P2)
        if not session.pending:
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        if command.ne is None or command.data:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        available = len(session.pending)
        if command.ne > available:
            return ResponseApdu(b"", sw_wrong_le(available))
        chunk, session.pending = session.pending[: command.ne], session.pending[command.ne :]
        if session.pending:
            return ResponseApdu(chunk, sw_bytes_available(min(len(session.pending), 256)))
        return ResponseApdu(chunk, StatusWord.OK)

    # -- PIN commands --------------------------------------------------------------

    def _pin_for(self, reference: int) -> PinObject:
        pin = self.spec.pins.get(reference)
        if pin is None:
            raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
        return pin

    def _verify(self, command: CommandApdu) -> ResponseApdu:
        """VERIFY (ISO 7816-4 § 11.5.6). No data: tell the state without spending a try."""
        session = self._session
        if command.p1 == 0xFF and not command.data:  # reset the verification status
            self._pin_for(command.p2)
            session.verified.discard(command.p2)
            return ResponseApdu(b"", StatusWord.OK)
        if command.p1 != 0x00:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        pin = self._pin_for(command.p2)
        if pin.blocked:
            raise CardStatus(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
        if not command.data:
            if command.p2 in session.verified:
                return ResponseApdu(b"", StatusWord.OK)
            return ResponseApdu(b"", sw_tries_left(pin.tries_left))
        if len(command.data) != pin.encoded_length:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        if pin.check(command.data):
            session.verified.add(command.p2)
            return ResponseApdu(b"", StatusWord.OK)
        session.verified.discard(command.p2)
        return ResponseApdu(b"", sw_tries_left(pin.tries_left))

    def _change_reference_data(self, command: CommandApdu) -> ResponseApdu:
        """CHANGE REFERENCE DATA (ISO 7816-4 § 11.5.7), P1 = 00: old then new PIN."""
        if command.p1 != 0x00:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        pin = self._pin_for(command.p2)
        if pin.blocked:
            raise CardStatus(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
        if len(command.data) != 2 * pin.encoded_length:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        old, new = command.data[: pin.encoded_length], command.data[pin.encoded_length :]
        if not _valid_pin_encoding(new, pin.encoded_length):
            raise CardStatus(StatusWord.INCORRECT_DATA)
        if not pin.check(old):
            self._session.verified.discard(command.p2)
            return ResponseApdu(b"", sw_tries_left(pin.tries_left))
        pin.replace(new)
        self._session.verified.add(command.p2)
        return ResponseApdu(b"", StatusWord.OK)

    def _reset_retry_counter(self, command: CommandApdu) -> ResponseApdu:
        """RESET RETRY COUNTER (ISO 7816-4 § 11.5.10) with the PUK.

        P1 = 00: PUK then new PIN; P1 = 01: PUK only, the PIN is kept.
        """
        if command.p1 not in (0x00, 0x01):
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        pin = self._pin_for(command.p2)
        puk_reference = self.spec.puk_for_pin.get(command.p2)
        if puk_reference is None:
            raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
        puk = self._pin_for(puk_reference)
        if puk.blocked:
            raise CardStatus(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
        expected = puk.encoded_length + (pin.encoded_length if command.p1 == 0x00 else 0)
        if len(command.data) != expected:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        presented, new = command.data[: puk.encoded_length], command.data[puk.encoded_length :]
        if new and not _valid_pin_encoding(new, pin.encoded_length):
            raise CardStatus(StatusWord.INCORRECT_DATA)
        if not puk.check(presented):
            return ResponseApdu(b"", sw_tries_left(puk.tries_left))
        if new:
            pin.replace(new)
        else:
            pin.unblock()
        return ResponseApdu(b"", StatusWord.OK)

    # -- cryptographic commands ----------------------------------------------------

    def _manage_security_environment(self, command: CommandApdu) -> ResponseApdu:
        """MSE SET (ISO 7816-4 § 11.5.11): choose the key and algorithm for a template."""
        if command.p1 & 0x0F != 0x01 or command.p2 not in (
            CRT_AUTHENTICATION,
            CRT_DIGITAL_SIGNATURE,
        ):
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        try:
            objects = tlv.parse(command.data)
        except MalformedCardData:
            raise CardStatus(StatusWord.INCORRECT_DATA) from None
        key_ref = tlv.find(objects, 0x84) or tlv.find(objects, 0x83)
        alg_ref = tlv.find(objects, 0x80)
        if key_ref is None or alg_ref is None or len(key_ref.value) != 1 or len(alg_ref.value) != 1:
            raise CardStatus(StatusWord.INCORRECT_DATA)
        key = self.spec.keys.get(key_ref.value[0])
        if key is None or _TEMPLATES[key.operation] != command.p2:
            raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
        try:
            algorithm = CardAlgorithm(alg_ref.value[0])
        except ValueError:
            raise CardStatus(StatusWord.INCORRECT_DATA) from None
        if algorithm not in key.algorithms:
            raise CardStatus(StatusWord.INCORRECT_DATA)
        self._session.environments[command.p2] = _SecurityEnvironment(key.reference, algorithm)
        return ResponseApdu(b"", StatusWord.OK)

    def _perform_security_operation(self, command: CommandApdu) -> ResponseApdu:
        """PSO COMPUTE DIGITAL SIGNATURE (ISO 7816-8 § 5.4)."""
        if (command.p1, command.p2) != PSO_CDS:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        return self._sign_with(CRT_DIGITAL_SIGNATURE, command.data)

    def _internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """INTERNAL AUTHENTICATE (ISO 7816-4 § 11.5.2) with the key set in the AT template."""
        if command.p1 or command.p2:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        return self._sign_with(CRT_AUTHENTICATION, command.data)

    def _sign_with(self, template: int, data: bytes) -> ResponseApdu:
        session = self._session
        environment = session.environments.get(template)
        if environment is None:
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        if not data:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        key = self.spec.keys[environment.key_reference]
        if key.access is not KeyAccess.ALWAYS and key.pin_reference not in session.verified:
            raise CardStatus(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        self.faults.signing()
        try:
            signature = key.sign(environment.algorithm, data)
        except ValueError:
            raise CardStatus(StatusWord.INCORRECT_DATA) from None
        if key.access is KeyAccess.PIN_EACH_USE and key.pin_reference is not None:
            session.verified.discard(key.pin_reference)
        return ResponseApdu(signature, StatusWord.OK)


def _valid_pin_encoding(encoded: bytes, length: int) -> bool:
    digits = encoded.rstrip(b"\xff")
    return len(encoded) == length and 4 <= len(digits) <= length and digits.isdigit()
