"""The demo (``scripts/demo.sh``): simulated cards in the real PC/SC stack.

It makes sure the system's pcscd runs with the vpcd driver (starting it when it
does not, and stopping it again at the end), plugs a doctor's CPS card and a
patient's Vitale card into the two vpcd slots, reads them back through pyscard
and pcscd exactly as real cards are read, then shows card events live until
Ctrl-C. From another terminal, ``cardauth-sim remove 0`` or ``cardauth-sim
insert 0 pharmacist`` play the scenarios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from cardauth.cli import Output, command_cards
from cardauth.errors import CardAuthError, PcscUnavailable
from cardauth.messages import LANGUAGES, Language, choose_language, describe
from cardauth.transport.monitor import CardMonitor, EventType
from cardauth.transport.pcsc import PcscBackend
from simulator import control
from simulator.pcscd import READER_NAMES
from simulator.workstation import vpcd_workstation

TEXTS: dict[str, dict[Language, str]] = {
    "starting_pcscd": {
        "fr": "Démarrage de pcscd (service des cartes à puce)...",
        "en": "Starting pcscd (the smart-card service)...",
    },
    "no_pcscd": {
        "fr": "pcscd ne tourne pas et ne peut pas être démarré ici : lancez « sudo pcscd » puis "
        "relancez la démo.",
        "en": "pcscd is not running and cannot be started from here: run 'sudo pcscd' and "
        "start the demo again.",
    },
    "no_vpcd": {
        "fr": "pcscd tourne sans les lecteurs virtuels (vpcd) : redémarrez pcscd "
        "(sudo systemctl restart pcscd) puis relancez la démo.",
        "en": "pcscd runs without the virtual readers (vpcd): restart pcscd "
        "(sudo systemctl restart pcscd) and start the demo again.",
    },
    "plugged": {
        "fr": "Cartes virtuelles branchées. Voici ce que cardauth lit, par pcscd, comme sur de "
        "vraies cartes :",
        "en": "Virtual cards plugged in. This is what cardauth reads, through pcscd, as from "
        "real cards:",
    },
    "live": {
        "fr": "Événements en direct. Dans un autre terminal, essayez :\n"
        "  .venv/bin/cardauth-sim remove 0\n"
        "  .venv/bin/cardauth-sim insert 0 pharmacist\n"
        "  .venv/bin/cardauth cards\n"
        "Ctrl-C pour arrêter.",
        "en": "Live events. In another terminal, try:\n"
        "  .venv/bin/cardauth-sim remove 0\n"
        "  .venv/bin/cardauth-sim insert 0 pharmacist\n"
        "  .venv/bin/cardauth cards\n"
        "Ctrl-C to stop.",
    },
    "card_inserted": {"fr": "carte insérée dans {reader}", "en": "card inserted in {reader}"},
    "card_removed": {"fr": "carte retirée de {reader}", "en": "card removed from {reader}"},
    "monitor_failed": {"fr": "pcscd ne répond plus", "en": "pcscd stopped answering"},
    "monitor_recovered": {"fr": "pcscd répond de nouveau", "en": "pcscd answers again"},
    "stopped": {"fr": "Démo arrêtée, cartes retirées.", "en": "Demo stopped, cards removed."},
}


def _say(key: str, language: Language, **values: object) -> None:
    print(TEXTS[key][language].format(**values), flush=True)


def _pcscd_answers() -> bool:
    backend = PcscBackend()
    try:
        backend.slot_states()
    except PcscUnavailable:
        return False
    finally:
        backend.close()
    return True


def ensure_pcscd(language: Language) -> subprocess.Popen[bytes] | None:
    """Start the system pcscd when it is not running; return it if we started it."""
    if _pcscd_answers():
        return None
    pcscd = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if os.geteuid() != 0 or not os.path.exists(pcscd):
        _say("no_pcscd", language)
        raise SystemExit(1)
    _say("starting_pcscd", language)
    process = subprocess.Popen(  # noqa: S603 - the system's own pcscd
        [pcscd, "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not _pcscd_answers():
        if time.monotonic() > deadline or process.poll() is not None:
            _say("no_pcscd", language)
            raise SystemExit(1)
        time.sleep(0.1)
    return process


def _wait_for_cards(backend: PcscBackend, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = backend.slot_states()
        if all(states.get(name) and states[name].card_present for name in READER_NAMES):
            return
        time.sleep(0.1)


def run(language: Language) -> int:
    started = ensure_pcscd(language)
    backend = PcscBackend()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    workstation = vpcd_workstation()
    server = None
    try:
        if not set(READER_NAMES) <= set(backend.slot_states()):
            _say("no_vpcd", language)
            return 1
        workstation.insert(0, "doctor")
        workstation.insert(1, "patient")
        server = control.ControlServer(workstation)
        _wait_for_cards(backend)
        _say("plugged", language)
        print()
        command_cards(backend, Output(language, as_json=False, stream=sys.stdout))
        _say("live", language)
        with CardMonitor(backend) as monitor:
            while not stop.is_set():
                event = monitor.get(timeout=0.5)
                if event is not None and event.type in (
                    EventType.CARD_INSERTED,
                    EventType.CARD_REMOVED,
                    EventType.MONITOR_FAILED,
                    EventType.MONITOR_RECOVERED,
                ):
                    stamp = time.strftime("%H:%M:%S")
                    print(
                        f"[{stamp}] "
                        + TEXTS[event.type.value][language].format(reader=event.reader),
                        flush=True,
                    )
    except CardAuthError as error:
        print(f"[{error.code}] {describe(error, language)}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.close()
        workstation.close()
        backend.close()
        if started is not None:
            started.terminate()
            started.wait(timeout=10)
    _say("stopped", language)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo.sh", description=__doc__)
    parser.add_argument("--lang", choices=LANGUAGES, help="language (default: fr)")
    args = parser.parse_args(argv)
    return run(choose_language(args.lang))


if __name__ == "__main__":
    sys.exit(main())
