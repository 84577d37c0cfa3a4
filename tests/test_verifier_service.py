"""cardauth-verifier: the verifier over HTTP for teleservices in any language. Real
assertions from the simulated cards, through the Flask test client and over real
HTTP; the token, the browsers refused, the bodies, the store that is down."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cardauth.challenges import ChallengeStore, MemoryChallengeStore, RedisChallengeStore
from cardauth.serving import Served, listen
from cardauth.verifier_service import (
    MAX_BODY,
    NotLoopback,
    TokenFileError,
    create_app,
    load_token,
    main,
    require_loopback,
)
from cardauth.verify import Verifier
from simulator.trust_export import export_trust
from tests.support import free_port
from tests.verifier_kit import NOW, ORIGIN, Forge, crl_checker, trust_store

TOKEN = "5f0c3a9e" * 8  # 32 bytes in hex, as the service makes them
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SESSION_ID = "php-session-7f3a9c21d4e8"  # the teleservice's own session identifier
OTHER_SESSION = "php-session-0000aaaa1111"
DOCTOR = "899700420013"


def make_app(store: ChallengeStore | None = None) -> Flask:
    return create_app(
        verifier=Verifier(trust=trust_store(), revocation=crl_checker()),
        origins=(ORIGIN,),
        store=store or MemoryChallengeStore(),
        token=TOKEN,
        clock=lambda: NOW,
    )


@pytest.fixture
def client() -> FlaskClient:
    return make_app().test_client()


def new_challenge(client: FlaskClient, session: str = SESSION_ID) -> str:
    response = client.post("/v1/challenges", json={"session": session}, headers=AUTH)
    assert response.status_code == 200
    return str(response.get_json()["challenge"])


def verify(client: FlaskClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/v1/verify", json=body, headers={**AUTH, **headers})


def error_code(response: Any) -> str:
    return str(response.get_json()["error"]["code"])


# -- logins ---------------------------------------------------------------------------


def test_a_card_login_gives_the_identity_from_the_certificate(client: FlaskClient) -> None:
    challenge = new_challenge(client)
    token = Forge().assertion(challenge)
    response = verify(client, {"assertion": token, "session": SESSION_ID, "challenge": challenge})
    assert response.status_code == 200
    login = response.get_json()
    assert login["professional"]["idnat"] == DOCTOR
    assert login["patient"] is None
    assert login["origin"] == ORIGIN.value
    assert login["card_serial"] == "80250000010000100001"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_challenge_says_when_it_expires(client: FlaskClient) -> None:
    response = client.post("/v1/challenges", json={"session": SESSION_ID}, headers=AUTH)
    answer = response.get_json()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", answer["challenge"])
    assert dt.datetime.fromisoformat(answer["expires_at"]) == NOW + dt.timedelta(minutes=5)


def test_a_replayed_challenge_is_refused(client: FlaskClient) -> None:
    challenge = new_challenge(client)
    body = {
        "assertion": Forge().assertion(challenge),
        "session": SESSION_ID,
        "challenge": challenge,
    }
    assert verify(client, body).status_code == 200
    again = verify(client, body)
    assert again.status_code == 401
    assert error_code(again) == "challenge.unknown"


def test_a_refused_attempt_uses_up_the_challenge(client: FlaskClient) -> None:
    challenge = new_challenge(client)
    forged = Forge().assertion(challenge, key=Forge(cps_persona="pharmacist").cps_key)
    first = verify(client, {"assertion": forged, "session": SESSION_ID, "challenge": challenge})
    assert error_code(first) == "assertion.signature"
    honest = Forge().assertion(challenge)
    second = verify(client, {"assertion": honest, "session": SESSION_ID, "challenge": challenge})
    assert error_code(second) == "challenge.unknown"


def test_an_assertion_for_another_session_is_refused(client: FlaskClient) -> None:
    challenge = new_challenge(client, session=OTHER_SESSION)  # the attacker's session
    token = Forge().assertion(challenge)
    response = verify(client, {"assertion": token, "session": SESSION_ID, "challenge": challenge})
    assert response.status_code == 401
    assert error_code(response) == "challenge.session"


def test_an_assertion_for_another_origin_is_refused(client: FlaskClient) -> None:
    challenge = new_challenge(client)
    token = Forge(origin="https://phishing.example").assertion(challenge)
    response = verify(client, {"assertion": token, "session": SESSION_ID, "challenge": challenge})
    assert response.status_code == 401
    assert error_code(response) == "origin.mismatch"


def test_require_vitale_without_the_co_assertion_is_refused(client: FlaskClient) -> None:
    challenge = new_challenge(client)
    body = {
        "assertion": Forge().assertion(challenge),
        "session": SESSION_ID,
        "challenge": challenge,
        "require_vitale": True,
    }
    response = verify(client, body)
    assert response.status_code == 401
    assert error_code(response) == "vitale.missing"


def test_a_vitale_co_assertion_gives_the_patient(client: FlaskClient) -> None:
    forge = Forge(vitale_persona="parent")
    challenge = new_challenge(client)
    token = forge.assertion(challenge, vitale=forge.vitale(challenge))
    body = {"assertion": token, "session": SESSION_ID, "challenge": challenge}
    response = verify(client, {**body, "require_vitale": True})
    assert response.status_code == 200
    assert response.get_json()["patient"]["nir"] == "178016912304552"


def test_a_revoked_card_is_refused_in_the_language_asked(client: FlaskClient) -> None:
    challenge = new_challenge(client)
    token = Forge(cps_persona="cps-revoked").assertion(challenge)
    body = {"assertion": token, "session": SESSION_ID, "challenge": challenge}
    response = verify(client, body, **{"Accept-Language": "en"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "revocation.revoked"
    assert "revoked" in response.get_json()["error"]["message"]


def test_a_store_that_is_down_gives_503(closed_port: int) -> None:
    store = RedisChallengeStore.from_url(f"redis://127.0.0.1:{closed_port}/0", timeout=1.0)
    client = make_app(store).test_client()
    response = client.post("/v1/challenges", json={"session": SESSION_ID}, headers=AUTH)
    assert response.status_code == 503
    assert error_code(response) == "challenge.store_unavailable"
    challenge = "A" * 43  # well formed; the store cannot be asked about it
    token = Forge().assertion(challenge)
    refused = verify(client, {"assertion": token, "session": SESSION_ID, "challenge": challenge})
    assert refused.status_code == 503
    assert error_code(refused) == "challenge.store_unavailable"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    return free_port()


# -- who may call ---------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_refused(client: FlaskClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer " + "0" * 64},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer"},
    ):
        response = client.post("/v1/challenges", json={"session": SESSION_ID}, headers=headers)
        assert response.status_code == 401, headers
        assert error_code(response) == "verifier.unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/v1/health").status_code == 401
    assert client.get("/no/such/path").status_code == 401  # nothing is routed before the token


def test_the_scheme_name_is_case_insensitive(client: FlaskClient) -> None:
    response = client.get("/v1/health", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


def test_a_request_from_a_browser_is_refused(client: FlaskClient) -> None:
    for browser in (
        {"Origin": ORIGIN.value},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-origin"},  # a rebound name's same-origin fetch
        {"Sec-Fetch-Mode": "no-cors"},
    ):
        response = client.post(
            "/v1/challenges", json={"session": SESSION_ID}, headers={**AUTH, **browser}
        )
        assert response.status_code == 403, browser
        assert error_code(response) == "verifier.browser"
        assert not [h for h, _ in response.headers if h.lower().startswith("access-control")]
    preflight = client.options("/v1/verify", headers={"Origin": ORIGIN.value})
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_foreign_host_header_is_refused(client: FlaskClient) -> None:
    response = client.get("/v1/health", headers={**AUTH, "Host": "rebound.example:24791"})
    assert response.status_code == 403
    assert error_code(response) == "verifier.host"
    for host in ("127.0.0.1:24791", "localhost:24791", "[::1]:24791"):
        assert client.get("/v1/health", headers={**AUTH, "Host": host}).status_code == 200


def test_a_non_loopback_host_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for host in ("0.0.0.0", "192.0.2.10", "::", "teleservice.example"):
        with pytest.raises(NotLoopback):
            require_loopback(host)
    require_loopback("127.0.0.1")
    argv = ["--trust", str(tmp_path), "--origin", ORIGIN.value, "--host", "0.0.0.0"]
    status = main([*argv, "--token-file", str(tmp_path / "token"), "--lang", "en"])
    assert status == 1
    assert "[verifier.not_loopback]" in capsys.readouterr().err
    assert not (tmp_path / "token").exists()  # refused before anything is made


# -- the token file ---------------------------------------------------------------------


def test_a_token_file_is_made_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "verifier.token"
    token = load_token(path)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_token(path) == token  # read again, not made again


def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "verifier.token"
    path.write_text(TOKEN)
    path.chmod(0o644)
    with pytest.raises(TokenFileError) as refused:
        load_token(path)
    assert refused.value.code == "verifier.token_file"


def test_a_token_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "verifier.token"
    path.write_text(TOKEN)
    path.chmod(0o600)
    owner = path.stat().st_uid  # as if the service ran as another user than its owner
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)
    with pytest.raises(TokenFileError, match="another user"):
        load_token(path)


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "verifier.token"
    path.write_text("secret")
    path.chmod(0o600)
    with pytest.raises(TokenFileError):
        load_token(path)


# -- bodies and paths -------------------------------------------------------------------


def test_an_oversized_body_is_refused(client: FlaskClient) -> None:
    body = json.dumps({"assertion": "a" * MAX_BODY, "session": SESSION_ID, "challenge": "x"})
    response = client.post(
        "/v1/verify", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert error_code(response) == "verifier.too_large"


def test_bodies_are_json_objects_with_the_calls_members_only(client: FlaskClient) -> None:
    json_type = {**AUTH, "Content-Type": "application/json"}
    not_json = client.post("/v1/challenges", data=f"session={SESSION_ID}", headers=AUTH)
    assert not_json.status_code == 415
    assert error_code(not_json) == "verifier.content_type"
    for raw in (
        '{"session": "php-session-7f3a9c21d4e8", "extra": 1}',  # unknown member
        '{"session": "php-session-7f3a9c21d4e8", "session": "php-session-0000aaaa1111"}',
        '["php-session-7f3a9c21d4e8"]',
        "{",
        "[" * 50_000,
        '{"session": "short"}',
        '{"session": "with spaces in the identifier"}',
        '{"session": NaN}',
        "{}",
    ):
        response = client.post("/v1/challenges", data=raw, headers=json_type)
        assert response.status_code == 400, raw
        assert error_code(response) == "verifier.bad_request"
    challenge = new_challenge(client)
    for body in (
        {"session": SESSION_ID, "challenge": challenge},  # no assertion
        {"assertion": 1, "session": SESSION_ID, "challenge": challenge},
        {"assertion": "a.b.c", "session": SESSION_ID, "challenge": challenge, "require_vitale": 1},
    ):
        assert verify(client, body).status_code == 400, body


def test_unknown_paths_and_methods_get_typed_json(client: FlaskClient) -> None:
    missing = client.get("/v2/verify", headers=AUTH)
    assert missing.status_code == 404
    assert error_code(missing) == "verifier.not_found"
    wrong = client.get("/v1/verify", headers=AUTH)
    assert wrong.status_code == 405
    assert error_code(wrong) == "verifier.method_not_allowed"
    assert "POST" in wrong.headers["Allow"]


def test_the_health_check(client: FlaskClient) -> None:
    response = client.get("/v1/health", headers=AUTH)
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


# -- over real HTTP ---------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[int]:
    listener = listen("127.0.0.1", 0)
    server = Served(make_app(), listener, ident="cardauth-verifier").start("verifier-test")
    try:
        yield int(listener.getsockname()[1])
    finally:
        server.close()


def call(port: int, method: str, path: str, body: bytes | None, **headers: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type"), json.loads(answer.read())
    finally:
        connection.close()


def post(port: int, path: str, body: dict[str, Any], **headers: str) -> Any:
    json_headers = {**AUTH, "Content-Type": "application/json", **headers}
    return call(port, "POST", path, json.dumps(body).encode(), **json_headers)


def test_a_login_over_real_http(served: int) -> None:
    status, _, answer = post(served, "/v1/challenges", {"session": SESSION_ID})
    assert status == 200
    challenge = answer["challenge"]
    body = {
        "assertion": Forge().assertion(challenge),
        "session": SESSION_ID,
        "challenge": challenge,
    }
    status, content_type, login = post(served, "/v1/verify", body)
    assert (status, content_type) == (200, "application/json")
    assert login["professional"]["idnat"] == DOCTOR
    status, _, replay = post(served, "/v1/verify", body)
    assert (status, replay["error"]["code"]) == (401, "challenge.unknown")
    status, _, browser = post(served, "/v1/verify", body, Origin=ORIGIN.value)
    assert (status, browser["error"]["code"]) == (403, "verifier.browser")
    status, _, anonymous = call(served, "GET", "/v1/health", None)
    assert (status, anonymous["error"]["code"]) == (401, "verifier.unauthorized")
    big = {**body, "assertion": "a" * MAX_BODY}
    status, content_type, too_large = post(served, "/v1/verify", big)
    assert (status, content_type) == (413, "application/json")
    assert too_large["error"]["code"] == "verifier.too_large"


def test_the_command_serves_until_sigterm(tmp_path: Path) -> None:
    export_trust(tmp_path / "trust", now=dt.datetime.now(dt.UTC))
    token_file = tmp_path / "token"
    command = [sys.executable, "-m", "cardauth.verifier_service", "--lang", "en"]
    command += ["--trust", str(tmp_path / "trust"), "--origin", ORIGIN.value]
    command += ["--token-file", str(token_file), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        token = token_file.read_text().strip()
        status, _, health = call(
            int(found[1]), "GET", "/v1/health", None, Authorization=f"Bearer {token}"
        )
        assert (status, health["status"]) == (200, "ok")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
