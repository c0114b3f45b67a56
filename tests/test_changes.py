"""Each change type reads, applies and describes itself against the real Prefect server."""

from __future__ import annotations

import pytest
from prefect import get_client
from prefect.exceptions import ObjectNotFound

from bot.prefect_ops.changes import (
    ChangeError,
    ChangeTargetMissing,
    DeploymentLimitChange,
    GlobalLimitChange,
    TagLimitChange,
    WorkPoolLimitChange,
    WorkQueueLimitChange,
    change_from_json,
    change_to_json,
    nothing_to_do,
    parse_change,
)
from tests.approvals_support import make_deployment, make_gcl, make_pool, make_queue, unique


async def _round(change):
    """Read, apply, read again: returns (before, after)."""
    async with get_client() as client:
        before = await change.read(client)
        await change.apply(client)
        after = await change.read(client) if change.action != "delete" else None
    return before, after


async def test_work_pool_set_and_clear(prefect_server):
    pool = await make_pool(limit=3)
    change = WorkPoolLimitChange(action="set", pool=pool, limit=5)
    before, after = await _round(change)
    assert before == {"limit": 3} and after == {"limit": 5}
    assert change.diff(before) == f"work pool `{pool}`: limit 3 → 5"
    assert not change.destructive and change.editable
    clear = WorkPoolLimitChange(action="clear", pool=pool)
    before, after = await _round(clear)
    assert after == {"limit": None} and clear.destructive
    assert clear.diff(before) == f"work pool `{pool}`: limit 5 → none"


async def test_work_queue_set_and_clear_named_with_pool(prefect_server):
    pool = await make_pool()
    queue = await make_queue(pool, limit=1)
    change = WorkQueueLimitChange(action="set", pool=pool, queue=queue, limit=4)
    before, after = await _round(change)
    assert (before, after) == ({"limit": 1}, {"limit": 4})
    assert change.diff(before) == f"work queue `{queue}` in pool `{pool}`: limit 1 → 4"
    _, after = await _round(WorkQueueLimitChange(action="clear", pool=pool, queue=queue))
    assert after == {"limit": None}


async def test_deployment_limit_with_strategy_and_grace(prefect_server):
    pool = await make_pool()
    dep = await make_deployment(pool)
    change = DeploymentLimitChange(action="set", deployment=dep, limit=1, collision_strategy="CANCEL_NEW",
                                   grace_period_seconds=120)
    before, after = await _round(change)
    assert before == {"limit": None, "collision_strategy": None, "grace_period_seconds": None}
    assert after == {"limit": 1, "collision_strategy": "CANCEL_NEW", "grace_period_seconds": 120}
    assert change.diff(before) == (f"deployment `{dep}`: limit none → 1, collision strategy none → CANCEL_NEW, "
                                   "grace period none → 120s")
    # a limit-only change keeps the strategy; clearing removes the limit
    _, after = await _round(DeploymentLimitChange(action="set", deployment=dep, limit=3))
    assert after["limit"] == 3 and after["collision_strategy"] == "CANCEL_NEW"
    _, after = await _round(DeploymentLimitChange(action="clear", deployment=dep))
    assert after["limit"] is None


async def test_gcl_lifecycle(prefect_server):
    name = unique("gcl")
    create = GlobalLimitChange(action="create", name=name, limit=2, slot_decay_per_second=0.5)
    before, after = await _round(create)
    assert before == {"exists": False}
    assert after == {"exists": True, "limit": 2, "active": True, "slot_decay_per_second": 0.5}
    assert nothing_to_do(create, after) is not None  # creating again would fail: refused up front
    update = GlobalLimitChange(action="update", name=name, limit=4, slot_decay_per_second=0.0)
    before, after = await _round(update)
    assert update.diff(before) == f"global limit `{name}`: limit 2 → 4, slot decay 0.5/s → 0.0/s"
    assert after["limit"] == 4 and after["slot_decay_per_second"] == 0.0
    _, after = await _round(GlobalLimitChange(action="disable", name=name))
    assert after["active"] is False
    enable = GlobalLimitChange(action="enable", name=name)
    before, after = await _round(enable)
    assert after["active"] is True and enable.diff(before) == f"global limit `{name}`: disabled → enabled"
    async with get_client() as client:
        await client.increment_concurrency_slots_with_lease(names=[name], slots=2, mode="concurrency",
                                                           lease_duration=300)
        assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 2
        reset = GlobalLimitChange(action="reset", name=name)
        assert reset.destructive
        await reset.apply(client)
        assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 0
    delete = GlobalLimitChange(action="delete", name=name)
    await _round(delete)
    async with get_client() as client:
        with pytest.raises(ObjectNotFound):
            await client.read_global_concurrency_limit_by_name(name)


async def test_tag_limit_set_reset_delete(prefect_server):
    tag = unique("tag")
    create = TagLimitChange(action="set", tag=tag, limit=2)
    before, after = await _round(create)
    assert before == {"exists": False, "limit": None} and after == {"exists": True, "limit": 2}
    assert create.diff(before) == f"tag limit `{tag}`: limit none → 2"
    _, after = await _round(TagLimitChange(action="set", tag=tag, limit=3))
    assert after["limit"] == 3
    _, after = await _round(TagLimitChange(action="reset", tag=tag))  # a reset also reads what it releases
    assert after == {"exists": True, "limit": 3, "active_slots": 0, "release": []}
    await _round(TagLimitChange(action="delete", tag=tag))
    async with get_client() as client:
        with pytest.raises(ChangeTargetMissing):
            await TagLimitChange(action="delete", tag=tag).read(client)


async def test_missing_targets_say_what_is_missing(prefect_server):
    async with get_client() as client:
        with pytest.raises(ChangeTargetMissing, match="no work pool"):
            await WorkPoolLimitChange(action="set", pool=unique("nope"), limit=1).read(client)
        with pytest.raises(ChangeTargetMissing, match="no work queue"):
            await WorkQueueLimitChange(action="set", pool=unique("p"), queue="q", limit=1).read(client)
        with pytest.raises(ChangeTargetMissing, match="no deployment"):
            await DeploymentLimitChange(action="set", deployment="a/b-" + unique("x"), limit=1).read(client)
        with pytest.raises(ChangeTargetMissing):
            await GlobalLimitChange(action="update", name=unique("nope"), limit=1).read(client)


async def test_noop_changes_are_recognised(prefect_server):
    gcl = await make_gcl(limit=2)
    async with get_client() as client:
        enable = GlobalLimitChange(action="enable", name=gcl)
        assert "already enabled" in nothing_to_do(enable, await enable.read(client))
    assert nothing_to_do(WorkPoolLimitChange(action="set", pool="p", limit=3), {"limit": 3})
    assert nothing_to_do(WorkPoolLimitChange(action="clear", pool="p"), {"limit": None})
    assert nothing_to_do(WorkPoolLimitChange(action="set", pool="p", limit=4), {"limit": 3}) is None


@pytest.mark.parametrize("change", [
    WorkPoolLimitChange(action="set", pool="etl", limit=5),
    WorkQueueLimitChange(action="clear", pool="etl", queue="q"),
    DeploymentLimitChange(action="set", deployment="f/d", limit=1, collision_strategy="CANCEL_NEW"),
    GlobalLimitChange(action="update", name="g", slot_decay_per_second=1.5),
    TagLimitChange(action="reset", tag="db"),
])
def test_changes_round_trip_through_json(change):
    assert change_from_json(change_to_json(change)) == change
    assert parse_change(change.model_dump()) == change


@pytest.mark.parametrize("data, message", [
    ({"kind": "work_pool_limit", "action": "set", "pool": "p"}, "needs a limit"),
    ({"kind": "work_pool_limit", "action": "set", "pool": "p", "limit": -1}, "greater than or equal"),
    ({"kind": "deployment_limit", "action": "set", "deployment": "nodash", "limit": 1}, "flow-name/"),
    ({"kind": "deployment_limit", "action": "set", "deployment": "f/d", "limit": 1,
      "collision_strategy": "QUEUE"}, "ENQUEUE"),
    ({"kind": "deployment_limit", "action": "set", "deployment": "f/d", "limit": 1,
      "grace_period_seconds": 5}, "greater than or equal to 60"),
    ({"kind": "global_limit", "action": "delete", "name": "g", "limit": 3}, "takes no limit"),
    ({"kind": "tag_limit", "action": "clear", "tag": "t"}, "action"),
    ({"kind": "no_such_kind", "action": "set"}, "kind"),
])
def test_invalid_changes_are_refused_with_a_reason(data, message):
    with pytest.raises(ChangeError, match=message):
        parse_change(data)


def test_edit_validates_the_typed_value():
    change = DeploymentLimitChange(action="set", deployment="f/d", limit=2)
    assert change.with_limit(" 4 ").limit == 4
    with pytest.raises(ChangeError, match="at least 1"):
        change.with_limit("0")
    with pytest.raises(ChangeError, match="whole number"):
        change.with_limit("three")
    with pytest.raises(ChangeError, match="no value"):
        TagLimitChange(action="delete", tag="t").with_limit("3")
