"""What a teleservice trusts: the CPS roots and the Vitale roots (kept apart, so a
Vitale card can never pass for a professional's card), intermediate certificates,
and the PKI profile that says how to read card certificates.

A trust directory (``cardauth verify --trust DIR``; written by ``cardauth-sim
export-trust DIR`` for the test PKI) has this layout::

    trust.toml            profile and revocation settings
    cps-roots/*.pem       roots for professional cards
    vitale-roots/*.pem    roots for Vitale cards
    intermediates/*.pem   intermediate CAs (optional: assertions may carry them)
    crls/*.crl            CRLs, DER or PEM (optional)

Every file is untrusted input: a bad one is a TrustConfigError naming it.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from cardauth.der import decode_certificates
from cardauth.errors import CardAuthError

CARD_TYPES = frozenset(("CPS", "CPE", "CPF", "CPA"))


class TrustConfigError(CardAuthError):
    """A trust directory or setting that cannot be used."""

    code = "trust.invalid"


@dataclass(frozen=True, slots=True)
class PkiProfile:
    """How card certificates say what they are.

    ``card_type_policies`` maps certificate policy OIDs of professional card
    certificates to the card type (CPS, CPE, CPF, CPA); ``vitale_policies`` are the
    policy OIDs of Vitale card certificates; ``birth_rank_attribute`` is the subject
    attribute carrying a Vitale holder's birth rank, if the PKI has one.
    """

    card_type_policies: Mapping[str, str]
    vitale_policies: frozenset[str]
    birth_rank_attribute: str | None = None

    def __post_init__(self) -> None:
        if not self.card_type_policies or not self.vitale_policies:
            raise TrustConfigError("the PKI profile needs CPS and Vitale policies")
        for oid, card_type in self.card_type_policies.items():
            _check_oid(oid)
            if card_type not in CARD_TYPES:
                raise TrustConfigError("unknown card type in the PKI profile", card_type=card_type)
        for oid in self.vitale_policies:
            _check_oid(oid)
        if set(self.card_type_policies) & self.vitale_policies:
            raise TrustConfigError("a policy cannot be both a CPS and a Vitale policy")


def _check_oid(oid: str) -> None:
    try:
        x509.ObjectIdentifier(oid)
    except ValueError:
        raise TrustConfigError("not an object identifier", oid=oid) from None


@dataclass(frozen=True, slots=True)
class TrustStore:
    cps_roots: tuple[x509.Certificate, ...]
    vitale_roots: tuple[x509.Certificate, ...]
    profile: PkiProfile
    intermediates: tuple[x509.Certificate, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cps_roots or not self.vitale_roots:
            raise TrustConfigError("CPS roots and Vitale roots are both needed")
        for root in (*self.cps_roots, *self.vitale_roots):
            _require_ca(root)
        cps_names = {r.subject for r in self.cps_roots}
        if cps_names & {r.subject for r in self.vitale_roots}:
            raise TrustConfigError("a root cannot be trusted for both kinds of card")

    @classmethod
    def load(cls, directory: Path) -> TrustStore:
        settings = load_settings(directory / "trust.toml")
        profile_settings = settings.get("profile")
        if not isinstance(profile_settings, dict):
            raise TrustConfigError("trust.toml needs a [profile] table", file=str(directory))
        return cls(
            cps_roots=load_certificates(directory / "cps-roots"),
            vitale_roots=load_certificates(directory / "vitale-roots"),
            intermediates=load_certificates(directory / "intermediates", required=False),
            profile=_profile(profile_settings),
            settings=settings,
        )


def _require_ca(certificate: x509.Certificate) -> None:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except Exception:  # not found, or an extension that does not decode
        raise TrustConfigError(
            "a root must be a CA certificate", subject=certificate.subject.rfc4514_string()
        ) from None
    if not constraints.value.ca:
        raise TrustConfigError(
            "a root must be a CA certificate", subject=certificate.subject.rfc4514_string()
        )


def load_settings(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustConfigError(
            "cannot read trust settings", file=str(path), reason=str(exc)
        ) from exc


def _profile(settings: Mapping[str, Any]) -> PkiProfile:
    card_types = settings.get("cps_card_types")
    vitale = settings.get("vitale_policies")
    rank = settings.get("birth_rank_attribute")
    if not isinstance(card_types, dict) or not isinstance(vitale, list):
        raise TrustConfigError("profile needs cps_card_types and vitale_policies")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in card_types.items()):
        raise TrustConfigError("cps_card_types maps policy OIDs to card types")
    if not all(isinstance(oid, str) for oid in vitale) or not (
        rank is None or isinstance(rank, str)
    ):
        raise TrustConfigError("vitale_policies and birth_rank_attribute are OIDs")
    return PkiProfile(dict(card_types), frozenset(vitale), rank)


def load_certificates(directory: Path, *, required: bool = True) -> tuple[x509.Certificate, ...]:
    """Every certificate in the PEM (or DER) files of ``directory``."""
    if not directory.is_dir():
        if required:
            raise TrustConfigError("missing certificate directory", directory=str(directory))
        return ()
    certificates: list[x509.Certificate] = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        try:
            certificates += decode_certificates(path.read_bytes())
        except ValueError as exc:
            raise TrustConfigError("not a certificate file", file=str(path)) from exc
    if required and not certificates:
        raise TrustConfigError("no certificate found", directory=str(directory))
    return tuple(certificates)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
