"""cardauth-oidc in one process (Flask's test client, the memory store): the
authorization code flow on a card login with PSC's shape, and every refusal the
specifications require. Card assertions are signed with the simulated cards' keys
and verified by the real verifier against the test PKI's exported trust; tokens
are checked with joserfc against the provider's published keys."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwk, jwt
from werkzeug.test import TestResponse

from cardauth.oidc.app import create_app
from cardauth.oidc.errors import ConfigError, KeySetError
from cardauth.oidc.keys import KeySet, read_keys, rotate_keys
from tests.oidc_kit import (
    AUTH,
    CERTS,
    DOCTOR,
    INTROSPECT,
    ISSUER,
    LOGOUT,
    OTHER_SECRET,
    POST_LOGOUT,
    PROVIDER_ORIGIN,
    REDIRECT,
    REVOKE,
    SECRET,
    TOKEN,
    USERINFO,
    Pkce,
    ProviderFiles,
    authorization_params,
    card_assertion,
    client_assertion,
)


class Browser:
    """Flask's test client at the provider's https origin (its cookies are Secure)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, base_url=PROVIDER_ORIGIN, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.post(path, base_url=PROVIDER_ORIGIN, **kwargs)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> ProviderFiles:
    return ProviderFiles(tmp_path_factory.mktemp("provider")).write()


@pytest.fixture
def app(files: ProviderFiles) -> Flask:
    return create_app(files.settings())


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


def card_login(browser: Browser, persona: str = "doctor") -> None:
    challenge = browser.post("/cardauth/challenge", json={}).get_json()["challenge"]
    answer = browser.post(
        "/cardauth/login", json={"assertion": card_assertion(challenge, persona=persona)}
    )
    assert answer.status_code == 200, answer.get_json()


def redirected(response: TestResponse) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def authorize(browser: Browser, params: dict[str, str]) -> TestResponse:
    return browser.get(f"{AUTH}?{urlencode(params)}")


def code_for(browser: Browser, params: dict[str, str]) -> str:
    """A logged-in browser's code for ``params`` (logging in first if needed)."""
    first = authorize(browser, params)
    if first.status_code == 200:
        card_login(browser)
        first = authorize(browser, params)
    answer = redirected(first)
    assert answer["state"] == params["state"]
    return answer["code"]


def basic(client_id: str = "rp-basic", secret: str = SECRET) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def exchange(
    browser: Browser, code: str, pkce: Pkce, *, headers: dict[str, str] | None = None, **form: str
) -> TestResponse:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
    } | form
    data = {name: value for name, value in data.items() if value}
    return browser.post(TOKEN, data=data, headers=basic() if headers is None else headers)


def published_keys(browser: Browser) -> jwk.KeySet:
    return jwk.KeySet.import_key_set(browser.get(CERTS).get_json())


def id_token_claims(browser: Browser, token: str) -> dict[str, Any]:
    decoded = jwt.decode(token, published_keys(browser), algorithms=["RS256", "ES256"])
    return dict(decoded.claims)


def tokens_for(
    browser: Browser, client_id: str = "rp-basic"
) -> tuple[dict[str, Any], Pkce, dict[str, str]]:
    pkce = Pkce.new()
    params = authorization_params(pkce, client_id=client_id)
    code = code_for(browser, params)
    answer = exchange(browser, code, pkce)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json(), pkce, params


# -- discovery and keys ----------------------------------------------------------------


def test_discovery_answers_at_psc_s_addresses(browser: Browser) -> None:
    for path in (
        "/.well-known/openid-configuration",
        "/.well-known/wallet-openid-configuration",
        "/auth/realms/esante-wallet/.well-known/openid-configuration",
        "/auth/realms/esante-wallet/.well-known/wallet-openid-configuration",
    ):
        document = browser.get(path).get_json()
        assert document["issuer"] == ISSUER
        assert document["authorization_endpoint"] == f"{ISSUER}/protocol/openid-connect/auth"
        for name in ("token", "userinfo", "certs", "logout"):
            assert f"{ISSUER}/protocol/openid-connect/{name}" in document.values()
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["acr_values_supported"] == ["eidas1"]
        assert set(document["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}


def test_the_jwks_publishes_public_keys_of_both_algorithms(browser: Browser) -> None:
    published = browser.get(CERTS).get_json()["keys"]
    assert {key["alg"] for key in published} == {"RS256", "ES256"}
    assert all("d" not in key and key["use"] == "sig" and key["kid"] for key in published)


# -- the code flow ----------------------------------------------------------------------


def test_a_card_login_gives_an_id_token_with_psc_s_claims(browser: Browser) -> None:
    pkce = Pkce.new()
    params = authorization_params(pkce)
    page = authorize(browser, params)
    assert page.status_code == 200
    assert 'id="login"' in page.get_data(as_text=True)
    assert "password" not in page.get_data(as_text=True)
    card_login(browser)
    code = redirected(authorize(browser, params))["code"]
    answer = exchange(browser, code, pkce)
    assert answer.status_code == 200, answer.get_json()
    tokens = answer.get_json()
    assert tokens["token_type"].lower() == "bearer"
    claims = id_token_claims(browser, tokens["id_token"])
    assert claims["iss"] == ISSUER
    assert claims["aud"] == ["rp-basic"]
    assert claims["nonce"] == params["nonce"]  # echoed
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["sc", "pin", "mfa", "hwk"]
    assert claims["sub"] == claims["SubjectNameID"] == claims["preferred_username"] == DOCTOR
    assert claims["family_name"] == "FONTAINE"
    assert claims["SubjectRefPro"]["exercices"][0]["codeProfession"] == "10"
    assert abs(claims["auth_time"] - time.time()) < 60  # when the card login was verified
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    assert header["kid"]


def test_a_logged_in_browser_gets_a_code_without_the_card_again(browser: Browser) -> None:
    tokens_for(browser)
    pkce = Pkce.new()
    params = authorization_params(pkce)
    assert "code" in redirected(authorize(browser, params))  # single sign-on


def test_userinfo_as_json_and_as_a_signed_jwt(browser: Browser) -> None:
    tokens, _, _ = tokens_for(browser)
    plain = browser.get(USERINFO, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert plain.status_code == 200
    assert plain.mimetype == "application/json"
    assert plain.get_json()["SubjectNameID"] == DOCTOR
    # rp-post registered userinfo_signed_response_alg = ES256, and ES256 ID tokens
    pkce = Pkce.new()
    params = authorization_params(pkce, client_id="rp-post")
    code = code_for(browser, params)
    form = {"client_id": "rp-post", "client_secret": OTHER_SECRET}
    answer = exchange(browser, code, pkce, headers={}, **form)
    assert answer.status_code == 200, answer.get_json()
    header = json.loads(
        base64.urlsafe_b64decode(answer.get_json()["id_token"].split(".")[0] + "==")
    )
    assert header["alg"] == "ES256"
    bearer = {"Authorization": f"Bearer {answer.get_json()['access_token']}"}
    signed = browser.get(USERINFO, headers=bearer)
    assert signed.mimetype == "application/jwt"
    claims = id_token_claims(browser, signed.get_data(as_text=True))
    assert claims["aud"] == "rp-post"
    assert claims["iss"] == ISSUER
    assert claims["preferred_username"] == DOCTOR


def test_private_key_jwt_authenticates_a_client(browser: Browser, files: ProviderFiles) -> None:
    pkce = Pkce.new()
    params = authorization_params(pkce, client_id="rp-jwt")
    code = code_for(browser, params)
    assertion = client_assertion(
        files.client_key, "rp-jwt", f"{ISSUER}/protocol/openid-connect/token"
    )
    form = {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    answer = exchange(browser, code, pkce, headers={}, **form)
    assert answer.status_code == 200, answer.get_json()
    # the same assertion again (its jti): refused
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce, client_id="rp-jwt"))
    again = exchange(browser, code, pkce, headers={}, **form)
    assert again.get_json()["error"] == "invalid_client"


def test_introspection_and_revocation(browser: Browser) -> None:
    tokens, _, _ = tokens_for(browser)
    access = tokens["access_token"]
    active = browser.post(INTROSPECT, data={"token": access}, headers=basic()).get_json()
    assert active["active"] is True
    assert active["sub"] == DOCTOR
    assert active["client_id"] == "rp-basic"
    assert active["acr"] == "eidas1"
    # another client learns nothing of it
    other = browser.post(INTROSPECT, data={"token": access, "client_id": "rp-post",
                                            "client_secret": OTHER_SECRET})  # fmt: skip
    assert other.get_json() == {"active": False}
    assert browser.post(REVOKE, data={"token": access}, headers=basic()).status_code == 200
    assert browser.post(INTROSPECT, data={"token": access}, headers=basic()).get_json() == {
        "active": False
    }
    gone = browser.get(USERINFO, headers={"Authorization": f"Bearer {access}"})
    assert gone.status_code == 401
    assert 'error="invalid_token"' in gone.headers["WWW-Authenticate"]


# -- refusals the specifications require ---------------------------------------------------


def test_a_redirect_uri_not_registered_exactly_is_refused_on_the_page(browser: Browser) -> None:
    pkce = Pkce.new()
    for uri in (
        REDIRECT + "/",
        REDIRECT + "?x=1",
        "https://rp.example/callbacks",
        "https://evil.example/callback",
    ):
        page = authorize(browser, authorization_params(pkce, redirect_uri=uri))
        assert page.status_code == 400
        assert "Location" not in page.headers  # never sent to an address not registered
        assert 'data-code="oidc.invalid_request"' in page.get_data(as_text=True)


def test_an_unknown_client_is_refused_on_the_page(browser: Browser) -> None:
    page = authorize(browser, authorization_params(Pkce.new(), client_id="nobody"))
    assert page.status_code == 400
    assert 'data-code="oidc.invalid_client"' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"scope": "scope_all"}, "invalid_scope"),  # no openid
        ({"acr_values": "eidas2"}, "unmet_authentication_requirements"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"nonce": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_mode": "form_post"}, "invalid_request"),
    ],
)
def test_a_refused_request_goes_back_to_the_relying_party_with_its_state(
    browser: Browser, changes: dict[str, str | None], error: str
) -> None:
    params = authorization_params(Pkce.new(), **changes)
    answer = redirected(authorize(browser, params))
    assert answer["error"] == error
    assert answer["state"] == params["state"]
    assert "code" not in answer


def test_max_age_asks_for_a_fresher_card_login(browser: Browser) -> None:
    tokens_for(browser)
    assert authorize(browser, authorization_params(Pkce.new(), max_age="0")).status_code == 200
    assert redirected(authorize(browser, authorization_params(Pkce.new(), max_age="600")))
    huge = authorization_params(Pkce.new(), max_age="9" * 5000)  # not a number of seconds
    assert redirected(authorize(browser, huge))["code"]


def test_the_session_identifier_changes_at_the_card_login(browser: Browser) -> None:
    authorize(browser, authorization_params(Pkce.new()))
    browser.post("/cardauth/challenge", json={})
    before = browser.client.get_cookie("cardauth_oidc", domain="idp.example")
    assert before is not None
    card_login(browser)
    after = browser.client.get_cookie("cardauth_oidc", domain="idp.example")
    assert after is not None
    assert after.value != before.value  # the identifier known before the login is worth nothing
    stale = Browser(browser.client.application.test_client())
    stale.client.set_cookie("cardauth_oidc", before.value, domain="idp.example")
    assert authorize(stale, authorization_params(Pkce.new())).status_code == 200  # login page


def test_prompt_login_asks_for_the_card_again(browser: Browser) -> None:
    tokens_for(browser)
    params = authorization_params(Pkce.new(), prompt="login")
    page = authorize(browser, params)
    assert page.status_code == 200
    assert 'id="login"' in page.get_data(as_text=True)


def test_prompt_none_without_a_login_answers_login_required(browser: Browser) -> None:
    params = authorization_params(Pkce.new(), prompt="none")
    assert redirected(authorize(browser, params))["error"] == "login_required"


def test_a_replayed_code_is_refused_and_its_tokens_revoked(browser: Browser) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    first = exchange(browser, code, pkce)
    assert first.status_code == 200
    access = first.get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert browser.get(USERINFO, headers=bearer).status_code == 200
    replay = exchange(browser, code, pkce)
    assert replay.status_code == 400
    assert replay.get_json()["error"] == "invalid_grant"
    # RFC 6749 § 4.1.2: the tokens issued from that code are revoked
    assert browser.get(USERINFO, headers=bearer).status_code == 401
    assert browser.post(INTROSPECT, data={"token": access}, headers=basic()).get_json() == {
        "active": False
    }


def test_an_expired_code_is_refused(files: ProviderFiles) -> None:
    browser = Browser(create_app(files.settings(code_lifetime=1)).test_client())
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    time.sleep(1.2)
    assert exchange(browser, code, pkce).get_json()["error"] == "invalid_grant"


def test_a_wrong_pkce_verifier_is_refused_and_burns_the_code(browser: Browser) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    wrong = exchange(browser, code, Pkce.new())
    assert wrong.status_code == 400
    assert wrong.get_json()["error"] == "invalid_grant"
    assert exchange(browser, code, pkce).get_json()["error"] == "invalid_grant"  # used up


def test_a_missing_pkce_verifier_is_refused(browser: Browser) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    missing = exchange(browser, code, pkce, code_verifier="")
    assert missing.status_code == 400
    assert missing.get_json()["error"] == "invalid_request"


def test_a_redirect_uri_other_than_the_code_s_is_refused_at_the_token_endpoint(
    browser: Browser,
) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    answer = exchange(browser, code, pkce, redirect_uri="https://rp.example/other")
    assert answer.get_json()["error"] == "invalid_grant"


def test_a_bad_client_secret_is_refused(browser: Browser) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    answer = exchange(browser, code, pkce, headers=basic(secret="not-the-secret"))
    assert answer.status_code == 401
    assert answer.get_json()["error"] == "invalid_client"


def test_a_client_using_another_auth_method_than_registered_is_refused(browser: Browser) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    form = {"client_id": "rp-basic", "client_secret": SECRET}  # post, registered basic
    assert exchange(browser, code, pkce, headers={}, **form).get_json()["error"] == "invalid_client"


def test_a_code_is_for_the_client_it_was_issued_to(browser: Browser) -> None:
    pkce = Pkce.new()
    code = code_for(browser, authorization_params(pkce))
    form = {"client_id": "rp-post", "client_secret": OTHER_SECRET}
    assert exchange(browser, code, pkce, headers={}, **form).get_json()["error"] == "invalid_grant"


# -- logout ----------------------------------------------------------------------------------


def test_rp_initiated_logout_ends_the_session_and_returns_with_state(browser: Browser) -> None:
    tokens, _, _ = tokens_for(browser)
    query = urlencode({"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": POST_LOGOUT,
                       "state": "bye-state"})  # fmt: skip
    answer = browser.get(f"{LOGOUT}?{query}")
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{POST_LOGOUT}?state=bye-state"
    # logged out: the next authorization request shows the login page again
    assert authorize(browser, authorization_params(Pkce.new())).status_code == 200


def test_logout_refuses_a_post_logout_uri_not_registered(browser: Browser) -> None:
    tokens, _, _ = tokens_for(browser)
    query = urlencode({"id_token_hint": tokens["id_token"],
                       "post_logout_redirect_uri": "https://evil.example/"})  # fmt: skip
    answer = browser.get(f"{LOGOUT}?{query}")
    assert answer.status_code == 400
    assert 'data-code="logout.redirect_uri"' in answer.get_data(as_text=True)


def test_logout_refuses_a_foreign_id_token_hint(browser: Browser) -> None:
    tokens_for(browser)
    foreign_key = jwk.RSAKey.generate_key(2048)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    foreign = jwt.encode({"alg": "RS256", "kid": "x"},
                         {"iss": ISSUER, "aud": "rp-basic", "exp": now + 300, "sub": DOCTOR},
                         foreign_key)  # fmt: skip
    answer = browser.get(f"{LOGOUT}?{urlencode({'id_token_hint': foreign})}")
    assert answer.status_code == 400
    assert 'data-code="logout.id_token_hint"' in answer.get_data(as_text=True)
    assert redirected(authorize(browser, authorization_params(Pkce.new())))  # still logged in


def test_logout_refuses_an_expired_id_token_hint(files: ProviderFiles) -> None:
    # Tokens signed now, presented to a provider whose clock is an hour later.
    browser = Browser(create_app(files.settings()).test_client())
    tokens, _, _ = tokens_for(browser)
    later = create_app(
        files.settings(), clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    )
    answer = Browser(later.test_client()).get(
        f"{LOGOUT}?{urlencode({'id_token_hint': tokens['id_token']})}"
    )
    assert answer.status_code == 400
    assert 'data-code="logout.id_token_hint"' in answer.get_data(as_text=True)


def test_logout_without_a_hint_asks_for_confirmation(browser: Browser) -> None:
    tokens_for(browser)
    page = browser.get(LOGOUT)
    assert page.status_code == 200
    assert 'id="confirm-logout"' in page.get_data(as_text=True)
    assert "code" in redirected(authorize(browser, authorization_params(Pkce.new())))
    forged = browser.post(LOGOUT, data={"confirm": "guess"})  # a form of another site
    assert 'id="confirm-logout"' in forged.get_data(as_text=True)
    assert "code" in redirected(authorize(browser, authorization_params(Pkce.new())))


# -- keys --------------------------------------------------------------------------------------


def test_a_rotated_key_is_published_before_it_signs_and_the_old_one_after(
    tmp_path: Path,
) -> None:
    files = ProviderFiles(tmp_path).write()
    now = dt.datetime.now(dt.UTC)
    old = {key.kid for key in read_keys(files.keys)}
    fresh = rotate_keys(files.keys, now, lead=dt.timedelta(hours=1), keep=dt.timedelta(hours=1))
    keys = KeySet(files.keys)
    published = {key["kid"] for key in keys.jwks(now)["keys"]}
    assert published == old | {key.kid for key in fresh}  # new ones published at once
    assert keys.signing_key("RS256", now).kid in old  # the old key signs until the new one may
    later = now + dt.timedelta(hours=1, minutes=1)
    assert keys.signing_key("RS256", later).kid in {key.kid for key in fresh}
    assert {key["kid"] for key in keys.jwks(later)["keys"]} >= old  # still published
    after = now + dt.timedelta(hours=2, minutes=1)
    assert {key["kid"] for key in keys.jwks(after)["keys"]} == {key.kid for key in fresh}


def test_a_provider_signs_with_the_rotated_key_once_its_time_comes(tmp_path: Path) -> None:
    files = ProviderFiles(tmp_path).write()
    fresh = rotate_keys(files.keys, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
                        lead=dt.timedelta(0), keep=dt.timedelta(hours=1))  # fmt: skip
    browser = Browser(create_app(files.settings()).test_client())
    tokens, _, _ = tokens_for(browser)
    header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
    assert header["kid"] in {key.kid for key in fresh}
    assert id_token_claims(browser, tokens["id_token"])["sub"] == DOCTOR


def test_a_key_file_that_is_not_a_key_set_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text('{"keys": [{"kid": "a", "alg": "HS256", "jwk": {}}]}')
    with pytest.raises(KeySetError):
        KeySet(tmp_path / "keys.json")


@pytest.mark.parametrize(
    "entry",
    [
        'client_id = "x"\nclient_secret = "short"\nredirect_uris = ["https://x.example/cb"]',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["http://x.example/cb"]',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = []',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["https://x.example/cb#f"]',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["https://x.example/cb"]\n'
        'token_endpoint_auth_method = "none"',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["https://x.example/cb"]\n'
        'backchannel_logout_uri = "http://x.example/logout"',  # http off loopback
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["https://x.example/cb"]\n'
        'backchannel_logout_uri = ["https://x.example/logout"]',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["https://x.example/cb"]\n'
        'backchannel_logout_uri = "https://x.example/logout#f"',
        f'client_id = "x"\nclient_secret = "{SECRET}"\nredirect_uris = ["https://x.example/cb"]\n'
        'backchannel_logout_session_required = "yes"',
    ],
)
def test_a_client_registration_that_is_unsafe_is_refused(tmp_path: Path, entry: str) -> None:
    files = ProviderFiles(tmp_path).write(extra_clients=f"\n[[clients]]\n{entry}\n")
    with pytest.raises(ConfigError):
        create_app(files.settings())


def test_the_login_page_speaks_french_and_english(browser: Browser) -> None:
    params = authorization_params(Pkce.new())
    french = authorize(browser, params).get_data(as_text=True)
    assert "Se connecter avec la carte CPS" in french
    assert 'lang="fr"' in french
    english = authorize(browser, {**params, "ui_locales": "en"}).get_data(as_text=True)
    assert "Log in with the CPS card" in english
    assert 'lang="en"' in english


def test_the_login_page_allows_the_bridge_and_nothing_else(browser: Browser) -> None:
    page = authorize(browser, authorization_params(Pkce.new()))
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:24790" in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy


def test_only_the_relying_parties_may_frame_the_card_watch(browser: Browser) -> None:
    page = browser.get(f"{ISSUER.removeprefix(PROVIDER_ORIGIN)}/protocol/openid-connect/card-watch")
    assert page.status_code == 200
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors https://rp.example;" in policy  # the clients' origins only
    assert "X-Frame-Options" not in page.headers
    assert 'data-state="none"' in page.get_data(as_text=True)  # nobody logged in: no watch
    code_for(browser, authorization_params(Pkce.new()))  # logged in, a relying party served
    watching = browser.get(
        f"{ISSUER.removeprefix(PROVIDER_ORIGIN)}/protocol/openid-connect/card-watch"
    )
    assert 'name="cardauth-watch"' in watching.get_data(as_text=True)


def test_the_login_endpoints_are_rate_limited_per_address(files: ProviderFiles) -> None:
    browser = Browser(create_app(files.settings(login_limit="3/minute")).test_client())
    answers = [browser.post("/cardauth/challenge", json={}).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_the_bundled_login_script_is_the_bridge_s_client() -> None:
    here = Path(__file__).resolve().parents[1]
    shipped = (here / "cardauth" / "oidc" / "static" / "cardauth.js").read_bytes()
    assert shipped == (here / "webbridge" / "static" / "cardauth.js").read_bytes()


def _unused(value: Iterator[Any]) -> None:  # pragma: no cover
    return None


HOSTILE = [
    "",
    "\x00",
    "é" * 3,
    "%ED%A0%80%FF",  # not UTF-8 once decoded
    "a" * 20_000,
    "<script>alert(1)</script>",
    "https://evil.example/",
    "%00",
    "..%2F..%2F",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_refused_never_a_crash(browser: Browser, value: str) -> None:
    """Every parameter of every endpoint, one at a time, set to something hostile:
    an answer under 500, whatever it is (no traceback, no crash)."""
    pkce = Pkce.new()
    base = authorization_params(pkce)
    for logged_in in (False, True):  # the login page, then the code's way back
        if logged_in:
            card_login(browser)
        for name in [*base, "prompt", "max_age", "ui_locales", "request", "response_mode"]:
            answer = authorize(browser, {**base, name: value})
            assert answer.status_code < 500, (name, logged_in, answer.status_code)
            assert "<script>alert" not in answer.get_data(as_text=True)
    form = {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT,
            "code_verifier": pkce.verifier, "client_id": "rp-basic"}  # fmt: skip
    for name in [*form, "client_assertion", "client_assertion_type", "client_secret"]:
        for path in (TOKEN, INTROSPECT, REVOKE):
            answer = browser.post(path, data={**form, "token": "t", name: value}, headers=basic())
            assert answer.status_code < 500, (path, name, answer.status_code)
    for name in ("id_token_hint", "post_logout_redirect_uri", "state", "client_id"):
        assert browser.get(LOGOUT, query_string={name: value}).status_code < 500
    bearer = {"Authorization": f"Bearer {value}"} if value.isascii() and "\x00" not in value else {}
    assert browser.get(USERINFO, headers=bearer).status_code == 401
