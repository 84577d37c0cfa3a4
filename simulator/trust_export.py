"""``cardauth-sim export-trust DIR``: the test PKI's trust, in the directory layout
that ``cardauth verify --trust DIR`` and ``Verifier.from_directory`` read
(docs/verifier.md). For development and tests only: these roots are public test
roots whose keys anyone can derive."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from simulator.personas import Persona
from simulator.pki import (
    BIRTH_RANK_ATTRIBUTE,
    CARD_TYPE_POLICIES,
    VITALE_POLICY,
    Authority,
    SimulatorPki,
    simulator_pki,
)


def export_trust(
    directory: Path,
    *,
    now: dt.datetime,
    ocsp_url: str | None = None,
    pki: SimulatorPki | None = None,
    personas: Iterable[Persona] | None = None,
) -> None:
    """Write roots, intermediates, CRLs issued at ``now`` and trust.toml."""
    pki = pki or simulator_pki()
    personas = list(personas) if personas is not None else None
    for folder, authorities in (
        ("cps-roots", [pki.cps_root]),
        ("vitale-roots", [pki.vitale_root]),
        ("intermediates", list(pki.issuing_authorities)),
    ):
        _write_certificates(directory / folder, authorities)
    crls = directory / "crls"
    crls.mkdir(parents=True, exist_ok=True)
    for authority in pki.authorities:  # the roots' CRLs cover the intermediates
        crl = pki.crl(authority, now, personas)
        (crls / f"{authority.slug}.crl").write_bytes(crl.public_bytes(Encoding.DER))
    (directory / "trust.toml").write_text(_settings(ocsp_url), encoding="utf-8")


def _write_certificates(folder: Path, authorities: list[Authority]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for authority in authorities:
        (folder / f"{authority.slug}.pem").write_bytes(
            authority.certificate.public_bytes(Encoding.PEM)
        )


def _settings(ocsp_url: str | None) -> str:
    card_types = ", ".join(
        f"{json.dumps(oid.dotted_string)} = {json.dumps(card_type.value)}"
        for card_type, oid in CARD_TYPE_POLICIES.items()
    )
    lines = [
        "# Trust for the cardauth simulator's TEST PKI: for development and tests only.",
        "",
        "[profile]",
        f"cps_card_types = {{ {card_types} }}",
        f"vitale_policies = [{json.dumps(VITALE_POLICY.dotted_string)}]",
        f"birth_rank_attribute = {json.dumps(BIRTH_RANK_ATTRIBUTE.dotted_string)}",
        "",
        "[revocation]",
        "use_crl = true",
    ]
    if ocsp_url:
        lines += ["use_ocsp = true", f"ocsp_responder = {json.dumps(ocsp_url)}"]
    else:
        lines += ["use_ocsp = false  # no responder given to export-trust: CRLs only"]
    return "\n".join(lines) + "\n"
