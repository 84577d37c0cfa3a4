"""The verifier at national scale: a CRL of 100,000 entries for the CPS issuing CA,
and logins of cards the verifier process has never seen.

Measured in one run, on one core (the process pins itself):

- **load**: ``Verifier.from_directory`` on a trust directory whose CPS CA CRL has
  ``--entries`` revoked certificates (goal <= 0.5 s), and the memory the indexed
  CRL keeps (tracemalloc);
- **first verification** after the load;
- **new card** against its **floor**, side by side: every token carries a card
  certificate the verifier has not seen (its cache is empty at each round), verified
  with every check (header, claims, certificate, path, signature, origin, challenge
  taken from an in-memory store, CRL revocation of the card and of its CA). The
  floor is the least a verifier must do for it: load the card certificate from its
  DER, one ``cryptography.x509.verification`` chain validation, one RSA signature
  check of the token, one set look-up of the serial number. Rounds alternate the
  order; the ratio is the median of the per-round ratios (goal <= 1.5);
- **seen card** (for comparison): the same tokens through the same verifier again;
- **refresh**: the latency of verifications of new cards while another thread reads
  the same CRL again and swaps it in, against the same without a refresh.

The CRL is made with ``cryptography`` (random 159-bit serial numbers, each entry
with a reason code, as a CA's CRL has them) and written under a temporary
directory that the run removes.

Usage: .venv/bin/python bench/verifier_scale.py [--entries 100000] [--cards 100]
       [--rounds 7] [--json | --profile]
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import datetime as dt
import gc
import json
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.verifier_kit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from cardauth.challenges import ChallengeRecord, MemoryChallengeStore, session_digest

try:
    from cardauth.revocation import load_revocation_lists
except ImportError:  # an older cardauth, measured for the "before" figures
    load_revocation_lists = None  # type: ignore[assignment]
from cardauth.verify import Verifier
from simulator.pki import SimulatorPki, simulator_pki
from simulator.trust_export import export_trust
from tests.verifier_kit import NOW, ORIGIN, SESSION, Forge, card_like, x5c

LOAD_GOAL = 0.5  # seconds
NEW_CARD_GOAL = 1.5  # x the floor
REFRESHES = 5  # of the 100,000-entry CRL, for the latency of verifications meanwhile


def big_crl(pki: SimulatorPki, entries: int) -> bytes:
    """The CPS issuing CA's CRL with ``entries`` revoked certificates, DER."""
    authority = pki.cps_ca
    reason = x509.CRLReason(x509.ReasonFlags.key_compromise)
    revoked_on = NOW - dt.timedelta(days=30)
    revoked = [
        x509.RevokedCertificateBuilder()
        .serial_number(x509.random_serial_number())
        .revocation_date(revoked_on)
        .add_extension(reason, critical=False)
        .build()
        for _ in range(entries)
    ]
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=authority.name,
        last_update=NOW,
        next_update=NOW + dt.timedelta(days=7),
        revoked_certificates=revoked,  # given at once: add_revoked_certificate copies
    )
    crl = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
        critical=False,
    ).add_extension(x509.CRLNumber(1), critical=False)
    return crl.sign(authority.key, hashes.SHA256()).public_bytes(Encoding.DER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--cards", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only profile (cProfile) the load and new-card verifications, and print where "
        "the time goes",
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    pki, forge = simulator_pki(), Forge()
    with tempfile.TemporaryDirectory(prefix="cardauth-bench-") as temporary:
        trust_dir = Path(temporary)
        export_trust(trust_dir, now=NOW)
        generation = time.perf_counter()
        crl_der = big_crl(pki, args.entries)
        generation = time.perf_counter() - generation
        (trust_dir / "crls" / f"{pki.cps_ca.slug}.crl").write_bytes(crl_der)
        if args.profile:
            _profile(args, trust_dir, pki, forge)
            return 0
        figures = _measure(args, trust_dir, crl_der, pki, forge)
    figures["crl"] = {
        "entries": args.entries,
        "bytes": len(crl_der),
        "generation_seconds": generation,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print(figures)
    return 0


@dataclass
class _Batch:
    """Tokens of cards never seen, each answering its own challenge, and what the
    floor needs of them (the card's DER, the signing input and the signature)."""

    tokens: list[str]
    challenges: list[str]
    records: list[ChallengeRecord]
    card_ders: list[bytes]
    signed: list[tuple[bytes, bytes]]

    @classmethod
    def of_new_cards(cls, count: int, pki: SimulatorPki, forge: Forge) -> _Batch:
        cards = [card_like(forge.cps_certificate, pki.cps_ca.key) for _ in range(count)]
        challenges = [base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode() for _ in cards]
        tokens = [
            forge.assertion(challenge, header=forge.header(chain=x5c(card)))
            for card, challenge in zip(cards, challenges, strict=True)
        ]
        signed = []
        for token in tokens:
            header, payload, signature = token.split(".")
            signed.append(
                (f"{header}.{payload}".encode(), base64.urlsafe_b64decode(signature + "=="))
            )
        return cls(
            tokens=tokens,
            challenges=challenges,
            records=[
                ChallengeRecord(c, session_digest(SESSION), NOW.timestamp() + 300)
                for c in challenges
            ],
            card_ders=[card.public_bytes(Encoding.DER) for card in cards],
            signed=signed,
        )

    def store(self) -> MemoryChallengeStore:
        store = MemoryChallengeStore()
        for record in self.records:
            store.put(record, 300)
        return store

    def verify_each(self, verifier: Verifier) -> list[float]:
        """Verify every token once; the latency of each (seconds)."""
        store = self.store()
        latencies = []
        for token, challenge in zip(self.tokens, self.challenges, strict=True):
            started = time.perf_counter()
            verifier.verify(
                token,
                expected_origins=(ORIGIN,),
                expected_challenge=challenge,
                session=SESSION,
                challenges_store=store,
                now=NOW,
            )
            latencies.append(time.perf_counter() - started)
        return latencies


def _measure(
    args: argparse.Namespace, trust_dir: Path, crl_der: bytes, pki: SimulatorPki, forge: Forge
) -> dict[str, Any]:
    # Every round has cards of its own, so that nothing kept anywhere (a cache of
    # this verifier or of an older one) can know them.
    batches = [_Batch.of_new_cards(args.cards, pki, forge) for _ in range(args.rounds + 2)]

    # -- load, first verification, memory ------------------------------------------
    loads, firsts = [], []
    for attempt in range(3):
        gc.collect()
        started = time.perf_counter()
        loaded = Verifier.from_directory(trust_dir)
        loads.append(time.perf_counter() - started)
        batch = batches[attempt]
        store = batch.store()
        started = time.perf_counter()
        loaded.verify(
            batch.tokens[0],
            expected_origins=(ORIGIN,),
            expected_challenge=batch.challenges[0],
            session=SESSION,
            challenges_store=store,
            now=NOW,
        )
        firsts.append(time.perf_counter() - started)
    del loaded
    gc.collect()
    tracemalloc.start()
    kept = Verifier.from_directory(trust_dir)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # -- new card against its floor ------------------------------------------------
    revoked = {entry.serial_number for entry in x509.load_der_x509_crl(crl_der)}
    roots = Store([pki.cps_root.certificate])
    intermediates = [pki.cps_ca.certificate, pki.vitale_ca.certificate]
    end_entity = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )

    def floor(batch: _Batch) -> float:
        started = time.perf_counter()
        for der, (data, signature) in zip(batch.card_ders, batch.signed, strict=True):
            leaf = x509.load_der_x509_certificate(der)
            PolicyBuilder().store(roots).time(NOW).max_chain_depth(4).extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=end_entity
            ).build_client_verifier().verify(leaf, intermediates)
            key = leaf.public_key()
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            if leaf.serial_number in revoked:
                raise AssertionError("a bench card is revoked")
        return (time.perf_counter() - started) / len(batch.tokens)

    def new_card(batch: _Batch) -> float:
        verifier = Verifier(trust=kept.trust, revocation=kept.revocation)  # empty cache
        return statistics.fmean(batch.verify_each(verifier))

    seen = batches[-1]
    seen_verifier = Verifier(trust=kept.trust, revocation=kept.revocation)
    seen.verify_each(seen_verifier)

    def seen_card(batch: _Batch) -> float:
        return statistics.fmean(seen.verify_each(seen_verifier))

    methods = {"floor": floor, "new_card": new_card, "seen_card": seen_card}
    for method in methods.values():  # warm-up, on the first batch
        method(batches[0])
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_number in range(args.rounds):
        order = list(methods) if round_number % 2 == 0 else list(reversed(methods))
        for name in order:
            times[name].append(methods[name](batches[1 + round_number]))
    new_over_floor = statistics.median(
        n / f for n, f in zip(times["new_card"], times["floor"], strict=True)
    )

    figures: dict[str, Any] = {
        "load_seconds": statistics.median(loads),
        "load_runs": loads,
        "first_verification_ms": statistics.median(firsts) * 1e3,
        "memory_retained_bytes": retained,
        "memory_peak_bytes": peak,
        "microseconds": {name: statistics.median(v) * 1e6 for name, v in times.items()},
        "new_over_floor": new_over_floor,
        "goals": {"load_seconds": LOAD_GOAL, "new_over_floor": NEW_CARD_GOAL},
    }
    if load_revocation_lists is not None:  # None before the CRLs were indexed
        index = kept.revocation.crls.by_issuer[pki.cps_ca.name].revoked
        figures["index_bytes"] = sys.getsizeof(index) + sum(sys.getsizeof(n) for n in index)
        figures["refresh"] = _refresh_stall(kept, trust_dir, batches[1:6])
    return figures


def _profile(args: argparse.Namespace, trust_dir: Path, pki: SimulatorPki, forge: Forge) -> None:
    """Where the time goes: cProfile over the load, then over new-card verifications
    (a profiler's own cost inflates the many small calls; compare shares, not times)."""
    batch = _Batch.of_new_cards(args.cards, pki, forge)
    profiler = cProfile.Profile()
    profiler.enable()
    verifier = Verifier.from_directory(trust_dir)
    profiler.disable()
    print("== Verifier.from_directory")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(8)
    batch.verify_each(Verifier(trust=verifier.trust, revocation=verifier.revocation))  # warm-up
    profiler = cProfile.Profile()
    fresh = Verifier(trust=verifier.trust, revocation=verifier.revocation)
    batch = _Batch.of_new_cards(args.cards, pki, forge)
    profiler.enable()
    batch.verify_each(fresh)
    profiler.disable()
    print(f"== {args.cards} verifications of cards never seen")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def _refresh_stall(kept: Verifier, trust_dir: Path, batches: list[_Batch]) -> dict[str, float]:
    """Latencies of new-card verifications while another thread reads the CRLs again
    and swaps them in, REFRESHES times, against as many without (milliseconds)."""
    assert load_revocation_lists is not None
    load = load_revocation_lists

    def fresh() -> Verifier:
        return Verifier(trust=kept.trust, revocation=kept.revocation)

    done = threading.Event()
    refreshes = 0

    def refresh() -> None:
        nonlocal refreshes
        for _ in range(REFRESHES):
            kept.revocation.replace_crls(load(trust_dir / "crls"))
            refreshes += 1
        done.set()

    refresher = threading.Thread(target=refresh)
    busy: list[float] = []
    refresher.start()
    try:
        while not done.is_set():
            for batch in batches:
                busy += batch.verify_each(fresh())
    finally:
        refresher.join()
    quiet: list[float] = []
    while len(quiet) < len(busy):
        for batch in batches:
            quiet += batch.verify_each(fresh())
    quiet = quiet[: len(busy)]

    def percentile(values: list[float], share: float) -> float:
        return sorted(values)[int(len(values) * share)] * 1e3

    return {
        "verifications": len(busy),
        "refreshes": refreshes,
        "quiet_median_ms": statistics.median(quiet) * 1e3,
        "quiet_p99_ms": percentile(quiet, 0.99),
        "quiet_max_ms": max(quiet) * 1e3,
        "during_refresh_median_ms": statistics.median(busy) * 1e3,
        "during_refresh_p99_ms": percentile(busy, 0.99),
        "during_refresh_max_ms": max(busy) * 1e3,
    }


def _print(figures: dict[str, Any]) -> None:
    crl = figures["crl"]
    assert isinstance(crl, dict)
    print(
        f"CRL of the CPS CA: {crl['entries']:,} entries, {crl['bytes'] / 1e6:.1f} MB "
        f"(made in {crl['generation_seconds']:.1f} s)"
    )
    load = figures["load_seconds"]
    assert isinstance(load, float)
    verdict = "meets" if load <= LOAD_GOAL else "MISSES"
    runs = ", ".join(f"{s:.3f}" for s in figures["load_runs"])
    print(f"  load (from_directory) {load:8.3f} s  ({verdict} the goal <= {LOAD_GOAL} s; {runs})")
    print(f"  first verification    {figures['first_verification_ms']:8.2f} ms")
    print(
        f"  memory kept by the load {figures['memory_retained_bytes'] / 1e6:6.1f} MB "
        f"(peak {figures['memory_peak_bytes'] / 1e6:.1f} MB)"
    )
    if "index_bytes" in figures:
        print(f"  of which the index of revoked serials {figures['index_bytes'] / 1e6:.1f} MB")
    microseconds = figures["microseconds"]
    assert isinstance(microseconds, dict)
    print("Verification of one RS256 assertion, one core (median microseconds)")
    for name, value in microseconds.items():
        print(f"  {name:10} {value:8.1f} us")
    ratio = figures["new_over_floor"]
    assert isinstance(ratio, float)
    print(
        f"  new card / floor {ratio:.2f}  "
        f"({'meets' if ratio <= NEW_CARD_GOAL else 'MISSES'} the goal <= {NEW_CARD_GOAL})"
    )
    refresh = figures.get("refresh")
    if isinstance(refresh, dict):
        print(
            f"{refresh['verifications']} new-card verifications while another thread read "
            f"the CRLs again {refresh['refreshes']} times, and as many without (ms)"
        )
        for label, key in (("quiet", "quiet"), ("during refreshes", "during_refresh")):
            print(
                f"  {label:17} median {refresh[key + '_median_ms']:.2f}, "
                f"99th percentile {refresh[key + '_p99_ms']:.2f}, "
                f"max {refresh[key + '_max_ms']:.2f}"
            )


if __name__ == "__main__":
    sys.exit(main())
