"""PAdES baseline signatures (ETSI EN 319 142-1): B-B, B-T with a time stamp on the
signature, B-LT with the revocation data of the signer's and the authority's
certificates in the document security store (DSS)."""

from __future__ import annotations

import io
import zlib

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner, Signer
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import ValidationContext

from cardauth.signing.errors import DocumentInvalid, SignerCertificateRejected
from cardauth.signing.levels import DIGEST_ALGORITHM, Level

PDF_HEADER = b"%PDF-"


def open_pdf(document: bytes) -> IncrementalPdfFileWriter:
    """``document`` opened for an incremental update: a PDF, or DocumentInvalid."""
    if not document.startswith(PDF_HEADER):
        raise DocumentInvalid("the document is not a PDF (no %PDF- header)")
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(document), strict=False)
        writer.root  # noqa: B018 - the catalog must be there
    except (PdfError, ValueError, KeyError, TypeError, IndexError, zlib.error) as exc:
        raise DocumentInvalid("the PDF cannot be read", reason=str(exc)) from exc
    if writer.prev.encrypted:
        raise DocumentInvalid("the PDF is encrypted")
    return writer


def new_field_name(writer: IncrementalPdfFileWriter) -> str:
    """``SignatureN``, a field name no field of the document has yet."""
    reader: PdfFileReader = writer.prev
    taken = {name for name, _value, _ref in enumerate_sig_fields(reader)}
    number = len(taken) + 1
    while f"Signature{number}" in taken:
        number += 1
    return f"Signature{number}"


def signature_metadata(
    writer: IncrementalPdfFileWriter,
    level: Level,
    validation_context: ValidationContext | None,
    reason: str | None,
) -> PdfSignatureMetadata:
    long_term = level is Level.B_LT
    return PdfSignatureMetadata(
        field_name=new_field_name(writer),
        md_algorithm=DIGEST_ALGORITHM,
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        embed_validation_info=long_term,
        validation_context=validation_context if long_term else None,
    )


def sign_pdf(
    document: bytes,
    signer: Signer,
    *,
    level: Level,
    time_stamper: TimeStamper | None = None,
    validation_context: ValidationContext | None = None,
    reason: str | None = None,
) -> bytes:
    """The PDF with one more signature, at ``level`` (B-T and B-LT need
    ``time_stamper``; B-LT a ``validation_context`` with the revocation data)."""
    writer = open_pdf(document)
    metadata = signature_metadata(writer, level, validation_context, reason)
    pdf_signer = PdfSigner(
        metadata, signer=signer, timestamper=time_stamper if level.time_stamped else None
    )
    try:
        signed: io.BytesIO = pdf_signer.sign_pdf(writer)
    except PyHankoSigningError as exc:  # its checks before signing, B-LT's path validation
        raise SignerCertificateRejected(
            "the signer's certificate does not validate", reason=str(exc)
        ) from exc
    except (PdfError, ValueError, KeyError, TypeError, IndexError, zlib.error) as exc:
        raise DocumentInvalid("the PDF cannot be signed", reason=str(exc)) from exc
    return signed.getvalue()
