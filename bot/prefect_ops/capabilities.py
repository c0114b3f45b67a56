"""What the connected Prefect server can do, read from the server itself, once, and cached.

Teams run whatever Prefect they installed months ago, so nothing here assumes the release the bot
pins. The server's version (`GET /admin/version`) and the routes and request fields it serves
(`GET /openapi.json`) are read once per API URL and kept. They are read again when the version
check finds another release (a restart into an upgrade; re-checked at most every
`RECHECK_SECONDS`), when the server could not be reached (it may come back as something else), or
when a route the document listed answers 404 (`forget`).

Each read in prefect_ops asks `has(feature)` and picks the native route or a fallback computing
the same figure; each write the bot cannot make on this server is refused with `missing(feature)`,
a sentence in the shape "your server, 3.4.25, has no X: upgrade to 3.6.23, or do Y instead".
A Prefect 2 server, or something that is not Prefect at all, is refused in one line
(`UnsupportedServer`) before any read is tried.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from bot.prefect_ops.errors import PrefectOpsError, PrefectUnavailable, api_url_of

__all__ = [
    "FEATURES", "Capabilities", "Feature", "FeatureName", "UnsupportedServer", "cached", "capabilities", "cloud_ui_url",
    "ensure_supported", "forget", "is_cloud_url", "known_state", "refusal",
]

RECHECK_SECONDS = 60.0
READ_TIMEOUT = 15.0
FeatureName = Literal[
    "pool_concurrency_status", "queue_concurrency_status", "tag_limits_as_global", "slot_leases",
    "flow_labels", "deployment_limits", "deployment_grace_period", "events",
]


@dataclass(frozen=True)
class Feature:
    """One thing a server may lack: how it is detected, since when Prefect has it, what to do instead."""

    name: FeatureName
    label: str
    since: str
    instead: str
    route: tuple[str, str] | None = None  # (METHOD, path template) as the OpenAPI document lists it
    schema_field: tuple[str, str] | None = None  # (schema, property) the server must accept
    min_version: str | None = None  # only when neither a route nor a field tells (a storage change)


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("pool_concurrency_status", "work pool concurrency status (`prefect work-pool slots`)", "3.6.23",
            "count the pool's PENDING and RUNNING flow runs (the bot does this for you)",
            route=("POST", "/work_pools/{name}/concurrency_status")),
    Feature("queue_concurrency_status", "work queue concurrency status (`prefect work-queue slots`)", "3.6.23",
            "count the queue's PENDING, RUNNING and CANCELLING flow runs (the bot does this for you)",
            route=("POST", "/work_queues/{id}/concurrency_status")),
    Feature("tag_limits_as_global", "tag limits backed by `tag:<tag>` global limits", "3.4.19",
            "manage tag limits with `prefect concurrency-limit create|inspect|reset|delete` "
            "(the bot reads and writes them there)",
            min_version="3.4.19"),
    Feature("slot_leases", "concurrency slot leases", "3.4.0",
            "free stuck global-limit slots with `prefect gcl update NAME --active-slots 0`",
            route=("POST", "/v2/concurrency_limits/increment-with-lease")),
    Feature("flow_labels", "labels on flows", "3.1",
            "create flows without labels (the bot's demo does)",
            schema_field=("FlowCreate", "labels")),
    Feature("deployment_limits", "deployment concurrency limits", "3.0",
            "limit the deployment's work queue instead (`prefect work-queue set-concurrency-limit`)",
            schema_field=("DeploymentUpdate", "concurrency_options")),
    Feature("deployment_grace_period", "grace periods on deployment limits", "3.6.6",
            "set the deployment limit without a grace period",
            schema_field=("ConcurrencyOptions", "grace_period_seconds")),
    Feature("events", "the events API", "3.0",
            "look at the run's state history in the UI instead",
            route=("POST", "/events/filter")),
)}

_CLOUD_PATH = re.compile(r"/api/accounts/(?P<account>[^/]+)/workspaces/(?P<workspace>[^/]+)/?$")


class UnsupportedServer(PrefectOpsError):
    """The server is Prefect 2, or not Prefect at all: every front end shows this one line."""


def is_cloud_url(api_url: str) -> bool:
    """Prefect Cloud's shape: the API lives under /api/accounts/{account}/workspaces/{workspace}."""
    return _CLOUD_PATH.search(api_url.split("?", 1)[0]) is not None


def cloud_ui_url(api_url: str) -> str | None:
    """The UI base for a Cloud-shaped API URL (`…/account/{a}/workspace/{w}`), else None.

    Cloud's UI is on app.prefect.cloud for api.prefect.cloud; any other host (a proxy, a test
    double) keeps its own host, so links stay on the server that answered.
    """
    match = _CLOUD_PATH.search(api_url.split("?", 1)[0])
    if match is None:
        return None
    base = api_url[: match.start()]
    base = base.replace("://api.prefect.cloud", "://app.prefect.cloud")
    return f"{base}/account/{match['account']}/workspace/{match['workspace']}"


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@dataclass
class Capabilities:
    """The connected server's version and routes; `has` and `missing` answer per feature."""

    api_url: str
    version: str
    routes: frozenset[tuple[str, str]] = frozenset()
    fields: dict[str, frozenset[str]] = field(default_factory=dict)
    cloud: bool = False
    routes_known: bool = True  # False when the OpenAPI document could not be read: assume the newest
    checked_at: float = field(default_factory=time.monotonic)
    _patterns: list[tuple[str, re.Pattern[str]]] | None = field(default=None, repr=False)

    @property
    def parsed(self) -> Version | None:
        return _version(self.version)

    def at_least(self, version: str) -> bool:
        mine = self.parsed
        return True if mine is None else mine >= Version(version)

    def has(self, name: FeatureName) -> bool:
        feature = FEATURES[name]
        if self.cloud and not self.routes_known:
            return True  # Cloud runs the newest Prefect
        if feature.route is not None:
            return feature.route in self.routes if self.routes_known else self.at_least(feature.since)
        if feature.schema_field is not None:
            schema, prop = feature.schema_field
            if schema in self.fields:
                return prop in self.fields[schema]
            return self.at_least(feature.since)
        return self.at_least(feature.min_version or feature.since)

    def lists(self, method: str, path: str) -> bool:
        """Whether the OpenAPI document listed this route (False when the document was not read)."""
        return self.routes_known and (method.upper(), path) in self.routes

    def serves(self, method: str, path: str) -> bool | None:
        """Whether a listed route template matches this concrete path (None: routes not known).

        Used to tell a route the server lacks from a name its router could not place: a path that
        fits a listed template is about an object, whatever the 404 body says.
        """
        if not self.routes_known:
            return None
        if self._patterns is None:
            self._patterns = [(m, re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(t)) + "/?"))
                              for m, t in self.routes]
        return any(m == method.upper() and pattern.fullmatch(path) for m, pattern in self._patterns)

    def missing(self, name: FeatureName) -> str | None:
        """None when the server has the feature, else what it lacks and what to do instead."""
        if self.has(name):
            return None
        feature = FEATURES[name]
        return (f"your server, {self.version}, has no {feature.label}: upgrade to Prefect {feature.since}, "
                f"or {feature.instead}")

    def summary(self) -> dict[str, Any]:
        """Plain data for `doctor` and /healthz: version, flavour, and each feature present or not."""
        return {"version": self.version, "cloud": self.cloud,
                "features": {name: self.has(name) for name in FEATURES}}


_CACHE: dict[str, Capabilities] = {}
_REFUSED: dict[str, str] = {}  # API URL -> the one line a non-Prefect server got
_LOCKS: dict[str, asyncio.Lock] = {}


def cached(api_url: str) -> Capabilities | None:
    """What is known about a server without asking it (None before the first read)."""
    return _CACHE.get(api_url.rstrip("/"))


def cached_for_request(url: str) -> tuple[Capabilities, str] | None:
    """The known server a request URL went to, and the request's path below its API URL."""
    for api_url in sorted(_CACHE, key=len, reverse=True):
        if url.startswith(api_url + "/"):
            return _CACHE[api_url], url[len(api_url):]
    return None


def forget(api_url: str) -> None:
    """Drop what is known about a server (it restarted, or a listed route answered 404)."""
    _CACHE.pop(api_url.rstrip("/"), None)


def _http(client: Any) -> Any:
    """The client's own httpx client: it carries the base URL and the Cloud API key header."""
    return client._client


async def _get(client: Any, path: str) -> Any:
    import httpx

    try:
        return await _http(client).get(path, timeout=READ_TIMEOUT)
    except httpx.HTTPStatusError as exc:  # Prefect's httpx client raises on 4xx/5xx itself
        return exc.response
    except (httpx.TransportError, httpx.TimeoutException) as exc:
        raise PrefectUnavailable(f"cannot reach the Prefect API at {api_url_of(client)} ({type(exc).__name__})") \
            from exc


def _not_prefect(url: str, why: str) -> UnsupportedServer:
    return UnsupportedServer(
        f"the server at {url} does not answer as a Prefect API ({why}); the bot needs a Prefect 3 server"
    )


async def _read_version(client: Any, url: str, cloud: bool) -> str:
    response = await _get(client, "/admin/version")
    if response.status_code >= 500:
        raise PrefectUnavailable(f"the Prefect API at {url} failed with HTTP {response.status_code}")
    if response.status_code != 200:
        if cloud:
            return "cloud"
        raise _not_prefect(url, f"GET /admin/version answered HTTP {response.status_code}")
    try:
        version = response.json()
    except ValueError:
        version = None
    if not isinstance(version, str) or _version(version) is None:
        raise _not_prefect(url, "GET /admin/version did not answer a version")
    return version


async def _read_routes(client: Any) -> tuple[frozenset[tuple[str, str]], dict[str, frozenset[str]], bool]:
    response = await _get(client, "/openapi.json")
    try:
        document = response.json() if response.status_code == 200 else None
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        return frozenset(), {}, False
    routes = frozenset(
        (method.upper(), path) for path, ops in document["paths"].items() if isinstance(ops, dict) for method in ops
    )
    schemas = (document.get("components") or {}).get("schemas") or {}
    wanted = {f.schema_field[0] for f in FEATURES.values() if f.schema_field}
    fields = {
        name: frozenset((schemas[name].get("properties") or {}).keys())
        for name in wanted if isinstance(schemas.get(name), dict)
    }
    return routes, fields, True


async def capabilities(client: Any, *, refresh: bool = False) -> Capabilities:
    """The connected server's capabilities (cached per API URL; see the module docstring)."""
    url = api_url_of(client).rstrip("/")
    lock = _LOCKS.setdefault(url, asyncio.Lock())
    async with lock:
        known = None if refresh else _CACHE.get(url)
        if known is not None and time.monotonic() - known.checked_at < RECHECK_SECONDS:
            return known
        cloud = is_cloud_url(url)
        try:
            version = await _read_version(client, url, cloud)
        except PrefectUnavailable:
            forget(url)
            raise
        except UnsupportedServer as exc:
            _REFUSED[url] = str(exc)
            raise
        _REFUSED.pop(url, None)
        if known is not None and known.version == version:
            known.checked_at = time.monotonic()
            return known
        routes, fields, routes_known = await _read_routes(client)
        found = Capabilities(api_url=url, version=version, routes=routes, fields=fields, cloud=cloud,
                             routes_known=routes_known)
        _CACHE[url] = found
        return found


def refusal(caps: Capabilities) -> str | None:
    """The one line for a server the bot cannot work with, else None."""
    parsed = caps.parsed
    if parsed is not None and parsed.major < 3:
        return f"this is Prefect {caps.version}; the bot needs a Prefect 3 server"
    return None


def known_state(api_url: str | None = None) -> dict[str, Any] | None:
    """What the last read found, without asking the server (for /healthz and the Home tab).

    `api_url` None means the one server this process has read, if it read exactly one.
    """
    urls = [api_url.rstrip("/")] if api_url else list({*_CACHE, *_REFUSED})
    if len(urls) != 1:
        return None
    url = urls[0]
    if url in _REFUSED:
        return {"api_url": url, "supported": False, "problem": _REFUSED[url]}
    caps = _CACHE.get(url)
    if caps is None:
        return None
    problem = refusal(caps)
    return {"api_url": url, "supported": problem is None, "problem": problem, **caps.summary()}


async def ensure_supported(client: Any) -> Capabilities:
    """The server's capabilities, or UnsupportedServer when it is not a Prefect 3 server."""
    caps = await capabilities(client)
    problem = refusal(caps)
    if problem is not None:
        raise UnsupportedServer(problem)
    return caps
