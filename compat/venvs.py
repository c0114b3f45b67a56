"""Build (or reuse) one virtual environment per Prefect release, with that release's holds.

Old releases no longer start with today's newest dependencies (FastAPI dropped `min_items`,
pydantic 2.10 changed validation), so each version's holds live in
`compat/constraints/prefect-<version>.txt`: a pip requirements file installed together with
`prefect==<version>`. The holds were found by starting each server and reading its traceback.
A venv is reused while its stamp (version + holds) matches; a file lock keeps two pytest
workers from building the same one at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CONSTRAINTS_DIR", "FLOOR", "MATRIX", "PINNED", "PREFECT2", "VenvBuildError", "cache_dir", "constraints_file",
    "ensure_venv", "prefect_executable", "venv_dir",
]

CONSTRAINTS_DIR = Path(__file__).resolve().parent / "constraints"
# The latest patch of every Prefect 3 minor from 3.0 on, plus the release the bot pins.
MATRIX: tuple[str, ...] = (
    "3.0.11", "3.1.15", "3.2.15", "3.3.7", "3.4.25", "3.5.0", "3.6.29", "3.7.8", "3.8.8", "3.9.1",
)
PINNED = "3.9.1"
# The oldest release the bot supports, from the compatibility run (every check works there).
FLOOR = "3.0.11"
PREFECT2 = "2.20.16"
BUILD_TIMEOUT = 900


class VenvBuildError(RuntimeError):
    """pip could not build the environment; the message carries pip's last lines."""


def cache_dir() -> Path:
    root = os.environ.get("CONCURRENCY_BOT_CACHE") or Path.home() / ".cache" / "concurrency-bot"
    return Path(root).expanduser()


def venv_dir(version: str) -> Path:
    return cache_dir() / f"prefect-{version}"


def constraints_file(version: str) -> Path:
    return CONSTRAINTS_DIR / f"prefect-{version}.txt"


def prefect_executable(version: str) -> Path:
    return venv_dir(version) / "bin" / "prefect"


def _stamp(version: str) -> str:
    path = constraints_file(version)
    holds = path.read_bytes() if path.exists() else b""
    return hashlib.sha256(version.encode() + b"\0" + holds).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_built(version: str) -> bool:
    stamp = venv_dir(version) / ".cbot-stamp"
    return stamp.exists() and stamp.read_text().strip() == _stamp(version) and prefect_executable(version).exists()


def ensure_venv(version: str, log=None) -> Path:
    """The venv for `version`, built on first use; returns its `prefect` executable."""
    target = venv_dir(version)
    with _locked(cache_dir() / f".prefect-{version}.lock"):
        if is_built(version):
            return prefect_executable(version)
        if target.exists():
            subprocess.run(["rm", "-rf", str(target)], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
        pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", f"prefect=={version}"]
        holds = constraints_file(version)
        if holds.exists():
            pip += ["-r", str(holds)]
        if log:
            log(f"building {target} ({' '.join(pip[4:])})")
        result = subprocess.run(pip, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise VenvBuildError(f"pip could not install prefect=={version}: {tail}")
        (target / ".cbot-stamp").write_text(_stamp(version) + "\n")
        return prefect_executable(version)


def main(argv: list[str] | None = None) -> int:
    """`python -m compat.venvs [VERSION ...]`: build the venvs (all of the matrix and 2.x by default)."""
    versions = (argv if argv is not None else sys.argv[1:]) or [*MATRIX, PREFECT2]
    failed = 0
    for version in versions:
        try:
            path = ensure_venv(version, log=print)
            print(f"{version}: {path}")
        except (VenvBuildError, subprocess.SubprocessError) as exc:
            failed += 1
            print(f"{version}: FAILED {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
