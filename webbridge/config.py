"""The bridge's settings: a TOML file, then the command line over it.

    port = 24790
    allowed_origins = ["https://teleservice.example"]
    allow_development_origins = false   # http://localhost, http://127.0.0.1
    oidc_providers = ["https://idp.example/auth/realms/esante-wallet"]   # CIBA, followed

    [pin]
    idle_seconds = 300          # how long a verified PIN stays usable without use
    entry_timeout_seconds = 60  # for the reader's keypad

    [consent]
    days = 30                   # an approval by the professional lasts that long

    [limits]
    authentications_per_minute = 20   # per origin

Every key is optional; an unknown key or a value of the wrong type or out of range
is a :class:`~webbridge.errors.BridgeConfigError` naming it.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cardauth.errors import InvalidOrigin
from cardauth.origins import Origin, parse_origins
from webbridge.ciba import Provider
from webbridge.errors import BridgeConfigError

DEFAULT_PORT = 24790
LOOPBACK = "127.0.0.1"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cardauth" / "bridge.toml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cardauth"


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    port: int = DEFAULT_PORT
    allowed_origins: tuple[Origin, ...] = ()
    allow_development_origins: bool = False
    pin_idle_seconds: float = 300.0
    pin_entry_timeout_seconds: int = 60
    consent_days: float = 30.0
    authentications_per_minute: int = 20
    state_dir: Path = field(default_factory=default_state_dir)
    oidc_providers: tuple[Provider, ...] = ()  # whose CIBA requests the bridge shows

    def with_overrides(
        self,
        *,
        port: int | None = None,
        origins: Sequence[str] = (),
        allow_development_origins: bool | None = None,
        state_dir: Path | None = None,
        oidc_providers: Sequence[str] = (),
    ) -> BridgeConfig:
        """The command line over the file: a port, more origins, another state folder."""
        development = (
            self.allow_development_origins
            if allow_development_origins is None
            else allow_development_origins
        )
        extra = _origins(list(origins), development) if origins else ()
        followed = _providers(list(oidc_providers), development)
        if port is not None:
            _check_port(port)
        return replace(
            self,
            port=self.port if port is None else port,
            allowed_origins=tuple(dict.fromkeys(self.allowed_origins + extra)),
            allow_development_origins=development,
            state_dir=state_dir or self.state_dir,
            oidc_providers=tuple(dict.fromkeys(self.oidc_providers + followed)),
        )


def load_config(path: Path | None) -> BridgeConfig:
    """The settings in ``path`` (the default file when None). A missing default
    file means the defaults; a missing file that was named is an error."""
    file = path or default_config_path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path is not None:
            raise BridgeConfigError("configuration file not found", file=str(file)) from None
        return BridgeConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise BridgeConfigError("configuration file unreadable", file=str(file)) from exc
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BridgeConfigError(f"not TOML: {exc}", file=str(file)) from None
    return config_from_settings(settings, source=str(file))


_TOP = {"port", "allowed_origins", "allow_development_origins", "state_dir", "oidc_providers"}
_TABLES = {
    "pin": {"idle_seconds", "entry_timeout_seconds"},
    "consent": {"days"},
    "limits": {"authentications_per_minute"},
}


def config_from_settings(settings: Mapping[str, Any], *, source: str = "") -> BridgeConfig:
    for key, value in settings.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise BridgeConfigError(f"[{key}] must be a table", file=source)
            for inner in value:
                if inner not in _TABLES[key]:
                    raise BridgeConfigError("unknown setting", setting=f"{key}.{inner}")
        elif key not in _TOP:
            raise BridgeConfigError("unknown setting", setting=key)
    pin = settings.get("pin", {})
    consent = settings.get("consent", {})
    limits = settings.get("limits", {})
    development = _typed(settings, "allow_development_origins", bool, False)
    port = _typed(settings, "port", int, DEFAULT_PORT)
    _check_port(port)
    origins = _typed(settings, "allowed_origins", list, [])
    state_dir = _typed(settings, "state_dir", str, "")
    providers = _typed(settings, "oidc_providers", list, [])
    return BridgeConfig(
        port=port,
        allowed_origins=_origins(origins, development),
        allow_development_origins=development,
        pin_idle_seconds=_number(pin, "pin.idle_seconds", "idle_seconds", 300.0, 0, 8 * 3600),
        pin_entry_timeout_seconds=int(
            _number(pin, "pin.entry_timeout_seconds", "entry_timeout_seconds", 60, 5, 300)
        ),
        consent_days=_number(consent, "consent.days", "days", 30.0, 0.001, 366),
        authentications_per_minute=int(
            _number(
                limits,
                "limits.authentications_per_minute",
                "authentications_per_minute",
                20,
                1,
                10_000,
            )
        ),
        state_dir=Path(state_dir).expanduser() if state_dir else default_state_dir(),
        oidc_providers=_providers(providers, development),
    )


def _typed(settings: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = settings.get(key, default)
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise BridgeConfigError(f"{key} must be of type {kind.__name__}", setting=key)
    return value


def _number(
    table: Mapping[str, Any], name: str, key: str, default: float, low: float, high: float
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BridgeConfigError(f"{name} must be a number", setting=name)
    if not (math.isfinite(value) and low <= value <= high):
        raise BridgeConfigError(f"{name} must be between {low} and {high}", setting=name)
    return float(value)


def _check_port(port: int) -> None:
    if not 1024 <= port <= 65535:
        raise BridgeConfigError("port must be between 1024 and 65535", setting="port")


def _origins(values: list[Any], development: bool) -> tuple[Origin, ...]:
    if not all(isinstance(v, str) for v in values):
        raise BridgeConfigError("allowed_origins holds origins as strings", setting="origins")
    if not values:
        return ()
    try:
        parsed = parse_origins(values, allow_development=development)
        return tuple(sorted(parsed, key=lambda origin: origin.value))
    except InvalidOrigin as exc:
        raise BridgeConfigError(
            f"allowed origin refused: {exc.message}", setting="allowed_origins"
        ) from None


def _providers(values: list[Any], development: bool) -> tuple[Provider, ...]:
    """The OpenID Connect providers followed, by issuer (CIBA: webbridge.ciba)."""
    if not all(isinstance(v, str) for v in values):
        raise BridgeConfigError("oidc_providers holds issuers as strings", setting="oidc_providers")
    return tuple(Provider.parse(v, allow_development=development) for v in values)
