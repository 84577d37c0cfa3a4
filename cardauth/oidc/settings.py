"""The provider's settings: where it is reached, what it trusts, where it keeps
its state, and for how long what it issues lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardauth.errors import CardAuthError
from cardauth.oidc.errors import ConfigError
from cardauth.origins import Origin

REALM = "/auth/realms/esante-wallet"  # PSC's Keycloak realm: the same paths here
OIDC = f"{REALM}/protocol/openid-connect"
DEFAULT_PORT = 8470
DEFAULT_BRIDGE = "http://127.0.0.1:24790"


@dataclass(frozen=True)
class ProviderSettings:
    origin: str  # where browsers and relying parties reach the provider
    trust_dir: Path  # the health PKI's trust anchors (cardauth-sim export-trust)
    keys_file: Path  # the signing key set (cardauth-oidc keys init)
    clients_file: Path  # the relying parties (docs/oidc.md)
    store: str = "memory"  # or redis://host:port/db, for several processes
    bridge_url: str = DEFAULT_BRIDGE
    allow_development_origins: bool = False  # http://127.0.0.1:port for the demo
    audit_log: Path | None = None
    code_lifetime: int = 60
    access_token_lifetime: int = 300  # seconds
    id_token_lifetime: int = 300
    session_hours: float = 10.0  # a working day, as the card login of teleservices
    session_sweep_seconds: float = 30.0  # how often ended sessions are looked for
    login_limit: str = "30/minute"  # challenges and card logins, per address
    calls_limit: str = "300/minute"  # token, userinfo, introspection calls, per address
    ciba_client_limit: str = "60/minute"  # CIBA requests of one client
    ciba_professional_limit: str = "10/minute"  # CIBA requests for one professional

    def checked_origin(self) -> Origin:
        try:
            return Origin.parse(self.origin, allow_development=self.allow_development_origins)
        except CardAuthError as error:
            raise ConfigError(f"the provider's origin: {error.message}") from None

    @property
    def issuer(self) -> str:
        """As PSC's: the origin and the realm's path."""
        return f"{self.checked_origin().value}{REALM}"
