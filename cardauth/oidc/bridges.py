"""The professionals' bridges that follow this provider's CIBA requests.

A CIBA request names a professional by IdNat, which is public (directories print
it). Whoever may read the requests pending for an IdNat reads the binding
messages and the services asking: so only a bridge that proved, with the
professional's card, that it serves that professional may.

- **Enrolment**, once per working day: the bridge generates a key pair (ES256), and
  asks ``…/ext/ciba/bridge/challenge`` with its public key: the challenge is
  issued to a session named by the key's RFC 7638 thumbprint. The card signs it in
  an ordinary card login (the PIN on the bridge's page), bound to the provider's
  origin; ``…/bridge/enrol`` verifies the assertion with the verifier (chain,
  revocation, origin, single-use challenge of that key's session) and keeps
  ``bridge:{thumbprint}`` → the certified IdNat and the public key.
- **Signed requests**: each later call (``…/bridge/pending``, ``…/bridge/answer``)
  is a JWS signed with the bridge's key (``kid`` = its thumbprint, ``typ``
  ``cardauth-bridge+jwt``), whose payload carries the call's address (``htu``),
  ``iat`` (60 seconds of skew at most) and a ``jti`` accepted once, then the call's
  own members. A copied request is worth nothing on another address or a second
  time; a key not enrolled, or enrolled past its day, reads nothing.

Approving still takes the card: the bridge's key only lets it read and decline.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from cardauth.oidc.errors import BridgeKeyInvalid, BridgeProofInvalid, BridgeUnknown
from cardauth.oidc.grants import digest
from cardauth.oidc.store import OidcStore

PROOF_TYPE = "cardauth-bridge+jwt"
MAX_SKEW = 60  # seconds
_JTI_LIFE = 2 * MAX_SKEW + 1


@dataclass(frozen=True)
class Bridge:
    """An enrolled bridge: the professional it serves and its key."""

    thumbprint: str
    idnat: str
    key: ECKey


def bridge_key(value: object) -> ECKey:
    """The bridge's public key: an EC P-256 JWK with nothing private in it."""
    if not isinstance(value, dict) or set(value) - {"kty", "crv", "x", "y", "kid", "alg", "use"}:
        raise BridgeKeyInvalid("the bridge's key is a public EC P-256 JWK")
    if value.get("kty") != "EC" or value.get("crv") != "P-256":
        raise BridgeKeyInvalid("the bridge's key is a public EC P-256 JWK")
    try:
        key = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": value["x"], "y": value["y"]})
    except (JoseError, ValueError, TypeError, KeyError):
        raise BridgeKeyInvalid("the bridge's key is not a point of P-256") from None
    return key


def challenge_session(key: ECKey) -> str:
    """The session the enrolment challenge is issued to: this key's."""
    return f"ciba-bridge:{key.thumbprint()}"


class Bridges:
    """Enrolled bridges in the store: ``bridge:{thumbprint}``, and per IdNat the
    thumbprints that follow it (``bridges-for:{idnat}``)."""

    def __init__(self, store: OidcStore, *, lifetime: float) -> None:
        self.store = store
        self.lifetime = lifetime

    def enrol(self, key: ECKey, idnat: str) -> Bridge:
        thumbprint = key.thumbprint()
        record = {"idnat": idnat, "key": key.as_dict(private=False)}
        self.store.put(f"bridge:{thumbprint}", json.dumps(record), self.lifetime)
        self.store.add(f"bridges-for:{idnat}", thumbprint, self.lifetime)
        return Bridge(thumbprint, idnat, key)

    def find(self, thumbprint: str) -> Bridge | None:
        found = self.store.get(f"bridge:{thumbprint}")
        if found is None:
            return None
        record = json.loads(found)
        return Bridge(thumbprint, record["idnat"], ECKey.import_key(record["key"]))

    def follow(self, idnat: str) -> bool:
        """Whether an enrolled bridge follows this professional's requests."""
        return any(self.find(t) is not None for t in self.store.members(f"bridges-for:{idnat}"))

    def signed_call(
        self, body: Mapping[str, Any], *, address: str, now: int
    ) -> tuple[Bridge, dict[str, Any]]:
        """The bridge that signed ``body["request"]`` for ``address``, and the
        members it signed."""
        compact = body.get("request")
        if not isinstance(compact, str) or len(compact) > 16_000 or not compact.isascii():
            raise BridgeProofInvalid("request is a JWS signed with the bridge's key")
        try:
            header = jws.extract_compact(compact.encode()).protected
        except (JoseError, ValueError):
            raise BridgeProofInvalid("request is a JWS signed with the bridge's key") from None
        thumbprint = header.get("kid")
        if header.get("alg") != "ES256" or header.get("typ") != PROOF_TYPE:
            raise BridgeProofInvalid(f"the request is signed ES256, typ {PROOF_TYPE}")
        if not isinstance(thumbprint, str) or not 20 <= len(thumbprint) <= 64:
            raise BridgeProofInvalid("kid is the bridge key's thumbprint")
        bridge = self.find(thumbprint)
        if bridge is None:
            raise BridgeUnknown("this bridge is not enrolled (or its enrolment ended)")
        try:
            verified = jws.deserialize_compact(compact, bridge.key, algorithms=["ES256"])
            claims = json.loads(verified.payload)
        except (JoseError, ValueError):
            raise BridgeProofInvalid("the request's signature is not the bridge's") from None
        if not isinstance(claims, dict):
            raise BridgeProofInvalid("the request's payload is a JSON object")
        self._check(claims, bridge, address=address, now=now)
        return bridge, claims

    def _check(self, claims: Mapping[str, Any], bridge: Bridge, *, address: str, now: int) -> None:
        htu, iat, jti = claims.get("htu"), claims.get("iat"), claims.get("jti")
        if not isinstance(htu, str) or not hmac.compare_digest(htu.encode(), address.encode()):
            raise BridgeProofInvalid("the request was signed for another address")
        if type(iat) is not int or abs(now - iat) > MAX_SKEW:
            raise BridgeProofInvalid("the request's iat is not within a minute of now")
        if not isinstance(jti, str) or not 16 <= len(jti) <= 64:
            raise BridgeProofInvalid("the request's jti is 16 to 64 characters")
        seen = f"bridge-jti:{digest(bridge.thumbprint + ':' + jti)}"
        if not self.store.put(seen, "1", _JTI_LIFE, only_new=True):
            raise BridgeProofInvalid("the request was sent before (its jti is used)")
