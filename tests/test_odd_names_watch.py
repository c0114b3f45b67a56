"""One odd object never blinds the watcher: the issue-23 probe on the real server and the real CLI.

Pools named `wpz..w3`, with a trailing space, a zero-width character or `?`, each at limit 0 with a
Late run, next to an ordinary pool in the same state. Before: `detect()` built a change for the odd
pool, the change's validation raised, and the whole tick failed every interval (0 incidents for
every other object too); `watch --once` printed a traceback. Now every pool gets its incident; the
odd ones carry a by-hand fix (a quoted command) instead of a change for a card.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from prefect import get_client
from prefect.states import Late

from bot.prefect_ops import by_name
from bot.prefect_ops.runs import utcnow
from bot.watch import detect, read_snapshot
from bot.watch.render import incident_lines

pytestmark = pytest.mark.timeout(300)

RUN = uuid.uuid4().hex[:6]
ODD = [f"wpz..w3{RUN}", f"trail{RUN} ", f"zero\u200bw{RUN}", f"team?a{RUN}"]
PLAIN = f"plain-zero-{RUN}"


@pytest.fixture(scope="module")
async def zero_pools(prefect_api_url):
    """Each pool at limit 0 with one Late run; keeps only the names the server took."""
    taken = []
    async with get_client() as client:
        flow_id = await client.create_flow_from_name(f"odd-watch-flow-{RUN}")
        for index, pool in enumerate([*ODD, PLAIN]):
            try:
                await client._client.post("/work_pools/", json={"name": pool, "type": "process",
                                                                 "concurrency_limit": 0})
            except Exception:  # not a name Prefect accepts: the bot cannot meet it
                continue
            dep_id = await client.create_deployment(flow_id, f"odd-watch-dep-{index}-{RUN}", work_pool_name=pool)
            run = await client.create_flow_run_from_deployment(dep_id, name=f"odd-late-{index}-{RUN}")
            await client.set_flow_run_state(run.id, Late(scheduled_time=utcnow() - timedelta(minutes=5)), force=True)
            taken.append(pool)
    assert PLAIN in taken and len(taken) >= 4, taken
    yield taken
    async with get_client() as client:
        for pool in taken:
            try:
                await by_name.delete_work_pool(client, pool)
            except Exception:  # cleanup only
                pass


async def test_every_pool_gets_its_incident_and_odd_ones_a_by_hand_fix(zero_pools):
    async with get_client() as client:
        snap = await read_snapshot(client)
    found = {i.object_name: i for i in detect(snap, 0.0) if i.kind == "zero_limit" and i.object_kind == "work_pool"}
    for pool in zero_pools:
        assert pool in found, f"no incident for {pool!r}: {sorted(found)}"
    assert found[PLAIN].fix is not None and found[PLAIN].hint is None
    for pool in zero_pools:
        if pool == PLAIN:
            continue
        incident = found[pool]
        assert incident.fix is None, pool
        assert incident.hint and incident.hint.startswith("the bot cannot change this one: "), incident.hint
        text = "\n".join(incident_lines(incident, snap.read_at))
        if "\u200b" in pool:
            assert "no command shown" in text and "\u200b" not in text
            continue
        command = text.split("change it by hand: `", 1)[1].split("`", 1)[0]
        assert shlex.split(command) == ["prefect", "work-pool", "set-concurrency-limit", pool, "1"]


def test_watch_once_prints_every_incident_without_a_traceback(zero_pools):
    done = subprocess.run([sys.executable, "-m", "bot.cli", "watch", "--once", "--wait-seconds", "0"],
                          capture_output=True, text=True, timeout=240, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert PLAIN in done.stdout
    assert done.stdout.count("the bot cannot change this one") >= len(zero_pools) - 1


def test_a_detector_that_raises_for_one_object_does_not_kill_the_tick():
    """A hand-made snapshot: a queue row whose name has no `pool/` part makes the paused-backlog
    detector raise for that one object; the ordinary paused pool is still reported."""
    from bot.prefect_ops.models import LimitStatus
    from bot.watch.reads import WatchSnapshot

    now = utcnow()
    broken = LimitStatus(kind="work_queue", name="no-pool-part", paused=True, waiting=1)
    plain = LimitStatus(kind="work_pool", name="paused-pool", paused=True, waiting=2)
    found = detect(WatchSnapshot(read_at=now, limits=[broken, plain]), 0.0)
    assert [(i.kind, i.object_name) for i in found] == [("paused_backlog", "paused-pool")]
