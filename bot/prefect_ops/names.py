"""Names that may reach a Prefect URL path, and how they get there.

Prefect's own client formats raw names into paths (`/work_pools/{name}`), so a name like
`tmp/../../<uuid>` or `a?b` would send the request to another object than the one on the card.
We refuse such names before any request is built, and percent-encode every name we do send.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

# What Prefect itself bans in object names (prefect.types.names.BANNED_CHARACTERS in 3.9.1),
# plus what cuts or rewrites a URL path: query, fragment, and a literal dot-dot segment.
PREFECT_BANNED = ("/", "%", "&", ">", "<")
PATH_CUTTERS = ("?", "#", "\\")
# Prefect sets no length limit on names, but its server (uvicorn/h11) refuses request heads over
# 16 KiB, so an encoded name must leave room for the rest of the request line and headers.
MAX_ENCODED = 12_000

__all__ = ["PATH_CUTTERS", "PREFECT_BANNED", "api_path", "path_segment", "unsafe_name_reason"]


def unsafe_name_reason(name: str, what: str = "name") -> str | None:
    """Why `name` may not be used to find or change an object, or None when it is safe."""
    if not name or not name.strip():
        return f"the {what} is empty"
    if name != name.strip():
        return f"the {what} starts or ends with whitespace"
    if ".." in name:
        return f"the {what} contains '..', which could point the request at another object"
    for char in name:
        if char in PREFECT_BANNED:
            return f"the {what} contains {char!r}, which Prefect bans in names"
        if char in PATH_CUTTERS:
            return f"the {what} contains {char!r}, which cuts a URL path"
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"the {what} contains a control character ({ord(char):#x})"
    if len(path_segment(name)) > MAX_ENCODED:
        return f"the {what} is too long to send to Prefect ({len(name):,} characters)"
    return None


def path_segment(name: object) -> str:
    """`name` as one percent-encoded URL path segment: nothing is left for the server to split, and
    dots are encoded too, because httpx resolves a literal `.` or `..` segment before sending."""
    return quote(str(name), safe="").replace(".", "%2E")


def api_path(*segments: object) -> str:
    """The one way to build a Prefect API path: every segment (route words, names, ids) goes through
    `path_segment`, so no name can add, remove or cut a segment. `api_path("work_pools", "team?a")`
    is `/work_pools/team%3Fa`."""
    if not segments:
        raise ValueError("an API path needs at least one segment")
    return "/" + "/".join(path_segment(s) for s in segments)
