"""CRLs are read again in the background when their files change, and swapped in
whole: a verification never waits for a refresh that is parsing, a file that does
not load keeps the CRLs in use, and what is swapped in is obeyed at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask

from cardauth.errors import AssertionRefused
from cardauth.flask import CardAuth
from cardauth.revocation import (
    DEFAULT_CRL_REFRESH,
    CrlRefresher,
    RevocationList,
    load_revocation_lists,
    policy_from_settings,
    refresh_in_background,
)
from cardauth.trust import TrustConfigError
from cardauth.verify import Verifier
from simulator.personas import load_cps
from simulator.pki import simulator_pki
from simulator.trust_export import export_trust
from tests.verifier_kit import NOW, Forge, Scene

WAIT = 10.0  # seconds: every wait below is bounded by this, none is a timing


@pytest.fixture
def trust_dir(tmp_path: Path) -> Path:
    export_trust(tmp_path, now=NOW)
    return tmp_path


def _login(verifier: Verifier) -> object:
    scene = Scene(verifier)
    return scene.verify(Forge().assertion(scene.challenge))


def _revoke_the_doctor(trust_dir: Path) -> None:
    """Publish a CRL of the CPS CA that lists the doctor's card."""
    pki = simulator_pki()
    doctor = load_cps("doctor")
    revoked = dataclasses.replace(
        doctor,
        certificate=dataclasses.replace(
            doctor.certificate, revoked_on=(NOW - dt.timedelta(days=1)).date()
        ),
    )
    crl = pki.crl(pki.cps_ca, NOW, personas=[revoked])
    path = trust_dir / "crls" / f"{pki.cps_ca.slug}.crl"
    path.write_bytes(crl.public_bytes(Encoding.DER))
    _touch_later(path)


def _touch_later(path: Path) -> None:
    """Make the change visible even on a file system with coarse times."""
    later = path.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(later, later))


def test_a_verification_completes_while_a_slow_refresh_is_parsing(trust_dir: Path) -> None:
    """The loader is held in the middle of its work (as parsing 100,000 entries
    would hold it); meanwhile a new card is verified, revocation included, and only
    then is the refresh let go and its CRLs swapped in."""
    verifier = Verifier.from_directory(trust_dir)
    fresh = load_revocation_lists(trust_dir / "crls")
    parsing, release = threading.Event(), threading.Event()

    def slow_load(directory: Path) -> Sequence[RevocationList]:
        parsing.set()
        if not release.wait(WAIT):
            raise TimeoutError("the test never released the loader")
        return fresh

    refresher = CrlRefresher(
        verifier.revocation, trust_dir / "crls", every=dt.timedelta(hours=1), load=slow_load
    )
    outcome: dict[str, bool] = {}
    thread = threading.Thread(target=lambda: outcome.update(replaced=refresher.refresh()))
    thread.start()
    try:
        assert parsing.wait(WAIT)
        before = verifier.revocation.crls
        assert _login(verifier) is not None  # a card never seen: the whole check
        assert thread.is_alive()
        assert not release.is_set()
        assert verifier.revocation.crls is before
    finally:
        release.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert outcome == {"replaced": True}
    assert verifier.revocation.crls is not before


def test_crls_are_read_again_only_when_their_files_change(trust_dir: Path) -> None:
    verifier = Verifier.from_directory(trust_dir)
    loads: list[Path] = []

    def counting_load(directory: Path) -> Sequence[RevocationList]:
        loads.append(directory)
        return load_revocation_lists(directory)

    refresher = CrlRefresher(
        verifier.revocation, trust_dir / "crls", every=dt.timedelta(hours=1), load=counting_load
    )
    assert refresher.refresh()  # the first look reads them: they may have changed since
    assert not refresher.refresh()
    assert len(loads) == 1
    _login(verifier)
    assert len(verifier.cache) == 1
    _revoke_the_doctor(trust_dir)
    assert refresher.refresh()
    assert len(loads) == 2
    with pytest.raises(AssertionRefused) as refused:  # the kept verdict is not used
        _login(verifier)
    assert refused.value.code == "revocation.revoked"


def test_a_crl_file_that_does_not_load_keeps_the_crls_in_use(
    trust_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = Verifier.from_directory(trust_dir)
    refresher = CrlRefresher(verifier.revocation, trust_dir / "crls", every=dt.timedelta(hours=1))
    refresher.refresh()
    in_use = verifier.revocation.crls
    broken = trust_dir / "crls" / "half-written.crl"
    broken.write_bytes(b"\x30\x82\x10\x00\x30")
    with caplog.at_level(logging.WARNING, logger="cardauth.revocation"):
        assert not refresher.refresh()
    assert verifier.revocation.crls is in_use
    assert "half-written.crl" in caplog.text
    assert _login(verifier) is not None
    pki = simulator_pki()
    broken.write_bytes(pki.crl(pki.vitale_ca, NOW).public_bytes(Encoding.DER))  # now whole
    _touch_later(broken)
    assert refresher.refresh()  # tried again at the next look, and read this time
    assert verifier.revocation.crls is not in_use


def test_the_background_thread_picks_up_a_new_crl_and_stops_when_closed(
    trust_dir: Path,
) -> None:
    verifier = Verifier.from_directory(trust_dir)
    refresher = CrlRefresher(
        verifier.revocation, trust_dir / "crls", every=dt.timedelta(milliseconds=20)
    ).start()
    assert refresher.running
    try:
        _wait_for_a_new_set(verifier)  # the first look
        _revoke_the_doctor(trust_dir)
        _wait_for_a_new_set(verifier)
        with pytest.raises(AssertionRefused) as refused:
            _login(verifier)
        assert refused.value.code == "revocation.revoked"
    finally:
        refresher.close(timeout=WAIT)
    assert not refresher.running


def _wait_for_a_new_set(verifier: Verifier) -> None:
    before = verifier.revocation.crls
    deadline = time.monotonic() + WAIT
    while verifier.revocation.crls is before:
        assert time.monotonic() < deadline, "no refresh within the bounded wait"
        time.sleep(0.01)


def test_the_refresh_pace_comes_from_trust_toml() -> None:
    assert policy_from_settings({}).crl_refresh == DEFAULT_CRL_REFRESH
    assert policy_from_settings({"crl_refresh_seconds": 60}).crl_refresh == dt.timedelta(seconds=60)
    for wrong in (-1, math.nan, 86_401, True, "60"):
        with pytest.raises(TrustConfigError):
            policy_from_settings({"crl_refresh_seconds": wrong})


def test_no_thread_when_the_refresh_is_turned_off(trust_dir: Path) -> None:
    settings = (trust_dir / "trust.toml").read_text()
    (trust_dir / "trust.toml").write_text(
        settings.replace("[revocation]", "[revocation]\ncrl_refresh_seconds = 0")
    )
    verifier = Verifier.from_directory(trust_dir)
    assert refresh_in_background(verifier.revocation, trust_dir / "crls") is None


def test_the_flask_extension_refreshes_the_crls_of_its_trust_directory(trust_dir: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        CARDAUTH_ORIGINS=["https://teleservice.example"],
        CARDAUTH_TRUST_DIR=str(trust_dir),
    )
    extension = CardAuth(app)
    try:
        assert extension.crl_refresher is not None
        assert extension.crl_refresher.refresh() is True  # the first look reads them
    finally:
        if extension.crl_refresher is not None:
            extension.crl_refresher.close(timeout=WAIT)
