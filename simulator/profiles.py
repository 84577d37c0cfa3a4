"""Card profiles: how a persona becomes a virtual card (ATR, files, PIN, keys).

The layouts are those the card layer reads (:mod:`cardauth.cards.cps` and
:mod:`cardauth.cards.vitale`); the ATRs are those of real cards, so the card
layer recognises our cards by the same rules as real ones.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding

from cardauth import tlv
from cardauth.cards import cps, vitale
from cardauth.cards.algorithms import CardAlgorithm
from cardauth.cards.atr import Atr
from cardauth.cards.files import EF_SN_ICC, SN_ICC_TAG
from cardauth.errors import MalformedCardData
from simulator.card import CardSpec, VirtualCard
from simulator.filesystem import DedicatedFile, ElementaryFile, build_tree
from simulator.personas import CpsPersona, OtherPersona, Persona, VitalePersona
from simulator.pki import SimulatorPki, cps_key, simulator_pki, vitale_key
from simulator.security import CardKey, KeyAccess, KeyOperation, PinObject

CPS_ATR = bytes.fromhex("3BAC00402A001225006480000310009000")
VITALE_ATR = bytes.fromhex("3B751300004709EA9000")
CPS_ISSUER = bytes.fromhex("8025000001")
VITALE_ISSUER = bytes.fromhex("8025000002")
EF_DIR = 0x2F00
EF_ATR = 0x2F01
VITALE_DF = 0x1000
PKCS15_DF = 0x5015
PUK_TRIES = 10


def build_card(persona: Persona, *, pki: SimulatorPki | None = None) -> VirtualCard:
    """A fresh virtual card for ``persona``. It speaks the protocol its ATR offers:
    the CPS and Vitale ATRs offer T=0 only, so these cards answer with 61xx and 6Cxx
    as real ones do."""
    pki = pki or simulator_pki()
    if isinstance(persona, CpsPersona):
        spec = _cps_spec(persona, pki)
    elif isinstance(persona, VitalePersona):
        spec = _vitale_spec(persona, pki)
    else:
        spec = _other_spec(persona)
    spec.t0 = t0_only(spec.atr)
    spec.mute = persona.card.mute
    spec.faults = persona.card.faults
    return VirtualCard(spec)


def t0_only(atr: bytes) -> bool:
    """True when the ATR does not offer T=1 (an unusable ATR counts as T=0)."""
    try:
        return 1 not in Atr.parse(atr).protocols
    except MalformedCardData:
        return True


def _serial_file(issuer: bytes, serial: str) -> ElementaryFile:
    body = issuer + bytes.fromhex(serial)
    return ElementaryFile(EF_SN_ICC, bytes((SN_ICC_TAG, len(body))) + body)


def _dir_file(*applications: tuple[bytes, str]) -> ElementaryFile:
    """EF.DIR (ISO 7816-4 § 8.2.1.1): one application template (61) per application."""
    records = b"".join(
        tlv.encode(0x61, tlv.encode_all(((0x4F, aid), (0x50, label.encode()))))
        for aid, label in applications
    )
    return ElementaryFile(EF_DIR, records, sfi=0x1E)


def _cps_spec(persona: CpsPersona, pki: SimulatorPki) -> CardSpec:
    certificates = pki.cps_certificates(persona)
    ias = DedicatedFile(
        cps.IAS_DF,
        cps.IAS_AID,
        (
            ElementaryFile(cps.FID_HOLDER, persona.holder.to_tlv(), cps.SFI_HOLDER),
            ElementaryFile(
                cps.FID_AUTHENTICATION_CERTIFICATE,
                certificates.authentication.public_bytes(Encoding.DER),
                cps.SFI_AUTHENTICATION_CERTIFICATE,
            ),
            ElementaryFile(
                cps.FID_SIGNATURE_CERTIFICATE,
                certificates.signature.public_bytes(Encoding.DER),
                cps.SFI_SIGNATURE_CERTIFICATE,
            ),
        ),
    )
    mf = DedicatedFile(
        0x3F00,
        None,
        (
            _dir_file((cps.IAS_AID, "CPS IAS"), (cps.PKCS15_AID, "CPS PKCS#15")),
            ElementaryFile(EF_ATR, CPS_ATR, sfi=0x1D),
            _serial_file(CPS_ISSUER, persona.card.serial),
            ias,
            DedicatedFile(PKCS15_DF, cps.PKCS15_AID),
        ),
    )
    pins = {
        cps.PIN_REFERENCE: PinObject(
            cps.PIN_REFERENCE,
            cps.PIN_FORMAT.encode(persona.pin),
            max_tries=cps.PIN_TRIES,
            tries_left=persona.pin_tries_left,
            encoded_length=cps.PIN_FORMAT.encoded_length,
        ),
        cps.PUK_REFERENCE: PinObject(
            cps.PUK_REFERENCE,
            cps.PUK_FORMAT.encode(persona.puk),
            max_tries=PUK_TRIES,
            tries_left=PUK_TRIES,
            encoded_length=cps.PUK_FORMAT.encoded_length,
        ),
    }
    rsa_algorithms = frozenset((CardAlgorithm.RSA_PKCS1_DIGEST_INFO, CardAlgorithm.RSA_PSS_SHA256))
    card_keys = {
        cps.KEY_AUTHENTICATION: CardKey(
            cps.KEY_AUTHENTICATION,
            cps_key(persona, "authentication"),
            KeyOperation.INTERNAL_AUTHENTICATE,
            rsa_algorithms,
            KeyAccess.PIN,
            cps.PIN_REFERENCE,
        ),
        cps.KEY_SIGNATURE: CardKey(
            cps.KEY_SIGNATURE,
            cps_key(persona, "signature"),
            KeyOperation.COMPUTE_SIGNATURE,
            rsa_algorithms,
            KeyAccess.PIN_EACH_USE,
            cps.PIN_REFERENCE,
        ),
    }
    return CardSpec(
        atr=CPS_ATR,
        mf=build_tree(mf),
        pins=pins,
        keys=card_keys,
        puk_for_pin={cps.PIN_REFERENCE: cps.PUK_REFERENCE},
        label=f"CPS {persona.id}",
    )


def _vitale_spec(persona: VitalePersona, pki: SimulatorPki) -> CardSpec:
    certificate = pki.vitale_certificate(persona)
    application = DedicatedFile(
        VITALE_DF,
        vitale.VITALE_AID,
        (
            ElementaryFile(vitale.FID_HOLDER, persona.holder.to_tlv(), vitale.SFI_HOLDER),
            ElementaryFile(
                vitale.FID_CERTIFICATE,
                certificate.public_bytes(Encoding.DER),
                vitale.SFI_CERTIFICATE,
            ),
        ),
    )
    mf = DedicatedFile(
        0x3F00,
        None,
        (
            _dir_file((vitale.VITALE_AID, "VITALE")),
            _serial_file(VITALE_ISSUER, persona.card.serial),
            application,
        ),
    )
    card_key = CardKey(
        vitale.KEY_AUTHENTICATION,
        vitale_key(persona),
        KeyOperation.INTERNAL_AUTHENTICATE,
        frozenset((CardAlgorithm.ECDSA_SHA256,)),
        KeyAccess.ALWAYS,
    )
    return CardSpec(
        atr=VITALE_ATR,
        mf=build_tree(mf),
        pins={},
        keys={vitale.KEY_AUTHENTICATION: card_key},
        label=f"Vitale {persona.id}",
    )


def _other_spec(persona: OtherPersona) -> CardSpec:
    mf = DedicatedFile(0x3F00, None, (_serial_file(b"\x00" * 5, persona.card.serial),))
    return CardSpec(
        atr=persona.atr, mf=build_tree(mf), pins={}, keys={}, label=f"other {persona.id}"
    )
