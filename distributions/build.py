"""Build the wheels of cardauth's distributions from this repository's folders.

    python distributions/build.py --out DIR [--find-links WHEELHOUSE --offline]

One wheel per user (docs/install.md): ``cardauth`` (a teleservice's servers; the
card stack with the extra ``cards``), ``cardauth-bridge`` (a workstation) and
``cardauth-simulator`` (developers). Each distribution's pyproject.toml takes its
packages from the repository's top-level folders; the build runs on a copy of
them, so that it leaves nothing in the working tree. ``--offline`` builds with
what ``--find-links`` holds (setuptools included), as the tests do.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = ("cardauth", "bridge", "simulator")
SOURCES = ("cardauth", "webbridge", "simulator", "distributions")


def build(out: Path, *, find_links: Path | None = None, offline: bool = False) -> list[Path]:
    """The three wheels, built into ``out``."""
    out = out.resolve()  # the build runs elsewhere
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cardauth-build-") as work:
        copy = Path(work)
        for name in SOURCES:
            shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out)]
        if find_links is not None:
            command += ["--find-links", str(find_links.resolve())]
        if offline:
            command.append("--no-index")
        command += [str(copy / "distributions" / name) for name in DISTRIBUTIONS]
        subprocess.run(command, check=True, cwd=copy)  # noqa: S603 - pip, our own paths
    return sorted(out.glob("cardauth*.whl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where the wheels go")
    parser.add_argument("--find-links", type=Path, help="a folder of wheels to build with")
    parser.add_argument("--offline", action="store_true", help="use --find-links only")
    args = parser.parse_args()
    for wheel in build(args.out, find_links=args.find_links, offline=args.offline):
        print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
