"""OpenID Connect Back-Channel Logout 1.0 from cardauth-oidc, over real HTTP: two
provider processes' worth of applications sharing one real redis-server, relying
parties served on loopback (tests/backchannel_rp.py) that log in through the
provider and check every logout token with PyJWT by the rules of § 2.6.

A provider session ends when its card watch page reports the CPS card's removal
(``POST …/card-removed``), or at an RP-initiated logout: every relying party of
that session is told, in the background, whichever process ends it; one relying
party down delays nobody, and each outcome is in the audit trail."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from joserfc import jwt

from cardauth.oidc.app import create_app
from cardauth.oidc.backchannel import Sweeper
from cardauth.oidc.keys import KeySet
from cardauth.oidc.settings import OIDC, REALM
from cardauth.serving import Served, listen
from examples.teleservice import create_app as create_teleservice
from examples.teleservice.store import BUNDLED_SEED, init_db
from tests.backchannel_rp import EVENT, RelyingParty
from tests.oidc_kit import DOCTOR, Pkce, ProviderFiles, card_assertion
from tests.support import LOOPBACK, free_port
from tests.test_challenges import RedisServer

RP_SECRET = "back-channel-relying-party-secret-0123456789"
TELESERVICE_SECRET = "teleservice-relying-party-secret-0123456789"
DELIVERY_BOUND = 10.0  # seconds for the tokens to reach the relying parties


@dataclass
class Deployment:
    origin: str  # the provider's public origin: the first process
    processes: tuple[str, str]  # where each process of the provider is reached
    parties: dict[str, RelyingParty]
    audit_log: Path
    down_port: int  # where a relying party's back-channel URI points, and nothing listens
    teleservice: str  # the example teleservice in OIDC mode, a relying party
    keys_file: Path  # the provider's signing keys


def _clients(parties: dict[str, RelyingParty], down_port: int, teleservice: str) -> str:
    entries = [
        f"""\
[[clients]]
client_id = "teleservice"
client_secret = "{TELESERVICE_SECRET}"
redirect_uris = ["{teleservice}/oidc/callback"]
post_logout_redirect_uris = ["{teleservice}/oidc/logged-out"]
backchannel_logout_uri = "{teleservice}/oidc/backchannel-logout"
"""
    ]
    for name, party in parties.items():
        entries.append(f"""\
[[clients]]
client_id = "{name}"
client_secret = "{RP_SECRET}"
redirect_uris = ["{party.origin}/callback"]
post_logout_redirect_uris = ["{party.origin}/me"]
id_token_signed_response_alg = "{"ES256" if name == "rp-es" else "RS256"}"
backchannel_logout_uri = "{party.origin}/backchannel-logout"
""")
    entries.append(f"""\
[[clients]]
client_id = "rp-down"
client_secret = "{RP_SECRET}"
redirect_uris = ["http://{LOOPBACK}:{down_port}/callback"]
backchannel_logout_uri = "http://{LOOPBACK}:{down_port}/backchannel-logout"
""")
    return "\n".join(entries)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("backchannel")
    redis_server = RedisServer(folder).start()
    ports = (free_port(), free_port())
    origin = f"http://{LOOPBACK}:{ports[0]}"
    parties = {}
    served = []
    for name in ("rp-rs", "rp-es"):
        port = free_port()
        parties[name] = RelyingParty(origin, name, RP_SECRET, f"http://{LOOPBACK}:{port}")
        served.append(Served(parties[name].app(), listen(LOOPBACK, port), ident=name).start(name))
    down_port = free_port()
    teleservice_port = free_port()
    teleservice = f"http://{LOOPBACK}:{teleservice_port}"
    files = ProviderFiles(folder).write(_clients(parties, down_port, teleservice))
    audit_log = folder / "audit.jsonl"
    settings = files.settings(
        origin, store=redis_server.url, allow_development_origins=True, audit_log=audit_log
    )
    for port in ports:  # two processes of the provider: one Redis between them
        app = create_app(settings)
        served.append(Served(app, listen(LOOPBACK, port), ident="oidc").start("oidc"))
    db = folder / "teleservice.db"
    init_db(db, BUNDLED_SEED)
    teleservice_app = create_teleservice(
        {
            "SECRET_KEY": secrets.token_hex(32),
            "CARDAUTH_ORIGINS": [teleservice],
            "CARDAUTH_ALLOW_DEVELOPMENT_ORIGINS": True,
            "CARDAUTH_TRUST_DIR": str(files.trust),
            "CARDAUTH_AUDIT_LOG": str(folder / "teleservice-audit.jsonl"),
            "CARDAUTH_PSEUDONYM_KEY": secrets.token_bytes(32),
            "TELESERVICE_DB": str(db),
            "TELESERVICE_OIDC_ISSUER": origin + REALM,
            "TELESERVICE_OIDC_CLIENT_ID": "teleservice",
            "TELESERVICE_OIDC_CLIENT_SECRET": TELESERVICE_SECRET,
        }
    )
    served.append(
        Served(teleservice_app, listen(LOOPBACK, teleservice_port), ident="ts").start("ts")
    )
    try:
        yield Deployment(
            origin,
            (origin, f"http://{LOOPBACK}:{ports[1]}"),
            parties,
            audit_log,
            down_port,
            teleservice,
            files.keys,
        )
    finally:
        for server in served:
            server.close()
        redis_server.stop()


def log_in(browser: requests.Session, party: RelyingParty, provider: Deployment) -> str:
    """The relying party's login; the card at the provider when it asks. The sub."""
    page = browser.get(f"{party.origin}/login", timeout=10)
    if 'id="login"' in page.text:  # the provider's login page: the card
        challenge = browser.post(
            f"{provider.origin}/cardauth/challenge", json={}, timeout=10
        ).json()["challenge"]
        assertion = card_assertion(challenge, provider.origin)
        logged = browser.post(
            f"{provider.origin}/cardauth/login", json={"assertion": assertion}, timeout=10
        )
        assert logged.status_code == 200, logged.text
        page = browser.get(page.url, timeout=10)  # the same request: now a code
    status = browser.get(f"{party.origin}/status", timeout=10).json()
    assert status["logged_in"] is True, page.text[:300]
    return str(status["sub"])


def logged_in(browser: requests.Session, party: RelyingParty) -> bool:
    return bool(browser.get(f"{party.origin}/status", timeout=10).json()["logged_in"])


def watch_token(browser: requests.Session, process: str) -> str:
    page = browser.get(f"{process}{OIDC}/card-watch", timeout=10)
    found = re.search(r'name="cardauth-watch" content="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def until(condition: Callable[[], bool], bound: float = DELIVERY_BOUND) -> bool:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def audited(deployment: Deployment) -> list[dict[str, object]]:
    if not deployment.audit_log.exists():
        return []
    lines = deployment.audit_log.read_text(encoding="utf-8").splitlines()
    return [entry for entry in map(json.loads, lines) if entry["event"] == "backchannel_logout"]


def test_discovery_says_back_channel_logout_with_sid(deployment: Deployment) -> None:
    found = requests.get(f"{deployment.origin}/.well-known/openid-configuration", timeout=10).json()
    assert found["backchannel_logout_supported"] is True
    assert found["backchannel_logout_session_supported"] is True


def test_the_card_pulled_logs_the_professional_out_of_every_relying_party(
    deployment: Deployment,
) -> None:
    browser = requests.Session()
    rs, es = deployment.parties["rp-rs"], deployment.parties["rp-es"]
    sub = log_in(browser, rs, deployment)
    log_in(browser, es, deployment)  # single sign-on: the same provider session
    assert sub == DOCTOR
    sid = browser.get(f"{rs.origin}/status", timeout=10).json()["sid"]
    first, second = deployment.processes
    token = watch_token(browser, first)
    started = time.monotonic()
    # reported to the other process than the one that served the page: one store
    answer = browser.post(
        f"{second}{OIDC}/card-removed",
        json={"token": token},
        headers={"Origin": deployment.origin},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert time.monotonic() - started < 1.0  # the deliveries do not hold the request
    assert until(lambda: not logged_in(browser, rs) and not logged_in(browser, es))
    for party in (rs, es):  # each checked its token with PyJWT by § 2.6
        claims = [c for c in party.received if c.get("sid") == sid]
        assert len(claims) == 1, party.refused
        assert claims[0]["sub"] == DOCTOR
        assert claims[0]["events"] == {EVENT: {}}
        assert "nonce" not in claims[0]
    # the provider's session ended too: the card is asked for again
    again = browser.get(f"{rs.origin}/login", timeout=10)
    assert 'id="login"' in again.text


def test_the_card_removal_report_needs_the_watch_token_and_the_origin(
    deployment: Deployment,
) -> None:
    browser = requests.Session()
    rs = deployment.parties["rp-rs"]
    log_in(browser, rs, deployment)
    token = watch_token(browser, deployment.origin)
    url = f"{deployment.origin}{OIDC}/card-removed"
    attempts = [
        ({"token": "x" * 43}, deployment.origin),  # not this session's token
        ({"token": token}, "http://evil.example"),  # another site's page
        ({"token": token}, None),  # no Origin at all
        ({}, deployment.origin),
    ]
    for body, origin in attempts:
        headers = {"Origin": origin} if origin else {}
        answer = browser.post(url, json=body, headers=headers, timeout=10)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "oidc.card_watch"
    form = browser.post(url, data={"token": token}, headers={"Origin": deployment.origin})
    assert form.status_code == 415  # a cross-site form cannot send JSON
    stranger = requests.Session()  # the token without the session's cookie
    answer = stranger.post(
        url, json={"token": token}, headers={"Origin": deployment.origin}, timeout=10
    )
    assert answer.status_code == 403
    time.sleep(0.5)
    assert logged_in(browser, rs)  # nothing ended


def test_rp_initiated_logout_logs_out_the_other_relying_parties(deployment: Deployment) -> None:
    browser = requests.Session()
    rs, es = deployment.parties["rp-rs"], deployment.parties["rp-es"]
    log_in(browser, rs, deployment)
    log_in(browser, es, deployment)
    # rp-es's logout at the provider, with an ID token of its own as the hint
    page = browser.get(f"{deployment.origin}{OIDC}/logout", timeout=10)  # no hint: confirm
    confirm = re.search(r'name="confirm" value="([^"]+)"', page.text)
    assert confirm is not None, page.text[:500]
    done = browser.post(
        f"{deployment.processes[1]}{OIDC}/logout",
        data={"confirm": confirm.group(1)},
        headers={"Origin": deployment.origin},
        timeout=10,
    )
    assert done.status_code == 200
    assert until(lambda: not logged_in(browser, rs) and not logged_in(browser, es))


def test_a_relying_party_that_is_down_delays_no_other_and_is_audited(
    deployment: Deployment,
) -> None:
    browser = requests.Session()
    rs = deployment.parties["rp-rs"]
    log_in(browser, rs, deployment)
    # rp-down logs in too (its callback never answers: the code is enough to hold a
    # session at the provider once exchanged)
    held = len(audited(deployment))
    _exchange_for(browser, deployment, "rp-down")
    token = watch_token(browser, deployment.origin)
    answer = browser.post(
        f"{deployment.origin}{OIDC}/card-removed",
        json={"token": token},
        headers={"Origin": deployment.origin},
        timeout=10,
    )
    assert answer.status_code == 200
    assert until(lambda: not logged_in(browser, rs), bound=2.0)  # not after rp-down's retries

    def both_audited() -> bool:
        outcomes = {(e["client_id"], e["outcome"]) for e in audited(deployment)[held:]}
        return {("rp-rs", "delivered"), ("rp-down", "failed")} <= outcomes

    assert until(both_audited)
    failed = [e for e in audited(deployment)[held:] if e["client_id"] == "rp-down"]
    assert failed[0]["attempts"] == 3
    assert failed[0]["professional"] == DOCTOR


def _exchange_for(browser: requests.Session, deployment: Deployment, client_id: str) -> None:
    """A code for ``client_id`` in this browser's provider session, exchanged as the
    relying party would (its redirect URI does not answer: taken from Location)."""
    pkce = Pkce.new()
    redirect_uri = f"http://{LOOPBACK}:{deployment.down_port}/callback"
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid", "state": "s", "nonce": "n", "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip
    coded = browser.get(
        f"{deployment.origin}{OIDC}/auth?{urlencode(query)}", allow_redirects=False, timeout=10
    )
    code = re.search(r"code=([^&]+)", coded.headers["Location"])
    assert code is not None
    tokens = requests.post(
        f"{deployment.origin}{OIDC}/token",
        data={"grant_type": "authorization_code", "code": code.group(1),
              "redirect_uri": redirect_uri, "code_verifier": pkce.verifier},
        auth=(client_id, RP_SECRET), timeout=10,
    )  # fmt: skip
    assert tokens.status_code == 200, tokens.text


def test_the_example_teleservice_ends_the_professional_s_session(deployment: Deployment) -> None:
    """The teleservice in OIDC mode checks the logout token (joserfc, § 2.6) and the
    professional's session there ends at its next request."""
    browser = requests.Session()
    page = browser.get(f"{deployment.teleservice}/oidc/login", timeout=10)
    assert 'id="login"' in page.text  # the provider's login page
    challenge = browser.post(f"{deployment.origin}/cardauth/challenge", json={}, timeout=10).json()[
        "challenge"
    ]
    browser.post(
        f"{deployment.origin}/cardauth/login",
        json={"assertion": card_assertion(challenge, deployment.origin)},
        timeout=10,
    )
    back = browser.get(page.url, timeout=10)  # the code, the teleservice's callback
    assert back.url.startswith(deployment.teleservice), back.url
    me = browser.get(f"{deployment.teleservice}/api/me", timeout=10)
    assert me.status_code == 200, me.text
    token = watch_token(browser, deployment.origin)
    removed = browser.post(
        f"{deployment.origin}{OIDC}/card-removed",
        json={"token": token},
        headers={"Origin": deployment.origin},
        timeout=10,
    )
    assert removed.status_code == 200
    assert until(
        lambda: browser.get(f"{deployment.teleservice}/api/me", timeout=10).status_code == 401
    )
    # The provider audits the delivery once the teleservice's answer is in: a moment
    # after the teleservice ended the session.
    assert until(
        lambda: any(
            e["client_id"] == "teleservice" and e["outcome"] == "delivered"
            for e in audited(deployment)
        )
    )


def test_the_teleservice_refuses_a_logout_token_it_cannot_check(deployment: Deployment) -> None:
    forged = requests.post(
        f"{deployment.teleservice}/oidc/backchannel-logout",
        data={"logout_token": "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0."},  # alg none
        timeout=10,
    )
    assert forged.status_code == 400
    assert forged.json()["error"] == "invalid_request"


def test_a_session_whose_time_is_up_logs_out_its_relying_parties_once(
    tmp_path: Path,
) -> None:
    """``session_hours`` after the card login the provider session is over: the
    sweepers of two processes sharing Redis find it, one of them tells the relying
    party, once."""
    redis_server = RedisServer(tmp_path).start()
    port, rp_port = free_port(), free_port()
    origin = f"http://{LOOPBACK}:{port}"
    party = RelyingParty(origin, "rp-rs", RP_SECRET, f"http://{LOOPBACK}:{rp_port}")
    files = ProviderFiles(tmp_path / "files")
    files.folder.mkdir()
    files.write(_clients({"rp-rs": party}, free_port(), "http://127.0.0.1:9"))
    settings = files.settings(
        origin, store=redis_server.url, allow_development_origins=True, session_hours=0.001
    )  # 3.6 seconds
    apps = [create_app(settings), create_app(settings)]
    served = [
        Served(apps[0], listen(LOOPBACK, port), ident="oidc").start("oidc"),
        Served(party.app(), listen(LOOPBACK, rp_port), ident="rp").start("rp"),
    ]
    sweepers = [Sweeper(app.extensions["cardauth_oidc"].end_expired_sessions, 0.2) for app in apps]
    try:
        browser = requests.Session()
        deployment = Deployment(origin, (origin, origin), {}, tmp_path / "none", 0, "", files.keys)
        log_in(browser, party, deployment)
        assert apps[0].extensions["cardauth_oidc"].end_expired_sessions() == 0  # not yet
        for sweeper in sweepers:
            sweeper.start()
        assert until(lambda: not logged_in(browser, party))
        time.sleep(0.5)  # both sweepers went by again
        assert len(party.received) == 1, party.refused
    finally:
        for sweeper in sweepers:
            sweeper.close()
        for server in served:
            server.close()
        redis_server.stop()


def test_the_relying_party_s_checks_refuse_what_the_rules_forbid(deployment: Deployment) -> None:
    """The checker the provider's tokens pass is one that refuses: each rule of § 2.6
    broken once, by a token signed with the provider's own key."""
    party = deployment.parties["rp-rs"]
    keys = KeySet(deployment.keys_file)
    key = keys.signing_key("RS256", dt.datetime.now(dt.UTC))
    now = int(time.time())

    def token(header: dict[str, str] | None = None, **changes: object) -> str:
        claims: dict[str, object] = {
            "iss": party.issuer, "aud": party.client_id, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(16), "sub": DOCTOR, "sid": "some-session",
            "events": {EVENT: {}},
        }  # fmt: skip
        claims.update(changes)
        claims = {name: value for name, value in claims.items() if value is not None}
        values = {"alg": "RS256", "kid": key.kid, "typ": "logout+jwt", **(header or {})}
        return jwt.encode(values, claims, key.key)

    def answer(logout_token: str) -> int:
        url = f"{party.origin}/backchannel-logout"
        return requests.post(url, data={"logout_token": logout_token}, timeout=10).status_code

    valid = token()
    assert answer(valid) == 200
    assert answer(valid) == 400  # the same jti again
    broken = [
        token(header={"typ": "JWT"}),
        token(iss="https://other.example"),
        token(aud="another-client"),
        token(iat=now - 3600, exp=now + 60),
        token(exp=now - 10),
        token(sub=None, sid=None),
        token(events={"other": {}}),
        token(nonce="n"),
    ]
    for logout_token in broken:
        assert answer(logout_token) == 400
