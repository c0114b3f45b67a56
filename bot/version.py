"""The bot's version and the Prefect it was checked against, for `concurrency-bot --version`.

Read from installed metadata (no Prefect import, so `--version` stays instant). The recipe book,
the verifier's facts and the tests were checked against CHECKED_PREFECT; a test keeps that in
step with the recipes' front matter and the pinned range in pyproject.toml.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["CHECKED_PREFECT", "bot_version", "installed_prefect", "version_line"]

CHECKED_PREFECT = "3.9.1"


def bot_version() -> str:
    try:
        return version("concurrency-bot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def installed_prefect() -> str | None:
    try:
        return version("prefect")
    except PackageNotFoundError:
        return None


def version_line() -> str:
    """One line; it says so when the installed Prefect differs from the checked one."""
    line = f"concurrency-bot {bot_version()} (checked against Prefect {CHECKED_PREFECT}"
    installed = installed_prefect()
    if installed != CHECKED_PREFECT:
        line += f"; installed Prefect: {installed or 'none'}"
    return line + ")"
