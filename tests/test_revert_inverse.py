"""The inverse change a Revert proposes, for every kind of change (pure: no server)."""

from __future__ import annotations

import pytest

from bot.approvals.revert import inverse_change
from bot.prefect_ops.changes import (
    DeploymentLimitChange,
    GlobalLimitChange,
    TagLimitChange,
    WorkPoolLimitChange,
    WorkQueueLimitChange,
)


@pytest.mark.parametrize(("change", "before", "expected"), [
    (WorkPoolLimitChange(action="set", pool="p", limit=3), {"limit": None},
     WorkPoolLimitChange(action="clear", pool="p")),
    (WorkPoolLimitChange(action="clear", pool="p"), {"limit": 2}, WorkPoolLimitChange(action="set", pool="p", limit=2)),
    (WorkQueueLimitChange(action="set", pool="p", queue="q", limit=1), {"limit": 4},
     WorkQueueLimitChange(action="set", pool="p", queue="q", limit=4)),
    (DeploymentLimitChange(action="set", deployment="f/d", limit=1, collision_strategy="CANCEL_NEW"),
     {"limit": 2, "collision_strategy": "ENQUEUE", "grace_period_seconds": None},
     DeploymentLimitChange(action="set", deployment="f/d", limit=2, collision_strategy="ENQUEUE")),
    (DeploymentLimitChange(action="set", deployment="f/d", limit=1), {"limit": None},
     DeploymentLimitChange(action="clear", deployment="f/d")),
    (GlobalLimitChange(action="create", name="g", limit=2), {"exists": False},
     GlobalLimitChange(action="delete", name="g")),
    (GlobalLimitChange(action="disable", name="g"), {"exists": True, "active": True, "limit": 2},
     GlobalLimitChange(action="enable", name="g")),
    (GlobalLimitChange(action="update", name="g", limit=5), {"exists": True, "limit": 2, "active": True},
     GlobalLimitChange(action="update", name="g", limit=2)),
    (TagLimitChange(action="set", tag="t", limit=2), {"exists": False, "limit": None},
     TagLimitChange(action="delete", tag="t")),
    (TagLimitChange(action="delete", tag="t"), {"exists": True, "limit": 3},
     TagLimitChange(action="set", tag="t", limit=3)),
    (TagLimitChange(action="reset", tag="t"), {"exists": True, "limit": 3}, None),
    (GlobalLimitChange(action="reset", name="g"), {"exists": True, "limit": 3}, None),
    (DeploymentLimitChange(action="set", deployment="f/d", limit=1), {"limit": 0}, None),  # no change can say 0
])
def test_inverse(change, before, expected):
    assert inverse_change(change, before) == expected
