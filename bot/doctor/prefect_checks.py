"""Prefect checks: the server answers, takes our credentials, runs a Prefect the bot supports (version and
features from `bot.prefect_ops.capabilities`, the same detection every read uses), and its event stream
(the watcher's wake-up signal) accepts a subscriber.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import httpx

from bot.doctor.report import Row, Status, fail, ok, warn
from bot.redact import redact
from bot.settings import Settings

__all__ = ["PrefectTarget", "check_prefect"]

GROUP = "Prefect"
TIMEOUT = 10.0


@dataclass(frozen=True)
class PrefectTarget:
    """Where the bot's Prefect client goes and what it sends, as Prefect itself resolves it."""

    url: str | None
    api_key: str | None = None
    auth_string: str | None = None
    invalid: str | None = None  # why `url` cannot be used (checked before Prefect is imported: bot.cli)

    @classmethod
    def from_prefect_settings(cls) -> PrefectTarget:
        from prefect.settings import get_current_settings

        api = get_current_settings().api
        return cls(api.url, api.key.get_secret_value() if api.key else None,
                   api.auth_string.get_secret_value() if api.auth_string else None)

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        if self.auth_string:
            return {"Authorization": "Basic " + base64.b64encode(self.auth_string.encode()).decode()}
        return {}


def _credential_names(target: PrefectTarget) -> str:
    if target.api_key:
        return "PREFECT_API_KEY"
    if target.auth_string:
        return "PREFECT_API_AUTH_STRING"
    return "PREFECT_API_KEY (Prefect Cloud) or PREFECT_API_AUTH_STRING (a server with basic auth)"


async def _reach(client: httpx.AsyncClient, target: PrefectTarget) -> tuple[list[Row], bool]:
    """Does the URL answer as a Prefect API, and take our credentials? (Version and features: below.)"""
    assert target.url is not None
    base = target.url.rstrip("/")
    try:
        response = await client.get(f"{base}/admin/version", headers=target.headers())
    except httpx.HTTPError as exc:
        return [fail(GROUP, "server", f"{redact(base)} does not answer ({type(exc).__name__})",
                     "start the Prefect server, or fix PREFECT_API_URL (it ends in /api)")], False
    if response.status_code in (401, 403):
        return [ok(GROUP, "server", f"{redact(base)} answers"),
                fail(GROUP, "auth", f"the server refused our credentials (HTTP {response.status_code})",
                     f"set {_credential_names(target)} to a value this server accepts")], False
    if response.status_code == 404:
        return [fail(GROUP, "server", f"{redact(base)} answers but is not a Prefect API (404 on /admin/version)",
                     "PREFECT_API_URL must be the API URL, ending in /api (Cloud: …/accounts/ID/workspaces/ID)")], \
            False
    if response.status_code >= 400:
        return [fail(GROUP, "server", f"{redact(base)} answered HTTP {response.status_code}",
                     "check the Prefect server's logs")], False
    try:
        response.json()
    except ValueError:
        return [fail(GROUP, "server", f"{redact(base)} answered something that is not Prefect's JSON",
                     "PREFECT_API_URL must be the API URL, ending in /api")], False
    auth = "none needed" if not target.headers() else f"{_credential_names(target)} accepted"
    return [ok(GROUP, "server", f"{redact(base)} answers"), ok(GROUP, "auth", auth)], True


async def _capabilities(target: PrefectTarget) -> list[Row]:
    """Version and features as the bot detects them for every read; a 2.x server is named as such."""
    from prefect.client.orchestration import PrefectClient

    from bot.prefect_ops.capabilities import FEATURES, UnsupportedServer, capabilities, ensure_supported
    from bot.prefect_ops.errors import PrefectOpsError

    assert target.url is not None
    try:
        async with PrefectClient(api=target.url, api_key=target.api_key, auth_string=target.auth_string) as client:
            await capabilities(client, refresh=True)
            caps = await ensure_supported(client)
    except UnsupportedServer as exc:
        return [fail(GROUP, "version", str(exc), "upgrade the server to Prefect 3, or point PREFECT_API_URL at a "
                     "Prefect 3 server")]
    except PrefectOpsError as exc:
        return [fail(GROUP, "version", f"could not read the server's version ({exc})",
                     "check the Prefect server's logs")]
    flavour = "Prefect Cloud" if caps.cloud else f"Prefect {caps.version}"
    rows = [ok(GROUP, "version", flavour)]
    lacking = [name for name in FEATURES if not caps.has(name)]  # type: ignore[arg-type]
    if not lacking:
        rows.append(ok(GROUP, "features", f"all {len(FEATURES)} the bot uses ("
                       + ", ".join(sorted(FEATURES)) + ")"))
    else:
        labels = "; ".join(f"{FEATURES[n].label} (since {FEATURES[n].since})" for n in lacking)
        newest = max((FEATURES[n].since for n in lacking), key=lambda v: tuple(int(p) for p in v.split(".")))
        rows.append(warn(GROUP, "features", f"{caps.version} lacks {labels}; the bot works around each",
                         f"upgrade the server to Prefect {newest} or later to have them all"))
    return rows


async def _events(target: PrefectTarget) -> Row:
    from prefect.events.clients import PrefectCloudEventSubscriber, PrefectEventSubscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    quiet = EventFilter(event=EventNameFilter(name=["concurrency-bot.doctor.none"]))
    subscriber = (PrefectCloudEventSubscriber(api_url=target.url, api_key=target.api_key, filter=quiet,
                                              reconnection_attempts=0) if target.api_key
                  else PrefectEventSubscriber(api_url=target.url, filter=quiet, reconnection_attempts=0))
    try:
        async with asyncio.timeout(TIMEOUT):
            async with subscriber:
                pass
    except Exception as exc:
        return warn(GROUP, "events", f"the event stream (/events/out) refused a subscriber ({type(exc).__name__})",
                    "the watcher falls back to polling; let WebSockets through any proxy in front of Prefect")
    return ok(GROUP, "events", "the event stream accepts a subscriber (the watcher wakes on events)")


async def check_prefect(settings: Settings, target: PrefectTarget | None = None) -> list[Row]:
    target = target if target is not None else PrefectTarget.from_prefect_settings()
    if target.invalid:
        return [fail(GROUP, "server", target.invalid, "set PREFECT_API_URL to your server's API, such as "
                     "http://127.0.0.1:4200/api (Cloud: https://api.prefect.cloud/api/accounts/ID/workspaces/ID)")]
    if not target.url:
        return [warn(GROUP, "server", "PREFECT_API_URL is not set: `chat` and `make run` start a local Prefect "
                     "server; `serve` has none", "set PREFECT_API_URL to your server's API (http://HOST:4200/api)")]
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        rows, reached = await _reach(client, target)
    if not reached:
        return rows
    caps_rows = await _capabilities(target)
    rows += caps_rows
    if all(r.status is not Status.FAIL for r in caps_rows):
        rows.append(await _events(target))
    return rows
