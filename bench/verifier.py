"""Verifier benchmark: full verification against bare signature checks and a JOSE
library, side by side in one run, on one core.

The same assertions (signed RS256 by the doctor's card key, each answering its own
challenge) are verified by:

- **bare**: split the token, decode the signature, RSA-verify the signing input with
  the key already loaded (cryptography): the least any verifier must do;
- **joserfc**: ``jws.deserialize_compact`` with the key already loaded and our
  critical parameter registered (a generic JOSE library's verification);
- **cardauth warm**: ``Verifier.verify`` with everything (origin, challenge taken from
  an in-memory store, certificate checks, path, revocation by CRL), the path and
  the revocation answer cached from an earlier login with the same card;
- **cardauth cold**: the same with a new Verifier each time (first sight of the
  chain: path building and checking, CRL signature check).

Rounds alternate the order of the methods; figures are medians of the per-round
means, ratios are medians of the per-round ratios.
Goals: warm <= 1.5 x bare, and warm no slower than joserfc.

Usage: .venv/bin/python bench/verifier.py [--rounds 15] [--tokens 200] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.verifier_kit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws as joserfc_jws
from joserfc.jwk import RSAKey
from joserfc.registry import HeaderParameter

from cardauth.challenges import ChallengeRecord, MemoryChallengeStore, session_digest
from cardauth.revocation import RevocationChecker, RevocationPolicy
from cardauth.verify import Verifier
from simulator.pki import simulator_pki
from tests.verifier_kit import NOW, ORIGIN, SESSION, Forge, trust_store

WARM_GOAL = 1.5


class _Registry(joserfc_jws.JWSRegistry):
    max_header_length = 8192
    max_payload_length = 16384


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    forge = Forge()
    challenges = [
        base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() for _ in range(args.tokens)
    ]
    tokens = [forge.assertion(challenge) for challenge in challenges]
    records = [
        ChallengeRecord(c, session_digest(SESSION), (NOW.timestamp() + 300)) for c in challenges
    ]
    pki = simulator_pki()
    crls = [pki.crl(authority, NOW) for authority in pki.authorities]
    trust = trust_store(pki)
    policy = RevocationPolicy(use_ocsp=False)
    key = forge.cps_key.public_key()
    joserfc_key = RSAKey.import_key(
        key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    registry = _Registry(header_registry={"cardauth": HeaderParameter("cardauth", "int")})
    warm_verifier = Verifier(trust=trust, revocation=RevocationChecker(policy=policy, crls=crls))

    def bare() -> float:
        started = time.perf_counter()
        for token in tokens:
            header, payload, signature = token.split(".")
            key.verify(
                base64.urlsafe_b64decode(signature + "=="),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        return (time.perf_counter() - started) / len(tokens)

    def joserfc() -> float:
        started = time.perf_counter()
        for token in tokens:
            joserfc_jws.deserialize_compact(
                token, joserfc_key, algorithms=["RS256"], registry=registry
            )
        return (time.perf_counter() - started) / len(tokens)

    def cardauth(make_verifier: Callable[[], Verifier]) -> Callable[[], float]:
        def run() -> float:
            store = MemoryChallengeStore()
            for record in records:
                store.put(record, 300)
            verifiers = [make_verifier() for _ in tokens]  # made outside the timing
            started = time.perf_counter()
            for verifier, token, challenge in zip(verifiers, tokens, challenges, strict=True):
                verifier.verify(
                    token,
                    expected_origins=(ORIGIN,),
                    expected_challenge=challenge,
                    session=SESSION,
                    challenges_store=store,
                    now=NOW,
                )
            return (time.perf_counter() - started) / len(tokens)

        return run

    def cold_verifier() -> Verifier:
        return Verifier(trust=trust, revocation=RevocationChecker(policy=policy, crls=crls))

    methods = {
        "bare": bare,
        "joserfc": joserfc,
        "cardauth_warm": cardauth(lambda: warm_verifier),
        "cardauth_cold": cardauth(cold_verifier),
    }
    for method in methods.values():  # warm-up: imports, caches, the warm verifier's path
        method()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_number in range(args.rounds):
        order = list(methods) if round_number % 2 == 0 else list(reversed(methods))
        for name in order:
            times[name].append(methods[name]())

    def ratio(name: str, reference: str) -> float:
        return statistics.median(m / r for m, r in zip(times[name], times[reference], strict=True))

    microseconds = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    warm_bare = ratio("cardauth_warm", "bare")
    warm_jose = ratio("cardauth_warm", "joserfc")
    cold_bare = ratio("cardauth_cold", "bare")
    if args.json:
        print(
            json.dumps(
                {
                    "microseconds": microseconds,
                    "warm_over_bare": warm_bare,
                    "cold_over_bare": cold_bare,
                    "warm_over_joserfc": warm_jose,
                    "goals": {"warm_over_bare": WARM_GOAL, "warm_over_joserfc": 1.0},
                },
                indent=2,
            )
        )
        return 0
    print("Verification of one RS256 assertion, one core (median microseconds)")
    for name, value in microseconds.items():
        print(f"  {name:15} {value:8.1f} us   ({1e6 / value:7.0f} per second)")
    print(
        f"  warm / bare     {warm_bare:.2f}  "
        f"({'meets' if warm_bare <= WARM_GOAL else 'MISSES'} the goal <= {WARM_GOAL})"
    )
    print(
        f"  warm / joserfc  {warm_jose:.2f}  "
        f"({'meets' if warm_jose <= 1.0 else 'MISSES'} the goal <= 1.0)"
    )
    print(f"  cold / bare     {cold_bare:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
