"""``cardauth sign`` and ``cardauth verify-signature``: the command line's side of
document signing (files in and out, the PIN, what is printed). :mod:`cardauth.cli`
loads this module only when one of the two commands runs, so that a command line
without the ``signing`` extra still does everything else.

The output file is written whole or not at all: the signature goes to a temporary
file beside the output, which then takes the output's name (without replacing a
file there unless ``--force``), and is removed on any failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cardauth.cards.application import CardKind
from cardauth.cards.cps import CpsCard, KeyRole
from cardauth.cards.identify import find_card
from cardauth.cards.session import Keypad, PinSource
from cardauth.signing import cades, pades, smime, verification
from cardauth.signing.card_signer import CardSigner
from cardauth.signing.errors import (
    FileUnreadable,
    LevelNotSupported,
    OutputExists,
    OutputNotWritable,
    TsaRequired,
)
from cardauth.signing.levels import Format, Level
from cardauth.signing.timestamps import HttpTimeStamper
from cardauth.signing.trust import SigningTrust
from cardauth.transport.backends import open_backend, personas_of

if TYPE_CHECKING:
    from cardauth.cli import Output

MAX_DOCUMENT = 256 * 1024 * 1024  # read whole: a larger file is refused, not swapped in


def quiet_pyhanko() -> None:
    """pyHanko logs what it refuses (and that it fetches nothing, by design here:
    trust.py) as warnings: the command says the refusal itself, with its code."""
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def read_document(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DOCUMENT + 1)
    except OSError as exc:
        raise FileUnreadable("the file cannot be read", file=str(path)) from exc
    if len(data) > MAX_DOCUMENT:
        raise FileUnreadable("the file is too large", file=str(path))
    return data


@contextlib.contextmanager
def output_file(path: Path, *, force: bool) -> Iterator[Callable[[bytes], None]]:
    """A writer that puts the bytes at ``path`` whole, or leaves nothing there. Checked
    before anything is signed: an existing file (without ``force``), a folder that
    cannot take the file."""
    if path.exists() and not force:
        raise OutputExists("the output file exists (--force replaces it)", file=str(path))
    try:
        staged_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, always
            prefix=f".{path.name}.", suffix=".part", dir=path.parent, delete=False
        )
    except OSError as exc:
        raise OutputNotWritable("the output cannot be written", file=str(path)) from exc
    staged = Path(staged_file.name)

    def write(data: bytes) -> None:
        try:
            with staged_file:
                staged_file.write(data)
                staged_file.flush()
                os.fsync(staged_file.fileno())
            staged.chmod(0o666 & ~_umask())  # as an ordinary new file (mkstemp's is 0600)
            if force:
                staged.replace(path)
            else:
                os.link(staged, path)  # fails if a file appeared there meanwhile
        except FileExistsError as exc:
            raise OutputExists("the output file exists", file=str(path)) from exc
        except OSError as exc:
            raise OutputNotWritable("the output cannot be written", file=str(path)) from exc

    try:
        yield write
    finally:
        staged_file.close()
        staged.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def pin_source(card: CpsCard, from_stdin: bool, prompt: str) -> Callable[[], PinSource]:
    """How the PIN is asked, each time the card is about to sign: standard input with
    ``--pin-stdin``, else the reader's keypad if it has one, else a prompt."""

    def ask() -> PinSource:
        if from_stdin:
            return sys.stdin.readline(64).rstrip("\r\n")
        if card.has_pinpad():
            return Keypad.ENTRY
        return getpass.getpass(prompt)

    return ask


def command_sign(args: argparse.Namespace, out: Output) -> int:
    """Sign a document with the CPS card's signature key."""
    quiet_pyhanko()
    document_format, level = Format(args.format), Level(args.level)
    if level.time_stamped and not args.tsa_url:
        raise TsaRequired("B-T and B-LT need --tsa-url", level=level.value)
    if level is Level.B_LT and document_format is not Format.PADES:
        raise LevelNotSupported("B-LT is offered for PAdES only", level=level.value)
    document = read_document(args.document)
    if document_format is Format.PADES:
        pades.open_pdf(document)  # a PDF that is no PDF is refused before the PIN
    trust = SigningTrust.from_directory(args.trust)
    stamper = HttpTimeStamper(args.tsa_url) if level.time_stamped else None
    with output_file(args.output, force=args.force) as write:
        backend = open_backend(simulate=args.simulate, personas=personas_of(args.personas))
        try:
            card = find_card(backend, CardKind.CPS)
            assert isinstance(card, CpsCard)
            certificate = card.certificate(KeyRole.SIGNATURE)
            signer = CardSigner(  # refuses an expired certificate before the PIN
                card,
                pin_source(card, args.pin_stdin, out.label("pin_prompt.sign")),
                chain=trust.chain_of(certificate),
            )
            signed = _signed(document, document_format, level, signer, trust, stamper, args.reason)
        finally:
            backend.close()
        write(signed)
    summary = {
        "output": str(args.output),
        "format": document_format.value,
        "level": level.value,
        "signer": verification.name_text(certificate.subject),
        "certificate_serial": f"{certificate.serial_number:X}",
    }
    if out.as_json:
        out.json({"signed": summary})
        return 0
    out.line(out.label("signed", output=args.output))
    out.field("signer", summary["signer"])
    out.field("signature_format", f"{document_format.value} {level.value.upper()}")
    return 0


def _signed(
    document: bytes,
    document_format: Format,
    level: Level,
    signer: CardSigner,
    trust: SigningTrust,
    stamper: HttpTimeStamper | None,
    reason: str | None,
) -> bytes:
    """``document`` signed in ``document_format`` at ``level``."""
    if document_format is Format.CADES:
        return cades.sign_detached(document, signer, level=level, time_stamper=stamper)
    if document_format is Format.SMIME:
        return smime.sign_message(document, signer, level=level, time_stamper=stamper)
    context = None
    if level is Level.B_LT:  # the revocation data gathered before the PIN is asked
        context = trust.validation_context(ocsps=trust.ocsp_answers([signer.certificate]))
    return pades.sign_pdf(
        document,
        signer,
        level=level,
        time_stamper=stamper,
        validation_context=context,
        reason=reason,
    )


def command_verify_signature(args: argparse.Namespace, out: Output) -> int:
    """Verify a signed PDF, a detached signature (with ``--content``) or an S/MIME
    message against a trust directory."""
    quiet_pyhanko()
    trust = SigningTrust.from_directory(args.trust)
    data = read_document(args.document)
    now = dt.datetime.now(dt.UTC)
    if args.content is not None:
        found: tuple[verification.VerifiedSignature, ...] = (
            verification.verify_detached(data, read_document(args.content), trust, now=now),
        )
    elif data.startswith(pades.PDF_HEADER):
        found = verification.verify_pdf(data, trust, now=now)
    else:
        found = (verification.verify_smime(data, trust, now=now),)
    if out.as_json:
        out.json({"valid": True, "signatures": [s.to_dict() for s in found]})
        return 0
    for signature in found:
        _print_signature(signature, out)
    return 0


def _print_signature(signature: verification.VerifiedSignature, out: Output) -> None:
    out.line(out.label("signature_valid"))
    out.field("signer", f"{signature.given_name or ''} {signature.surname or ''}".strip())
    if signature.idnat:
        out.field("identifier", f"IdNat {signature.idnat}")
    out.field("certificate.signature", signature.signer)
    validity = out.label(
        "valid",
        start=signature.not_before.date().isoformat(),
        end=signature.not_after.date().isoformat(),
    )
    serial = f"{out.label('certificate_serial')} {signature.certificate_serial}"
    out.line(f"    {validity} — {signature.issuer} — {serial}")
    out.field("signature_format", f"{signature.format.value} {signature.level.value.upper()}")
    if signature.timestamp is not None:
        out.field(
            "timestamp", f"{signature.timestamp.isoformat()} ({signature.timestamp_authority})"
        )
    elif signature.signing_time is not None:
        out.field("signing_time", signature.signing_time.isoformat())
    else:
        out.field("signing_time", out.label("signing_time.unknown"))
