"""Card signatures (ISO 7816-4 § 11.5.2, § 11.5.11; ISO 7816-8 § 5.4, § 5.5), in the
sequences IAS-ECC cards (the CPS3) take from their own middleware and OpenSC:

- authentication: MSE SET AT { 80 algorithm, 84 key }, then INTERNAL AUTHENTICATE
  with the data to sign (a DigestInfo: the card pads it);
- non-repudiation signature: MSE SET HT { 80 hash }, MSE SET DST { 80 algorithm,
  84 key }, PSO HASH { 90 the hash, computed on the host }, then PSO COMPUTE
  DIGITAL SIGNATURE with no data.
"""

from __future__ import annotations

from cardauth import tlv
from cardauth.apdu import CommandApdu, Ins, ResponseApdu, StatusWord, describe_sw
from cardauth.cards import files
from cardauth.cards.algorithms import CardAlgorithm, HashReference
from cardauth.errors import PinRequired, UnexpectedStatus
from cardauth.transport.channel import CardChannel

# Control reference templates of MSE SET.
CRT_AUTHENTICATION = 0xA4  # AT: used by INTERNAL AUTHENTICATE
CRT_DIGITAL_SIGNATURE = 0xB6  # DST: used by PSO COMPUTE DIGITAL SIGNATURE
CRT_HASH = 0xAA  # HT: used by PSO HASH
MSE_SET_COMPUTE = 0x41  # SET, for computation and internal authentication
PSO_HASH = (0x90, 0xA0)
PSO_COMPUTE_SIGNATURE = (0x9E, 0x9A)
TAG_HASH_CODE = 0x90  # ISO 7816-8 § 5.5: the hash code, computed outside the card


def authenticate(channel: CardChannel, key: int, algorithm: CardAlgorithm, data: bytes) -> bytes:
    """MSE SET AT, then INTERNAL AUTHENTICATE: the key signs ``data``."""
    _set(channel, CRT_AUTHENTICATION, algorithm, key)
    command = CommandApdu(0x00, Ins.INTERNAL_AUTHENTICATE, 0x00, 0x00, data, ne=256)
    return _signature_of(channel.transmit(command))


def sign_hash(
    channel: CardChannel,
    key: int,
    hash_reference: HashReference,
    algorithm: CardAlgorithm,
    digest: bytes,
) -> bytes:
    """The non-repudiation sequence: hash template, signature template, PSO HASH with
    the whole hash (tag 90), PSO CDS with no data."""
    mse = tlv.encode(0x80, bytes((hash_reference,)))
    command = CommandApdu(0x00, Ins.MANAGE_SECURITY_ENVIRONMENT, MSE_SET_COMPUTE, CRT_HASH, mse)
    files.expect_ok(channel.transmit(command), "MSE SET (hash)")
    _set(channel, CRT_DIGITAL_SIGNATURE, algorithm, key)
    hashed = CommandApdu(
        0x00, Ins.PERFORM_SECURITY_OPERATION, *PSO_HASH, tlv.encode(TAG_HASH_CODE, digest)
    )
    files.expect_ok(channel.transmit(hashed), "PSO HASH")
    command = CommandApdu(0x00, Ins.PERFORM_SECURITY_OPERATION, *PSO_COMPUTE_SIGNATURE, ne=256)
    return _signature_of(channel.transmit(command))


def _set(channel: CardChannel, template: int, algorithm: CardAlgorithm, key: int) -> None:
    data = tlv.encode_all(((0x80, bytes((algorithm,))), (0x84, bytes((key,)))))
    command = CommandApdu(0x00, Ins.MANAGE_SECURITY_ENVIRONMENT, MSE_SET_COMPUTE, template, data)
    files.expect_ok(channel.transmit(command), "MSE SET")


def _signature_of(response: ResponseApdu) -> bytes:
    if response.sw == StatusWord.SECURITY_STATUS_NOT_SATISFIED:
        raise PinRequired("the PIN must be verified before the card signs")
    if response.sw != StatusWord.OK or not response.data:
        raise UnexpectedStatus(
            f"signature answered {describe_sw(response.sw)}", sw=response.sw, command="SIGN"
        )
    return response.data
