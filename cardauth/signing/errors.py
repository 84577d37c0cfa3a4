"""The refusals of document signing and of signature verification, each with its
stable code (texts in cardauth/texts/core.toml)."""

from __future__ import annotations

from cardauth.errors import CardAuthError


class SigningError(CardAuthError):
    """Base of the refusals met while producing a signature."""

    code = "signing.error"


class FileUnreadable(SigningError):
    """A file given to sign or to verify cannot be read (missing, no permission, too
    large)."""

    code = "signing.file_unreadable"


class DocumentInvalid(SigningError):
    """The document given is not what its format needs (a PDF that is no PDF)."""

    code = "signing.document_invalid"


class OutputExists(SigningError):
    """The output file exists, and overwriting it was not asked for."""

    code = "signing.output_exists"


class OutputNotWritable(SigningError):
    """The output file cannot be written (folder missing, no permission, disk full)."""

    code = "signing.output_not_writable"


class CertificateNotForSigning(SigningError):
    """The certificate is not a signature certificate (key usage nonRepudiation)."""

    code = "signing.certificate_usage"


class SignerCertificateRejected(SigningError):
    """The signer's certificate does not validate against the trust (revoked, no path
    to a root): a long-term signature (B-LT) checks it before the card signs."""

    code = "signing.certificate_rejected"


class TsaUnreachable(SigningError):
    """The time-stamping authority could not be reached."""

    code = "signing.tsa_unreachable"


class TsaAnswerInvalid(SigningError):
    """The time-stamping authority answered with something that is no time stamp
    for this signature, or refused to stamp."""

    code = "signing.tsa_invalid"


class TsaRequired(SigningError):
    """A time-stamped level (B-T, B-LT) was asked for without a time-stamping authority."""

    code = "signing.tsa_required"


class RevocationDataUnavailable(SigningError):
    """Revocation data for a long-term signature (B-LT) could not be gathered."""

    code = "signing.revocation_unavailable"


class LevelNotSupported(SigningError):
    """A signature level the format does not offer here (B-LT is for PAdES)."""

    code = "signing.level_unsupported"


class DeferredStateInvalid(SigningError):
    """The state kept between prepare and finish is damaged or of another kind."""

    code = "signing.state_invalid"


class SignatureValueInvalid(SigningError):
    """The raw signature given to finish does not verify with the signer's key over
    the hash prepare gave."""

    code = "signing.signature_value"


class VerificationError(CardAuthError):
    """Base of the refusals of a signature's verification."""

    code = "signature.error"


class SignatureMissing(VerificationError):
    """The document carries no signature."""

    code = "signature.missing"


class SignatureMalformed(VerificationError):
    """The signature (or the document that should carry it) does not parse."""

    code = "signature.malformed"


class SignatureInvalid(VerificationError):
    """The signature does not match the document: it was altered after signing, or
    the signature is not the key's."""

    code = "signature.invalid"


class SignatureWrongKey(VerificationError):
    """The signer's certificate is not a signature certificate (no nonRepudiation):
    a CPS card's authentication key signed, which never signs documents."""

    code = "signature.certificate_usage"


class SignatureUntrusted(VerificationError):
    """The signer's certificate does not chain to a trusted root, or is not valid
    at the signing time."""

    code = "signature.untrusted"


class SignatureRevoked(VerificationError):
    """The signer's certificate was revoked before the signing time."""

    code = "signature.revoked"


class SignatureRevocationUnknown(VerificationError):
    """No revocation data could tell whether the signer's certificate holds."""

    code = "signature.revocation_unknown"


class TimestampInvalid(VerificationError):
    """The signature's time stamp does not hold (altered, or its authority is not
    trusted)."""

    code = "signature.timestamp_invalid"
