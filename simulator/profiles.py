"""Card profiles: how a persona becomes a virtual card (ATR, files, PIN, keys).

The CPS profile is a CPS3 as real middleware knows it (docs/simulator.md gives
the public sources of each byte): the MF is the IAS-ECC root application, with
EF.DIR, EF.ATR (the card's capabilities, as real cards hold them) and EF.SN.ICC;
the PKCS#15 application "CPX IAS" in DF 0001 holds the directory files, the
certificates, the holder data objects and the two private keys; the PIN and its
unblocking code are global objects of the MF. The Vitale profile is ours (real
Vitale 2 cards use card-verifiable certificates): the card layer reads it by
the layout of :mod:`cardauth.cards.vitale`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding

from cardauth import tlv
from cardauth.cards import cps, vitale
from cardauth.cards.algorithms import CardAlgorithm
from cardauth.cards.atr import Atr
from cardauth.cards.files import EF_SN_ICC, SN_ICC_TAG
from cardauth.cards.pkcs15 import DirectoryKind
from cardauth.cards.security import CRT_AUTHENTICATION
from cardauth.errors import MalformedCardData
from simulator import pkcs15_files
from simulator.card import PIN_USER_PASSWORD, CardSpec, VirtualCard
from simulator.filesystem import (
    MF_FID,
    READ_ONLY_FILE,
    DedicatedFile,
    ElementaryFile,
    build_tree,
)
from simulator.personas import CpsPersona, OtherPersona, Persona, VitalePersona
from simulator.pki import SimulatorPki, cps_key, simulator_pki, vitale_key
from simulator.security import (
    AccessRules,
    CardKey,
    KeyAccess,
    KeyOperation,
    PinObject,
    SecurityEnvironment,
)

CPS_ATR = bytes.fromhex("3BAC00402A001225006480000310009000")
VITALE_ATR = bytes.fromhex("3B751300004709EA9000")
CPS_ISSUER = bytes.fromhex("8025000001")
VITALE_ISSUER = bytes.fromhex("8025000002")
EF_DIR = 0x2F00
EF_ATR = 0x2F01
VITALE_DF = 0x1000

# EF.ATR of a real CPS3 (OpenSC issue #2220): category indicator 80, card service
# data, pre-issuing data, card capabilities, the IAS root's AID, the IAS-ECC buffer
# sizes (E0), an allocation scheme and a status word.
CPS3_EF_ATR = bytes.fromhex(
    "80430 1B8 460404B0ECC1 4703940180 4F088025000001FF0100"
    "E010020201040202010402020100020201 00 7808 06062B8122F87802 82029000".replace(" ", "")
)

# The CPS3's files and objects. File ids of the PKCS#15 application are those real
# cards use (5031, 5032, 7001, 7002, 7005); those of the certificates and holder data
# are ours (nothing public names them): A001, A002, D110, D120...
CPS3_DF = 0x0001
ODF, TOKEN_INFO, AODF, PRKDF, DODF, CDF = 0x5031, 0x5032, 0x7001, 0x7002, 0x7004, 0x7005
AUTHENTICATION_CERTIFICATE, SIGNATURE_CERTIFICATE = 0xA001, 0xA002
IDENTITY_FILE, FIRST_ACTIVITY_FILE = 0xD110, 0xD120
PIN_REFERENCE, UNBLOCKING_REFERENCE = 0x01, 0x02
KEY_SIGNATURE, KEY_AUTHENTICATION = 0x81, 0x82
PIN_TRIES, UNBLOCKING_TRIES, UNBLOCKING_USES = 3, 10, 100
SE_USER_PIN, SE_UNBLOCKING = 1, 3  # security environments naming the PIN and the code
# Access rules of the CHV objects as a real CPS3 gives them (OpenSC PR #2217): the PIN
# may be changed and verified always, reset after the code of SE 3; the code may only
# be verified.
PIN_RULES = AccessRules(bytes.fromhex("F3000013FF00"))
UNBLOCKING_RULES = AccessRules(bytes.fromhex("F3FF00FFFF00"))
# Key rules (ours, consistent with the PrKDF's access rules of real cards): the
# authentication key authenticates (and deciphers) after the PIN, the signature key
# only signs (PSO CDS) after it.
AUTHENTICATION_KEY_RULES = AccessRules(bytes.fromhex("7BFF1111FFFF00"))
SIGNATURE_KEY_RULES = AccessRules(bytes.fromhex("7B11FFFFFFFF00"))
VITALE_KEY_RULES = AccessRules(bytes.fromhex("7BFF00FFFFFF00"))  # authenticates, with no PIN
PKCS15_KEY_ID = bytes.fromhex("E828BD080F8025000001FF0010")  # + 01 signature, 02 authentication


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
    return ElementaryFile(EF_SN_ICC, bytes((SN_ICC_TAG, len(body))) + body, 0x1C, READ_ONLY_FILE)


def _dir_file(contact_aid: bytes, *applications: tuple[bytes, str, bytes]) -> ElementaryFile:
    """EF.DIR (ISO 7816-4 § 8.2.1.1): one application template (61) per application,
    with its AID, label and path, and a discretionary template (73) that holds the
    contact application's AID in every record, as on a CPS3."""
    records = b"".join(
        tlv.encode(
            0x61,
            tlv.encode_all(
                (
                    (0x4F, aid),
                    (0x50, label.encode()),
                    (0x51, path),
                    (0x73, tlv.encode(0x4F, contact_aid)),
                )
            ),
        )
        for aid, label, path in applications
    )
    return ElementaryFile(EF_DIR, records, sfi=0x1E)


def _cps_spec(persona: CpsPersona, pki: SimulatorPki) -> CardSpec:
    certificates = pki.cps_certificates(persona)
    serial = bytes.fromhex(persona.card.serial)
    activities = [
        (f"{cps.ACTIVITY_LABEL_PREFIX}{index:02d}_PS", FIRST_ACTIVITY_FILE + index - 1)
        for index in range(1, len(persona.holder.situations) + 1)
    ]
    application = DedicatedFile(
        CPS3_DF,
        cps.PKCS15_AID,
        (
            ElementaryFile(
                ODF,
                pkcs15_files.odf(
                    {
                        DirectoryKind.PRIVATE_KEYS: PRKDF,
                        DirectoryKind.CERTIFICATES: CDF,
                        DirectoryKind.DATA_OBJECTS: DODF,
                        DirectoryKind.AUTH_OBJECTS: AODF,
                    }
                ),
            ),
            ElementaryFile(
                TOKEN_INFO,
                pkcs15_files.token_info(
                    serial=CPS_ISSUER[-3:] + serial,
                    label=f"CPS3v3-{persona.card.serial}",
                    manufacturer="CARDAUTH SIMULATEUR",
                ),
            ),
            ElementaryFile(AODF, pkcs15_files.aodf(_pin_entries(persona))),
            ElementaryFile(PRKDF, pkcs15_files.prkdf(_key_entries())),
            ElementaryFile(
                CDF,
                pkcs15_files.cdf(
                    (
                        (
                            "Certificat d'authentification CPS",
                            PKCS15_KEY_ID + b"\x02",
                            AUTHENTICATION_CERTIFICATE,
                        ),
                        (
                            "Certificat de signature CPS",
                            PKCS15_KEY_ID + b"\x01",
                            SIGNATURE_CERTIFICATE,
                        ),
                    )
                ),
            ),
            ElementaryFile(
                DODF,
                pkcs15_files.dodf(
                    [(cps.IDENTITY_LABEL, cps.DATA_APPLICATION, IDENTITY_FILE)]
                    + [(label, cps.DATA_APPLICATION, fid) for label, fid in activities]
                ),
            ),
            ElementaryFile(
                AUTHENTICATION_CERTIFICATE, certificates.authentication.public_bytes(Encoding.DER)
            ),
            ElementaryFile(
                SIGNATURE_CERTIFICATE, certificates.signature.public_bytes(Encoding.DER)
            ),
            ElementaryFile(IDENTITY_FILE, persona.holder.to_tlv()),
            *(
                ElementaryFile(fid, situation.to_tlv())
                for (_label, fid), situation in zip(
                    activities, persona.holder.situations, strict=True
                )
            ),
        ),
    )
    mf = DedicatedFile(
        MF_FID,
        cps.ROOT_AID,
        (
            _dir_file(
                cps.PKCS15_AID,
                (cps.PKCS15_CONTACTLESS_AID, "CPX IAS CL", bytes.fromhex("3F000002")),
                (cps.PKCS15_AID, "CPX IAS", bytes.fromhex("3F000001")),
            ),
            ElementaryFile(EF_ATR, CPS3_EF_ATR, sfi=0x1D),
            _serial_file(CPS_ISSUER, persona.card.serial),
            application,
        ),
    )
    return CardSpec(
        atr=CPS_ATR,
        mf=build_tree(mf),
        pins=_pins(persona),
        keys=_keys(persona),
        environments={
            SE_USER_PIN: SecurityEnvironment(
                SE_USER_PIN, ((CRT_AUTHENTICATION, PIN_USER_PASSWORD, PIN_REFERENCE),)
            ),
            SE_UNBLOCKING: SecurityEnvironment(
                SE_UNBLOCKING, ((CRT_AUTHENTICATION, PIN_USER_PASSWORD, UNBLOCKING_REFERENCE),)
            ),
        },
        label=f"CPS {persona.id}",
    )


def _pin_entries(persona: CpsPersona) -> list[pkcs15_files.PinEntry]:
    del persona  # every CPS3 has the same two codes
    return [
        pkcs15_files.PinEntry(
            "Code porteur de la carte CPX",
            auth_id=b"\x01",
            protected_by=b"\x02",
            reference=PIN_REFERENCE,
            min_length=4,
            stored_length=8,
            max_length=8,
            flags=frozenset({"case-sensitive", "initialized", "needs-padding"}),
        ),
        pkcs15_files.PinEntry(
            "Code de deblocage de la carte CPX",
            auth_id=b"\x02",
            protected_by=None,
            reference=UNBLOCKING_REFERENCE,
            min_length=8,
            stored_length=8,
            max_length=8,
            flags=frozenset(
                {
                    "case-sensitive",
                    "initialized",
                    "needs-padding",
                    "unblockingPin",
                    "unblock-disabled",
                }
            ),
        ),
    ]


def _key_entries() -> list[pkcs15_files.KeyEntry]:
    """The PrKDF of a real CPS3 (OpenSC issue #2267): labels, ids, usages, references."""
    return [
        pkcs15_files.KeyEntry(
            cps.SIGNATURE_KEY_LABEL,
            PKCS15_KEY_ID + b"\x01",
            frozenset({"nonRepudiation"}),
            KEY_SIGNATURE,
            2048,
            b"\x01",
            ("pso_cds",),
            frozenset({"private"}),
        ),
        pkcs15_files.KeyEntry(
            cps.AUTHENTICATION_KEY_LABEL,
            PKCS15_KEY_ID + b"\x02",
            frozenset({"decrypt", "sign"}),
            KEY_AUTHENTICATION,
            2048,
            b"\x01",
            ("pso_decrypt", "int_auth"),
            frozenset({"private", "modifiable", "internal"}),
        ),
    ]


def _pins(persona: CpsPersona) -> dict[int, PinObject]:
    return {
        PIN_REFERENCE: PinObject(
            PIN_REFERENCE,
            _padded(persona.pin),
            max_tries=PIN_TRIES,
            tries_left=persona.pin_tries_left,
            access=PIN_RULES,
        ),
        UNBLOCKING_REFERENCE: PinObject(
            UNBLOCKING_REFERENCE,
            _padded(persona.puk),
            max_tries=UNBLOCKING_TRIES,
            tries_left=UNBLOCKING_TRIES,
            min_length=8,
            access=UNBLOCKING_RULES,
            usage_left=UNBLOCKING_USES,
        ),
    }


def _keys(persona: CpsPersona) -> dict[int, CardKey]:
    return {
        KEY_AUTHENTICATION: CardKey(
            KEY_AUTHENTICATION,
            cps_key(persona, "authentication"),
            KeyOperation.INTERNAL_AUTHENTICATE,
            frozenset((CardAlgorithm.RSA_PKCS1,)),
            KeyAccess.PIN,
            PIN_REFERENCE,
            home=CPS3_DF,
            rules=AUTHENTICATION_KEY_RULES,
        ),
        KEY_SIGNATURE: CardKey(
            KEY_SIGNATURE,
            cps_key(persona, "signature"),
            KeyOperation.COMPUTE_SIGNATURE,
            frozenset((CardAlgorithm.SHA1_RSA_PKCS1, CardAlgorithm.SHA256_RSA_PKCS1)),
            KeyAccess.PIN_EACH_USE,
            PIN_REFERENCE,
            home=CPS3_DF,
            rules=SIGNATURE_KEY_RULES,
        ),
    }


def _padded(code: str) -> bytes:
    """A PIN as the card stores it: ASCII digits padded with FF to 8 bytes."""
    return code.encode("ascii").ljust(8, b"\xff")


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
            _dir_file(vitale.VITALE_AID, (vitale.VITALE_AID, "VITALE", bytes.fromhex("3F001000"))),
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
        home=VITALE_DF,
        rules=VITALE_KEY_RULES,
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
