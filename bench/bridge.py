"""Bridge benchmark: a login through the real HTTP server, and what the card is asked.

The bridge runs as it does in production (the Flask app under waitress, on
127.0.0.1) over an in-process virtual dual-slot reader (the doctor's CPS card,
T=0 like a CPS3, and the patient's Vitale card). After one login with the PIN,
each round sends ``POST /v1/authenticate`` on a kept-alive connection, PIN state
cached, and times it from the request to the assertion. The time spent inside
the virtual card (its command interpreter, its RSA signature) is measured in the
same requests, so the rest is the bridge's own share: HTTP, checks, the card
layer, the JWS. Goal: that share at most 5 ms (median).

It also counts the commands the CPS card receives: at insertion (the card read
once), for the first login (PIN typed on the bridge's page), and for a login
with the card already read and the PIN state cached. Goal: at most 4 warm (the
cold count is compared with OpenSC's in bench/opensc_peer.py).

Usage: .venv/bin/python bench/bridge.py [--logins 200] [--json]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from cardauth.origins import Origin
from cardauth.serving import Served, listen
from simulator.card import VirtualCard
from simulator.workstation import virtual_workstation
from webbridge.app import create_app
from webbridge.cards import CardService
from webbridge.config import BridgeConfig
from webbridge.consent import ConsentStore
from webbridge.guards import MAX_BODY
from webbridge.server import CHANNEL_TIMEOUT, THREADS

ORIGIN = Origin.parse("https://teleservice.example")
OUTSIDE_GOAL_MS = 5.0
WARM_GOAL = 4


class TimedCard:
    """Wraps a virtual card's command interpreter to add up the time spent in it."""

    def __init__(self, card: VirtualCard) -> None:
        self.seconds = 0.0
        self._process: Callable[[bytes], bytes] = card.process
        card.process = self._timed  # type: ignore[method-assign]

    def _timed(self, raw: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return self._process(raw)
        finally:
            self.seconds += time.perf_counter() - started


def _challenge() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workstation, readers = virtual_workstation()
    listener = listen("127.0.0.1", 0)
    port = int(listener.getsockname()[1])
    with tempfile.TemporaryDirectory() as state:
        config = BridgeConfig(
            port=port,
            allowed_origins=(ORIGIN,),
            state_dir=Path(state),
            authentications_per_minute=10_000,  # the limit is not what is measured
        )
        cards = CardService(readers, pin_idle_seconds=3600).start()
        workstation.insert(0, "doctor")
        workstation.insert(1, "patient")
        cps = readers.card_in(0)
        assert cps is not None
        deadline = time.monotonic() + 5
        while len(cards.known_readers()) < 2:
            if time.monotonic() > deadline:  # else the insertion count would be wrong
                raise SystemExit("the bridge did not read both cards within 5 s")
            time.sleep(0.005)
        at_insertion = cps.total_commands
        app = create_app(config=config, cards=cards, consents=ConsentStore(Path(state)))
        served = Served(
            app,
            listener,
            ident="cardauth-bridge",
            threads=THREADS,
            channel_timeout=CHANNEL_TIMEOUT,
            max_request_body_size=MAX_BODY,
        ).start("bridge")  # as BridgeServer serves it
        try:
            figures = _measure(port, cards, cps, at_insertion, args.logins)
        finally:
            served.close()
            cards.stop()
    _report(figures, args.json)
    return 0


def _measure(
    port: int, cards: CardService, cps: VirtualCard, at_insertion: int, logins: int
) -> dict[str, float | int]:
    before = cps.total_commands
    cards.pin_status()  # what the bridge's page shows: the tries left (known since insertion)
    cards.authenticate(origin=ORIGIN, challenge=_challenge(), with_vitale=False, pin="1234")
    first_login = cps.total_commands - before
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Origin": ORIGIN.value, "Content-Type": "application/json"}
    timer = TimedCard(cps)
    totals, in_card, warm_counts = [], [], []
    for _ in range(logins):
        body = json.dumps({"challenge": _challenge()})
        commands, spent = cps.total_commands, timer.seconds
        started = time.perf_counter()
        connection.request("POST", "/v1/authenticate", body=body, headers=headers)
        answer = connection.getresponse()
        data = json.loads(answer.read())
        totals.append(time.perf_counter() - started)
        in_card.append(timer.seconds - spent)
        warm_counts.append(cps.total_commands - commands)
        if answer.status != 200 or data.get("status") != "ok":
            raise SystemExit(f"login failed: {answer.status} {data}")
    connection.close()
    outside = [total - card for total, card in zip(totals, in_card, strict=True)]
    return {
        "logins": logins,
        "total_ms": statistics.median(totals) * 1000,
        "in_card_ms": statistics.median(in_card) * 1000,
        "outside_card_ms": statistics.median(outside) * 1000,
        "outside_card_p90_ms": statistics.quantiles(outside, n=10)[-1] * 1000,
        "apdus_at_insertion": at_insertion,
        "apdus_first_login": first_login,
        "apdus_cold": at_insertion + first_login,
        "apdus_warm": max(warm_counts),
    }


def _report(figures: dict[str, float | int], as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    **figures,
                    "goals": {
                        "outside_card_ms": OUTSIDE_GOAL_MS,
                        "apdus_warm": WARM_GOAL,
                    },
                },
                indent=2,
            )
        )
        return

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    outside = float(figures["outside_card_ms"])
    print(f"Login through the bridge's HTTP server, PIN state cached ({figures['logins']} logins)")
    print(f"  request to assertion      {figures['total_ms']:7.2f} ms (median)")
    print(f"  inside the virtual card   {figures['in_card_ms']:7.2f} ms")
    print(
        f"  outside the card          {outside:7.2f} ms "
        f"(p90 {figures['outside_card_p90_ms']:.2f}; {verdict(outside <= OUTSIDE_GOAL_MS)} "
        f"the goal <= {OUTSIDE_GOAL_MS:g} ms)"
    )
    cold, warm = int(figures["apdus_cold"]), int(figures["apdus_warm"])
    print("Commands to the CPS card (T=0)")
    print(
        f"  cold: {cold} = {figures['apdus_at_insertion']} when inserted + "
        f"{figures['apdus_first_login']} for the first login (the card's PKCS#15 "
        "application read once; against OpenSC: bench/opensc_peer.py)"
    )
    print(f"  warm: {warm} ({verdict(warm <= WARM_GOAL)} the goal <= {WARM_GOAL})")


if __name__ == "__main__":
    sys.exit(main())
