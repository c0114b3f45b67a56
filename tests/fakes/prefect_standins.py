"""Two small HTTP stand-ins for Prefect shapes the suite cannot start cheaply:

- `BearerProxy` puts a real Prefect server behind `Authorization: Bearer <key>`, as Prefect Cloud and
  many reverse proxies do, answering 401 without it (Cloud's body shape: `{"detail": ...}`);
- `Prefect2Server` answers `/api/health` and `/api/admin/version` the way a Prefect 2.20.16 server does
  (shared/prefect-facts.md §11: `GET /api/admin/version` answers the version on 2.x and 3.x alike).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from tests.fakes.http_fake import FakeServer


class BearerProxy(FakeServer):
    def __init__(self, upstream: str, key: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.key = key

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        given = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if given != f"Bearer {self.key}":
            return 401, {}, {"detail": "Invalid authentication credentials"}
        upstream = self.upstream.removesuffix("/api") + path
        request = urllib.request.Request(upstream, data=raw or None, method=method,
                                         headers={"Content-Type": headers.get("Content-Type", "application/json")})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, {}, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, {}, exc.read()


class Prefect2Server(FakeServer):
    VERSION = "2.20.16"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        route = path.split("?")[0].rstrip("/")
        if route == "/api/health":
            return 200, {}, True
        if route == "/api/admin/version":
            return 200, {}, self.VERSION
        return 404, {}, {"detail": "Not Found"}
