"""What the tests of cardauth-oidc share: a provider's files (trust anchors of the
test PKI, a key set, registered clients), PKCE pairs, client assertions, and a card
login driven over HTTP with an assertion signed by a simulated card's key (the
browser tests use the real bridge, pcscd and Chromium instead)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from joserfc import jwk, jwt

from cardauth.oidc.keys import init_keys
from cardauth.oidc.settings import OIDC, REALM, ProviderSettings
from simulator.trust_export import export_trust
from tests.verifier_kit import Forge

SECRET = "s3cr3t-of-the-relying-party-0123456789"
OTHER_SECRET = "another-s3cr3t-of-the-relying-party-0123"
REDIRECT = "https://rp.example/callback"
POST_LOGOUT = "https://rp.example/bye"
PROVIDER_ORIGIN = "https://idp.example"
ISSUER = PROVIDER_ORIGIN + REALM
DOCTOR = "899700420013"  # simulator/personas/doctor.toml


@dataclass
class ProviderFiles:
    folder: Path
    client_key: jwk.ECKey = field(default_factory=lambda: jwk.ECKey.generate_key("P-256"))

    @property
    def trust(self) -> Path:
        return self.folder / "trust"

    @property
    def keys(self) -> Path:
        return self.folder / "keys.json"

    @property
    def clients(self) -> Path:
        return self.folder / "clients.toml"

    def write(self, extra_clients: str = "", now: dt.datetime | None = None) -> ProviderFiles:
        moment = now or dt.datetime.now(dt.UTC)
        export_trust(self.trust, now=moment)
        init_keys(self.keys, moment - dt.timedelta(minutes=1))
        public = {"keys": [self.client_key.as_dict(private=False, kid="rp-key")]}
        (self.folder / "rp-jwt.json").write_text(json.dumps(public))
        self.clients.write_text(clients_toml(extra_clients), encoding="utf-8")
        return self

    def settings(self, origin: str = PROVIDER_ORIGIN, **changes: Any) -> ProviderSettings:
        values: dict[str, Any] = {
            "origin": origin,
            "trust_dir": self.trust,
            "keys_file": self.keys,
            "clients_file": self.clients,
        }
        values.update(changes)
        return ProviderSettings(**values)


def clients_toml(extra: str = "") -> str:
    return f"""\
[[clients]]
client_id = "rp-basic"
client_secret = "{SECRET}"
token_endpoint_auth_method = "client_secret_basic"
redirect_uris = ["{REDIRECT}"]
post_logout_redirect_uris = ["{POST_LOGOUT}"]

[[clients]]
client_id = "rp-post"
client_secret = "{OTHER_SECRET}"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["{REDIRECT}"]
id_token_signed_response_alg = "ES256"
userinfo_signed_response_alg = "ES256"

[[clients]]
client_id = "rp-jwt"
token_endpoint_auth_method = "private_key_jwt"
jwks_file = "rp-jwt.json"
redirect_uris = ["{REDIRECT}"]
userinfo_signed_response_alg = "RS256"
{extra}"""


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode())


def authorization_params(pkce: Pkce, **changes: str | None) -> dict[str, str]:
    """An authorization request as PSC's relying parties send it (client rp-basic),
    with ``changes`` (None: the parameter left out)."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "rp-basic",
        "redirect_uri": REDIRECT,
        "scope": "openid scope_all",
        "acr_values": "eidas1",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    params.update(changes)
    return {name: value for name, value in params.items() if value is not None}


def client_assertion(key: jwk.ECKey, client_id: str, audience: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    return jwt.encode({"alg": "ES256", "kid": "rp-key"}, claims, key)


class Http(Protocol):
    """What a card login needs of an HTTP client: a Flask test client, or one of
    requests' sessions bound to a provider's address."""

    def post(self, path: str, **kwargs: Any) -> Any: ...


def card_assertion(challenge: str, origin: str = PROVIDER_ORIGIN, persona: str = "doctor") -> str:
    """What the bridge would hand the login page: signed by the simulated card's key."""
    forge = Forge(cps_persona=persona, origin=origin, now=dt.datetime.now(dt.UTC))
    return forge.assertion(challenge)


AUTH = f"{OIDC}/auth"
TOKEN = f"{OIDC}/token"
USERINFO = f"{OIDC}/userinfo"
CERTS = f"{OIDC}/certs"
LOGOUT = f"{OIDC}/logout"
INTROSPECT = f"{OIDC}/token/introspect"
REVOKE = f"{OIDC}/revoke"
