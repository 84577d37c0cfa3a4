"""Fuzzing the verifier with mutations of real assertions: bytes flipped inside a
part, parts swapped or borrowed from another token, header and claims edited,
base64 noise, huge and deeply nested JSON, the Vitale co-assertion damaged.

Tampered tokens (not signed again: the attacker has no card key) must be refused
with a typed :class:`AssertionRefused` code, never accepted. Tokens that a card
did sign but with odd contents (a host gone wrong) are refused the same way, or
accepted with the identity of the certificate. Never any other exception. The
genuine token stays accepted, inside each property (not vacuous). Settings:
tests/fuzz_settings.py (``CARDAUTH_FUZZ=long`` for the long run)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import strategies as st

from cardauth import jose
from cardauth.challenges import ChallengeRecord, MemoryChallengeStore, session_digest
from cardauth.errors import AssertionRefused, Refusal
from cardauth.origins import Origin
from cardauth.protocol import is_card_serial
from cardauth.verifier_service import create_app
from cardauth.verify import VerifiedLogin, Verifier
from tests.fuzz_mutations import byte_mutations
from tests.fuzz_settings import fuzz
from tests.verifier_kit import NOW, ORIGIN, SESSION, Forge, crl_checker, sign, trust_store

CHALLENGE = "A" * 43
FORGE = Forge()
VITALE = FORGE.vitale(CHALLENGE)
TOKEN = FORGE.assertion(CHALLENGE)
TOKEN_WITH_VITALE = FORGE.assertion(CHALLENGE, vitale=VITALE)
OTHER = Forge(origin="https://other.example", cps_persona="nurse").assertion(CHALLENGE)
GENUINE = (TOKEN, TOKEN_WITH_VITALE)
VERIFIER = Verifier(trust=trust_store(), revocation=crl_checker())  # shared, as in a service
CODES = frozenset(refusal.value for refusal in Refusal)


def verify(token: object, *, require_vitale: bool = False) -> VerifiedLogin:
    """Verify ``token`` with everything else right: a store holding the challenge
    for this session, the right origin and time, so only the token can fail."""
    store = MemoryChallengeStore()
    expires = (NOW + dt.timedelta(minutes=5)).timestamp()
    store.put(ChallengeRecord(CHALLENGE, session_digest(SESSION), expires), 300)
    return VERIFIER.verify(
        token,  # type: ignore[arg-type]
        expected_origins=(ORIGIN,),
        expected_challenge=CHALLENGE,
        session=SESSION,
        challenges_store=store,
        now=NOW,
        require_vitale=require_vitale,
    )


def refusal_of(token: object) -> AssertionRefused:
    with pytest.raises(AssertionRefused) as refused:
        verify(token)
    assert refused.value.code in CODES, refused.value
    str(refused.value), refused.value.to_dict()  # its message and context render
    return refused.value


# -- tampering, without the card key -----------------------------------------------------


def _b64(data: bytes) -> str:
    return jose.b64url_encode(data)


def _parts(token: str) -> list[str]:
    return token.split(".")


@st.composite
def part_mutations(draw: st.DrawFn, token: str) -> str:
    """Bytes flipped, cut or inserted inside one decoded part, then encoded again."""
    parts = _parts(token)
    index = draw(st.integers(0, 2))
    decoded = base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4))
    parts[index] = _b64(draw(byte_mutations(decoded)))
    return ".".join(parts)


@st.composite
def segment_swaps(draw: st.DrawFn, token: str) -> str:
    """Parts reordered, repeated, dropped, or borrowed from another genuine token
    (the co-assertion's, another origin's and card's)."""
    pool = [*_parts(token), *_parts(VITALE), *_parts(OTHER), ""]
    chosen = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5))
    return ".".join(chosen)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["none", "HS256", "RS256", "rs256", "ES256", "PS256", "RS512", "cardauth"]),
    st.sampled_from([ORIGIN.value, "https://other.example", "http://teleservice.example"]),
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS | st.sampled_from([[], {}]),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, min_size=1, max_size=4),
    ),
    max_leaves=12,
)
HEADER_NAMES = st.sampled_from(
    ["alg", "typ", "x5c", "crit", "cardauth", "kid", "jku", "jwk", "b64"]
)
CLAIM_NAMES = st.sampled_from(["aud", "nonce", "iat", "exp", "card", "vitale", "cps", "sub"])


def _json_part(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


@st.composite
def member_edits(draw: st.DrawFn, part: dict[str, Any], names: st.SearchStrategy[str]) -> bytes:
    """The JSON of ``part`` with members set, removed or added, serialised in one of
    the ways a JSON library might (or with a member repeated)."""
    edited = dict(part)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(names)
        if draw(st.booleans()) and name in edited:
            del edited[name]
        else:
            edited[name] = draw(JSON_VALUES)
    text = json.dumps(edited, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    if draw(st.booleans()) and edited:  # a repeated member: which one would count?
        name = next(iter(edited))
        text = text[:-1] + f", {json.dumps(name)}: {json.dumps(draw(JSON_SCALARS))}}}"
    return text.encode()


@st.composite
def huge_json(draw: st.DrawFn) -> bytes:
    """JSON that costs a parser: deep nesting, long numbers, constants that are not
    JSON, a large object."""
    depth = draw(st.integers(10, 15000))
    kind = draw(st.sampled_from(["array", "object", "number", "constant", "wide", "float"]))
    if kind == "array":
        value = "[" * depth + "]" * depth
    elif kind == "object":
        value = '{"a":' * depth + "1" + "}" * depth
    elif kind == "number":
        value = "9" * depth
    elif kind == "constant":
        value = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999999", "-0"]))
    elif kind == "float":
        value = f"1e{depth}"
    else:
        value = json.dumps({str(i): i for i in range(depth // 10)})
    claim = draw(CLAIM_NAMES)
    return f'{{"aud":"{ORIGIN.value}","{claim}":{value}}}'.encode()


@st.composite
def json_tamperings(draw: st.DrawFn, token: str) -> str:
    parts = _parts(token)
    index = draw(st.integers(0, 1))
    if draw(st.integers(0, 4)) == 0:
        parts[index] = _b64(draw(huge_json()))
    else:
        names = HEADER_NAMES if index == 0 else CLAIM_NAMES
        parts[index] = _b64(draw(member_edits(_json_part(parts[index]), names)))
    return ".".join(parts)


@st.composite
def base64_noise(draw: st.DrawFn, token: str) -> str:
    """Characters outside base64url, padding, whitespace, another spelling of the
    last character (same bytes, non-canonical)."""
    kind = draw(st.sampled_from(["insert", "pad", "last"]))
    if kind == "insert":
        at = draw(st.integers(0, len(token)))
        noise = draw(st.text(alphabet="=+/ \t\n\r.%\\\"'\x00é\u202e", min_size=1, max_size=4))
        return token[:at] + noise + token[at:]
    parts = _parts(token)
    index = draw(st.integers(0, 2))
    if kind == "pad":
        parts[index] += "=" * draw(st.integers(1, 3))
    else:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        parts[index] = parts[index][:-1] + draw(st.sampled_from(alphabet))
    return ".".join(parts)


@st.composite
def vitale_tamperings(draw: st.DrawFn) -> str:
    """The assertion, signed again by the CPS card, carrying a damaged co-assertion:
    only the co-assertion is at fault."""
    damaged = draw(
        st.one_of(
            part_mutations(VITALE),
            segment_swaps(VITALE),
            json_tamperings(VITALE),
            base64_noise(VITALE),
        )
    )
    return FORGE.assertion(CHALLENGE, vitale=damaged)


TAMPERED = st.sampled_from(GENUINE).flatmap(
    lambda token: st.one_of(
        part_mutations(token),
        segment_swaps(token),
        json_tamperings(token),
        base64_noise(token),
    )
)


@fuzz(ci=300, long=20000)
@given(st.one_of(TAMPERED, vitale_tamperings()))
@example(TOKEN)
@example(TOKEN_WITH_VITALE)
def test_a_tampered_assertion_is_refused_with_a_typed_code(token: str) -> None:
    if token in GENUINE:  # a mutation that changed nothing: still accepted
        assert verify(token).professional.idnat == "899700420013"
        return
    refusal_of(token)


# -- odd contents that the card did sign ---------------------------------------------------


@st.composite
def signed_oddities(draw: st.DrawFn) -> tuple[str, bool]:
    """A token the CPS card signed, whose header or claims a host got wrong; and
    whether it is the genuine one (no edit)."""
    header, payload = FORGE.header(), FORGE.payload(CHALLENGE)
    if draw(st.booleans()):
        payload["vitale"] = VITALE
    kind = draw(st.sampled_from(["none", "header", "claims", "huge"]))
    if kind == "none":
        header_json, payload_json = jose.canonical_json(header), jose.canonical_json(payload)
    elif kind == "header":
        header_json, payload_json = draw(member_edits(header, HEADER_NAMES)), None
    elif kind == "claims":
        header_json, payload_json = None, draw(member_edits(payload, CLAIM_NAMES))
    else:
        header_json, payload_json = None, draw(huge_json())
    signing_input = ".".join(
        (
            _b64(header_json or jose.canonical_json(header)),
            _b64(payload_json or jose.canonical_json(payload)),
        )
    )
    signature = sign(FORGE.cps_key, "RS256", signing_input.encode())
    return f"{signing_input}.{_b64(signature)}", kind == "none"


@fuzz(ci=200, long=10000)
@given(signed_oddities())
def test_odd_contents_signed_by_the_card_are_refused_or_name_the_certificates_holder(
    case: tuple[str, bool],
) -> None:
    token, genuine = case
    try:
        login = verify(token)
    except AssertionRefused as error:
        refused = error
    else:
        assert login.professional.idnat == "899700420013"  # from the certificate, always
        assert login.origin == ORIGIN.value
        assert is_card_serial(login.card_serial)
        return
    assert not genuine, refused
    assert refused.code in CODES, refused


CHIP_SERIAL = re.compile(r"[0-9A-F]{20}")


@fuzz(ci=200, long=10000)
@given(
    st.one_of(
        st.text(max_size=30),
        st.from_regex(r"[0-9A-Fa-f]{19,21}[\x00\n\r\x1b ]?", fullmatch=True),
        st.from_regex(CHIP_SERIAL, fullmatch=True),
    )
)
def test_only_a_chip_serial_comes_out_of_the_card_claim(serial: str) -> None:
    """Whatever a host had the card sign as its serial, what the verifier hands back
    (and teleservices log as text) is 20 upper-case hexadecimal digits."""
    token = FORGE.assertion(CHALLENGE, card=serial)
    if not CHIP_SERIAL.fullmatch(serial):
        assert refusal_of(token).code in ("assertion.card_serial", "assertion.claims")
        return
    assert verify(token).card_serial == serial


# -- the same through cardauth-verifier, over HTTP ---------------------------------------------

SERVICE_TOKEN = "5f0c3a9e" * 8
SERVICE_SESSION = "php-session-7f3a9c21d4e8"
SERVICE_HEADERS = st.fixed_dictionaries(
    {"Authorization": st.just(f"Bearer {SERVICE_TOKEN}")},
    optional={
        "Content-Type": st.sampled_from(
            ["application/json", "application/json; charset=utf-16", "text/plain", "x/y+json"]
        ),
        "Accept-Language": st.sampled_from(["en", "fr", "*", "de;q=2", "\xff"]),
        "Host": st.sampled_from(["127.0.0.1", "localhost:1", "[::1]", "127.0.0.1:x", "a:b:c"]),
    },
)
SERVICE_BODIES = st.one_of(
    st.builds(
        lambda assertion, challenge, session, vitale: json.dumps(
            {
                "assertion": assertion,
                "challenge": challenge,
                "session": session,
                "require_vitale": vitale,
            }
        ).encode(),
        st.one_of(TAMPERED, JSON_VALUES),
        st.one_of(st.just(CHALLENGE), JSON_VALUES),
        st.one_of(st.just(SERVICE_SESSION), JSON_VALUES),
        st.one_of(st.booleans(), JSON_VALUES),
    ),
    huge_json(),
    st.binary(max_size=100),
)


@pytest.fixture(scope="module")
def service() -> FlaskClient:
    app = create_app(
        verifier=VERIFIER,
        origins=(ORIGIN,),
        store=MemoryChallengeStore(),
        token=SERVICE_TOKEN,
        clock=lambda: NOW,
    )
    return app.test_client()


@fuzz(ci=200, long=10000)
@given(SERVICE_HEADERS, SERVICE_BODIES)
def test_the_verifier_service_refuses_hostile_requests_with_a_typed_4xx(
    service: FlaskClient, headers: dict[str, str], body: bytes
) -> None:
    headers = {"Content-Type": "application/json", **headers}
    response = service.post("/v1/verify", data=body, headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    error = response.get_json()["error"]
    assert re.match(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", error["code"]), error
    assert error["message"]


# -- controls ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", GENUINE)
def test_the_genuine_assertions_are_accepted(token: str) -> None:
    login = verify(token, require_vitale=token == TOKEN_WITH_VITALE)
    assert login.professional.idnat == "899700420013"
    assert (login.patient is not None) == (token == TOKEN_WITH_VITALE)


def test_an_origin_other_than_the_tokens_refuses_the_genuine_token() -> None:
    store = MemoryChallengeStore()
    with pytest.raises(AssertionRefused) as refused:
        VERIFIER.verify(
            TOKEN,
            expected_origins=(Origin.parse("https://other.example"),),
            expected_challenge=CHALLENGE,
            session=SESSION,
            challenges_store=store,
            now=NOW,
        )
    assert refused.value.code == "origin.mismatch"


# -- what the fuzzing found ------------------------------------------------------------------


def test_a_header_without_x5c_is_a_malformed_certificate() -> None:
    """Found by the fuzzing: a header with every other member right but no ``x5c``
    raised KeyError('x5c') out of the verifier instead of a refusal."""
    header = FORGE.header()
    del header["x5c"]
    assert refusal_of(FORGE.assertion(CHALLENGE, header=header)).code == "certificate.malformed"
    vitale_header = FORGE.header("cardauth-vitale+jws", "ES256")
    del vitale_header["x5c"]
    token = FORGE.assertion(CHALLENGE, vitale=FORGE.vitale(CHALLENGE, header=vitale_header))
    refused = refusal_of(token)
    assert (refused.code, refused.context["jws"]) == ("certificate.malformed", "vitale")
