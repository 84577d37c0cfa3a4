"""The bridge's API answers as webbridge/openapi.yaml says it does.

Every request here goes through the clients of tests/bridge_kit.py, which check
each answer against the description (tests/openapi_check.py); the tests drive the
bridge to each answer the description lists and pin what makes it that answer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.readers import read_from_filename
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder, TestResponse

from simulator.personas import DEFAULT_PIN
from tests.bridge_flows import answer, open_interaction, open_page, start, start_login
from tests.bridge_kit import (
    BRIDGE,
    TELESERVICE,
    BridgeScene,
    bridge_scene,
    get,
    post_json,
    request_id,
)
from tests.openapi_check import SPEC, CheckedClient, check_response
from webbridge.app import MAX_EVENT_STREAMS
from webbridge.guards import MAX_BODY

FOREIGN = "https://elsewhere.example"
SOME_INTERACTION = f"/v1/interactions/{'A' * 32}"
API_CALLS = (
    ("/v1/status", "GET"),
    ("/v1/cards", "GET"),
    ("/v1/authenticate", "POST"),
    ("/v1/logout", "POST"),
    ("/v1/interactions", "POST"),
    (SOME_INTERACTION, "GET"),
    (SOME_INTERACTION, "DELETE"),
    ("/v1/events", "GET"),
)
FLASK_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # <name> or <type:name>
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[BridgeScene]:
    yield from bridge_scene(tmp_path)


@pytest.fixture
def limited_scene(tmp_path: Path) -> Iterator[BridgeScene]:
    """A bridge that takes two authentications a minute from each origin."""
    yield from bridge_scene(tmp_path, authentications_per_minute=2)


def spec() -> dict[str, Any]:
    document, _uri = read_from_filename(str(SPEC))
    assert isinstance(document, dict)
    return document


def error_code(response: TestResponse) -> str:
    body: dict[str, Any] = response.get_json()
    code: str = body["error"]["code"]
    return code


def authenticate(scene: BridgeScene, **body: Any) -> TestResponse:
    return post_json(scene.client(), "/v1/authenticate", {"challenge": scene.challenge(), **body})


def verify_pin(scene: BridgeScene) -> None:
    """A login on the bridge's page: the PIN is fresh afterwards."""
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    answer(scene, page, pin=DEFAULT_PIN)
    assert get(scene.client(), f"/v1/interactions/{page.request_id}").status_code == 200


# -- the description itself -------------------------------------------------------------


def test_description_is_valid_openapi_3_1() -> None:
    document, uri = read_from_filename(str(SPEC))
    validate(document, base_uri=uri, cls=OpenAPIV31SpecValidator)


def test_every_api_route_is_described_with_its_methods(scene: BridgeScene) -> None:
    paths = spec()["paths"]
    for rule in scene.app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = FLASK_RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        assert path in paths, f"{path} is not described"
        # HEAD is GET without its body (RFC 9110 § 9.3.2): Flask adds it to every GET.
        methods = {method.lower() for method in rule.methods or ()} - {"head"}
        missing = methods - set(paths[path])
        assert not missing, f"{path}: {sorted(missing)} not described"


def test_every_described_path_is_a_route(scene: BridgeScene) -> None:
    routes: dict[str, set[str]] = {}
    for rule in scene.app.url_map.iter_rules():
        path = FLASK_RULE_ARGUMENT.sub(r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(rule.methods or ())
    for path, item in spec()["paths"].items():
        assert path in routes, f"{path} is described but the bridge has no such route"
        described = {key.upper() for key in item if key in HTTP_METHODS}
        assert described <= routes[path], f"{path}: {sorted(described - routes[path])}"


def test_clients_of_the_scene_check_every_answer(scene: BridgeScene) -> None:
    assert isinstance(scene.client(), CheckedClient)


# -- 200 ------------------------------------------------------------------------------


def test_status_answers_as_described(scene: BridgeScene) -> None:
    response = get(scene.client(), "/v1/status")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == TELESERVICE.value


def test_cards_answer_as_described(scene: BridgeScene) -> None:
    response = get(scene.client(), "/v1/cards")
    assert response.status_code == 200
    assert [card["kind"] for card in response.get_json()["cards"]] == ["cps", "vitale"]


def test_unknown_and_unreadable_cards_answer_as_described(scene: BridgeScene) -> None:
    scene.remove(0)
    scene.remove(1)
    scene.insert(0, "unknown-card")
    # Not scene.insert: a card that cannot be read is never "known" to the bridge.
    scene.workstation.insert(1, "mute-card")
    response = get(scene.client(), "/v1/cards")
    cards = response.get_json()["cards"]
    assert [card["kind"] for card in cards] == ["unknown", "unreadable"]
    assert cards[1]["error"] == "transport.card_mute"


def test_cards_answer_an_empty_list_without_cards(scene: BridgeScene) -> None:
    scene.remove(0)
    scene.remove(1)
    assert get(scene.client(), "/v1/cards").get_json() == {"cards": []}


def test_authenticate_without_a_fresh_pin_asks_for_the_bridge_page(scene: BridgeScene) -> None:
    response = authenticate(scene)
    assert response.get_json() == {"status": "interaction_required"}


def test_a_login_opened_names_the_bridge_page_it_chose(scene: BridgeScene) -> None:
    page, started = start_login(scene, TELESERVICE.value, scene.challenge())
    assert started.status_code == 201
    assert started.get_json() == {"status": "pending", "url": f"{BRIDGE}{page.url}"}


def test_logout_answers_as_described(scene: BridgeScene) -> None:
    response = post_json(scene.client(), "/v1/logout", {})
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("vitale", [False, True])
def test_authenticate_with_a_fresh_pin_returns_the_assertion(
    scene: BridgeScene, vitale: bool
) -> None:
    verify_pin(scene)
    response = authenticate(scene, vitale=vitale)
    assert response.get_json()["status"] == "ok"


def test_pending_interaction_answers_as_described(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    response = get(scene.client(), f"/v1/interactions/{page.request_id}?wait=0")
    assert response.get_json() == {"status": "pending"}


def test_signed_interaction_answers_as_described(scene: BridgeScene) -> None:
    challenge = scene.challenge()
    page = open_page(scene, TELESERVICE.value, challenge)
    answer(scene, page, pin=DEFAULT_PIN)
    response = get(scene.client(), f"/v1/interactions/{page.request_id}")
    body = response.get_json()
    assert body["status"] == "ok"
    scene.verify(body["assertion"], challenge)


SIGNATURE_REQUEST = {
    "kind": "signature",
    "hash": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",  # SHA-256 of nothing
    "hash_algorithm": "SHA-256",
    "document_name": "Compte rendu.pdf",
}


def test_signing_certificate_interaction_answers_as_described(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, {"kind": "signing_certificate"})
    assert get(scene.client(), f"/v1/interactions/{page.request_id}").get_json() == {
        "status": "pending"
    }
    answer(scene, page)
    body = get(scene.client(), f"/v1/interactions/{page.request_id}").get_json()
    assert set(body) == {"status", "certificate"}


def test_signature_interaction_answers_as_described(scene: BridgeScene) -> None:
    page = open_interaction(scene, TELESERVICE.value, SIGNATURE_REQUEST)
    answer(scene, page, pin=DEFAULT_PIN)
    body = get(scene.client(), f"/v1/interactions/{page.request_id}").get_json()
    assert set(body) == {"status", "signature", "signature_algorithm", "certificate"}


@pytest.mark.parametrize(
    ("members", "code"),
    [
        ({"hash": "short"}, "document.hash_malformed"),
        ({"hash_algorithm": "SHA-1"}, "document.hash_algorithm"),
        ({"document_name": "a\u202eb"}, "document.name_invalid"),
        ({"challenge": "A" * 43}, "bridge.bad_request"),
        ({"kind": "unknown"}, "bridge.bad_request"),
    ],
)
def test_a_signing_request_refused_when_opened_says_why(
    scene: BridgeScene, members: dict[str, str], code: str
) -> None:
    _page, started = start(scene, TELESERVICE.value, {**SIGNATURE_REQUEST, **members})
    assert started.status_code == 400
    assert error_code(started) == code


def test_declined_interaction_answers_as_described(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    answer(scene, page, action="decline")
    response = get(scene.client(), f"/v1/interactions/{page.request_id}?lang=en")
    assert response.get_json() == {
        "status": "declined",
        "error": {
            "code": "bridge.declined",
            "message": "You refused this site access to your card.",
        },
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"challenge": "short"}, "challenge.malformed"),
        ({"challenge": "A" * 43, "request_id": "short"}, "bridge.bad_request"),
        ({"challenge": "A" * 43, "vitale": "yes"}, "bridge.bad_request"),
    ],
)
def test_a_login_refused_when_opened_says_why(
    scene: BridgeScene, body: dict[str, str], code: str
) -> None:
    full = {"request_id": request_id(), "page_id": request_id(), **body}
    response = post_json(scene.client(), "/v1/interactions", full)
    assert response.status_code == 400
    assert error_code(response) == code


def test_a_site_not_approved_reads_its_login_once_answered(scene: BridgeScene) -> None:
    page = open_page(scene, FOREIGN, scene.challenge())
    path = f"/v1/interactions/{page.request_id}"
    site = scene.client(FOREIGN)
    preflight = site.options(path, base_url=BRIDGE)
    assert preflight.status_code == 204  # so that the browser sends the request itself
    pending = get(site, path)
    assert pending.status_code == 403
    assert "Access-Control-Allow-Origin" not in pending.headers
    answer(scene, page, action="decline")
    response = get(site, path)
    assert response.get_json()["status"] == "declined"
    assert response.headers["Access-Control-Allow-Origin"] == FOREIGN


def test_cancelled_interaction_answers_as_described(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    response = scene.client().delete(f"/v1/interactions/{page.request_id}", base_url=BRIDGE)
    body = response.get_json()
    assert (body["status"], body["error"]["code"]) == ("failed", "bridge.cancelled")


def test_events_answer_a_stream(scene: BridgeScene) -> None:
    response = get(scene.client(), "/v1/events", buffered=False)
    try:
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
    finally:
        response.close()


# -- preflight ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted({path for path, _method in API_CALLS}))
def test_preflight_answers_as_described(scene: BridgeScene, path: str) -> None:
    response = scene.client().options(
        path,
        base_url=BRIDGE,
        headers={
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


def test_preflight_without_private_network_request_omits_it(scene: BridgeScene) -> None:
    response = scene.client().options("/v1/authenticate", base_url=BRIDGE)
    assert response.status_code == 204
    assert "Access-Control-Allow-Private-Network" not in response.headers


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        '{"challenge": "short"}',
        '{"challenge": "%s", "vitale": "yes"}',
        '{"challenge": "%s", "origin": "https://teleservice.example"}',
        '{"challenge": "%s", "extra": 1}',
    ],
)
def test_bad_body_is_400(scene: BridgeScene, body: str) -> None:
    data = body.replace("%s", scene.challenge())
    response = scene.client().post(
        "/v1/authenticate", data=data, content_type="application/json", base_url=BRIDGE
    )
    assert response.status_code == 400


@pytest.mark.parametrize("wait", ["soon", "-1", "26", "nan"])
def test_bad_wait_is_400(scene: BridgeScene, wait: str) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    response = get(scene.client(), f"/v1/interactions/{page.request_id}?wait={wait}")
    assert response.status_code == 400
    assert error_code(response) == "bridge.bad_request"


@pytest.mark.parametrize("origin", [None, "null", FOREIGN, "not an origin"])
def test_origin_not_approved_is_403(scene: BridgeScene, origin: str | None) -> None:
    client = scene.client(origin)
    for path, method in API_CALLS:
        response = client.open(path, method=method, base_url=BRIDGE)
        # Any site may open a login: one that sends no JSON is told so, unreadably.
        expected = 415 if origin == FOREIGN and path == "/v1/interactions" else 403
        assert response.status_code == expected, (method, path)
        assert "Access-Control-Allow-Origin" not in response.headers
        preflight = client.open(path, method="OPTIONS", base_url=BRIDGE)
        # A preflight is answered to any origin on the paths open to any site, and
        # to no origin that is not one.
        open_to_it = origin == FOREIGN and path.startswith("/v1/interactions")
        assert preflight.status_code == (204 if open_to_it else 403), path


def test_host_not_the_bridge_is_403(scene: BridgeScene) -> None:
    response = scene.client().get("/v1/status", base_url="http://rebound.example:24790")
    assert response.status_code == 403
    assert error_code(response) == "bridge.host"


def test_interaction_of_another_site_is_403_or_404(scene: BridgeScene) -> None:
    page = open_page(scene, FOREIGN, scene.challenge())
    path = f"/v1/interactions/{page.request_id}"
    assert get(scene.client(), path).status_code == 404  # approved, but not its login
    assert get(scene.client("https://third.example"), path).status_code == 403


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_request_id_is_404(scene: BridgeScene, method: str) -> None:
    path = f"/v1/interactions/{request_id()}"
    response = scene.client().open(path, method=method, base_url=BRIDGE)
    assert response.status_code == 404
    assert error_code(response) == "bridge.interaction_unknown"


def test_collected_interaction_is_404(scene: BridgeScene) -> None:
    page = open_page(scene, TELESERVICE.value, scene.challenge())
    answer(scene, page, action="decline")
    path = f"/v1/interactions/{page.request_id}"
    assert get(scene.client(), path).status_code == 200
    assert get(scene.client(), path).status_code == 404


def test_no_cps_card_is_409(scene: BridgeScene) -> None:
    scene.remove(0)
    response = authenticate(scene)
    assert response.status_code == 409
    assert error_code(response) == "card.not_present"


def test_no_vitale_card_is_409_when_asked_for(scene: BridgeScene) -> None:
    verify_pin(scene)
    scene.remove(1)
    response = authenticate(scene, vitale=True)
    assert response.status_code == 409
    assert error_code(response) == "card.not_present"


def test_body_too_large_is_413(scene: BridgeScene) -> None:
    data = json.dumps({"challenge": "A" * MAX_BODY})
    response = scene.client().post(
        "/v1/authenticate", data=data, content_type="application/json", base_url=BRIDGE
    )
    assert response.status_code == 413
    assert error_code(response) == "bridge.too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_body_not_json_is_415(scene: BridgeScene, content_type: str | None) -> None:
    body = json.dumps({"challenge": scene.challenge()})
    response = scene.client().post(
        "/v1/authenticate", data=body, content_type=content_type, base_url=BRIDGE
    )
    assert response.status_code == 415
    assert error_code(response) == "bridge.content_type"


def test_too_many_authentications_are_429_with_retry_after(limited_scene: BridgeScene) -> None:
    answers = [authenticate(limited_scene) for _ in range(3)]
    assert [response.status_code for response in answers] == [200, 200, 429]
    assert answers[-1].headers["Retry-After"] == "60"
    assert error_code(answers[-1]) == "bridge.rate_limited"


def test_too_many_event_streams_is_503(scene: BridgeScene) -> None:
    client = scene.client()
    streams = [get(client, "/v1/events", buffered=False) for _ in range(MAX_EVENT_STREAMS)]
    try:
        response = get(client, "/v1/events")
        assert response.status_code == 503
        assert error_code(response) == "bridge.busy"
    finally:
        for stream in reversed(streams):  # each holds a request context: last in, first out
            stream.close()


def test_event_streams_free_their_place_when_closed(scene: BridgeScene) -> None:
    head = unchecked_client(scene)  # the description lists GET (HEAD is Flask's, as usual)
    for _ in range(MAX_EVENT_STREAMS + 1):  # HEAD answers without running the stream
        with head.head("/v1/events", base_url=BRIDGE) as answered:  # closed, as a server does
            assert answered.status_code == 200
    client = scene.client()
    for _ in range(MAX_EVENT_STREAMS + 1):
        get(client, "/v1/events", buffered=False).close()
    streams = [get(client, "/v1/events", buffered=False) for _ in range(MAX_EVENT_STREAMS)]
    for stream in reversed(streams):
        assert stream.status_code == 200
        stream.close()


def unchecked_client(scene: BridgeScene) -> FlaskClient:
    """A client whose answers are not held to the description (for paths and
    methods it does not list, on purpose)."""
    client = FlaskClient(scene.app)
    client.environ_base["HTTP_ORIGIN"] = TELESERVICE.value
    return client


def test_a_path_not_in_the_api_is_404(scene: BridgeScene) -> None:
    response = get(unchecked_client(scene), "/v1/nowhere")
    assert response.status_code == 404
    assert error_code(response) == "bridge.not_found"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_method_a_path_does_not_take_is_405_with_allow(scene: BridgeScene) -> None:
    response = unchecked_client(scene).put("/v1/status", json={}, base_url=BRIDGE)
    assert response.status_code == 405
    assert error_code(response) == "bridge.method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "HEAD", "OPTIONS"}


# -- the checker bites --------------------------------------------------------------------


CORS_HEADERS = {
    "Access-Control-Allow-Origin": TELESERVICE.value,
    "Access-Control-Expose-Headers": "Retry-After",
    "Vary": "Origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def made_answer(
    path: str, body: object, *, status: int = 200, headers: Mapping[str, str] = CORS_HEADERS
) -> TestResponse:
    """A JSON answer the bridge did not give, to the request ``GET path``."""
    request = EnvironBuilder(
        path=path, base_url=BRIDGE, headers=[("Origin", TELESERVICE.value)]
    ).get_request()
    sent: dict[str, str] = {**headers, "Content-Type": "application/json"}
    return TestResponse([json.dumps(body).encode()], str(status), Headers(sent), request)


STATUS = {
    "service": "cardauth-bridge",
    "version": "0.1.0",
    "api": 1,
    "readers": ["Reader 00"],
    "pin_fresh": False,
}


def test_checker_accepts_a_made_answer_that_fits() -> None:
    check_response(made_answer("/v1/status", STATUS))


@pytest.mark.parametrize(
    "body",
    [
        {**STATUS, "pin_fresh": "no"},
        {**STATUS, "debug": True},
        {key: value for key, value in STATUS.items() if key != "readers"},
        {"error": {"code": "bridge.busy"}},
    ],
)
def test_checker_refuses_a_body_that_does_not_fit(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match=r"GET /v1/status answered 200"):
        check_response(made_answer("/v1/status", body))


SIGNED = {
    "status": "ok",
    "signature": "c2lnbmF0dXJl",
    "signature_algorithm": "RS256",
    "certificate": "Y2VydGlmaWNhdGU",
}


@pytest.mark.parametrize(
    "body",
    [
        {**SIGNED, "assertion": "a.b.c"},  # a login's answer and a signature's at once
        {key: value for key, value in SIGNED.items() if key != "certificate"},
        {**SIGNED, "signature_algorithm": "PS256"},
        {**SIGNED, "signature": "c2lnbmF0dXJl=="},  # padded: not base64url as described
        {"status": "pending", "certificate": "Y2VydGlmaWNhdGU"},
    ],
)
def test_checker_refuses_a_signing_outcome_that_does_not_fit(body: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="answered 200"):
        check_response(made_answer(SOME_INTERACTION, body))


def test_checker_accepts_a_signing_outcome_that_fits() -> None:
    check_response(made_answer(SOME_INTERACTION, SIGNED))
    check_response(made_answer(SOME_INTERACTION, {"status": "ok", "certificate": "Y2VydA"}))


def test_checker_refuses_a_card_view_that_does_not_fit() -> None:
    card = {
        "slot": "Reader 00",
        "kind": "bank",
        "holder": None,
        "card_type": None,
        "profession": None,
        "pinpad": False,
        "error": None,
    }
    with pytest.raises(AssertionError, match="kind"):
        check_response(made_answer("/v1/cards", {"cards": [card]}))


def test_checker_refuses_a_wildcard_origin() -> None:
    made = made_answer(
        "/v1/status", STATUS, headers={**CORS_HEADERS, "Access-Control-Allow-Origin": "*"}
    )
    with pytest.raises(AssertionError, match="Access-Control-Allow-Origin"):
        check_response(made)


def test_checker_refuses_a_missing_cors_header(scene: BridgeScene) -> None:
    response = get(scene.client(), "/v1/status")
    del response.headers["Access-Control-Allow-Origin"]
    with pytest.raises(AssertionError, match="Access-Control-Allow-Origin"):
        check_response(response)


def test_checker_refuses_a_status_not_described() -> None:
    with pytest.raises(AssertionError, match="418"):
        check_response(made_answer("/v1/status", STATUS, status=418))


def test_checker_refuses_a_path_not_described() -> None:
    with pytest.raises(AssertionError, match="/v1/nowhere"):
        check_response(made_answer("/v1/nowhere", STATUS))


def test_checker_leaves_the_pages_alone() -> None:
    check_response(made_answer("/consents", {"not": "html"}, status=418))


def test_checker_refuses_a_stream_of_another_media_type() -> None:
    with pytest.raises(AssertionError, match="mimetype not found: application/json"):
        check_response(made_answer("/v1/events", STATUS))


def test_checker_never_reads_an_event_stream() -> None:
    def endless() -> Iterator[bytes]:
        raise AssertionError("the checker read the stream")
        yield b""  # a generator, as the bridge's stream

    made = made_answer("/v1/events", None)
    made.response = endless()
    made.headers["Content-Type"] = "text/event-stream"
    check_response(made)
