"""A virtual smart card: an ISO/IEC 7816-4 command interpreter over a file system,
PIN objects and on-card keys, answering as an IAS-ECC card (the CPS3's platform)
does.

The card answers every command with an exact status word: what it knows it
executes, and everything else gets the status a real card gives (6D00 for an
unknown instruction, 6E00 for an unknown class, 6A86 for parameters it does not
support...). It is strict: the command forms real CPS3 cards were seen to accept
are accepted, the forms they refuse are refused with their status word, and the
forms no public trace shows are refused too (docs/simulator.md lists each one).
With ``t0`` set it behaves like a T=0 card: data come back through 61xx and GET
RESPONSE, and a wrong Le is answered 6Cxx, so that the host's handling of both is
exercised.
"""

from __future__ import annotations

import hashlib
import os
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
from cardauth.cards.algorithms import CardAlgorithm, HashReference
from cardauth.cards.security import CRT_AUTHENTICATION, CRT_DIGITAL_SIGNATURE, CRT_HASH
from cardauth.errors import MalformedApdu, MalformedCardData
from simulator.faults import NO_FAULTS, CardEvent, CardFaults, Fault, FaultSettings
from simulator.filesystem import MF_FID, DedicatedFile, ElementaryFile, find_application
from simulator.hashing import finish_sha256
from simulator.security import (
    CHV_RESET,
    CHV_VERIFY,
    FILE_READ,
    KEY_INTERNAL_AUTHENTICATE,
    KEY_PSO_SIGNATURE,
    SCB_ALWAYS,
    SCB_NEVER,
    SCB_USER_AUTHENTICATION,
    CardKey,
    KeyAccess,
    KeyOperation,
    PinObject,
    SdoClass,
    SecurityEnvironment,
)

CLA_INTERINDUSTRY = 0x00
CLA_CHAINING = 0x10
LOCAL_REFERENCE = 0x80  # a key or PIN reference local to the current DF

# SELECT (ISO 7816-4 § 11.1.1): the P1 values a CPS3 was seen to accept, and P2.
SELECT_BY_FID = (0x00, 0x02)
SELECT_PARENT = 0x03
SELECT_BY_NAME = 0x04
SELECT_PATH_FROM_CURRENT = 0x09
P2_FCP = 0x04
P2_NO_DATA = 0x0C
P2_FCI = 0x00

# PERFORM SECURITY OPERATION: P1 P2 (ISO 7816-8 § 5.2).
PSO_CDS = (0x9E, 0x9A)  # COMPUTE DIGITAL SIGNATURE
PSO_HASH = (0x90, 0xA0)  # HASH: the data field carries the hash (90) and/or data (80)
MSE_SET = 0x41  # MANAGE SECURITY ENVIRONMENT: SET for computation and internal authentication
GET_DATA_SDO = (0x3F, 0xFF)  # GET DATA of a security data object (IAS-ECC)
CHALLENGE_LENGTH = 8  # IAS-ECC hands out 8-byte challenges only
AUTHENTICATE_MAX_PERCENT = 40  # INTERNAL AUTHENTICATE takes at most 40 % of the modulus
PIN_USER_PASSWORD = 0x08  # AT template usage qualifier: user password (IAS-ECC)

_TEMPLATES = {
    KeyOperation.INTERNAL_AUTHENTICATE: CRT_AUTHENTICATION,
    KeyOperation.COMPUTE_SIGNATURE: CRT_DIGITAL_SIGNATURE,
}
_HASH_OF = {
    CardAlgorithm.SHA1_RSA_PKCS1: HashReference.SHA1,
    CardAlgorithm.SHA256_RSA_PKCS1: HashReference.SHA256,
}
_DIGEST_SIZE = {HashReference.SHA1: 20, HashReference.SHA256: 32}


class CardStatus(Exception):
    """Internal: ends a command with a status word (never leaves the interpreter)."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


@dataclass(slots=True)
class _Environment:
    """One template of the current security environment (set by MSE SET)."""

    key: CardKey | None
    algorithm: int


@dataclass(slots=True)
class _Session:
    """Volatile state, cleared at every power-on or reset."""

    current_df: DedicatedFile
    current_ef: ElementaryFile | None = None
    verified: set[int] = field(default_factory=set)
    environments: dict[int, _Environment] = field(default_factory=dict)
    hash_value: tuple[HashReference, bytes] | None = None  # left by PSO HASH for PSO CDS
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
    environments: dict[int, SecurityEnvironment] = field(default_factory=dict)
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
        self.pins_presented = 0  # VERIFY commands carrying a PIN or code (not status queries)
        self.faults = CardFaults(spec.faults)
        self._lock = threading.Lock()
        self._session = _Session(spec.mf)
        self._handlers: dict[int, Callable[[CommandApdu], ResponseApdu]] = {
            Ins.SELECT: self._select,
            Ins.READ_BINARY: self._read_binary,
            Ins.GET_RESPONSE: self._get_response,
            Ins.GET_DATA: self._get_data,
            Ins.GET_CHALLENGE: self._get_challenge,
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
    def verified_codes(self) -> frozenset[int]:
        """The references of the codes verified now (for tests: what a log-out left)."""
        with self._lock:
            return frozenset(self._session.verified)

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
        """SELECT (ISO 7816-4 § 11.1.1), in the forms a CPS3 accepts: P2 04 (FCP) or 0C
        (no data); P2 00 (FCI) is refused with 6A86, except for the MF by its name
        (answered 9000 without data, as a real card does)."""
        if command.p2 not in (P2_FCP, P2_NO_DATA, P2_FCI):
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        target = self._resolve_selection(command.p1, command.data)
        if target is None:
            raise CardStatus(StatusWord.FILE_NOT_FOUND)
        root_by_name = command.p1 == SELECT_BY_NAME and target is self.spec.mf
        if command.p2 == P2_FCI and not root_by_name:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        if root_by_name:
            self._log_out()  # selecting the IAS-ECC root application resets security status
        self._make_current(target)
        return ResponseApdu(target.fcp() if command.p2 == P2_FCP else b"", StatusWord.OK)

    def _resolve_selection(self, p1: int, data: bytes) -> ElementaryFile | DedicatedFile | None:
        if p1 == SELECT_BY_NAME:
            if not 1 <= len(data) <= 16:
                raise CardStatus(StatusWord.WRONG_LENGTH)
            return find_application(self.spec.mf, data)
        if p1 == SELECT_PARENT:
            if data:
                raise CardStatus(StatusWord.WRONG_LENGTH)
            return self._session.current_df.parent or self.spec.mf
        if p1 == SELECT_PATH_FROM_CURRENT:
            return self._resolve_path(data)
        if p1 not in SELECT_BY_FID:  # 01 (child DF) and 08 (path from the MF): never seen
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        if p1 == 0x00 and not data:
            return self.spec.mf
        if len(data) != 2:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        return self._by_fid(int.from_bytes(data, "big"))

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

    def _resolve_path(self, data: bytes) -> ElementaryFile | DedicatedFile | None:
        """A path from the current DF; a path that starts with 3F00 starts at the MF
        (real cards accept ``00 A4 09 04 04 3F00 D003``)."""
        if not data or len(data) % 2:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        fids = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        node: ElementaryFile | DedicatedFile | None = self._session.current_df
        if fids[0] == MF_FID:
            node, fids = self.spec.mf, fids[1:]
        for fid in fids:
            if not isinstance(node, DedicatedFile):
                return None
            node = node.child(fid)
        return node

    def _make_current(self, target: ElementaryFile | DedicatedFile) -> None:
        session = self._session
        df = target if isinstance(target, DedicatedFile) else self._parent_of(target)
        if df is not session.current_df:
            # A new current DF: the security environment set in the old one is gone.
            session.environments.clear()
            session.hash_value = None
        session.current_df = df
        session.current_ef = target if isinstance(target, ElementaryFile) else None

    def _parent_of(self, ef: ElementaryFile) -> DedicatedFile:
        return next(df for df in self.spec.mf.walk() if ef in df.children)

    def _log_out(self) -> None:
        session = self._session
        session.verified.clear()
        session.environments.clear()
        session.hash_value = None

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
        self._require(ef.access.scb(FILE_READ))
        if offset > len(ef.data) or (offset == len(ef.data) and ef.data):  # outside the EF
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

    def _get_data(self, command: CommandApdu) -> ResponseApdu:
        """GET DATA of a security data object (IAS-ECC, ISO 7816-4 § 11.4.3 with an
        extended header list): ``4D { 70 { BF cc rr { tag 80 } } }`` asks for one part
        of the object ``cc rr``; the answer is ``70 { BF cc rr { part } }``. The object
        must be in the current DF (a real card answers 6A88 otherwise)."""
        if (command.p1, command.p2) != GET_DATA_SDO:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        header, wanted = _parse_header_list(command.data)
        part = self._sdo_part(header >> 8, header & 0xFF, wanted)
        body = tlv.encode(0xBF0000 | header, part)
        return ResponseApdu(tlv.encode(0x70, body), StatusWord.OK)

    def _sdo_part(self, class_byte: int, reference: int, wanted: int) -> bytes:
        current = self._session.current_df.fid
        sdo_class = class_byte & 0x7F
        if sdo_class == SdoClass.CHV:
            pin = self.spec.pins.get(reference)
            if pin is None or pin.home != current:
                raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
            parts = {0xA0: pin.descriptor, 0x7F41: pin.public_data}
        elif sdo_class == SdoClass.RSA_PRIVATE_KEY:
            key = self.spec.keys.get(LOCAL_REFERENCE | reference)
            if key is None or key.home != current:
                raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
            parts = {0xA0: key.descriptor}  # a private key has no public part (7F48): 6A86
        elif sdo_class == SdoClass.SECURITY_ENVIRONMENT:
            environment = self.spec.environments.get(reference)
            if environment is None or environment.home != current:
                raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
            parts = {SdoClass.SECURITY_ENVIRONMENT: environment.encode}
        else:
            raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
        encode = parts.get(wanted)
        if encode is None:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        return encode()

    def _get_challenge(self, command: CommandApdu) -> ResponseApdu:
        """GET CHALLENGE (ISO 7816-4 § 11.5.3): IAS-ECC gives 8 bytes and no other length."""
        if command.p1 or command.p2:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        if command.data or command.ne != CHALLENGE_LENGTH:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        return ResponseApdu(os.urandom(CHALLENGE_LENGTH), StatusWord.OK)

    # -- PIN commands --------------------------------------------------------------

    def _pin_for(self, reference: int) -> PinObject:
        pin = self.spec.pins.get(reference)
        if pin is None:
            raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
        return pin

    def _verify(self, command: CommandApdu) -> ResponseApdu:
        """VERIFY (ISO 7816-4 § 11.5.6). No data: tell the state without spending a try.
        P1 FF (reset the status) is not an IAS-ECC form: 6A86, as other P1 values;
        a card logs out when its root application is selected again."""
        if command.p1 != 0x00:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        session = self._session
        pin = self._pin_for(command.p2)
        if pin.access.scb(CHV_VERIFY) == SCB_NEVER:
            raise CardStatus(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        if pin.blocked:
            raise CardStatus(StatusWord.AUTHENTICATION_METHOD_BLOCKED)
        if not command.data:
            if command.p2 in session.verified:
                return ResponseApdu(b"", StatusWord.OK)
            return ResponseApdu(b"", sw_tries_left(pin.tries_left))
        if len(command.data) != pin.stored_length:
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
        if pin.access.scb(0x40) == SCB_NEVER:  # the object's "change" rule
            raise CardStatus(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        if len(command.data) != 2 * pin.stored_length:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        old, new = command.data[: pin.stored_length], command.data[pin.stored_length :]
        if not _valid_pin_encoding(new, pin):
            raise CardStatus(StatusWord.INCORRECT_DATA)
        if not pin.check(old):
            self._session.verified.discard(command.p2)
            return ResponseApdu(b"", sw_tries_left(pin.tries_left))
        pin.replace(new)
        self._session.verified.add(command.p2)
        return ResponseApdu(b"", StatusWord.OK)

    def _reset_retry_counter(self, command: CommandApdu) -> ResponseApdu:
        """RESET RETRY COUNTER (ISO 7816-4 § 11.5.10) as IAS-ECC does it: the unblocking
        code is verified first (VERIFY of its own reference), then P1 = 02 sets a new
        PIN, or P1 = 03 only resets the counter. The unblocking code is never sent in
        this command: P1 = 00 and 01 are refused (6A86)."""
        if command.p1 not in (0x02, 0x03):
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        pin = self._pin_for(command.p2)
        if command.p1 == 0x03 and command.data:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        if command.p1 == 0x02 and len(command.data) != pin.stored_length:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        code = self._unblocking_code_of(pin)
        if code not in self._session.verified:
            raise CardStatus(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        unblocking = self._pin_for(code) if code is not None else None
        if unblocking is not None and unblocking.usage_left is not None:
            if unblocking.usage_left == 0:  # the code's uses are spent
                raise CardStatus(StatusWord.REFERENCE_DATA_NOT_USABLE)
            unblocking.usage_left -= 1
        if command.p1 == 0x02:
            if not _valid_pin_encoding(command.data, pin):
                raise CardStatus(StatusWord.INCORRECT_DATA)
            pin.replace(command.data)
        else:
            pin.unblock()
        return ResponseApdu(b"", StatusWord.OK)

    def _unblocking_code_of(self, pin: PinObject) -> int | None:
        """The code the PIN's reset rule names (SCB 1n: the code of SE n)."""
        scb = pin.access.scb(CHV_RESET)
        if scb & 0xF0 != SCB_USER_AUTHENTICATION:
            return None
        return self._user_code(scb & 0x0F)

    def _user_code(self, environment_reference: int) -> int | None:
        """The code a security environment's authentication template names (usage:
        user password), as IAS-ECC resolves an SCB of user authentication."""
        environment = self.spec.environments.get(environment_reference)
        if environment is None:
            return None
        return next(
            (
                reference
                for tag, usage, reference in environment.templates
                if tag == CRT_AUTHENTICATION and usage == PIN_USER_PASSWORD
            ),
            None,
        )

    # -- cryptographic commands ----------------------------------------------------

    def _manage_security_environment(self, command: CommandApdu) -> ResponseApdu:
        """MSE SET (ISO 7816-4 § 11.5.11): the key and algorithm of the authentication
        (A4) or signature (B6) template, or the hash algorithm (AA). The key must be
        in the current DF."""
        if command.p1 != MSE_SET or command.p2 not in (
            CRT_AUTHENTICATION,
            CRT_DIGITAL_SIGNATURE,
            CRT_HASH,
        ):
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        try:
            objects = tlv.parse(command.data)
        except MalformedCardData:
            raise CardStatus(StatusWord.INCORRECT_DATA) from None
        algorithm = tlv.find(objects, 0x80)
        if algorithm is None or len(algorithm.value) != 1:
            raise CardStatus(StatusWord.INCORRECT_DATA)
        session = self._session
        if command.p2 == CRT_HASH:
            if algorithm.value[0] not in set(HashReference):
                raise CardStatus(StatusWord.INCORRECT_DATA)
            session.environments[CRT_HASH] = _Environment(None, algorithm.value[0])
            session.hash_value = None
            return ResponseApdu(b"", StatusWord.OK)
        key_ref = tlv.find(objects, 0x84)  # a private key's reference (ISO 7816-4 table 64)
        if key_ref is None or len(key_ref.value) != 1:
            raise CardStatus(StatusWord.INCORRECT_DATA)
        key = self.spec.keys.get(key_ref.value[0])
        if key is None or key.home != session.current_df.fid:
            raise CardStatus(StatusWord.REFERENCE_DATA_NOT_FOUND)
        fits = _TEMPLATES[key.operation] == command.p2
        if not fits or algorithm.value[0] not in key.algorithms:  # the other key's template
            raise CardStatus(StatusWord.INCORRECT_DATA)
        session.environments[command.p2] = _Environment(key, algorithm.value[0])
        return ResponseApdu(b"", StatusWord.OK)

    def _perform_security_operation(self, command: CommandApdu) -> ResponseApdu:
        """PSO HASH and COMPUTE DIGITAL SIGNATURE (ISO 7816-8 § 5.4, § 5.5)."""
        operation = (command.p1, command.p2)
        if operation == PSO_HASH:
            return self._hash(command.data)
        if operation == PSO_CDS:
            return self._compute_signature(command.data)
        raise CardStatus(StatusWord.INCORRECT_P1_P2)

    def _hash(self, data: bytes) -> ResponseApdu:
        """PSO HASH: 90 with the whole hash; or 90 with an intermediate SHA-256 state and
        bit count, then 80 with the last block, for the card to finish; or 90 00 and
        80 with the whole message. The hash waits for PSO CDS."""
        session = self._session
        environment = session.environments.get(CRT_HASH)
        if environment is None:
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        reference = HashReference(environment.algorithm)
        try:
            objects = tlv.parse(data)
        except MalformedCardData:
            raise CardStatus(StatusWord.INCORRECT_DATA) from None
        state, last = tlv.find(objects, 0x90), tlv.find(objects, 0x80)
        if state is None:
            raise CardStatus(StatusWord.INCORRECT_DATA)
        size = _DIGEST_SIZE[reference]
        if last is None and len(state.value) == size:
            digest = state.value
        elif last is not None and not state.value:
            digest = hashlib.new(reference.name.lower(), last.value).digest()
        elif (
            last is not None and len(state.value) == size + 8 and reference is HashReference.SHA256
        ):
            try:
                digest = finish_sha256(state.value[:size], state.value[size:], last.value)
            except ValueError:
                raise CardStatus(StatusWord.INCORRECT_DATA) from None
        else:
            raise CardStatus(StatusWord.INCORRECT_DATA)
        session.hash_value = (reference, digest)
        return ResponseApdu(b"", StatusWord.OK)

    def _compute_signature(self, data: bytes) -> ResponseApdu:
        """PSO CDS: with no data, signs the hash PSO HASH left; with data, signs that
        hash (the form of the card's own middleware for a hash computed outside)."""
        session = self._session
        environment = session.environments.get(CRT_DIGITAL_SIGNATURE)
        if environment is None or environment.key is None:
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        wanted = _HASH_OF[CardAlgorithm(environment.algorithm)]
        if data:
            if len(data) != _DIGEST_SIZE[wanted]:
                raise CardStatus(StatusWord.WRONG_LENGTH)
            digest = data
        else:
            if session.hash_value is None or session.hash_value[0] is not wanted:
                raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
            digest = session.hash_value[1]
        signature = self._sign(environment, KEY_PSO_SIGNATURE, digest)
        session.hash_value = None
        return ResponseApdu(signature, StatusWord.OK)

    def _internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """INTERNAL AUTHENTICATE (ISO 7816-4 § 11.5.2) with the key set in the AT template."""
        if command.p1 or command.p2:
            raise CardStatus(StatusWord.INCORRECT_P1_P2)
        environment = self._session.environments.get(CRT_AUTHENTICATION)
        if environment is None or environment.key is None:
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        if not command.data:
            raise CardStatus(StatusWord.WRONG_LENGTH)
        return ResponseApdu(
            self._sign(environment, KEY_INTERNAL_AUTHENTICATE, command.data), StatusWord.OK
        )

    def _sign(self, environment: _Environment, operation: int, data: bytes) -> bytes:
        key = environment.key
        assert key is not None
        if key.rules.scb(operation) == SCB_NEVER:  # e.g. the signature key in the AT template
            raise CardStatus(StatusWord.CONDITIONS_NOT_SATISFIED)
        if key.access is not KeyAccess.ALWAYS and key.pin_reference not in self._session.verified:
            raise CardStatus(StatusWord.SECURITY_STATUS_NOT_SATISFIED)
        if (
            environment.algorithm == CardAlgorithm.RSA_PKCS1
            and len(data) * 100 > key.modulus_bytes * AUTHENTICATE_MAX_PERCENT
        ):
            raise CardStatus(StatusWord.INCORRECT_DATA)
        self.faults.signing()
        try:
            signature = key.sign(CardAlgorithm(environment.algorithm), data)
        except ValueError:
            raise CardStatus(StatusWord.INCORRECT_DATA) from None
        if key.access is KeyAccess.PIN_EACH_USE and key.pin_reference is not None:
            self._session.verified.discard(key.pin_reference)
        return signature

    def _require(self, scb: int) -> None:
        """Check an access rule: always, never, or user authentication (SCB 1n: the code
        that security environment n names must be verified)."""
        if scb == SCB_ALWAYS:
            return
        if scb & 0xF0 != SCB_USER_AUTHENTICATION or self._user_code(scb & 0x0F) not in (
            self._session.verified
        ):
            raise CardStatus(StatusWord.SECURITY_STATUS_NOT_SATISFIED)


def _parse_header_list(data: bytes) -> tuple[int, int]:
    """``4D { 70 { BF cc rr { tag 80 } } }``: the object (cc rr) and the tag asked."""
    try:
        header_list = tlv.require(tlv.parse(data), 0x4D)  # primitive, yet holds TLVs
        template = tlv.require(tlv.parse(header_list.value), 0x70)
        objects = template.children()
    except MalformedCardData:
        raise CardStatus(StatusWord.INCORRECT_DATA) from None
    if len(objects) != 1 or objects[0].tag >> 16 != 0xBF or len(objects[0].value) not in (2, 3):
        raise CardStatus(StatusWord.INCORRECT_DATA)
    request = objects[0].value
    if request[-1] != 0x80:
        raise CardStatus(StatusWord.INCORRECT_DATA)
    return objects[0].tag & 0xFFFF, int.from_bytes(request[:-1], "big")


def _valid_pin_encoding(encoded: bytes, pin: PinObject) -> bool:
    digits = encoded.rstrip(b"\xff")
    return (
        len(encoded) == pin.stored_length
        and pin.min_length <= len(digits) <= pin.max_length
        and digits.isdigit()
    )
