"""The demo (``scripts/demo.sh``): the whole product on simulated cards.

One command starts, on loopback:

- a doctor's CPS card and a patient's Vitale card, simulated, in the two slots of
  a virtual dual-slot reader: plugged into a private pcscd through the vpcd
  driver (the real PC/SC stack, as real cards), or, where pcscd and vpcd are not
  installed, in-process virtual readers;
- the cardauth bridge, reading those cards;
- the teleservice « Médecin traitant en ligne » (``examples/teleservice``) on an
  origin of its own, which the bridge trusts; its doctors sign e-prescriptions
  with the CPS card (PAdES B-LT: the test PKI's OCSP responder and time-stamping
  authority run too, on loopback ports of their own) and whoever receives one
  checks it;
- the simulator's control page, to insert, remove and swap cards and pick
  personas from the browser;
- with ``--oidc``, cardauth-oidc (docs/oidc.md), the OpenID Connect provider on
  card login, which the teleservice then logs in through as a relying party.

It prints what to open, shows card events as they come, and stops everything
(the cards unplugged, the private pcscd stopped) on Ctrl-C.

``--public-origin https://name:port`` is for a teleservice reached as in
production: over https, under a name, behind a TLS front (a reverse proxy) that
forwards to the teleservice's loopback port. The bridge then trusts that origin
and the teleservice expects it in assertions (docs/bridge.md, "Testing as in
production").
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import queue
import shlex
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from cardauth.arguments import ArgumentParser, requested_language
from cardauth.errors import CardAuthError
from cardauth.messages import (
    CARD_NAMES,
    LANGUAGES,
    Catalog,
    Language,
    choose_language,
    describe,
    label,
)
from cardauth.oidc import settings as oidc_settings
from cardauth.oidc.app import create_app as create_provider
from cardauth.oidc.backchannel import Sweeper
from cardauth.oidc.keys import init_keys
from cardauth.oidc.settings import ProviderSettings
from cardauth.origins import Origin
from cardauth.serving import Served, listen, stop_on_signals
from cardauth.transport.base import ReaderBackend
from examples.teleservice import messages as teleservice_messages
from examples.teleservice import settings as teleservice_settings
from examples.teleservice.app import create_app as create_teleservice
from examples.teleservice.settings import Settings
from examples.teleservice.store import BUNDLED_SEED, init_db
from simulator import control_page
from simulator.control_page import ControlPageServer, serve_control_page
from simulator.ocsp import OcspResponder
from simulator.pcscd import READER_NAMES, PcscdUnavailable, PrivatePcscd
from simulator.personas import load_cps, load_vitale
from simulator.trust_export import export_trust
from simulator.tsa import TimeStampAuthority
from simulator.workstation import Workstation, virtual_workstation, vpcd_workstation
from webbridge import config as bridge_config
from webbridge import messages as bridge_messages
from webbridge.ciba import Provider
from webbridge.config import BridgeConfig
from webbridge.server import BridgeServer

HOST = "127.0.0.1"
PERSONAS = ("doctor", "patient")
EVENT_POLL_SECONDS = 0.5
Readers = Literal["auto", "pcscd", "in-process"]
# The relying party that ``--oidc`` registers when no clients file is given: a
# PSC-integrated application on this machine (docs/oidc.md, "Testing offline").
DEMO_SECRET = "psc-test-secret-not-for-production-0000"  # noqa: S105 - a demo's, printed
DEMO_CLIENT = """\
[[clients]]
client_id = "psc-test"
client_secret = "{secret}"
token_endpoint_auth_method = "client_secret_basic"
redirect_uris = ["http://127.0.0.1:8080/callback", "http://localhost:8080/callback"]
post_logout_redirect_uris = ["http://127.0.0.1:8080/", "http://localhost:8080/"]
"""
# With --oidc the teleservice logs in through the provider (a plain relying party).
TELESERVICE_SECRET = "teleservice-demo-secret-not-for-production"  # noqa: S105 - a demo's
TELESERVICE_CLIENT = """\
[[clients]]
client_id = "teleservice"
client_secret = "{secret}"
token_endpoint_auth_method = "client_secret_basic"
redirect_uris = ["{origin}/oidc/callback"]
post_logout_redirect_uris = ["{origin}/oidc/logged-out"]
backchannel_logout_uri = "{origin}/oidc/backchannel-logout"

"""

# What the demo says (examples/demo.toml); the errors of the parts it starts, each
# with its own texts.
TEXTS = Catalog.load(
    resources.files("examples") / "demo.toml",
    parents=(teleservice_messages.CATALOG, control_page.PAGE, bridge_messages.CATALOG),
)


@dataclass(frozen=True)
class Ports:
    bridge: int = bridge_config.DEFAULT_PORT
    teleservice: int = teleservice_settings.DEFAULT_PORT
    control: int = control_page.DEFAULT_PORT
    oidc: int = oidc_settings.DEFAULT_PORT


@dataclass
class Demo:
    """Everything the demo runs: :meth:`start`, then :meth:`close` (idempotent)."""

    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    readers: Readers = "auto"
    public_origin: Origin | None = None  # the teleservice behind an https front
    oidc: bool = False  # cardauth-oidc too, on simulated cards (docs/oidc.md)
    oidc_clients: Path | None = None  # its relying parties; a demo client otherwise
    say: Callable[[str], None] = print
    language: Language = "fr"
    bridge: BridgeServer | None = None
    control: ControlPageServer | None = None
    workstation: Workstation | None = None
    readers_used: Literal["pcscd", "in-process"] = "in-process"
    _pcscd: PrivatePcscd | None = None
    _backend: ReaderBackend | None = None
    _teleservice: Served | None = None
    _provider: Served | None = None
    _sweeper: Sweeper | None = None  # the provider's sessions ended by their age
    # What signed prescriptions need for B-LT: revocation and time stamps.
    ocsp: OcspResponder | None = None
    tsa: TimeStampAuthority | None = None

    @property
    def teleservice_url(self) -> str:
        return f"http://{HOST}:{self.ports.teleservice}"

    @property
    def teleservice_origin(self) -> Origin:
        """Where browsers reach the teleservice: its loopback address, or the
        public origin of the front it is served behind."""
        return self.public_origin or Origin.parse(self.teleservice_url, allow_development=True)

    @property
    def provider_origin(self) -> Origin:
        return Origin.parse(f"http://{HOST}:{self.ports.oidc}", allow_development=True)

    @property
    def issuer(self) -> str:
        return f"{self.provider_origin.value}{oidc_settings.REALM}"

    @property
    def control_url(self) -> str:
        return f"http://{HOST}:{self.ports.control}"

    @property
    def bridge_url(self) -> str:
        return f"http://{HOST}:{self.ports.bridge}"

    def start(self) -> None:
        try:
            slot_names = self._plug_cards()
            self.ocsp = OcspResponder().start(HOST)
            self.tsa = TimeStampAuthority().start(HOST)
            self._start_bridge()
            self._start_teleservice()
            if self.oidc:
                self._start_provider()
            assert self.workstation is not None
            self.control = serve_control_page(
                self.workstation, HOST, self.ports.control, slot_names=slot_names
            ).start()
        except BaseException:
            self.close()
            raise

    def _plug_cards(self) -> Sequence[str]:
        """The two cards in a dual-slot reader; the names of its slots."""
        if self.readers != "in-process":
            try:
                return self._plug_into_pcscd()
            except PcscdUnavailable as error:
                if self.readers == "pcscd":
                    raise
                self.say(self._text("no_pcscd", reason=describe(error, self.language)))
        workstation, readers = virtual_workstation()
        self.workstation, self._backend = workstation, readers
        self.readers_used = "in-process"
        for slot, persona in enumerate(PERSONAS):
            workstation.insert(slot, persona)
        return readers.slot_names

    def _plug_into_pcscd(self) -> Sequence[str]:
        pcscd = PrivatePcscd(self.state_dir / "pcscd")
        pcscd.workdir.mkdir(parents=True, exist_ok=True)
        self._pcscd = pcscd.start()
        # libpcsclite reads it when this process first talks to PC/SC: before that.
        os.environ.update(pcscd.environment)
        from cardauth.transport.pcsc import PcscBackend  # noqa: PLC0415 - after the setting

        self.workstation = vpcd_workstation(HOST, pcscd.vpcd_port)
        for slot, persona in enumerate(PERSONAS):
            self.workstation.insert(slot, persona)
        self._backend = PcscBackend()
        self.readers_used = "pcscd"
        return READER_NAMES

    def _start_bridge(self) -> None:
        assert self._backend is not None
        config = BridgeConfig(
            port=self.ports.bridge,
            allowed_origins=(self.teleservice_origin,)
            + ((self.provider_origin,) if self.oidc else ()),
            allow_development_origins=True,
            state_dir=self.state_dir / "bridge",
            # the provider's CIBA requests, on the bridge's page /ciba
            oidc_providers=(Provider(self.issuer, self.provider_origin),) if self.oidc else (),
        )
        self.bridge = BridgeServer(config, self._backend, host=HOST).start()

    def _start_teleservice(self) -> None:
        trust = self.state_dir / "trust"
        assert self.ocsp is not None
        export_trust(trust, now=dt.datetime.now(dt.UTC), ocsp_url=self.ocsp.url)
        data = self.state_dir / "teleservice"
        init_db(data / "teleservice.db", BUNDLED_SEED)
        settings = Settings(
            state_dir=data,
            trust_dir=trust,
            origin=self.teleservice_origin.value,
            bridge_url=self.bridge_url,
            allow_development_origins=True,
            # with --oidc, the teleservice logs in through the provider, a relying party
            oidc_issuer=self.issuer if self.oidc else None,
            oidc_client_secret=TELESERVICE_SECRET if self.oidc else None,
            tsa_url=self.tsa.url if self.tsa is not None else None,
        )
        app = create_teleservice(settings)
        listener = listen(HOST, self.ports.teleservice)
        self._teleservice = Served(app, listener, ident="teleservice").start("teleservice")

    def _start_provider(self) -> None:
        """cardauth-oidc on the demo's cards: the teleservice's trust anchors, a key
        set of its own, the relying parties of ``oidc_clients`` (else one demo
        client, whose secret the demo prints), its state in memory (one process)."""
        folder = self.state_dir / "oidc"
        keys = folder / "keys.json"
        if not keys.exists():
            init_keys(keys, dt.datetime.now(dt.UTC))
        # The teleservice, a relying party; then the clients given, or a demo client.
        clients = folder / "clients.toml"
        teleservice = self.teleservice_origin.value
        given = (
            self.oidc_clients.read_text(encoding="utf-8")
            if self.oidc_clients is not None
            else DEMO_CLIENT.format(secret=DEMO_SECRET)
        )
        folder.mkdir(parents=True, exist_ok=True)
        clients.write_text(
            TELESERVICE_CLIENT.format(secret=TELESERVICE_SECRET, origin=teleservice) + given,
            encoding="utf-8",
        )
        settings = ProviderSettings(
            origin=self.provider_origin.value,
            trust_dir=self.state_dir / "trust",
            keys_file=keys,
            clients_file=clients,
            bridge_url=self.bridge_url,
            allow_development_origins=True,
        )
        listener = listen(HOST, self.ports.oidc)
        app = create_provider(settings)
        self._provider = Served(app, listener, ident="cardauth-oidc").start("cardauth-oidc")
        provider = app.extensions["cardauth_oidc"]
        self._sweeper = Sweeper(provider.end_expired_sessions, settings.session_sweep_seconds)
        self._sweeper.start()

    def announce(self) -> None:
        doctor, patient = load_cps(PERSONAS[0]), load_vitale(PERSONAS[1])
        self.say(self._text("title"))
        self.say(self._text("teleservice", url=f"{self.teleservice_origin.value}/"))
        self.say(self._text("control", url=f"{self.control_url}/"))
        self.say(self._text("bridge", url=self.bridge_url))
        if self.ocsp is not None and self.tsa is not None:
            self.say(self._text("signing_services", ocsp=self.ocsp.url, tsa=self.tsa.url))
        if self.oidc:
            self.say(self._text("oidc", issuer=self.issuer))
            if self.oidc_clients is None:
                self.say(self._text("oidc_client", client_id="psc-test", secret=DEMO_SECRET))
        readers = self._text("pcscd" if self.readers_used == "pcscd" else "in_process")
        self.say(
            self._text(
                "cards",
                readers=readers,
                cps=doctor.description,
                pin=doctor.pin,
                vitale=patient.description,
            )
        )
        self.say(self._text("prescriptions", url=f"{self.teleservice_origin.value}/prescriptions"))
        self.say(self._text("pharmacist", url=f"{self.teleservice_origin.value}/verify"))
        if self._pcscd is not None:
            self.say(self._text("other_terminal"))
            self.say(f"    {cardauth_command(self._pcscd.environment, 'readers')}")
        else:
            self.say(self._text("in_process_only"))
        self.say(self._text("open"))

    def show_events(self, stop: threading.Event) -> None:
        """Card events as they come, until ``stop``."""
        assert self.bridge is not None
        with self.bridge.cards.subscribe() as events:
            while not stop.is_set():
                try:
                    event = events.get(timeout=EVENT_POLL_SECONDS)
                except queue.Empty:
                    continue
                if event is None:
                    return
                if event.state in ("inserted", "removed"):
                    kind = CARD_NAMES.get(event.kind, "?")
                    self.say(self._text(event.state, kind=kind, slot=event.slot))

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
            self._provider = None
        if self._sweeper is not None:
            self._sweeper.close()
            self._sweeper = None
        if self.control is not None:
            self.control.close()
            self.control = None
        if self._teleservice is not None:
            self._teleservice.close()
            self._teleservice = None
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.tsa is not None:
            self.tsa.stop()
            self.tsa = None
        if self.ocsp is not None:
            self.ocsp.stop()
            self.ocsp = None
        if self.workstation is not None:
            self.workstation.close()
            self.workstation = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._pcscd is not None:
            self._pcscd.stop()
            self._pcscd = None

    def _text(self, key: str, **values: object) -> str:
        return TEXTS.label(key, self.language, **values)


def cardauth_command(environment: Mapping[str, str], *arguments: str) -> str:
    """A shell command line that runs ``cardauth`` with ``environment``: for the
    demo's private pcscd, the socket libpcsclite reads from PCSCLITE_CSOCK_NAME."""
    settings = [f"{name}={shlex.quote(value)}" for name, value in sorted(environment.items())]
    return " ".join([*settings, shlex.join([_installed("cardauth"), *arguments])])


def _installed(program: str) -> str:
    """How to run one of cardauth's programs from here: the one beside this Python
    (``.venv/bin/cardauth`` from the repository's root), else by its name."""
    beside = Path(sys.executable).with_name(program)
    if not beside.exists():
        return program
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def build_parser(language: Language) -> argparse.ArgumentParser:
    """The command line, its help and argparse's own messages in ``language``."""

    def text(key: str, **values: object) -> str:
        return TEXTS.label(key, language, **values)

    parser = ArgumentParser(prog="scripts/demo.sh", description=text("help"), language=language)
    parser.add_argument("--lang", choices=LANGUAGES, help=label("help.lang", language))
    parser.add_argument(
        "--readers",
        choices=("auto", "pcscd", "in-process"),
        default="auto",
        help=text("help.readers"),
    )
    defaults = Ports()
    for option, port in (
        ("bridge", defaults.bridge),
        ("teleservice", defaults.teleservice),
        ("control", defaults.control),
        ("oidc", defaults.oidc),
    ):
        parser.add_argument(
            f"--{option}-port",
            type=int,
            default=port,
            metavar="PORT",
            help=text(f"help.{option}_port", port=port),
        )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar=label("metavar.directory", language),
        help=text("help.state_dir"),
    )
    parser.add_argument("--oidc", action="store_true", help=text("help.oidc"))
    parser.add_argument(
        "--oidc-clients",
        type=Path,
        metavar=label("metavar.file", language),
        help=text("help.oidc_clients"),
    )
    parser.add_argument(
        "--public-origin",
        type=functools.partial(_public_origin, language=language),
        metavar=text("metavar.origin"),
        help=text("help.public_origin"),
    )
    return parser


def _public_origin(text: str, *, language: Language) -> Origin:
    try:
        return Origin.parse(text)
    except CardAuthError as error:
        raise argparse.ArgumentTypeError(describe(error, language)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(requested_language(argv)).parse_args(argv)
    language = choose_language(args.lang)
    ports = Ports(args.bridge_port, args.teleservice_port, args.control_port, args.oidc_port)
    stop = stop_on_signals()
    with tempfile.TemporaryDirectory(prefix="cardauth-demo-") as temporary:
        state_dir = args.state_dir or Path(temporary)
        say = functools.partial(print, flush=True)
        demo = Demo(
            state_dir,
            ports=ports,
            readers=args.readers,
            public_origin=args.public_origin,
            oidc=args.oidc,
            oidc_clients=args.oidc_clients,
            say=say,
            language=language,
        )
        try:
            demo.start()
            demo.announce()
            demo.show_events(stop)
        except CardAuthError as error:
            print(TEXTS.error_line(error, language), file=sys.stderr, flush=True)
            return 1
        finally:
            demo.close()
        say(TEXTS.label("stopped", language))
    return 0


if __name__ == "__main__":
    sys.exit(main())
