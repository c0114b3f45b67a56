"""The few errors prefect_ops raises. Foreign errors (httpx, Prefect) are translated here, once.

Callers (tools, commands) catch `PrefectOpsError` and show its message: it is written for people
and names what was missing, or which API could not be reached.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import httpx
from prefect.exceptions import ObjectNotFound

from bot.redact import shown_url

P = ParamSpec("P")
T = TypeVar("T")


class PrefectOpsError(Exception):
    """Base of every error raised by prefect_ops; its message is fit to show a user."""


class NotFound(PrefectOpsError):
    """The named object does not exist; the message lists the nearest or existing names."""

    def __init__(self, what: str, name: str, known: Sequence[str] = (), noun: str | None = None) -> None:
        self.what, self.name, self.known = what, name, list(known)
        message = f"no {what} named `{name}`"
        if self.known:
            shown = ", ".join(self.known[:10]) + (", …" if len(self.known) > 10 else "")
            message += f"; {noun or what + 's'} are: {shown}"
        else:
            message += f"; there are no {noun or what + 's'}"
        super().__init__(message)


class Ambiguous(PrefectOpsError):
    """A name matched several objects equally well; the caller should ask which one."""

    def __init__(self, text: str, candidates: Sequence[str]) -> None:
        self.text, self.candidates = text, list(candidates)
        super().__init__(f"`{text}` could mean: {', '.join(self.candidates)}")


class PrefectUnavailable(PrefectOpsError):
    """The Prefect API is down, timing out or failing with 5xx."""


class RouteMissing(PrefectOpsError):
    """The server has no such route (an older release): never "the object does not exist"."""

    def __init__(self, api_url: str, method: str, path: str) -> None:
        self.api_url, self.method, self.path = api_url, method, path
        super().__init__(f"the Prefect server at {api_url} does not serve {method} {path} "
                         "(an older Prefect release); the bot will use another way to read this")


def http_response_of(exc: BaseException) -> httpx.Response | None:
    """The HTTP response behind a client error (httpx's, or the one Prefect's ObjectNotFound wraps)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response
    inner = getattr(exc, "http_exc", None)
    return inner.response if isinstance(inner, httpx.HTTPStatusError) else None


def route_missing(exc: BaseException) -> RouteMissing | None:
    """A 404 whose body is FastAPI's bare `Not Found`: the route is unknown, not the object.

    Prefect answers a missing object with its own detail ("Work pool not found.", "Flow run not
    found"); an unknown route gets the framework's default. Only the latter is a RouteMissing.
    """
    response = http_response_of(exc)
    if response is None or response.status_code != 404:
        return None
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return None
    if detail != "Not Found":
        return None
    from bot.prefect_ops.capabilities import cached_for_request  # it imports this module

    request = response.request
    url = str(request.url).split("?", 1)[0]
    known = cached_for_request(url)
    if known is not None:
        caps, path = known
        if caps.serves(request.method, path):
            return None  # a listed route: the router could not place this name, so the object is missing
        return RouteMissing(caps.api_url, request.method, path)
    base, _, rest = url.partition("/api/")
    return RouteMissing(f"{base}/api", request.method, "/" + rest) if rest else \
        RouteMissing(url, request.method, request.url.path)


def api_url_of(client: Any) -> str:
    url = getattr(client, "api_url", None)
    return shown_url(str(url)) if url is not None else "the configured PREFECT_API_URL"


def translate(exc: BaseException, api_url: str) -> PrefectOpsError | None:
    """The PrefectOpsError a foreign exception stands for, or None when it is not ours to map."""
    if isinstance(exc, PrefectOpsError):
        return exc
    missing_route = route_missing(exc)
    if missing_route is not None:
        return missing_route
    if isinstance(exc, ObjectNotFound):
        return NotFound("object", str(getattr(exc, "help_message", "") or "requested"))
    if isinstance(exc, httpx.TimeoutException):
        return PrefectUnavailable(f"the Prefect API at {api_url} timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return PrefectUnavailable(f"cannot reach the Prefect API at {api_url} ({type(exc).__name__})")
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500:
        return PrefectUnavailable(
            f"the Prefect API at {api_url} failed with HTTP {exc.response.status_code}"
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return PrefectOpsError(
            f"the Prefect API at {api_url} refused the request: HTTP {exc.response.status_code}"
        )
    return None


def at_boundary(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a public core function taking `client` first: foreign errors become ours."""

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from bot.prefect_ops.capabilities import ensure_supported, forget  # it imports this module

        client = args[0] if args else kwargs.get("client")
        try:
            await ensure_supported(client)  # cached; a Prefect 2 or non-Prefect server stops here
            return await func(*args, **kwargs)
        except PrefectOpsError as exc:
            if isinstance(exc, (RouteMissing, PrefectUnavailable)):
                forget(api_url_of(client))  # the server may have changed under us
            raise
        except Exception as exc:
            mapped = translate(exc, api_url_of(client))
            if mapped is None:
                raise
            if isinstance(mapped, (RouteMissing, PrefectUnavailable)):
                forget(api_url_of(client))
            raise mapped from exc

    return wrapper
