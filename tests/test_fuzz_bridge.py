"""Fuzzing the web bridge with requests: schemathesis generates calls from
``webbridge/openapi.yaml`` and sends them to the Flask app in process (WSGI),
from an approved origin, checking that no answer is a server error and that
every answer conforms to the description (status, content type, headers, body);
then Hypothesis sends hostile Host, Origin and Content-Type headers and bodies,
which may only get a 4xx with the error body (never a 500).

Settings: tests/fuzz_settings.py (``CARDAUTH_FUZZ=long`` for the long run)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import example, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.bridge_flows import answer, open_page, outcome
from tests.bridge_kit import BRIDGE, PORT, TELESERVICE, BridgeScene, start_bridge
from tests.fuzz_settings import fuzz
from tests.openapi_check import SPEC

SCHEMA = schemathesis.openapi.from_path(SPEC)
# The event stream never ends by itself: a client that reads the whole answer would
# wait ten minutes. Its refusals are fuzzed below with the hostile headers.
OPERATIONS = {
    result.ok().label: result.ok()
    for result in SCHEMA.get_all_operations()
    if isinstance(result, Ok) and result.ok().label != "GET /v1/events"
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ERROR_CODE = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"


def test_the_description_gives_every_operation() -> None:
    """None is left out for a schema error (only the event stream, on purpose)."""
    results = list(SCHEMA.get_all_operations())
    assert all(isinstance(result, Ok) for result in results)
    assert len(OPERATIONS) == len(results) - 1


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeScene]:
    """One bridge for the module (a doctor's CPS and a patient's Vitale), with a
    rate limit that generated calls do not reach."""
    made = start_bridge(
        Path(tmp_path_factory.mktemp("bridge-fuzz")), authentications_per_minute=100_000
    )
    try:
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_generated_calls_from_the_description_conform(scene: BridgeScene, label: str) -> None:
    operation = OPERATIONS[label]

    @fuzz(ci=40, long=2000)
    @given(case=operation.as_strategy())
    def calls(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(
            base_url=BRIDGE,
            app=scene.app,
            headers={"Origin": TELESERVICE.value},
            checks=CHECKS,
        )

    calls()


# -- hostile headers and bodies ------------------------------------------------------------

HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
VALID_HOST = st.sampled_from([f"127.0.0.1:{PORT}", f"localhost:{PORT}"])
HOSTS = st.one_of(
    VALID_HOST,  # most calls get past the Host check, to reach what comes after
    VALID_HOST,
    st.sampled_from(
        [
            f"127.0.0.1:{PORT}",
            f"localhost:{PORT}",
            "127.0.0.1",
            f"evil.example:{PORT}",
            f"127.0.0.1:{PORT}@evil.example",
            f"[::1]:{PORT}",
            f"LOCALHOST:{PORT}",
            f"127.0.0.1:{PORT}\x00",
            "",
            "a..b",  # not a DNS name: no IDNA form (found by the long run)
            "x" * 64 + f":{PORT}",
        ]
    ),
    HEADER_TEXT,
)
ORIGINS = st.one_of(
    st.just(TELESERVICE.value),
    st.just(TELESERVICE.value),
    st.none(),
    st.sampled_from(
        [
            TELESERVICE.value,
            "null",
            "https://TELESERVICE.example",
            "https://teleservice.example:443",
            "https://teleservice.example/",
            "http://teleservice.example",
            f"http://127.0.0.1:{PORT}",
            "https://xn--tlservice-b4a.example",
            "https://téléservice.example",
            "https://teleservice.example, https://evil.example",
        ]
    ),
    HEADER_TEXT,
)
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/json; charset=utf-16",
            "Application/JSON",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/json;;;",
        ]
    ),
    HEADER_TEXT,
)
JSON_BODIES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=50))
    | st.sampled_from([[], {}]),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(
            st.sampled_from(["challenge", "vitale", "origin", "request_id", "x"]) | st.text(),
            inner,
            min_size=1,
            max_size=4,
        ),
    ),
    max_leaves=10,
).map(lambda value: json.dumps(value).encode())
BODIES = st.one_of(
    JSON_BODIES,
    st.builds(
        lambda challenge, vitale: json.dumps({"challenge": challenge, "vitale": vitale}).encode(),
        st.sampled_from(["A" * 43, "A" * 42, "A" * 44, "=" * 43]) | st.text(max_size=50),
        st.booleans() | st.none() | st.text(max_size=5),
    ),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,  # deep: and too large
            b"[" * 5000 + b"]" * 5000,  # deep, within the size limit
            b'{"challenge": "' + b"A" * 20_000 + b'"}',  # too large
            b"\xef\xbb\xbf{}",  # a byte-order mark
            b'{"challenge": NaN}',
            b"challenge=AAAA&vitale=true&request_id=" + b"A" * 30,
            b'{"challenge": "' + b"A" * 43 + b'", "request_id": "' + b"A" * 30 + b'", '
            b'"page_id": "' + b"A" * 30 + b'"}',  # the same identifier twice
        ]
    ),
)
PATHS = st.sampled_from(
    [
        "/v1/status",
        "/v1/cards",
        "/v1/authenticate",
        "/v1/events",
        "/v1/interactions/" + "A" * 30,
        "/v1/interactions/" + "A" * 30 + "?wait=1e999",
        "/v1/interactions/%00",
        "/v1/nothing",
        "/v1/interactions",
        "/v1/logout",
        "/interaction/unknown",
        "/consents",
        "/consents/revoke",
        "/v1/status?lang=%FF",
    ]
)
METHODS = st.sampled_from(["GET", "POST", "DELETE", "OPTIONS", "PUT", "HEAD"])


def _send(
    client: FlaskClient,
    method: str,
    path: str,
    host: str,
    origin: str | None,
    content_type: str | None,
    body: bytes,
) -> tuple[int, str | None, bytes]:
    headers = {"Host": host}
    if origin is not None:
        headers["Origin"] = origin
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.open(
        path,
        method=method,
        base_url=BRIDGE,
        headers=headers,
        data=body if method in ("POST", "PUT", "DELETE") else None,
        buffered=False,
    )
    try:  # an event stream never ends: its first bytes say enough
        first = next(iter(response.response), b"") if response.is_streamed else response.data
    finally:
        response.close()
    content = first if isinstance(first, bytes) else str(first).encode()
    return response.status_code, response.mimetype, content


def _check_refusal(path: str, method: str, answer: tuple[int, str | None, bytes]) -> None:
    """Below 500; a refusal of the API has the error body."""
    status, mimetype, content = answer
    assert status < 500, (status, content[:300])
    if status < 400 or not path.startswith("/v1/") or method == "HEAD":
        return
    assert mimetype == "application/json", (status, mimetype, content[:300])
    error = json.loads(content)["error"]
    assert set(error) == {"code", "message"}
    assert error["message"]
    assert re.match(ERROR_CODE, error["code"]), error


@fuzz(ci=300, long=20000)
@given(METHODS, PATHS, HOSTS, ORIGINS, CONTENT_TYPES, BODIES)
@example("OPTIONS", "/consents/revoke", "a..b", None, None, b"")  # was a 500
def test_hostile_headers_get_a_4xx_with_the_error_body(
    scene: BridgeScene,
    method: str,
    path: str,
    host: str,
    origin: str | None,
    content_type: str | None,
    body: bytes,
) -> None:
    client = FlaskClient(scene.app, scene.app.response_class)  # the description: see above
    answer = _send(client, method, path, host, origin, content_type, body)
    _check_refusal(path, method, answer)


@fuzz(ci=300, long=20000)
@given(
    st.sampled_from(["/v1/authenticate", "/v1/interactions", "/v1/logout"]),
    VALID_HOST,
    st.one_of(st.just("application/json"), CONTENT_TYPES),
    BODIES,
)
@example(
    "/v1/authenticate",
    f"127.0.0.1:{PORT}",
    "application/json",
    b'{"challenge": "' + b"A" * 43 + b'"}',
)
def test_hostile_bodies_from_an_approved_site_get_a_4xx_with_the_error_body(
    scene: BridgeScene, path: str, host: str, content_type: str, body: bytes
) -> None:
    client = FlaskClient(scene.app, scene.app.response_class)
    answer = _send(client, "POST", path, host, TELESERVICE.value, content_type, body)
    _check_refusal(path, "POST", answer)


# -- the PIN form of the bridge's own page -------------------------------------------------

FOUR_DIGITS = re.compile(r"[0-9]{4}")
PINS = st.one_of(
    st.sampled_from(
        [
            "",
            "123",
            "12345",
            "12 4",
            "1234\x00",
            "\u0661\u0662\u0663\u0664",
            "\uff11\uff12\uff13\uff14",
            "\u00b2\u00b3\u2074\u2075",
            "-123",
            "0x12",
            "1e10",
        ]
    ),
    st.text(max_size=12),
).filter(lambda pin: not FOUR_DIGITS.fullmatch(pin))


@fuzz(ci=100, long=5000)
@given(
    pin=PINS,
    action=st.sampled_from(["allow", "allow", "decline", "", "ALLOW"]) | st.text(max_size=8),
    keypad=st.sampled_from([None, "on", "off", ""]),
    remember=st.sampled_from([None, "on", "yes"]),
    right_token=st.booleans(),
)
def test_a_hostile_pin_form_never_spends_a_try(
    scene: BridgeScene,
    pin: str,
    action: str,
    keypad: str | None,
    remember: str | None,
    right_token: bool,
) -> None:
    """Whatever the form of the bridge's page carries, a PIN that is not four
    digits never reaches the card (no try spent), and no answer is a 500."""
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    card = scene.card(0)
    presented = card.pins_presented
    fields = {"pin": pin, "keypad": keypad, "remember": remember}
    form = {
        "action": action,
        **{name: value for name, value in fields.items() if value is not None},
    }
    form["token"] = page.token if right_token and page.token else "forged"
    own = FlaskClient(scene.app, scene.app.response_class)
    own.environ_base["HTTP_ORIGIN"] = BRIDGE
    response = own.post(page.url, data=form, base_url=BRIDGE)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    assert card.pins_presented == presented


def test_the_right_pin_on_the_form_is_presented_once(scene: BridgeScene) -> None:
    """The control: the form is reached and works, so that the property above is
    not vacuous."""
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    presented = scene.card(0).pins_presented
    answer(scene, page, pin="1234")
    assert scene.card(0).pins_presented == presented + 1
    assert outcome(scene.client(), page)["status"] == "ok"


# -- what the fuzzing found ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["a..b", ".", "x" * 64, f"{'x' * 64}.example:{PORT}"])
@pytest.mark.parametrize("path", ["/consents", "/interaction/x", "/static/bridge.css"])
def test_a_host_that_is_not_a_dns_name_is_refused_with_a_403_page(
    scene: BridgeScene, host: str, path: str
) -> None:
    """Found by the long run: a Host with no IDNA form (an empty label, a label over
    63 characters) left Flask without a URL adapter, and the refusal page's links
    failed to build: a 500 (a traceback in the log) instead of the 403."""
    client = FlaskClient(scene.app, scene.app.response_class)
    response = client.get(path, base_url=BRIDGE, headers={"Host": host})
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "Access-Control-Allow-Origin" not in response.headers
