"""Card signatures: MANAGE SECURITY ENVIRONMENT, then INTERNAL AUTHENTICATE or
PERFORM SECURITY OPERATION: COMPUTE DIGITAL SIGNATURE (ISO 7816-4 § 11.5.2,
§ 11.5.11; ISO 7816-8 § 5.4)."""

from __future__ import annotations

from cardauth import tlv
from cardauth.apdu import CommandApdu, Ins, ResponseApdu, StatusWord, describe_sw
from cardauth.cards import files
from cardauth.cards.algorithms import SignatureScheme
from cardauth.errors import PinRequired, UnexpectedStatus
from cardauth.transport.channel import CardChannel

# Control reference templates of MSE SET.
CRT_AUTHENTICATION = 0xA4  # AT: used by INTERNAL AUTHENTICATE
CRT_DIGITAL_SIGNATURE = 0xB6  # DST: used by PSO COMPUTE DIGITAL SIGNATURE
MSE_SET_COMPUTE = 0x41  # SET, for computation and internal authentication


def compute_signature(
    channel: CardChannel, template: int, key: int, scheme: SignatureScheme, data: bytes
) -> bytes:
    """MSE SET then INTERNAL AUTHENTICATE (template AT) or PSO CDS (template DST)."""
    mse_data = tlv.encode_all(((0x80, bytes((scheme.card_algorithm,))), (0x84, bytes((key,)))))
    mse = CommandApdu(0x00, Ins.MANAGE_SECURITY_ENVIRONMENT, MSE_SET_COMPUTE, template, mse_data)
    files.expect_ok(channel.transmit(mse), "MSE SET")
    if template == CRT_AUTHENTICATION:
        command = CommandApdu(0x00, Ins.INTERNAL_AUTHENTICATE, 0x00, 0x00, data, ne=256)
    else:
        command = CommandApdu(0x00, Ins.PERFORM_SECURITY_OPERATION, 0x9E, 0x9A, data, ne=256)
    response = channel.transmit(command)
    if response.sw == StatusWord.SECURITY_STATUS_NOT_SATISFIED:
        raise PinRequired("the PIN must be verified before the card signs")
    return _signature_of(response)


def _signature_of(response: ResponseApdu) -> bytes:
    if response.sw != StatusWord.OK or not response.data:
        raise UnexpectedStatus(
            f"signature answered {describe_sw(response.sw)}", sw=response.sw, command="SIGN"
        )
    return response.data
