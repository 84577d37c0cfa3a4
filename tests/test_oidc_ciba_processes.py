"""CIBA on two cardauth-oidc processes sharing one real redis-server (started here,
on loopback): the bridge enrols on one, the client starts its request on the other,
the bridge lists and approves it across both, and the client's polls, raced on
both processes, get the tokens once. Nothing of a request lives in one process."""

from __future__ import annotations

import concurrent.futures
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from joserfc import jwk, jws

from cardauth.oidc.settings import OIDC
from tests.oidc_kit import DOCTOR, TOKEN, ProviderFiles, card_assertion
from tests.support import LOOPBACK, free_port, stop_process
from tests.test_challenges import RedisServer
from tests.test_oidc_ciba import CIBA_CLIENTS, CIBA_SECRET, GRANT
from tests.test_oidc_processes import start_provider

BRIDGE = f"{OIDC}/ext/ciba/bridge"


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-ciba")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def providers(
    tmp_path_factory: pytest.TempPathFactory, shared_redis: RedisServer
) -> Iterator[tuple[str, str, str]]:
    folder = tmp_path_factory.mktemp("providers-ciba")
    files = ProviderFiles(folder).write(CIBA_CLIENTS)
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


class Bridge:
    """A professional's bridge over HTTP: its key, enrolled with the doctor's card."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.key = jwk.ECKey.generate_key("P-256")

    def enrol(self, at: str) -> None:
        public = self.key.as_dict(private=False)
        asked = requests.post(f"{at}{BRIDGE}/challenge", json={"key": public}, timeout=10)
        challenge = asked.json()["challenge"]
        body = {
            "key": public,
            "challenge": challenge,
            "assertion": card_assertion(challenge, self.origin),
        }
        assert requests.post(f"{at}{BRIDGE}/enrol", json=body, timeout=10).status_code == 200

    def call(self, at: str, name: str, **members: Any) -> requests.Response:
        payload = {
            "htu": f"{self.origin}{BRIDGE}/{name}",  # the public address, whichever process
            "iat": int(time.time()),
            "jti": secrets.token_urlsafe(16),
            **members,
        }
        header = {"alg": "ES256", "typ": "cardauth-bridge+jwt", "kid": self.key.thumbprint()}
        signed = jws.serialize_compact(header, json.dumps(payload), self.key)
        return requests.post(f"{at}{BRIDGE}/{name}", json={"request": signed}, timeout=10)


def test_a_ciba_request_spread_over_two_processes_gives_tokens_once(
    providers: tuple[str, str, str], shared_redis: RedisServer
) -> None:
    origin, first, second = providers
    bridge = Bridge(origin)
    bridge.enrol(first)
    client = requests.Session()
    client.auth = ("desktop", CIBA_SECRET)
    form = {"scope": "openid", "login_hint": DOCTOR, "binding_message": "Poste 7"}
    started = client.post(f"{second}{OIDC}/ext/ciba/auth", data=form, timeout=10)
    assert started.status_code == 200, started.text
    auth_req_id = started.json()["auth_req_id"]
    poll = {"grant_type": GRANT, "auth_req_id": auth_req_id}
    assert client.post(f"{first}{TOKEN}", data=poll, timeout=10).json()["error"] == (
        "authorization_pending"
    )
    # polled again at once, on the other process: too fast all the same
    assert client.post(f"{second}{TOKEN}", data=poll, timeout=10).json()["error"] == "slow_down"

    waiting = bridge.call(second, "pending").json()["requests"]
    assert [request["binding_message"] for request in waiting] == ["Poste 7"]
    assertion = card_assertion(waiting[0]["challenge"], origin)
    approved = bridge.call(
        first, "answer", ref=waiting[0]["ref"], decision="approve", assertion=assertion
    )
    assert approved.status_code == 200, approved.text

    def exchange(url: str) -> requests.Response:
        return requests.post(f"{url}{TOKEN}", data=poll, auth=("desktop", CIBA_SECRET), timeout=10)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(exchange, (first, second)))
    assert sorted(answer.status_code for answer in answers) == [200, 400]
    refused = next(answer for answer in answers if answer.status_code == 400)
    assert refused.json()["error"] == "invalid_grant"

    keys = redis.Redis.from_url(shared_redis.url, decode_responses=True).keys("cardauth:oidc:*")
    kinds = {str(key).split(":")[2] for key in keys}
    assert {"ciba", "ciba-answer", "ciba-used", "bridge"} <= kinds


def test_a_ciba_request_expires_for_every_process(providers: tuple[str, str, str]) -> None:
    origin, first, second = providers
    Bridge(origin).enrol(second)
    client = requests.Session()
    client.auth = ("desktop", CIBA_SECRET)
    form = {
        "scope": "openid",
        "login_hint": DOCTOR,
        "binding_message": "Expire",
        "requested_expiry": "10",
    }
    auth_req_id = client.post(f"{first}{OIDC}/ext/ciba/auth", data=form, timeout=10).json()[
        "auth_req_id"
    ]
    time.sleep(10.5)
    poll = {"grant_type": GRANT, "auth_req_id": auth_req_id}
    for process in (first, second):
        assert client.post(f"{process}{TOKEN}", data=poll, timeout=10).json()["error"] == (
            "expired_token"
        )
