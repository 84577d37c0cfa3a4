"""Each user installs what they need, and nothing else: the three wheels
(distributions/), built from this tree, each installed in a fresh virtual
environment, offline, from the wheels scripts/setup.sh gathered (.venv/wheelhouse).

- a teleservice's server: ``cardauth`` has the verifier, the Flask extension and
  cardauth-verifier, and neither pyscard, pycryptodome, the bridge nor the simulator
  and its test PKI; the card and signature commands say what to install;
  ``cardauth[oidc]`` adds the OpenID Connect provider (Authlib) and
  ``cardauth[signing]`` finishes signatures (pyHanko), both still without pyscard;
- a workstation: ``cardauth-bridge`` has the bridge and the card stack, not the
  simulator; ``--simulate`` says what to install;
- a developer's bench: ``cardauth-simulator`` adds the virtual cards, which the
  commands find through its entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import cardauth
from distributions.build import DISTRIBUTIONS, build
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / ".venv" / "wheelhouse"
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 60.0


@dataclass
class Install:
    """A fresh virtual environment with some of cardauth's distributions."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("PYTHON")
        }
        environment["CARDAUTH_LANG"] = "en"
        return subprocess.run(
            [str(self.bin / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env=environment,
            cwd=self.root,  # never the repository: its folders would be importable
            check=False,
        )

    def importable(self, *modules: str) -> dict[str, bool]:
        probe = (
            "import importlib.util, json, sys; print(json.dumps({m: "
            "importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
        )
        answer = self.run("python", "-c", probe, *modules)
        assert answer.returncode == 0, answer.stderr
        found: dict[str, bool] = json.loads(answer.stdout)
        return found


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert WHEELHOUSE.is_dir(), f"{WHEELHOUSE} missing: run scripts/setup.sh"
    out = tmp_path_factory.mktemp("wheels")
    built = build(out, find_links=WHEELHOUSE, offline=True)
    assert len(built) == len(DISTRIBUTIONS)
    return out


def install(folder: Path, wheels: Path, *requirements: str) -> Iterator[Install]:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=INSTALL_TIMEOUT)
    target = Install(folder)
    subprocess.run(
        [
            str(target.bin / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(wheels),
            "--find-links",
            str(WHEELHOUSE),
            *requirements,
        ],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    yield target


@pytest.fixture(scope="module")
def teleservice(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Iterator[Install]:
    yield from install(tmp_path_factory.mktemp("teleservice"), wheels, "cardauth")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Iterator[Install]:
    yield from install(tmp_path_factory.mktemp("provider"), wheels, "cardauth[oidc]")


@pytest.fixture(scope="module")
def signing_teleservice(
    tmp_path_factory: pytest.TempPathFactory, wheels: Path
) -> Iterator[Install]:
    yield from install(tmp_path_factory.mktemp("signing"), wheels, "cardauth[signing]")


@pytest.fixture(scope="module")
def workstation(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Iterator[Install]:
    yield from install(tmp_path_factory.mktemp("workstation"), wheels, "cardauth-bridge")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, wheels: Path) -> Iterator[Install]:
    yield from install(
        tmp_path_factory.mktemp("bench"), wheels, "cardauth-bridge", "cardauth-simulator"
    )


def test_a_teleservice_gets_the_verifier_and_nothing_of_the_workstation(
    teleservice: Install,
) -> None:
    found = teleservice.importable(
        "cardauth.verify", "cardauth.flask", "cardauth.verifier_service", "flask", "waitress",
        "smartcard", "Crypto", "webbridge", "simulator", "flask_limiter",
    )  # fmt: skip
    assert found == {
        "cardauth.verify": True,
        "cardauth.flask": True,
        "cardauth.verifier_service": True,
        "flask": True,
        "waitress": True,
        "smartcard": False,  # pyscard: no compiler, no PC/SC on a server
        "Crypto": False,  # pycryptodome: the simulator's
        "webbridge": False,
        "simulator": False,  # nor its test PKI, whose keys anyone can derive
        "flask_limiter": False,
    }
    assert teleservice.run("cardauth-verifier", "--help").returncode == 0
    assert not (teleservice.bin / "cardauth-bridge").exists()
    assert not (teleservice.bin / "cardauth-sim").exists()


def test_a_teleservice_s_identity_provider_gets_authlib_and_no_card_stack(
    provider: Install,
) -> None:
    found = provider.importable("cardauth.oidc.app", "authlib", "limits", "smartcard", "simulator")
    assert found == {
        "cardauth.oidc.app": True,
        "authlib": True,
        "limits": True,
        "smartcard": False,
        "simulator": False,
    }
    assert provider.run("cardauth-oidc", "--help").returncode == 0
    made = provider.run("cardauth-oidc", "keys", "init", "--keys", "keys.json")
    assert made.returncode == 0, made.stderr
    assert made.stdout.count("signs from") == 2  # an RS256 key and an ES256 key
    # its login page's script is the bridge's client, shipped in the wheel as a file
    probe = (
        "import importlib.resources as r; "
        "print(len((r.files('cardauth') / 'oidc' / 'static' / 'cardauth.js').read_bytes()))"
    )
    size = provider.run("python", "-c", probe)
    assert size.returncode == 0, size.stderr
    assert int(size.stdout) > 10_000


def test_a_card_command_on_a_teleservice_says_what_to_install(teleservice: Install) -> None:
    refused = teleservice.run("cardauth", "readers")
    assert refused.returncode == 1
    assert "[install.part_missing]" in refused.stderr
    assert "pip install 'cardauth[cards]'" in refused.stderr


def test_a_signature_command_without_the_signing_extra_says_what_to_install(
    teleservice: Install,
) -> None:
    assert teleservice.importable("pyhanko", "cardauth.signing") == {
        "pyhanko": False,
        "cardauth.signing": True,  # the package is there; its dependencies are the extra's
    }
    refused = teleservice.run("cardauth", "verify-signature", "signed.pdf", "--trust", "trust")
    assert refused.returncode == 1
    assert "[install.part_missing]" in refused.stderr
    assert "pip install 'cardauth[signing]'" in refused.stderr


def test_a_teleservice_with_the_signing_extra_finishes_signatures_without_pyscard(
    signing_teleservice: Install,
) -> None:
    probe = (
        "import sys, cardauth.signing.deferred, cardauth.signing.verification; "
        "print('smartcard' in sys.modules)"
    )
    answer = signing_teleservice.run("python", "-c", probe)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "False"
    assert signing_teleservice.importable("smartcard", "pyhanko") == {
        "smartcard": False,
        "pyhanko": True,
    }


def test_a_workstation_gets_the_bridge_and_the_card_stack_not_the_simulator(
    workstation: Install,
) -> None:
    found = workstation.importable("webbridge", "smartcard", "flask_limiter", "simulator", "Crypto")
    assert found == {
        "webbridge": True,
        "smartcard": True,
        "flask_limiter": True,
        "simulator": False,
        "Crypto": False,
    }
    assert workstation.run("cardauth-bridge", "--help").returncode == 0
    # Refused before it listens: the port is never taken.
    refused = workstation.run("cardauth-bridge", "--simulate", "--port", str(free_port()))
    assert refused.returncode == 1
    assert "pip install 'cardauth-simulator'" in refused.stderr
    refused = workstation.run("cardauth", "--simulate", "readers")
    assert "pip install 'cardauth-simulator'" in refused.stderr


def test_a_bench_finds_the_simulator_through_its_entry_point(bench: Install) -> None:
    listed = bench.run("cardauth", "--simulate", "readers", "--json")
    assert listed.returncode == 0, listed.stderr
    readers = json.loads(listed.stdout)["readers"]
    assert [reader["card_present"] for reader in readers] == [True, True]
    assert bench.run("cardauth-sim", "--help").returncode == 0


def test_every_distribution_is_of_cardauth_s_version() -> None:
    for name in DISTRIBUTIONS:
        project = tomllib.loads(
            (ROOT / "distributions" / name / "pyproject.toml").read_text(encoding="utf-8")
        )["project"]
        pinned = [d for d in project.get("dependencies", []) if d.startswith("cardauth")]
        assert all(d.endswith(f"=={cardauth.__version__}") for d in pinned), (name, pinned)
