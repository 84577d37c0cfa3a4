"""The teleservice's settings, and the secrets it keeps in its state directory.

``create_app`` takes either a :class:`Settings` or a mapping of Flask settings
(``SECRET_KEY``, ``CARDAUTH_*``, ``TELESERVICE_*``), so that a deployment can use
Flask's usual configuration and tests a few keys.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples.teleservice.errors import SettingsError

DEFAULT_PORT = 8450
DEFAULT_ORIGIN = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_BRIDGE_URL = "http://127.0.0.1:24790"
# A professional looks up the patients in front of them: a few a minute at most.
DEFAULT_LOOKUP_LIMIT = "5/minute;60/hour"
# Challenges and logins per address: a workstation asks a few; a flood is refused.
DEFAULT_LOGIN_LIMIT = "30/minute"
# Where the counts live: this process's memory, or Redis (redis://...) shared by the
# processes of the service, so that running several does not multiply the limits.
DEFAULT_RATE_LIMIT_STORAGE = "memory://"
SECRET_MODE = 0o600


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``python -m examples.teleservice`` is given (see its --help)."""

    state_dir: Path
    trust_dir: Path
    db: Path | None = None  # default: STATE_DIR/teleservice.db
    audit_log: Path | None = None  # default: STATE_DIR/audit.jsonl
    origin: str = DEFAULT_ORIGIN
    bridge_url: str = DEFAULT_BRIDGE_URL
    allow_development_origins: bool = False
    lookup_limit: str = DEFAULT_LOOKUP_LIMIT
    login_limit: str = DEFAULT_LOGIN_LIMIT
    rate_limit_storage: str = DEFAULT_RATE_LIMIT_STORAGE
    # OIDC mode: log in at this identity provider (cardauth-oidc, or PSC) instead
    oidc_issuer: str | None = None
    oidc_client_id: str = "teleservice"
    oidc_client_secret: str | None = None
    # Signed prescriptions: time-stamped by this RFC 3161 authority (PAdES B-T; B-LT
    # when the trust names an OCSP responder too); B-B without one.
    tsa_url: str | None = None

    def to_config(self) -> dict[str, Any]:
        """Flask settings, with the secret key and the pseudonym key of this
        installation (made in the state directory on first use)."""
        return {
            "SECRET_KEY": installation_secret(self.state_dir / "secret_key"),
            "CARDAUTH_ORIGINS": [self.origin],
            "CARDAUTH_ALLOW_DEVELOPMENT_ORIGINS": self.allow_development_origins,
            "CARDAUTH_TRUST_DIR": str(self.trust_dir),
            "CARDAUTH_AUDIT_LOG": str(self.audit_log or self.state_dir / "audit.jsonl"),
            "CARDAUTH_PSEUDONYM_KEY": installation_secret(self.state_dir / "pseudonym_key"),
            "TELESERVICE_DB": str(self.db or self.state_dir / "teleservice.db"),
            "TELESERVICE_BRIDGE_URL": self.bridge_url,
            "TELESERVICE_LOOKUP_LIMIT": self.lookup_limit,
            "TELESERVICE_LOGIN_LIMIT": self.login_limit,
            "TELESERVICE_RATE_LIMIT_STORAGE": self.rate_limit_storage,
            "TELESERVICE_OIDC_ISSUER": self.oidc_issuer,
            "TELESERVICE_OIDC_CLIENT_ID": self.oidc_client_id,
            "TELESERVICE_OIDC_CLIENT_SECRET": self.oidc_client_secret,
            "TELESERVICE_PRESCRIPTIONS_DIR": str(self.state_dir / "prescriptions"),
            "TELESERVICE_TSA_URL": self.tsa_url,
        }


def installation_secret(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (hexadecimal, 0600), made on first use."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    status = path.lstat()  # a link planted in the secret's place is not followed
    if not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid():
        raise SettingsError("a secret file is a plain file of this user", file=str(path))
    if status.st_mode & 0o077:
        raise SettingsError("a secret file must be readable by its owner only", file=str(path))
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise SettingsError("a secret file holds hexadecimal text", file=str(path)) from None
    if len(secret) < 32:
        raise SettingsError("a secret file holds at least 32 bytes", file=str(path))
    return secret


def flask_config(config: Mapping[str, Any] | Settings) -> dict[str, Any]:
    """The Flask settings from either form; the teleservice's own are checked."""
    values = config.to_config() if isinstance(config, Settings) else dict(config)
    for key in ("SECRET_KEY", "CARDAUTH_ORIGINS", "TELESERVICE_DB"):
        if not values.get(key):
            raise SettingsError(f"{key} is required")
    values.setdefault("TELESERVICE_BRIDGE_URL", DEFAULT_BRIDGE_URL)
    values.setdefault("TELESERVICE_LOOKUP_LIMIT", DEFAULT_LOOKUP_LIMIT)
    values.setdefault("TELESERVICE_LOGIN_LIMIT", DEFAULT_LOGIN_LIMIT)
    values.setdefault("TELESERVICE_RATE_LIMIT_STORAGE", DEFAULT_RATE_LIMIT_STORAGE)
    # The signed prescriptions, beside the database unless said otherwise.
    values.setdefault(
        "TELESERVICE_PRESCRIPTIONS_DIR",
        str(Path(values["TELESERVICE_DB"]).parent / "prescriptions"),
    )
    tsa = values.setdefault("TELESERVICE_TSA_URL", None)
    if tsa is not None and (
        not isinstance(tsa, str) or not tsa.startswith(("http://", "https://"))
    ):
        raise SettingsError("TELESERVICE_TSA_URL is an http(s) URL")
    issuer = values.setdefault("TELESERVICE_OIDC_ISSUER", None)
    if issuer is not None:
        if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://127.0.0.1")):
            raise SettingsError("TELESERVICE_OIDC_ISSUER is an https URL (http on loopback)")
        if not values.get("TELESERVICE_OIDC_CLIENT_ID") or not values.get(
            "TELESERVICE_OIDC_CLIENT_SECRET"
        ):
            raise SettingsError("OIDC mode needs TELESERVICE_OIDC_CLIENT_ID and _CLIENT_SECRET")
    bridge = values["TELESERVICE_BRIDGE_URL"]
    if not isinstance(bridge, str) or not bridge.startswith(("http://", "https://")):
        raise SettingsError("TELESERVICE_BRIDGE_URL is an http(s) URL")
    if any(c in bridge for c in " ;,'\"\r\n"):  # it goes into the CSP header
        raise SettingsError("TELESERVICE_BRIDGE_URL is a plain URL")
    return values
