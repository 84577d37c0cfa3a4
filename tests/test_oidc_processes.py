"""Two cardauth-oidc processes and one real redis-server (started here, on
loopback): the requests of one login spread over both, as a load balancer would
spread them. Nothing that matters lives in one process: the browser session, the
card login's challenge, the code, the tokens, their revocation."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import redis
import requests

from cardauth.oidc.app import create_app
from tests.oidc_kit import (
    AUTH,
    DOCTOR,
    INTROSPECT,
    PROVIDER_ORIGIN,
    REDIRECT,
    SECRET,
    TOKEN,
    USERINFO,
    Pkce,
    ProviderFiles,
    authorization_params,
    card_assertion,
)
from tests.support import LOOPBACK, free_port, stop_process
from tests.test_challenges import RedisServer

START_TIMEOUT = 30.0


def start_provider(
    files: ProviderFiles, origin: str, store: str, port: int, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).with_name("cardauth-oidc")),
        "serve",
        "--origin", origin,
        "--allow-development-origins",
        "--trust", str(files.trust),
        "--keys", str(files.keys),
        "--clients", str(files.clients),
        "--store", store,
        "--port", str(port),
        "--lang", "en",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while "listening" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise AssertionError(log.read_text(errors="replace"))
        time.sleep(0.05)
    return process


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def providers(
    tmp_path_factory: pytest.TempPathFactory, shared_redis: RedisServer
) -> Iterator[tuple[str, str, str]]:
    """Two processes behind one public origin (the first one's address here)."""
    folder = tmp_path_factory.mktemp("providers")
    files = ProviderFiles(folder).write()
    ports = (free_port(), free_port())
    origin = f"http://{LOOPBACK}:{ports[0]}"
    processes = [
        start_provider(files, origin, shared_redis.url, port, folder / f"provider-{index}.log")
        for index, port in enumerate(ports)
    ]
    try:
        yield origin, f"http://{LOOPBACK}:{ports[0]}", f"http://{LOOPBACK}:{ports[1]}"
    finally:
        for process in processes:
            stop_process(process)


def test_one_login_spread_over_two_processes(
    providers: tuple[str, str, str], shared_redis: RedisServer
) -> None:
    origin, first, second = providers
    browser = requests.Session()  # cookies of 127.0.0.1 go to both ports
    pkce = Pkce.new()
    params = authorization_params(pkce)
    page = browser.get(f"{first}{AUTH}?{urlencode(params)}", allow_redirects=False, timeout=10)
    assert page.status_code == 200
    assert 'id="login"' in page.text
    challenge = browser.post(f"{second}/cardauth/challenge", json={}, timeout=10).json()[
        "challenge"
    ]
    login = browser.post(
        f"{first}/cardauth/login", json={"assertion": card_assertion(challenge, origin)}, timeout=10
    )
    assert login.status_code == 200, login.text
    coded = browser.get(f"{second}{AUTH}?{urlencode(params)}", allow_redirects=False, timeout=10)
    assert coded.status_code == 302, coded.text
    assert coded.headers["Location"].startswith(REDIRECT)
    answer = {k: v[0] for k, v in parse_qs(urlsplit(coded.headers["Location"]).query).items()}
    assert answer["state"] == params["state"]

    relying_party = requests.Session()
    form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT,
            "code_verifier": pkce.verifier}  # fmt: skip
    tokens = relying_party.post(f"{first}{TOKEN}", data=form, auth=("rp-basic", SECRET), timeout=10)
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    info = relying_party.get(f"{second}{USERINFO}", headers=bearer, timeout=10)
    assert info.status_code == 200
    assert info.json()["SubjectNameID"] == DOCTOR
    introspected = relying_party.post(
        f"{second}{INTROSPECT}", data={"token": access}, auth=("rp-basic", SECRET), timeout=10
    )
    assert introspected.json()["active"] is True

    # The code replayed on the other process: refused there, and the tokens it gave
    # are revoked for both.
    replay = relying_party.post(
        f"{second}{TOKEN}", data=form, auth=("rp-basic", SECRET), timeout=10
    )
    assert replay.json()["error"] == "invalid_grant"
    for process in (first, second):
        assert (
            relying_party.get(f"{process}{USERINFO}", headers=bearer, timeout=10).status_code == 401
        )

    # What the login left is in Redis, and nowhere else.
    keys = redis.Redis.from_url(shared_redis.url, decode_responses=True).keys("cardauth:oidc:*")
    kinds = {str(key).split(":")[2] for key in keys}
    assert {"session", "used-code", "revoked-grant"} <= kinds


def test_a_code_raced_on_two_processes_is_exchanged_once(providers: tuple[str, str, str]) -> None:
    origin, first, second = providers
    browser = requests.Session()
    pkce = Pkce.new()
    params = authorization_params(pkce)
    browser.get(f"{first}{AUTH}?{urlencode(params)}", timeout=10)
    challenge = browser.post(f"{first}/cardauth/challenge", json={}, timeout=10).json()["challenge"]
    browser.post(
        f"{second}/cardauth/login",
        json={"assertion": card_assertion(challenge, origin)},
        timeout=10,
    )
    coded = browser.get(f"{first}{AUTH}?{urlencode(params)}", allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(coded.headers["Location"]).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": pkce.verifier}  # fmt: skip

    def exchange(url: str) -> requests.Response:
        return requests.post(f"{url}{TOKEN}", data=form, auth=("rp-basic", SECRET), timeout=10)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(exchange, (first, second)))
    assert sorted(answer.status_code for answer in answers) == [200, 400]


def test_a_challenge_is_single_use_across_processes(providers: tuple[str, str, str]) -> None:
    origin, first, second = providers
    browser = requests.Session()
    browser.get(f"{first}{AUTH}?{urlencode(authorization_params(Pkce.new()))}", timeout=10)
    challenge = browser.post(f"{first}/cardauth/challenge", json={}, timeout=10).json()["challenge"]
    assertion = card_assertion(challenge, origin)
    assert browser.post(f"{second}/cardauth/login", json={"assertion": assertion}, timeout=10).ok
    # the same assertion again, on the other process, in another browser's session
    other = requests.Session()
    other.post(f"{first}/cardauth/challenge", json={}, timeout=10)
    again = other.post(f"{first}/cardauth/login", json={"assertion": assertion}, timeout=10)
    assert again.status_code == 401
    assert again.json()["error"]["code"].startswith("challenge.")


def test_processes_sharing_redis_share_the_login_limit(
    tmp_path: Path, shared_redis: RedisServer
) -> None:
    files = ProviderFiles(tmp_path).write()
    settings = files.settings(store=shared_redis.url, login_limit="3/minute")
    first, second = (create_app(settings).test_client() for _ in range(2))
    asked = [first.post("/cardauth/challenge", json={}, base_url=PROVIDER_ORIGIN) for _ in range(2)]
    asked.append(second.post("/cardauth/challenge", json={}, base_url=PROVIDER_ORIGIN))
    assert [answer.status_code for answer in asked] == [200, 200, 200]
    for client in (first, second):  # two processes do not make twice the limit
        refused = client.post("/cardauth/challenge", json={}, base_url=PROVIDER_ORIGIN)
        assert refused.status_code == 429
        assert refused.get_json()["error"]["code"] == "oidc.rate_limited"


def test_a_provider_whose_redis_is_down_refuses_and_lets_nobody_through(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path).start()
    files = ProviderFiles(tmp_path / "files")
    files.folder.mkdir()
    files.write()
    client = create_app(files.settings(store=redis_server.url)).test_client()
    params = urlencode(authorization_params(Pkce.new()))
    assert client.get(f"{AUTH}?{params}", base_url=PROVIDER_ORIGIN).status_code == 200
    asked = client.post("/cardauth/challenge", json={}, base_url=PROVIDER_ORIGIN)
    assert asked.status_code == 200  # this browser has a session in Redis now
    redis_server.stop()
    # the session cannot be read: refused before anything else, not a 500
    page = client.get(f"{AUTH}?{params}", base_url=PROVIDER_ORIGIN)
    assert page.status_code == 503
    assert page.get_json()["error"]["code"] == "oidc.store_unavailable"
    # the login page needs nothing stored; the card login does, and is refused
    challenge = client.post("/cardauth/challenge", json={}, base_url=PROVIDER_ORIGIN)
    assert challenge.status_code == 503
    assert challenge.get_json()["error"]["code"] == "oidc.store_unavailable"
    token = client.post(TOKEN, data={"grant_type": "authorization_code", "code": "x" * 40},
                        auth=("rp-basic", SECRET), base_url=PROVIDER_ORIGIN)  # fmt: skip
    assert token.status_code == 503
