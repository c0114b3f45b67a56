"""Prefect checks: the server answers, takes our credentials, runs a Prefect the bot supports, and its
event stream (the watcher's wake-up signal) accepts a subscriber.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

import httpx

from bot.doctor.report import Row, fail, ok, warn
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


async def _version(client: httpx.AsyncClient, target: PrefectTarget) -> tuple[list[Row], str | None]:
    assert target.url is not None
    base = target.url.rstrip("/")
    try:
        response = await client.get(f"{base}/admin/version", headers=target.headers())
    except httpx.HTTPError as exc:
        return [fail(GROUP, "server", f"{redact(base)} does not answer ({type(exc).__name__})",
                     "start the Prefect server, or fix PREFECT_API_URL (it ends in /api)")], None
    if response.status_code in (401, 403):
        return [ok(GROUP, "server", f"{redact(base)} answers"),
                fail(GROUP, "auth", f"the server refused our credentials (HTTP {response.status_code})",
                     f"set {_credential_names(target)} to a value this server accepts")], None
    if response.status_code == 404:
        return [fail(GROUP, "server", f"{redact(base)} answers but is not a Prefect API (404 on /admin/version)",
                     "PREFECT_API_URL must be the API URL, ending in /api (Cloud: …/accounts/ID/workspaces/ID)")], \
            None
    if response.status_code >= 400:
        return [fail(GROUP, "server", f"{redact(base)} answered HTTP {response.status_code}",
                     "check the Prefect server's logs")], None
    try:
        version = str(response.json())
    except ValueError:
        return [fail(GROUP, "server", f"{redact(base)} answered something that is not Prefect's JSON",
                     "PREFECT_API_URL must be the API URL, ending in /api")], None
    auth = "none needed" if not target.headers() else f"{_credential_names(target)} accepted"
    return [ok(GROUP, "server", f"{redact(base)} answers"), ok(GROUP, "auth", auth)], version


def _version_row(version: str) -> Row:
    major = version.split(".", 1)[0]
    if major == "2":
        return fail(GROUP, "version", f"this is Prefect {version}; the bot needs a Prefect 3 server",
                    "upgrade the server to Prefect 3 (prefect.io/docs upgrade guide), or point PREFECT_API_URL at one")
    if major != "3":
        return warn(GROUP, "version", f"Prefect {version}: the bot is checked against Prefect 3",
                    "use a Prefect 3 server")
    return ok(GROUP, "version", f"Prefect {version}")


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
    if not target.url:
        return [warn(GROUP, "server", "PREFECT_API_URL is not set: `chat` and `make run` start a local Prefect "
                     "server; `serve` has none", "set PREFECT_API_URL to your server's API (http://HOST:4200/api)")]
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        rows, version = await _version(client, target)
    if version is None:
        return rows
    rows.append(_version_row(version))
    if version.startswith("3."):
        rows.append(await _events(target))
    return rows
