"""Every name the real Prefect server accepts is a name like any other for reading.

Work pools, queues and tag limits are created on the shared server with names Prefect takes but a
URL path does not (`?`, `#`, `%`, `..`, a newline, a space, a trailing space, a zero-width
character); then every by-name read and the whole concurrency map must find them. Before the reads
went through `names.api_path`, `team?a` gave "HTTP 405" for every read and a newline an
`httpx.InvalidURL` traceback.
"""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client

from bot.prefect_ops import by_name, concurrency_map
from bot.prefect_ops.names import api_path, path_segment

RUN = uuid.uuid4().hex[:6]
ODD = ["team?a", "hash#tag", "per%cent", "wpz..w3", "two words", "new\nline", "trail ", "zero\u200bwidth", ".."]


async def accepted_pools(client, names: list[str]) -> list[str]:
    """Create each pool through the raw API; keep the names the server took (read back from its list)."""
    for name in names:
        try:
            await client._client.post("/work_pools/", json={"name": name, "type": "process", "concurrency_limit": 1})
        except Exception:  # refused by Prefect (`%` for pools): not a name the bot can meet
            pass
    listed = {p.name for p in await client.read_work_pools()}
    return [n for n in names if n in listed]


@pytest.fixture(scope="module")
async def odd_pools(prefect_api_url):
    async with get_client() as client:
        taken = await accepted_pools(client, [f"{n}{RUN}" if n != ".." else f"{RUN}.." for n in ODD])
    assert len(taken) >= 6, taken  # the server accepts these; the test is pointless if it stops doing so
    yield taken
    async with get_client() as client:
        for name in taken:
            try:
                await by_name.delete_work_pool(client, name)
            except Exception:  # cleanup only
                pass


def test_api_path_encodes_every_segment():
    assert api_path("work_pools", "team?a") == "/work_pools/team%3Fa"
    assert api_path("work_pools", "..", "queues", "a/b") == "/work_pools/%2E%2E/queues/a%2Fb"
    for name in ODD:
        assert "/" not in path_segment(name) and "?" not in path_segment(name) and "." not in path_segment(name)


async def test_every_by_name_read_finds_the_odd_pool(odd_pools):
    async with get_client() as client:
        for name in odd_pools:
            pool = await by_name.read_work_pool(client, name)
            assert pool.name == name
            if "\n" in name:
                continue  # Prefect's router 404s a newline in a path: the map isolates it (below)
            assert await by_name.read_workers_for_work_pool(client, name) == []
            status = await by_name.read_work_pool_concurrency_status(client, name, limit=10)
            assert [q.queue_name for q in status.queues] == ["default"]
            queue = await by_name.read_work_queue_by_name(client, name, "default")
            assert queue.work_pool_name == name


async def test_the_map_lists_every_odd_pool_and_its_queue(odd_pools):
    async with get_client() as client:
        cmap = await concurrency_map(client, ["work_pool", "work_queue"])
    rows = {lim.name: lim for lim in cmap.limits}
    for name in odd_pools:
        assert name in rows and f"{name}/default" in rows
        # occupancy comes from one read of active runs (no per-pool route), so even a name Prefect's router
        # cannot route (a newline) is read in full
        assert rows[name].read_note is None, (name, rows[name].read_note)
        assert rows[f"{name}/default"].read_note is None


async def test_odd_tag_limits_are_read_by_tag(prefect_api_url):
    tags = [f"{n}{RUN}" for n in ("t?x", "t#x", "t x", "t..x", "t%x")]
    async with get_client() as client:
        taken = []
        for tag in tags:
            try:
                await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
                taken.append(tag)
            except Exception:  # Prefect refuses `%` in a tag limit (HTTP 500): keep what it took
                pass
        assert len(taken) >= 4, taken
        tags = taken
        try:
            for tag in tags:
                assert (await by_name.read_concurrency_limit_by_tag(client, tag)).tag == tag
                assert (await by_name.read_gcl_by_name(client, f"tag:{tag}")).name == f"tag:{tag}"
        finally:
            for tag in tags:
                await client.request("DELETE", api_path("concurrency_limits", "tag", tag))
