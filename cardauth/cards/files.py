"""File access shared by the card applications: SELECT, READ BINARY loops, the
chip serial number, and the status-word checks that go with them."""

from __future__ import annotations

from cardauth.apdu import SHORT_MAX_NE, CommandApdu, Ins, ResponseApdu, StatusWord, describe_sw
from cardauth.errors import MalformedCardData, UnexpectedStatus
from cardauth.transport.channel import CardChannel

# SELECT P1 (ISO 7816-4 § 11.1.1, table 39), in the forms real CPS3 cards and their
# middleware use (docs/card-layer.md), and P2 "no response data".
SELECT_BY_FID = 0x02
SELECT_BY_AID = 0x04
SELECT_PATH = 0x09  # from the current DF; a path starting with 3F00 starts at the MF
SELECT_NO_DATA = 0x0C
MF_PATH = b"\x3f\x00"

EF_SN_ICC = 0xD003  # chip serial number, under the MF
SN_ICC_TAG = 0x5A
SN_ICC_LENGTH = 12  # 5A 0A + issuer number (5 bytes) + serial (5 bytes)

# Bounds on what a (possibly hostile) card can make us read.
MAX_FILE_SIZE = 16 * 1024


def expect_ok(response: ResponseApdu, command: str) -> bytes:
    """The data of a 9000 response; any other status word is UnexpectedStatus."""
    if response.sw != StatusWord.OK:
        raise UnexpectedStatus(
            f"{command} answered {describe_sw(response.sw)}", sw=response.sw, command=command
        )
    return response.data


def select_application(channel: CardChannel, aid: bytes) -> bool:
    """SELECT by AID without response data. True if the card has the application."""
    response = channel.transmit(CommandApdu(0x00, Ins.SELECT, SELECT_BY_AID, SELECT_NO_DATA, aid))
    if response.sw == StatusWord.OK:
        return True
    if response.sw in (
        StatusWord.FILE_NOT_FOUND,
        StatusWord.INCORRECT_P1_P2,
        StatusWord.FUNCTION_NOT_SUPPORTED,
        StatusWord.INS_NOT_SUPPORTED,
        StatusWord.CLA_NOT_SUPPORTED,
        StatusWord.WRONG_LENGTH,
    ):
        return False
    raise UnexpectedStatus(
        f"SELECT application answered {describe_sw(response.sw)}",
        sw=response.sw,
        command="SELECT",
    )


def select_file(channel: CardChannel, path: bytes, command: str = "SELECT") -> None:
    """SELECT a file by its id (two bytes: P1 02) or by path (P1 09), without FCP."""
    p1 = SELECT_BY_FID if len(path) == 2 and path != MF_PATH else SELECT_PATH
    if not path or len(path) % 2:
        raise MalformedCardData("a file path is an even, non-zero number of bytes")
    expect_ok(channel.transmit(CommandApdu(0x00, Ins.SELECT, p1, SELECT_NO_DATA, path)), command)


def read_chip_serial(channel: CardChannel) -> str:
    """The card serial from EF.SN.ICC (3F00/D003): ``5A 0A`` + issuer + serial, as hex.
    Selected by path from the MF, as the card's own middleware does."""
    select_file(channel, MF_PATH + EF_SN_ICC.to_bytes(2, "big"), "SELECT EF.SN.ICC")
    data = expect_ok(
        channel.transmit(CommandApdu(0x00, Ins.READ_BINARY, 0, 0, ne=SN_ICC_LENGTH)),
        "READ BINARY EF.SN.ICC",
    )
    if len(data) != SN_ICC_LENGTH or data[0] != SN_ICC_TAG or data[1] != SN_ICC_LENGTH - 2:
        raise MalformedCardData("EF.SN.ICC does not hold a serial number", length=len(data))
    return data[2:].hex().upper()


def read_file(channel: CardChannel, sfi: int | None = None) -> bytes:
    """The whole content of a transparent EF: the one named by its short file
    identifier, or the current EF (``sfi`` None).

    Reads as much as one response can carry until the card gives less (or says
    6282, end of file, or 6B00 at an offset just past the end).
    """
    size = _chunk_size(channel)
    content = bytearray()
    while True:
        response = _read_chunk(channel, sfi, len(content), size)
        if response.sw == StatusWord.WRONG_P1_P2 and content:
            return bytes(content)  # the file size was a multiple of the chunk size
        content += _read_data(response)
        if len(response.data) < size or response.sw == StatusWord.END_OF_FILE:
            return bytes(content)
        if len(content) > MAX_FILE_SIZE:
            raise MalformedCardData("card file larger than any we read", sfi=sfi)


def read_der_file(channel: CardChannel, sfi: int | None = None) -> bytes:
    """A file holding one DER object (a certificate): the length in its header
    tells how much to read, so the last read asks for exactly what remains."""
    size = _chunk_size(channel)
    first = _read_data(_read_chunk(channel, sfi, 0, size))
    total = _der_total_length(first)
    content = bytearray(first[:total])
    while len(content) < total:
        wanted = min(size, total - len(content))
        chunk = _read_data(_read_chunk(channel, sfi, len(content), wanted))
        if not chunk:
            raise MalformedCardData("certificate file ends before its DER length", sfi=sfi)
        content += chunk
    return bytes(content[:total])


def _chunk_size(channel: CardChannel) -> int:
    """As much as one response carries: 256 bytes, or more on extended-length cards."""
    return MAX_FILE_SIZE if channel.extended_length else SHORT_MAX_NE


def _read_data(response: ResponseApdu) -> bytes:
    """The data of a READ BINARY answered 9000, or 6282 (end of file reached)."""
    if response.sw == StatusWord.END_OF_FILE:
        return response.data
    return expect_ok(response, "READ BINARY")


def _read_chunk(channel: CardChannel, sfi: int | None, offset: int, ne: int) -> ResponseApdu:
    """READ BINARY: by SFI at the first read (ISO 7816-4 § 11.2.3: P1 = 80 | SFI,
    P2 = offset), then by offset in the EF that the first read made current."""
    if offset == 0 and sfi is not None:
        command = CommandApdu(0x00, Ins.READ_BINARY, 0x80 | sfi, 0, ne=ne)
    else:
        if offset > 0x7FFF:
            raise MalformedCardData("card file larger than any we read", sfi=sfi)
        command = CommandApdu(0x00, Ins.READ_BINARY, offset >> 8, offset & 0xFF, ne=ne)
    return channel.transmit(command)


def _der_total_length(head: bytes) -> int:
    """Header plus content length of the DER object that ``head`` starts."""
    if len(head) < 2 or head[0] != 0x30:
        raise MalformedCardData("certificate file does not start with a DER SEQUENCE")
    first = head[1]
    if first < 0x80:
        return 2 + first
    size = first & 0x7F
    if not 1 <= size <= 3 or len(head) < 2 + size:
        raise MalformedCardData("certificate DER length is not usable")
    total = 2 + size + int.from_bytes(head[2 : 2 + size], "big")
    if total > MAX_FILE_SIZE:
        raise MalformedCardData("certificate larger than any we read", length=total)
    return total
