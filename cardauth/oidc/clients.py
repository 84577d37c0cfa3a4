"""The relying parties the provider knows: a TOML file, one table per client.

    [[clients]]
    client_id = "teleservice"
    token_endpoint_auth_method = "client_secret_basic"   # or client_secret_post,
    client_secret = "..."                                # or private_key_jwt and
                                                         # jwks_file (a JWK set, JSON)
    redirect_uris = ["https://teleservice.example/oidc/callback"]
    post_logout_redirect_uris = ["https://teleservice.example/"]
    id_token_signed_response_alg = "RS256"               # or ES256 (default RS256)
    userinfo_signed_response_alg = "ES256"               # absent: userinfo as JSON
    backchannel_logout_uri = "https://teleservice.example/oidc/backchannel-logout"
    backchannel_logout_session_required = true           # either way: tokens carry sid
    backchannel_token_delivery_mode = "poll"             # CIBA (redirect_uris optional)
    client_name = "Logiciel de cabinet"                  # shown on the bridge's page

Redirect URIs are compared exactly, character for character (RFC 6749 § 3.1.2.3,
OAuth 2.0 Security BCP § 4.1.3): no prefix, no pattern. A client authenticates with
the one method it registered.
"""

from __future__ import annotations

import hmac
import json
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from joserfc import jwk

from cardauth.oidc.errors import ConfigError
from cardauth.oidc.keys import ALGORITHMS

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
SCOPES = ("openid", "scope_all")  # PSC's: openid and scope_all
CIBA_GRANT = "urn:openid:params:grant-type:ciba"  # CIBA Core § 10.1
MAX_NAME = 60
MIN_SECRET_LENGTH = 32
_FIELDS = frozenset(
    {
        "client_id",
        "client_name",
        "backchannel_token_delivery_mode",
        "client_secret",
        "token_endpoint_auth_method",
        "jwks",
        "jwks_file",
        "redirect_uris",
        "post_logout_redirect_uris",
        "id_token_signed_response_alg",
        "userinfo_signed_response_alg",
        "backchannel_logout_uri",
        "backchannel_logout_session_required",
    }
)


@dataclass(frozen=True)
class Client:
    """One relying party; Authlib's ``ClientMixin`` interface."""

    client_id: str
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_secret: str | None = None
    jwks: Mapping[str, Any] | None = None
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 - an algorithm's name
    userinfo_signed_response_alg: str | None = None
    backchannel_logout_uri: str | None = None  # OpenID Connect Back-Channel Logout 1.0
    backchannel_token_delivery_mode: str | None = None  # "poll": a CIBA client
    client_name: str | None = None

    @property
    def display_name(self) -> str:
        return self.client_name or self.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OpenID Connect Core § 3.1.2.1: redirect_uri is required; none is assumed.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exactly (public values: no timing)

    def check_post_logout_redirect_uri(self, uri: str) -> bool:
        return uri in self.post_logout_redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret is None or not isinstance(client_secret, str):
            return False
        given = client_secret.encode("utf-8", "surrogatepass")  # any text, never a crash
        return hmac.compare_digest(given, self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == CIBA_GRANT:
            return self.backchannel_token_delivery_mode == "poll"  # noqa: S105 - a mode
        return grant_type == "authorization_code" and bool(self.redirect_uris)

    def public_keys(self) -> jwk.KeySet:
        if self.jwks is None:
            raise ConfigError("this client has no jwks", client_id=self.client_id)
        return jwk.KeySet.import_key_set(dict(self.jwks))  # type: ignore[arg-type]


def _uris(
    entry: Mapping[str, Any], name: str, client_id: str, *, required: bool
) -> tuple[str, ...]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise ConfigError(f"{name} is a list of URIs", client_id=client_id)
    if required and not value:
        raise ConfigError(f"{name} needs at least one URI", client_id=client_id)
    for uri in value:
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            raise ConfigError(f"{name}: an absolute http(s) URI without fragment", uri=uri[:200])
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "[::1]"):
            raise ConfigError(f"{name}: http is for loopback only", uri=uri[:200])
    return tuple(value)


def _backchannel(entry: Mapping[str, Any], client_id: str) -> str | None:
    """``backchannel_logout_uri``: one URI, or none. ``backchannel_logout_session_required``
    (Back-Channel Logout 1.0 § 2.2) is true or false, and either way satisfied: every
    logout token carries ``sid``."""
    name = "backchannel_logout_uri"
    uri = entry.get(name, "")
    if not isinstance(uri, str):
        raise ConfigError(f"{name} is one URI", client_id=client_id)
    if not isinstance(entry.get("backchannel_logout_session_required", True), bool):
        raise ConfigError(
            "backchannel_logout_session_required is true or false", client_id=client_id
        )
    return _uris({name: [uri]}, name, client_id, required=True)[0] if uri else None


def client_from(entry: Mapping[str, Any], folder: Path | None = None) -> Client:
    """A client from its table; ``jwks_file`` is read relative to ``folder``."""
    if "jwks_file" in entry:
        entry = dict(entry)
        name = entry.pop("jwks_file")
        if not isinstance(name, str) or "jwks" in entry:
            raise ConfigError("jwks_file is the path of a JWK set (and no jwks beside)")
        try:
            entry["jwks"] = json.loads(((folder or Path.cwd()) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError("the client's jwks_file cannot be read", file=name) from exc
    unknown = set(entry) - _FIELDS
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id or not client_id.isascii():
        raise ConfigError("each client has a client_id (ASCII text)")
    if unknown:
        raise ConfigError("unknown client setting", client_id=client_id, setting=sorted(unknown)[0])
    method = entry.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ConfigError(
            "token_endpoint_auth_method is client_secret_basic, client_secret_post "
            "or private_key_jwt",
            client_id=client_id,
        )
    secret, keys = entry.get("client_secret"), entry.get("jwks")
    if method == "private_key_jwt":
        if not isinstance(keys, dict) or secret is not None:
            raise ConfigError("private_key_jwt takes jwks, and no secret", client_id=client_id)
    elif not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH or keys is not None:
        raise ConfigError(
            f"a client secret of {MIN_SECRET_LENGTH} characters at least, and no jwks",
            client_id=client_id,
        )
    mode, name = _ciba_metadata(entry, client_id)
    id_alg = entry.get("id_token_signed_response_alg", "RS256")
    userinfo_alg = entry.get("userinfo_signed_response_alg")
    if id_alg not in ALGORITHMS or (userinfo_alg is not None and userinfo_alg not in ALGORITHMS):
        raise ConfigError("signing algorithms are RS256 or ES256", client_id=client_id)
    client = Client(
        client_id=client_id,
        token_endpoint_auth_method=method,
        redirect_uris=_uris(entry, "redirect_uris", client_id, required=mode is None),
        post_logout_redirect_uris=_uris(
            entry, "post_logout_redirect_uris", client_id, required=False
        ),
        client_secret=secret,
        jwks=keys,
        id_token_signed_response_alg=id_alg,
        userinfo_signed_response_alg=userinfo_alg,
        backchannel_logout_uri=_backchannel(entry, client_id),
        backchannel_token_delivery_mode=mode,
        client_name=name,
    )
    if keys is not None:
        try:
            client.public_keys()
        except Exception as exc:  # joserfc's own errors for a malformed key set
            raise ConfigError("the client's jwks cannot be read", client_id=client_id) from exc
    return client


def _ciba_metadata(entry: Mapping[str, Any], client_id: str) -> tuple[str | None, str | None]:
    """CIBA Core § 4 ``backchannel_token_delivery_mode`` (poll only) and RFC 7591
    ``client_name``, as the bridge's page shows it."""
    mode, name = entry.get("backchannel_token_delivery_mode"), entry.get("client_name")
    if mode not in (None, "poll"):
        raise ConfigError("backchannel_token_delivery_mode is poll", client_id=client_id)
    if name is not None and not _printable_name(name):
        raise ConfigError(f"client_name is printable text, {MAX_NAME} characters at most")
    return mode, name


def _printable_name(name: object) -> bool:
    """Shown on the bridge's page: one line of printable text (no control nor
    bidi-override character to disguise it)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME
        and name.isprintable()
        and not any(unicodedata.category(c) == "Cf" for c in name)
    )


def read_clients(path: Path) -> dict[str, Client]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("the clients file cannot be read", file=str(path)) from exc
    entries = data.get("clients", [])
    if not isinstance(entries, list):
        raise ConfigError("the clients file holds [[clients]] tables", file=str(path))
    clients: dict[str, Client] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError("each [[clients]] entry is a table", file=str(path))
        client = client_from(entry, path.parent)
        if client.client_id in clients:
            raise ConfigError("two clients have the same client_id", client_id=client.client_id)
        clients[client.client_id] = client
    return clients
