"""Typed reads over Prefect's client for the five kinds of limit: occupancy, holders, diagnosis.

No Slack, no OpenAI: every core function takes a `PrefectClient` and returns pydantic models,
so it works the same from a tool, a command or a REPL.
"""

from bot.prefect_ops.concurrency_map import concurrency_map
from bot.prefect_ops.diagnose import diagnose_run
from bot.prefect_ops.errors import Ambiguous, NotFound, PrefectOpsError, PrefectUnavailable
from bot.prefect_ops.leaks import find_leaked_slots
from bot.prefect_ops.limits import (
    list_deployment_limits,
    list_global_limits,
    list_limits,
    list_pool_and_queue_limits,
    list_tag_limits,
    read_limit,
)
from bot.prefect_ops.models import (
    ChangeCandidate,
    ConcurrencyMap,
    Diagnosis,
    Finding,
    Holder,
    LeakCandidate,
    LimitKind,
    LimitStatus,
    WaitingRun,
)
from bot.prefect_ops.resolve import Resolution, known_names, resolve_name

__all__ = [
    "Ambiguous",
    "ChangeCandidate",
    "ConcurrencyMap",
    "Diagnosis",
    "Finding",
    "Holder",
    "LeakCandidate",
    "LimitKind",
    "LimitStatus",
    "NotFound",
    "PrefectOpsError",
    "PrefectUnavailable",
    "Resolution",
    "WaitingRun",
    "concurrency_map",
    "diagnose_run",
    "find_leaked_slots",
    "known_names",
    "list_deployment_limits",
    "list_global_limits",
    "list_limits",
    "list_pool_and_queue_limits",
    "list_tag_limits",
    "read_limit",
    "resolve_name",
]
