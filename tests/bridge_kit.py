"""What the bridge tests share: a bridge app over in-process virtual readers (a
doctor's CPS and a patient's Vitale by default), its card service running, its
approvals in a temporary folder, and test clients that send what a browser
sends (Host, Origin), every answer of the API checked against its OpenAPI
description (tests/openapi_check.py)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cardauth.challenges import MemoryChallengeStore, issue_challenge
from cardauth.origins import Origin
from cardauth.verify import VerifiedLogin, Verifier
from simulator.card import VirtualCard
from simulator.readers import VirtualReaders
from simulator.workstation import Workstation, virtual_workstation
from tests.openapi_check import CheckedClient
from tests.verifier_kit import crl_checker, trust_store
from webbridge.app import create_app
from webbridge.cards import CardService
from webbridge.config import BridgeConfig
from webbridge.consent import ConsentStore

PORT = 24790
BRIDGE = f"http://127.0.0.1:{PORT}"
TELESERVICE = Origin.parse("https://teleservice.example")
SESSION = "browser-session"
EVENT_TIMEOUT = 5.0


@dataclass
class BridgeScene:
    """A running bridge on virtual readers, and what its tests need around it."""

    workstation: Workstation
    readers: VirtualReaders
    cards: CardService
    consents: ConsentStore
    app: Flask
    config: BridgeConfig
    challenges: MemoryChallengeStore = field(default_factory=MemoryChallengeStore)

    def client(self, origin: str | None = TELESERVICE.value) -> FlaskClient:
        """A client that sends ``origin`` in every request (None: no Origin)."""
        client = self.app.test_client()
        if origin is not None:
            client.environ_base["HTTP_ORIGIN"] = origin
        return client

    def card(self, slot: int) -> VirtualCard:
        card = self.readers.card_in(slot)
        assert card is not None
        return card

    def insert(self, slot: int, persona: str) -> None:
        self.workstation.insert(slot, persona)
        self._wait_until(slot, present=True)

    def remove(self, slot: int) -> None:
        self.workstation.remove(slot)
        self._wait_until(slot, present=False)

    def _wait_until(self, slot: int, *, present: bool) -> None:
        """Until the bridge's monitor has seen the change (its views follow it)."""
        reader = self.readers.slot_names[slot]
        deadline = time.monotonic() + EVENT_TIMEOUT
        while time.monotonic() < deadline:
            known = self.cards.known_readers()
            if (reader in known) == present:
                return
            time.sleep(0.01)
        raise AssertionError(f"the bridge never saw slot {slot} present={present}")

    def challenge(self) -> str:
        return issue_challenge(self.challenges, session=SESSION, now=dt.datetime.now(dt.UTC))

    def verify(
        self, assertion: str, challenge: str, *, origin: Origin = TELESERVICE
    ) -> VerifiedLogin:
        now = dt.datetime.now(dt.UTC)
        verifier = Verifier(trust=trust_store(), revocation=crl_checker(now))
        return verifier.verify(
            assertion,
            expected_origins=(origin,),
            expected_challenge=challenge,
            session=SESSION,
            challenges_store=self.challenges,
            now=now,
        )

    def close(self) -> None:
        self.cards.stop()
        self.workstation.close()


def request_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")


def start_bridge(
    state_dir: Path,
    *,
    personas: tuple[str, ...] = ("doctor", "patient"),
    pin_idle_seconds: float = 300.0,
    **settings: Any,
) -> BridgeScene:
    workstation, readers = virtual_workstation()
    for slot, persona in enumerate(personas):
        workstation.insert(slot, persona)
    config = BridgeConfig(
        port=PORT,
        allowed_origins=(TELESERVICE,),
        pin_idle_seconds=pin_idle_seconds,
        state_dir=state_dir,
        **settings,
    )
    cards = CardService(readers, pin_idle_seconds=pin_idle_seconds, pin_entry_timeout=5).start()
    consents = ConsentStore(state_dir)
    app = create_app(config=config, cards=cards, consents=consents)
    app.test_client_class = CheckedClient
    scene = BridgeScene(workstation, readers, cards, consents, app, config)
    for slot in range(len(personas)):
        scene._wait_until(slot, present=True)
    return scene


def bridge_scene(state_dir: Path, **options: Any) -> Iterator[BridgeScene]:
    scene = start_bridge(state_dir, **options)
    try:
        yield scene
    finally:
        scene.close()


def post_json(client: FlaskClient, path: str, body: dict[str, Any]) -> TestResponse:
    return client.post(path, json=body, base_url=BRIDGE)


def get(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    return client.get(path, base_url=BRIDGE, **kwargs)
