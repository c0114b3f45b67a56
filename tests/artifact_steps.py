"""How the bot is built, installed and started: the steps CI runs and the Dockerfile must match.

tests/test_installed_artifact.py runs them for real; tests/test_dockerfile.py checks that the
Dockerfile's build, install and run lines are these same steps.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `python -m build --outdir DIST .`: an sdist, then the wheel built from that sdist, so anything
# the sdist forgets (prompts/) is missing from the wheel too.
BUILD = ("python", "-m", "build", "--outdir")
# `pip install WHEEL`: a real install of the wheel and its dependencies (no -e, no source tree).
INSTALL = ("pip", "install")
SERVE = ("concurrency-bot", "serve", "--port")
DEFAULT_PORT = "3000"
HEALTH_PATH = "/healthz"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def build_wheel(dist: Path) -> Path:
    """BUILD run with this interpreter; returns the one wheel it wrote."""
    subprocess.run([sys.executable, *BUILD[1:], str(dist), str(ROOT)], check=True, capture_output=True,
                   text=True, timeout=600)
    [wheel] = dist.glob("*.whl")
    return wheel


@dataclass(frozen=True)
class Runner:
    """Who runs the installed bot: `nobody` when we are root, else us with a read-only install."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def unprivileged(cls) -> Runner:
        if os.geteuid() != 0:
            return cls()
        nobody = pwd.getpwnam("nobody")
        return cls(nobody.pw_uid, nobody.pw_gid)

    @property
    def drops_to_nobody(self) -> bool:
        return self.uid is not None

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(argv, **self._as_user(), **kwargs)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(argv, **self._as_user(), **kwargs)

    def _as_user(self) -> dict:
        return {"user": self.uid, "group": self.gid, "extra_groups": []} if self.drops_to_nobody else {}

    def give(self, path: Path) -> None:
        """Make a folder the runner's own (its home and data folder)."""
        if self.drops_to_nobody:
            os.chown(path, self.uid, self.gid)


def base_python(runner: Runner) -> str:
    """An interpreter the runner may execute. Root's own Python can live under /root (mode 0700),
    which `nobody` cannot enter; then a system Python of the same minor version or newer is used."""
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}") or "",
                  "/usr/bin/python3"]
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            probe = runner.run([candidate, "-c", "import sys, venv; assert sys.version_info >= (3, 11)"],
                               capture_output=True, cwd="/")
        except PermissionError:  # the runner may not even execute it
            continue
        if probe.returncode == 0:
            return candidate
    raise RuntimeError(f"no Python >= 3.11 that the runner can execute among {candidates}")


def fresh_venv(path: Path, runner: Runner) -> Path:
    """A new venv without pip (this interpreter's pip installs into it); returns its python."""
    subprocess.run([base_python(runner), "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    path.chmod(0o755)
    return path / "bin" / "python"


def install(wheel: Path, python: Path) -> subprocess.CompletedProcess:
    """INSTALL into the venv of `python`, with pip's cache on: a real install, dependencies and all."""
    return subprocess.run([sys.executable, "-m", *INSTALL[:1], "--python", str(python), *INSTALL[1:], "-q",
                           str(wheel)], capture_output=True, text=True, timeout=900)


def make_read_only(path: Path) -> None:
    """For a runner that is not root: take away write permission, as `nobody` lacks it on root's files."""
    for folder, _dirs, files in os.walk(path):
        for name in files:
            item = Path(folder, name)
            if not item.is_symlink():
                item.chmod(item.stat().st_mode & ~0o222)
        Path(folder).chmod(Path(folder).stat().st_mode & ~0o222)
