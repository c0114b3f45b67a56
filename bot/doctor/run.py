"""Run every group of checks at once, each with a time limit, into one Report in a fixed order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from bot.doctor.report import GROUPS, Report, Row, fail
from bot.settings import Settings

__all__ = ["diagnose", "diagnose_environment"]

log = logging.getLogger(__name__)
GROUP_TIMEOUT = 90.0


async def _guarded(group: str, check: Awaitable[list[Row]], timeout: float) -> list[Row]:
    """A check that hangs or breaks becomes a ✗ row of its group, never a traceback."""
    try:
        async with asyncio.timeout(timeout):
            return await check
    except TimeoutError:
        return [fail(group, "checks", f"no answer within {timeout:g} s", "check that the service is reachable")]
    except Exception as exc:
        log.exception("doctor: the %s checks failed", group)
        return [fail(group, "checks", f"the check itself failed ({type(exc).__name__})",
                     "run `concurrency-bot doctor` again; report it with the log if it persists")]


async def diagnose(settings: Settings | None = None, env: Mapping[str, str] | None = None,
                   env_file: Path | None = Path(".env"), prefect: object | None = None,
                   skip: tuple[str, ...] = (), timeout: float = GROUP_TIMEOUT) -> Report:
    """Every check. `settings=None` reads and checks the environment like `serve` would; `prefect` is a
    PrefectTarget (default: what Prefect's own settings say); `skip` leaves groups out."""
    if settings is None:
        return (await diagnose_environment(env, env_file, prefect, skip, timeout))[1]
    return await _run(settings, check_settings_given(settings), prefect, skip, timeout)


async def diagnose_environment(env: Mapping[str, str] | None = None, env_file: Path | None = Path(".env"),
                               prefect: object | None = None, skip: tuple[str, ...] = (),
                               timeout: float = GROUP_TIMEOUT) -> tuple[Settings, Report]:
    """The settings read from the environment (a bad value replaced by its default) and the report."""
    from bot.doctor.settings_checks import check_settings

    settings, settings_rows = check_settings(env, env_file)
    return settings, await _run(settings, settings_rows, prefect, skip, timeout)


async def _run(settings: Settings, settings_rows: list[Row], prefect: object | None, skip: tuple[str, ...],
               timeout: float) -> Report:
    from bot.doctor.model_checks import check_model
    from bot.doctor.prefect_checks import check_prefect
    from bot.doctor.slack_checks import check_slack
    from bot.doctor.store_checks import check_store

    checks: dict[str, Callable[[], Awaitable[list[Row]]]] = {
        "Slack": lambda: check_slack(settings),
        "Prefect": lambda: check_prefect(settings, prefect),  # type: ignore[arg-type]
        "Model": lambda: check_model(settings),
        "Store": lambda: check_store(settings),
    }
    wanted = [g for g in GROUPS[1:] if g not in skip]
    results = await asyncio.gather(*(_guarded(g, checks[g](), timeout) for g in wanted))
    rows = [] if "Settings" in skip else list(settings_rows)
    for group_rows in results:
        rows += group_rows
    return Report(rows)


def check_settings_given(settings: Settings) -> list[Row]:
    """Settings already built (serve, tests): only the combination checks apply."""
    from bot.doctor.report import ok
    from bot.doctor.settings_checks import combination_rows

    return combination_rows(settings) or [ok("Settings", "settings", "parse, no conflicts")]
