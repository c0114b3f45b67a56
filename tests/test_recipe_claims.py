"""Every behavioural claim in the recipe book, made to happen on the real Prefect server.

Each recipe lists its claims in front matter (`claims:` with an id, the sentence and the test
that proves it); `test_every_listed_claim_has_its_test` pins that each named test exists here.
Runs are driven through the client the way the engine and workers drive them, flows and tasks
run for real in this process, and `prefect deploy` runs as a subprocess. Every wait is a wait for
a condition, bounded by a deadline.
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prefect import allow_failure, flow, get_client, tags, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.actions import (
    DeploymentUpdate,
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyOptions
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.exceptions import ObjectNotFound
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelled, Cancelling, Completed, Crashed, Pending, Running
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.types._datetime import now

from bot.knowledge.recipes import RecipeBook
from tests.fakes.prefect_server import PrefectServer
from tests.fakes.processes import wait_until_healthy
from tests.waiting import poll, wait_until

pytestmark = pytest.mark.usefixtures("prefect_api_url")
ROOT = Path(__file__).resolve().parents[1]


def unique(prefix: str) -> str:
    return f"claim-{prefix}-{uuid.uuid4().hex[:8]}"


def gcl_slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


@contextmanager
def slot_held_in_thread(name: str) -> Iterator[threading.Event]:
    """Another 'run' holds one slot of `name` through concurrency() until the block ends."""
    held, release, errors = threading.Event(), threading.Event(), []

    def holder() -> None:
        try:
            with concurrency(name, strict=True):
                held.set()
                release.wait(120)
        except Exception as exc:  # a revoked lease may fail the release; the test reads the effect
            errors.append(exc)
            held.set()

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert held.wait(60), "the holder never got its slot"
    try:
        yield release
    finally:
        release.set()
        thread.join(60)


@contextmanager
def released_after(started: threading.Event, release: threading.Event, look: Callable[[], None]) -> Iterator[None]:
    """Run the block while a watcher thread waits for `started`, calls `look` (what the test wants to see
    while the body is held), then sets `release`; the release is set and the watcher joined on exit, so a
    failing block never leaves the body blocked."""
    def watch() -> None:
        try:
            if started.wait(20):
                look()
        finally:
            release.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        release.set()
        watcher.join(30)


@contextmanager
def process_pool(**options: object) -> Iterator[str]:
    """A process work pool of its own (a unique name), deleted when the block ends."""
    pool = unique("pool")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process", **options))
    try:
        yield pool
    finally:
        with get_client(sync_client=True) as client:
            client.delete_work_pool(pool)


def make_deployment(limit: int | None = None, strategy: str = "ENQUEUE", grace: int | None = None,
                    **kwargs: object) -> tuple[uuid.UUID, str]:
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(unique("flow"))
        options = ConcurrencyOptions(collision_strategy=strategy, grace_period_seconds=grace) if limit else None
        dep_id = client.create_deployment(flow_id=flow_id, name=unique("dep"), concurrency_limit=limit,
                                          concurrency_options=options, **kwargs)
    return dep_id, f"deployment:{dep_id}"


def new_run(dep_id: uuid.UUID, **kwargs: object):
    with get_client(sync_client=True) as client:
        return client.create_flow_run_from_deployment(dep_id, **kwargs)


def propose(run_id: uuid.UUID, state):
    """Propose a state as the engine or a worker would (no force); return the state the server kept."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, state)
        return client.read_flow_run(run_id).state


# ---------------------------------------------------------------------------------------------
# Tag limits
# ---------------------------------------------------------------------------------------------


def test_reset_frees_held_slot():
    """`prefect gcl update tag:TAG --active-slots 0` frees a counted slot: a new holder gets in."""
    tag = unique("tag")
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=1)
    try:
        with slot_held_in_thread(f"tag:{tag}"):
            assert gcl_slots(f"tag:{tag}") == 1
            with pytest.raises(TimeoutError):
                with concurrency(f"tag:{tag}", timeout_seconds=1, strict=True):
                    pass
            with get_client(sync_client=True) as client:
                client.update_global_concurrency_limit(f"tag:{tag}", GlobalConcurrencyLimitUpdate(active_slots=0))
            assert gcl_slots(f"tag:{tag}") == 0
            with concurrency(f"tag:{tag}", timeout_seconds=10, strict=True):
                assert gcl_slots(f"tag:{tag}") == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(tag)


def test_concurrency_limit_reset_leaks_the_slot():
    """`prefect concurrency-limit reset TAG` revokes the lease but the slot stays counted for good."""
    tag = unique("tag")
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=1)
    try:
        with slot_held_in_thread(f"tag:{tag}"):
            with get_client(sync_client=True) as client:
                client.reset_concurrency_limit_by_tag(tag)
                assert client.read_concurrency_limit_by_tag(tag).active_slots == []
        # The holder has left its block, yet the V2 counter still shows its slot.
        assert gcl_slots(f"tag:{tag}") == 1
        with pytest.raises(TimeoutError):
            with concurrency(f"tag:{tag}", timeout_seconds=1, strict=True):
                pass
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(tag)


@task
def tagged_noop() -> int:
    return 1


@flow
def run_one_task(tag: str) -> str:
    try:
        tagged_noop.with_options(tags=[tag])()
    except ConcurrencySlotAcquisitionError as exc:
        return f"failed: {exc}"
    return "ran"


def test_tag_limit_zero_fails_tagged_task():
    tag = unique("tag")
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=0)
    try:
        outcome = run_one_task(tag)
        assert outcome.startswith("failed:") and "greater than the limit" in outcome, outcome
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(tag)


@task(retries=1, retry_delay_seconds=4)
def fails_once(first_failed: threading.Event, second_started: threading.Event) -> str:
    if not first_failed.is_set():
        first_failed.set()
        raise RuntimeError("first attempt fails")
    second_started.set()
    return "ok"


@flow
def retrying_flow(tag: str, first_failed: threading.Event, second_started: threading.Event) -> str:
    return fails_once.with_options(tags=[tag])(first_failed, second_started)


def test_tag_slot_kept_across_retry_delay():
    """Between a failed attempt and its retry (AwaitingRetry), the task keeps its tag slot."""
    tag = unique("tag")
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=1)
    first_failed, second_started, result = threading.Event(), threading.Event(), []
    runner = threading.Thread(target=lambda: result.append(retrying_flow(tag, first_failed, second_started)))
    runner.start()
    try:
        assert first_failed.wait(120)
        slots_in_delay = gcl_slots(f"tag:{tag}")
        with get_client(sync_client=True) as client:  # read_concurrency_limit_by_tag names the holder
            holders = client.read_concurrency_limit_by_tag(tag).active_slots
        blocked = False
        try:
            with concurrency(f"tag:{tag}", max_retries=0, strict=True):  # one try: refused at once if full
                pass
        except ConcurrencySlotAcquisitionError:
            blocked = True
        observed_before_retry = not second_started.is_set()
        runner.join(120)
        assert result == ["ok"]
        assert observed_before_retry, "the retry started before the slot was read; lengthen retry_delay_seconds"
        assert slots_in_delay == 1 and blocked
        def tagged_runs() -> list:
            with get_client(sync_client=True) as client:
                return client.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])))

        task_runs = wait_until(tagged_runs, 60.0, "the task run to be recorded")
        assert holders == [task_runs[0].id], (holders, task_runs)  # the retrying task run holds it
        assert gcl_slots(f"tag:{tag}") == 0  # released once the task finished
    finally:
        runner.join(120)
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(tag)


@task
def untagged_step() -> str:
    return "ran"


@flow
def flow_with_untagged_task() -> str:
    return untagged_step()


def test_deployment_and_flow_run_tags_do_not_count():
    """A run whose deployment and flow run carry TAG runs untagged tasks even under a TAG limit of 0."""
    dep_tag, run_tag = unique("deptag"), unique("runtag")
    with get_client(sync_client=True) as client:
        for tag in (dep_tag, run_tag):
            client.create_concurrency_limit(tag=tag, concurrency_limit=0)
        flow_id = client.create_flow_from_name(flow_with_untagged_task.name)
        dep_id = client.create_deployment(flow_id=flow_id, name=unique("dep"), tags=[dep_tag])
        flow_run = client.create_flow_run_from_deployment(dep_id, tags=[run_tag])
    try:
        assert {dep_tag, run_tag} <= set(flow_run.tags)
        state = run_flow(flow_with_untagged_task, flow_run=flow_run, return_type="state")
        assert state.is_completed(), state
        def task_runs() -> list:
            with get_client(sync_client=True) as client:
                return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))

        mine = wait_until(task_runs, 60.0, "the task run to be recorded")
        assert not ({dep_tag, run_tag} & set(mine[0].tags))
        # The `tags()` context does count: the same task under it fails on the 0 limit.
        with tags(run_tag):
            outcome = run_one_task(unique("unused"))
        assert outcome.startswith("failed:") and "greater than the limit" in outcome, outcome
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)
            for tag in (dep_tag, run_tag):
                client.delete_concurrency_limit_by_tag(tag)



_DECORATED_TAG = unique("tag")  # one per test process: the decorator needs it at import time


def _holds_a_tag_slot(tag: str) -> bool:
    """Inside a task run: is this run one of the tag limit's slot holders right now?"""
    from prefect.runtime import task_run

    with get_client(sync_client=True) as client:
        return task_run.id in {str(holder) for holder in client.read_concurrency_limit_by_tag(tag).active_slots}


@task(tags=[_DECORATED_TAG])
def claims_tagged_by_decorator() -> bool:
    return _holds_a_tag_slot(_DECORATED_TAG)


@task
def claims_tagged_elsewhere(tag: str) -> bool:
    return _holds_a_tag_slot(tag)


@flow
def claims_three_ways_to_tag() -> dict[str, bool]:
    seen = {"decorator": claims_tagged_by_decorator(),
            "with_options": claims_tagged_elsewhere.with_options(tags=[_DECORATED_TAG])(_DECORATED_TAG)}
    with tags(_DECORATED_TAG):
        seen["tags()"] = claims_tagged_elsewhere(_DECORATED_TAG)
    seen["untagged"] = claims_tagged_elsewhere(_DECORATED_TAG)
    return seen


def test_three_ways_to_tag_all_take_a_slot_and_a_bare_global_limit_is_no_tag_limit():
    """`@task(tags=)`, `with_options(tags=)` and `with tags()` each make the running task a holder of a
    `tag:` slot (an untagged one is not); a global limit named like the tag, without `tag:`, limits nothing."""
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=_DECORATED_TAG, concurrency_limit=5)
    try:
        seen = claims_three_ways_to_tag()
        assert seen == {"decorator": True, "with_options": True, "tags()": True, "untagged": False}, seen
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(_DECORATED_TAG)
    bare = unique("db")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=bare, limit=0))
    try:
        assert run_one_task(bare) == "ran"  # a tag limit of 0 would fail the task
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(bare)



@task(cache_policy=NO_CACHE)
def claims_tag_waiter(started: threading.Event) -> str:
    started.set()
    return "ran"


@flow
def claims_flow_with_tag_waiter(tag: str, started: threading.Event) -> str:
    return claims_tag_waiter.with_options(tags=[tag])(started)


def _asking_for_slots(thread: threading.Thread) -> bool:
    """True while `thread` waits in Prefect's slot acquisition (read from its live stack)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "acquire_concurrency_slots_with_lease" and code.co_filename.endswith(
                os.path.join("concurrency", "_sync.py")):
            return True
        frame = frame.f_back
    return False


def test_task_waiting_for_a_tag_slot_is_pending_and_runs_once_the_slot_frees():
    """A tagged task whose tag limit is full waits inside the engine, in the slot acquisition: its run is
    Pending (no special state, not Running) and its body has not started; once the slot frees, a later
    ask gets it and it runs (nothing skipped)."""
    tag, started, outcome = unique("tag"), threading.Event(), {}
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        held = client.increment_concurrency_slots_with_lease(  # another run holds the one slot
            names=[f"tag:{tag}"], slots=1, mode="concurrency", lease_duration=60).json()["lease_id"]
    try:
        runner = threading.Thread(target=lambda: outcome.update(result=claims_flow_with_tag_waiter(tag, started)),
                                  daemon=True)
        runner.start()

        def waiting_task_run() -> list:  # in the acquisition, and recorded on the server (runs arrive as events)
            if not _asking_for_slots(runner):
                return []
            with get_client(sync_client=True) as client:
                return client.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])))

        waiting = wait_until(waiting_task_run, 30, "the task to wait for its tag slot")
        assert [(r.state.type.value, r.state.name) for r in waiting] == [("PENDING", "Pending")], waiting
        assert not started.is_set() and _asking_for_slots(runner)
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(uuid.UUID(held))
        released = time.monotonic()
        runner.join(60)
        assert outcome == {"result": "ran"} and started.is_set(), outcome
        # The next ask came ~2.7 s after the release here: the server's Retry-After is the limit's average
        # slot hold time (a new limit: ~2 s), at most PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS (10 s).
        assert time.monotonic() - released < 20, time.monotonic() - released
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(tag)


# ---------------------------------------------------------------------------------------------
# Global concurrency limits
# ---------------------------------------------------------------------------------------------


def test_disabled_gcl_does_not_block():
    name = unique("gcl")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1, active=False))
    try:
        with concurrency(name, timeout_seconds=5, strict=True):
            with concurrency(name, timeout_seconds=5, strict=True):  # a second holder of a limit of 1
                assert gcl_slots(name) == 0
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def test_strict_true_raises_on_missing_limit():
    missing = unique("missing")
    ran = []
    with concurrency(missing):  # strict=False: the body runs, unguarded
        ran.append("loose")
    with pytest.raises(ConcurrencySlotAcquisitionError, match="must be created before acquiring slots"):
        with concurrency(missing, strict=True):
            ran.append("strict")
    assert ran == ["loose"]
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_global_concurrency_limit_by_name(missing)  # nothing was created


def test_gcl_limit_zero_and_timeout_zero():
    """A limit of 0 fails at once (422); timeout_seconds=0 times out even on a free slot."""
    name = unique("gcl")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=0))
    try:
        with pytest.raises(ConcurrencySlotAcquisitionError, match="greater than the limit"):
            with concurrency(name, strict=True):
                pass
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1))
        with pytest.raises(TimeoutError):
            with concurrency(name, timeout_seconds=0, strict=True):
                pass
        assert gcl_slots(name) == 0
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def test_occupy_over_limit_and_rate_limit_without_decay():
    """occupy > limit fails at once (422); rate_limit on a limit without slot decay raises."""
    name = unique("gcl")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    try:
        with pytest.raises(ConcurrencySlotAcquisitionError, match="greater than the limit"):
            with concurrency(name, occupy=2, strict=True):
                pass
        with pytest.raises(ConcurrencySlotAcquisitionError, match="slot decay"):
            rate_limit(name, strict=True)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def test_rate_limit_slots_drain_with_time_and_it_takes_occupy_and_timeout_seconds():
    """rate_limit(occupy=3) leaves 3 slots counted after it returns (nothing is released at the end of the
    call); they drain at slot_decay_per_second. On a full limit, timeout_seconds gives up with TimeoutError."""
    name, slow = unique("rate"), unique("rate-slow")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=10,
                                                                            slot_decay_per_second=2.0))
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=slow, limit=1,
                                                                            slot_decay_per_second=0.05))
    try:
        rate_limit(name, occupy=3, strict=True)
        assert gcl_slots(name) in (3, 2), gcl_slots(name)  # 2 only if a half second passed in between
        wait_until(lambda: gcl_slots(name) == 0, 10, "the slots to drain")  # about 1.5 s at 2 per second
        rate_limit(slow, strict=True)  # fills it for ~20 s
        with pytest.raises(TimeoutError):
            rate_limit(slow, timeout_seconds=0.5, strict=True)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)
            client.delete_global_concurrency_limit_by_name(slow)

def test_lease_duration_and_grace_period_take_60_to_86400_seconds():
    """The server takes a concurrency() lease of 60..86400 s (422 outside); a deployment's
    grace_period_seconds is checked to the same range (ConcurrencyOptions refuses 59 and 86401)."""
    from pydantic import ValidationError

    name = unique("lease")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    try:
        for outside in (59, 86401):
            with pytest.raises(ConcurrencySlotAcquisitionError):
                with concurrency(name, lease_duration=outside, strict=True, max_retries=0):
                    raise AssertionError("must not run with a lease out of range")
        for inside in (60, 86400):
            with concurrency(name, lease_duration=inside, strict=True):
                assert gcl_slots(name) == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)
    for outside in (59, 86401):
        with pytest.raises(ValidationError, match="grace_period_seconds"):
            ConcurrencyOptions(collision_strategy="ENQUEUE", grace_period_seconds=outside)
    dep_id, _ = make_deployment(limit=1, grace=86400)
    try:
        with get_client(sync_client=True) as client:
            assert client.read_deployment(dep_id).concurrency_options.grace_period_seconds == 86400
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_max_retries_gives_up_and_logs_an_error_line():
    """concurrency(max_retries=0) on a busy limit raises at once (423) and Prefect logs an ERROR line."""
    name = unique("gcl")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    records = _Records()
    service_logger = logging.getLogger("prefect._internal.concurrency")
    service_logger.addHandler(records)
    try:
        with slot_held_in_thread(name):
            with pytest.raises(ConcurrencySlotAcquisitionError, match="423"):
                with concurrency(name, max_retries=0, strict=True):
                    raise AssertionError("must not enter a busy limit")
            def error_lines() -> list[str]:
                return [r.getMessage() for r in records.records
                        if r.levelno == logging.ERROR and "failed to process item" in r.getMessage()]

            lines = wait_until(error_lines, 60.0, "the ERROR line after max_retries")  # logged by the service thread
            assert "ConcurrencySlotAcquisition" in lines[0], lines
            records.records.clear()
            with pytest.raises(TimeoutError):
                with concurrency(name, timeout_seconds=1, strict=True):
                    raise AssertionError("must not enter a busy limit")
            wait_until(error_lines, 60.0, "the ERROR line after a timeout")
    finally:
        service_logger.removeHandler(records)
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def test_gcl_rest_api_for_ci(prefect_api_url: str):
    """Create, read, update, list and delete a GCL over plain HTTP, as a CI job with curl would."""
    name = unique("ci")
    with httpx.Client(base_url=prefect_api_url, timeout=30) as http:
        created = http.post("/v2/concurrency_limits/", json={"name": name, "limit": 2})
        assert created.status_code == 201, created.text
        assert http.post("/v2/concurrency_limits/", json={"name": name, "limit": 2}).status_code == 409
        assert http.patch(f"/v2/concurrency_limits/{name}", json={"limit": 5, "active": False}).status_code == 204
        body = http.get(f"/v2/concurrency_limits/{name}").json()
        assert (body["limit"], body["active"], body["active_slots"]) == (5, False, 0)
        assert http.patch(f"/v2/concurrency_limits/{name}", json={"active_slots": 0}).status_code == 204
        names, offset = set(), 0
        while page := http.post("/v2/concurrency_limits/filter", json={"limit": 200, "offset": offset}).json():
            names |= {limit["name"] for limit in page}
            offset += len(page)
        assert name in names
        assert http.delete(f"/v2/concurrency_limits/{name}").status_code == 204
        assert http.get(f"/v2/concurrency_limits/{name}").status_code == 404


# ---------------------------------------------------------------------------------------------
# Deployment limits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["CANCEL_NEW", "ENQUEUE"])
def test_collision_strategy(strategy: str):
    dep_id, gcl = make_deployment(limit=1, strategy=strategy)
    try:
        first, second = new_run(dep_id), new_run(dep_id)
        assert propose(first.id, Pending()).is_pending()
        extra = propose(second.id, Pending())
        if strategy == "CANCEL_NEW":
            assert extra.is_cancelled() and extra.message == "Deployment concurrency limit reached."
        else:
            assert extra.is_scheduled() and extra.name == "AwaitingConcurrencySlot"
        assert gcl_slots(gcl) == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_cancelling_holds_deployment_slot():
    dep_id, gcl = make_deployment(limit=1)
    try:
        first, second = new_run(dep_id), new_run(dep_id)
        assert propose(first.id, Pending()).is_pending()
        assert propose(first.id, Running()).is_running()
        assert propose(first.id, Cancelling()).is_cancelling()
        assert gcl_slots(gcl) == 1
        waiting = propose(second.id, Pending())
        assert waiting.is_scheduled() and waiting.name == "AwaitingConcurrencySlot"
        assert propose(first.id, Cancelled()).is_cancelled()
        assert gcl_slots(gcl) == 0
        assert propose(second.id, Pending()).is_pending()
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_int_deployment_limit_enqueues_and_every_final_state_returns_the_slot():
    """An int limit with no strategy is ENQUEUE; it is the global limit `deployment:<id>` (the top-level
    `concurrency_limit` field reads None); a run's slot comes back at Completed, Failed, Crashed or Cancelled."""
    from prefect.states import Failed

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(unique("flow"))
        dep_id = client.create_deployment(flow_id=flow_id, name=unique("dep"), concurrency_limit=1)
        dep = client.read_deployment(dep_id)
        backing = client.read_global_concurrency_limit_by_name(f"deployment:{dep_id}")
    try:
        assert dep.concurrency_limit is None and dep.global_concurrency_limit.limit == 1
        assert backing.id == dep.global_concurrency_limit.id and backing.limit == 1
        ended = []
        for final in (Completed(), Failed(), Crashed(), Cancelled()):
            run, extra = new_run(dep_id), new_run(dep_id)
            assert propose(run.id, Pending()).is_pending() and propose(run.id, Running()).is_running()
            waiting = propose(extra.id, Pending())  # no strategy given: the extra run queues
            assert waiting.is_scheduled() and waiting.name == "AwaitingConcurrencySlot", waiting
            ended.append(propose(run.id, final).type.value)
            assert gcl_slots(f"deployment:{dep_id}") == 0, final
            assert propose(extra.id, Pending()).is_pending()  # the freed slot is taken at once
            assert propose(extra.id, Cancelled()).is_cancelled()
        assert ended == ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_disabled_backing_gcl_blocks_deployment_runs():
    """Disabling `deployment:<id>` does not lift the limit: no run can take a slot at all."""
    dep_id, gcl = make_deployment(limit=2)
    try:
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(gcl, GlobalConcurrencyLimitUpdate(active=False))
        run = new_run(dep_id)
        blocked = propose(run.id, Pending())
        assert blocked.is_scheduled() and blocked.name == "AwaitingConcurrencySlot"
        assert gcl_slots(gcl) == 0
        with get_client(sync_client=True) as client:  # how to lift it: remove the deployment's limit
            client.update_deployment(dep_id, DeploymentUpdate(concurrency_limit=None))
        assert propose(run.id, Pending()).is_pending()
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_grace_period_slot_lost_during_provisioning():
    """A Pending run whose lease lapsed while another run took the slot is Cancelled at RUNNING."""
    dep_id, gcl = make_deployment(limit=1, grace=60)
    try:
        slow, other = new_run(dep_id), new_run(dep_id)
        pending = propose(slow.id, Pending())
        lease_id = pending.state_details.deployment_concurrency_lease_id
        assert pending.is_pending() and lease_id
        with get_client(sync_client=True) as client:  # what the repossessor does when the lease expires
            client.release_concurrency_slots_with_lease(lease_id)
        assert gcl_slots(gcl) == 0
        assert propose(other.id, Pending()).is_pending()
        lost = propose(slow.id, Running())
        assert lost.is_cancelled()
        assert "Deployment concurrency slot lost during provisioning" in lost.message
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_grace_period_lapsed_lease_reacquired_when_free():
    """The same lapsed lease with no competitor: the run gets a new slot at RUNNING and goes on."""
    dep_id, gcl = make_deployment(limit=1, grace=60)
    try:
        slow = new_run(dep_id)
        pending = propose(slow.id, Pending())
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots_with_lease(pending.state_details.deployment_concurrency_lease_id)
        assert gcl_slots(gcl) == 0
        assert propose(slow.id, Running()).is_running()
        assert gcl_slots(gcl) == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_deployment_limit_zero_aborts_pending():
    dep_id, gcl = make_deployment(limit=1)
    try:
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(gcl, GlobalConcurrencyLimitUpdate(limit=0))
            run = client.create_flow_run_from_deployment(dep_id)
            result = client.set_flow_run_state(run.id, Pending())
            assert result.status.value == "ABORT" and "limit is 0" in result.details.reason
            assert client.read_flow_run(run.id).state.is_scheduled()
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_gate_order_worker_poll_before_deployment_slot():
    """The worker's poll ignores the deployment limit; the deployment slot is checked at PENDING."""
    with process_pool() as pool:
        dep_id, gcl = make_deployment(limit=1, work_pool_name=pool)
        try:
            first, second = new_run(dep_id), new_run(dep_id)
            assert propose(first.id, Pending()).is_pending()
            assert gcl_slots(gcl) == 1  # the deployment is full...
            with get_client(sync_client=True) as client:
                offered = client.get_scheduled_flow_runs_for_work_pool(
                    pool, scheduled_before=now("UTC") + timedelta(seconds=10))
            assert second.id in {r.flow_run.id for r in offered}  # ...yet the worker is offered its next run
            waiting = propose(second.id, Pending())  # the worker proposes PENDING; only now the slot is checked
            assert waiting.is_scheduled() and waiting.name == "AwaitingConcurrencySlot"
        finally:
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


@flow
def claims_deployed_flow() -> None:
    """Deployed (never run) by the redeploy test."""


def _deployed_limit(dep_id: uuid.UUID) -> tuple[int | None, str | None]:
    with get_client(sync_client=True) as client:
        dep = client.read_deployment(dep_id)
    gcl = dep.global_concurrency_limit
    options = dep.concurrency_options
    return (gcl.limit if gcl else None,
            options.collision_strategy.value if options and options.collision_strategy else None)


def test_redeploy_without_limit_removes_it():
    """`to_deployment(...).apply()` is what `prefect deploy` and `flow.deploy()` call."""
    name = unique("redeploy")
    dep_id = claims_deployed_flow.to_deployment(name=name, concurrency_limit=1).apply()
    try:
        assert _deployed_limit(dep_id)[0] == 1
        assert claims_deployed_flow.to_deployment(name=name).apply() == dep_id  # redeploy, no limit
        assert _deployed_limit(dep_id) == (None, None)
        with get_client(sync_client=True) as client:
            with pytest.raises(ObjectNotFound):
                client.read_global_concurrency_limit_by_name(f"deployment:{dep_id}")
            client.update_deployment(dep_id, DeploymentUpdate(concurrency_limit=2))  # set through the API
        assert _deployed_limit(dep_id)[0] == 2
        claims_deployed_flow.to_deployment(name=name).apply()
        assert _deployed_limit(dep_id)[0] is None  # the API-set limit is gone too
        # How to keep it: pass the limit on every deploy.
        keep = ConcurrencyLimitConfig(limit=1, collision_strategy="CANCEL_NEW")
        claims_deployed_flow.to_deployment(name=name, concurrency_limit=keep).apply()
        claims_deployed_flow.to_deployment(name=name, concurrency_limit=keep).apply()
        assert _deployed_limit(dep_id) == (1, "CANCEL_NEW")
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_mapping_form_without_collision_strategy_is_rejected(prefect_api_url: str, tmp_path: Path):
    """`prefect deploy` rejects `concurrency_limit: {limit: 1}`; with collision_strategy it deploys."""
    with process_pool() as pool:
        bad, good = unique("bad"), unique("good")
        (tmp_path / "flows.py").write_text("from prefect import flow\n\n\n@flow\ndef etl():\n    pass\n")
        (tmp_path / "prefect.yaml").write_text(
            "name: claims\nprefect-version: 3.9.1\ndeployments:\n"
            f"- name: {bad}\n  entrypoint: flows.py:etl\n  work_pool: {{name: {pool}}}\n"
            "  concurrency_limit: {limit: 1}\n"
            f"- name: {good}\n  entrypoint: flows.py:etl\n  work_pool: {{name: {pool}}}\n"
            "  concurrency_limit: {limit: 1, collision_strategy: CANCEL_NEW}\n"
        )
        prefect = str(Path(sys.executable).with_name("prefect"))
        env = dict(os.environ, PREFECT_API_URL=prefect_api_url)
        procs = {n: subprocess.Popen([prefect, "--no-prompt", "deploy", "--name", n], cwd=tmp_path, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for n in (bad, good)}
        out = {n: p.communicate(timeout=240)[0] for n, p in procs.items()}
        try:
            assert procs[good].returncode == 0, out[good][-3000:]
            assert procs[bad].returncode != 0, out[bad][-3000:]
            assert "collision_strategy" in out[bad], out[bad][-3000:]
            with get_client(sync_client=True) as client:
                with pytest.raises(ObjectNotFound):
                    client.read_deployment_by_name(f"etl/{bad}")
                dep = client.read_deployment_by_name(f"etl/{good}")
            assert dep.global_concurrency_limit.limit == 1
            assert dep.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        finally:
            with get_client(sync_client=True) as client:
                try:
                    client.delete_deployment(client.read_deployment_by_name(f"etl/{good}").id)
                except ObjectNotFound:
                    pass


# ---------------------------------------------------------------------------------------------
# Work pools and queues
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["queue", "pool"])
def test_worker_counts_pending_and_running_only(level: str):
    """The worker's poll (get_scheduled_flow_runs_for_work_pool) leaves a CANCELLING run's slot free."""
    with process_pool(concurrency_limit=1 if level == "pool" else None) as pool:
        with get_client(sync_client=True) as client:
            queue = unique("queue")
            client.create_work_queue(name=queue, work_pool_name=pool, concurrency_limit=1 if level == "queue" else None)
        dep_id, _ = make_deployment(work_pool_name=pool, work_queue_name=queue)

        def offered() -> int:
            with get_client(sync_client=True) as client:
                runs = client.get_scheduled_flow_runs_for_work_pool(
                    pool, work_queue_names=[queue], scheduled_before=now("UTC") + timedelta(seconds=10))
            return len(runs)

        def queue_slots() -> int:  # what `prefect work-queue slots` shows
            with get_client(sync_client=True) as client:
                queue_id = client.read_work_queue_by_name(queue, work_pool_name=pool).id
                return client.read_work_queue_concurrency_status(queue_id).active_slots

        try:
            first, _second = new_run(dep_id), new_run(dep_id)
            assert offered() == 1  # room for one run
            assert propose(first.id, Pending()).is_pending()
            assert offered() == 0
            assert propose(first.id, Running()).is_running()
            assert offered() == 0
            assert propose(first.id, Cancelling()).is_cancelling()
            assert offered() == 1  # the worker no longer counts the CANCELLING run
            if level == "queue":
                assert queue_slots() == 1  # ...while `work-queue slots` still does
        finally:
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


def _offered(pool: str) -> list[uuid.UUID]:
    """The runs a worker polling the pool would be offered now (its poll, with a minute of look-ahead)."""
    with get_client(sync_client=True) as client:
        runs = client.get_scheduled_flow_runs_for_work_pool(pool, scheduled_before=now("UTC") + timedelta(minutes=1))
    return [r.flow_run.id for r in runs]


def test_dead_run_keeps_its_pool_slot_until_marked_and_a_second_pending_is_refused():
    """A Running run whose worker died holds the pool's one slot: the next run is not offered until the
    run's state changes (Crashed, as a heartbeat automation sets it); a second Pending is refused."""
    with process_pool(concurrency_limit=1) as pool:
        dep_id, _ = make_deployment(work_pool_name=pool)
        try:
            stale, nxt = new_run(dep_id), new_run(dep_id)
            assert propose(stale.id, Pending()).is_pending()
            with get_client(sync_client=True) as client:
                again = client.set_flow_run_state(stale.id, Pending())
            assert again.status.value == "ABORT", again
            assert "cannot transition to a PENDING state" in again.details.reason, again.details.reason
            assert propose(stale.id, Running()).is_running()  # ...then its worker dies: nothing reports
            assert _offered(pool) == []  # the Running run holds the slot
            with get_client(sync_client=True) as client:  # what a change-flow-run-state action does
                client.set_flow_run_state(stale.id, Crashed(message="No heartbeat"), force=True)
            assert _offered(pool) == [nxt.id]
        finally:
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


_retry_attempts: dict[str, int] = {}


@flow(retries=1, retry_delay_seconds=2)
def claims_flow_retrying(key: str) -> str:
    _retry_attempts[key] = _retry_attempts.get(key, 0) + 1
    if _retry_attempts[key] == 1:
        raise RuntimeError("first attempt fails")
    return "second attempt"


@pytest.mark.soak  # ~20 s: a Proactive trigger's 10 s window and the server's trigger evaluation; `make soak`
def test_proactive_automation_fails_a_run_left_pending_and_leaves_one_that_went_running():
    """The recipe's Pending automation (Proactive, after Pending, expect Running or a final state, for_each
    run, within 10 s, action change-flow-run-state FAILED with a message): the run left Pending is Failed
    with the message after the window; the run that went Running in time is left alone."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    dep_id, _ = make_deployment()
    stuck, moving = new_run(dep_id), new_run(dep_id)
    trigger = EventTrigger(
        posture=Posture.Proactive,
        match={"prefect.resource.id": [f"prefect.flow-run.{stuck.id}", f"prefect.flow-run.{moving.id}"]},
        after={"prefect.flow-run.Pending"},
        expect={"prefect.flow-run.Running", "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
        for_each={"prefect.resource.id"},
        within=timedelta(seconds=10),
        threshold=1,
    )
    message = "Pending for 10 seconds"
    automation = AutomationCore(name=unique("fail-long-pending"), trigger=trigger,
                                actions=[ChangeFlowRunState(state=StateType.FAILED, message=message)])
    with get_client(sync_client=True) as client:
        automation_id = client.create_automation(automation)
    try:
        assert propose(stuck.id, Pending()).is_pending() and propose(moving.id, Pending()).is_pending()
        assert propose(moving.id, Running()).is_running()  # in time: its expectation is met

        def failed():
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(stuck.id).state
            return state if state.is_failed() else None

        state = wait_until(failed, 120, "the automation to fail the run left Pending")
        assert state.message == message, state
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(moving.id).state.is_running()  # its window has passed too
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(automation_id)
            client.delete_deployment(dep_id)


def test_proactive_trigger_window_is_at_least_10_seconds():
    """A Proactive trigger's `within` below 10 s is refused when the automation is built (as
    `prefect automation create --from-file` builds it); 10 s is accepted, and a Reactive one may use 0."""
    from prefect.events.schemas.automations import EventTrigger, Posture
    from pydantic import ValidationError

    pending = {"after": {"prefect.flow-run.Pending"}, "expect": {"prefect.flow-run.Running"}}
    with pytest.raises(ValidationError, match="must be greater than or equal to 10 seconds"):
        EventTrigger(posture=Posture.Proactive, within=timedelta(seconds=9), **pending)
    assert EventTrigger(posture=Posture.Proactive, within=timedelta(seconds=10), **pending).within.seconds == 10
    assert EventTrigger(posture=Posture.Reactive, within=timedelta(0), expect={"x"}).within == timedelta(0)


def test_decorator_flow_retry_waits_in_process_and_workers_skip_it():
    """A flow with `retries` that fails waits in AwaitingRetry with retry_type in_process and reruns in its
    own process; a worker's poll does not offer it, though it offers a plain Scheduled run due at the same time."""
    from prefect.states import Scheduled

    with process_pool() as pool:
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name(claims_flow_retrying.name)
            dep_id = client.create_deployment(flow_id=flow_id, name=unique("dep"), work_pool_name=pool)
        try:
            run, key, outcome = new_run(dep_id), unique("retry"), {}

            def engine() -> None:  # what the run's own process does
                outcome["state"] = run_flow(claims_flow_retrying, flow_run=run, parameters={"key": key},
                                            return_type="state")

            thread = threading.Thread(target=engine, daemon=True)
            thread.start()

            def awaiting_retry():
                with get_client(sync_client=True) as client:
                    seen = client.read_flow_run(run.id)
                return seen if seen.state.name == "AwaitingRetry" else None

            waiting = wait_until(awaiting_retry, 30, "the run to wait for its retry")
            assert waiting.empirical_policy.retry_type == "in_process", waiting.empirical_policy
            assert waiting.state.is_scheduled()
            control = new_run(dep_id, state=Scheduled(scheduled_time=waiting.state.state_details.scheduled_time))
            offered = _offered(pool)  # the retry is due in ~2 s, inside the minute the poll looks ahead
            assert control.id in offered and run.id not in offered, (offered, control.id, run.id)
            thread.join(60)
            assert outcome["state"].is_completed() and _retry_attempts[key] == 2, outcome
        finally:
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


def test_worker_poll_prefers_higher_priority_queue():
    """With room for one run, the poll offers the priority-1 queue's run over an older priority-2 run."""
    with process_pool(concurrency_limit=1) as pool:
        with get_client(sync_client=True) as client:
            low = client.create_work_queue(name=unique("low"), work_pool_name=pool)  # priority 2
        low_dep, _ = make_deployment(work_pool_name=pool, work_queue_name=low.name)
        high_dep, _ = make_deployment(work_pool_name=pool, work_queue_name="default")
        try:
            older = new_run(low_dep)
            newer = new_run(high_dep)
            assert older.expected_start_time <= newer.expected_start_time
            with get_client(sync_client=True) as client:
                offered = client.get_scheduled_flow_runs_for_work_pool(
                    pool, scheduled_before=now("UTC") + timedelta(seconds=10))
            assert [r.flow_run.id for r in offered] == [newer.id]
        finally:
            with get_client(sync_client=True) as client:
                client.delete_deployment(low_dep)
                client.delete_deployment(high_dep)


def test_cli_limit_commands(prefect_api_url: str):
    """The CLI facts the recipes state: the pool limit is positional (`--limit` is unknown there), a
    queue takes `--limit`, `gcl create` fails on an existing name, `gcl enable` on an enabled one."""
    queue, gcl = unique("queue"), unique("gcl")
    with process_pool() as pool:
        with get_client(sync_client=True) as client:
            client.create_work_queue(name=queue, work_pool_name=pool)
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=1))
        prefect = str(Path(sys.executable).with_name("prefect"))
        env = dict(os.environ, PREFECT_API_URL=prefect_api_url)
        commands = {
            "pool-flag": ["work-pool", "set-concurrency-limit", pool, "--limit", "5"],
            "pool-positional": ["work-pool", "set-concurrency-limit", pool, "5"],
            "queue-flag": ["work-queue", "set-concurrency-limit", queue, "--limit", "2", "--pool", pool],
            "gcl-create-again": ["gcl", "create", gcl, "--limit", "1"],
            "gcl-enable-enabled": ["gcl", "enable", gcl],
            "gcl-update-enable": ["gcl", "update", gcl, "--limit", "2", "--enable"],
        }
        procs = {key: subprocess.Popen([prefect, "--no-prompt", *args], env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
                 for key, args in commands.items()}
        out = {key: p.communicate(timeout=240)[0] for key, p in procs.items()}
        code = {key: p.returncode for key, p in procs.items()}
        try:
            assert code["pool-flag"] != 0 and "Unknown option" in out["pool-flag"], out["pool-flag"][-2000:]
            assert code["pool-positional"] == 0, out["pool-positional"][-2000:]
            assert code["queue-flag"] == 0, out["queue-flag"][-2000:]
            assert code["gcl-create-again"] == 1 and "already exists" in out["gcl-create-again"]
            assert code["gcl-enable-enabled"] == 1, out["gcl-enable-enabled"][-2000:]
            assert code["gcl-update-enable"] == 0, out["gcl-update-enable"][-2000:]
            with get_client(sync_client=True) as client:
                assert client.read_work_pool(pool).concurrency_limit == 5
                assert client.read_work_queue_by_name(queue, work_pool_name=pool).concurrency_limit == 2
                assert client.read_global_concurrency_limit_by_name(gcl).limit == 2
        finally:
            with get_client(sync_client=True) as client:
                client.delete_global_concurrency_limit_by_name(gcl)


def test_queue_priority_renumbering(prefect_api_url: str):
    """A queue created or moved (pool route) onto a taken priority pushes the others down by one;
    the legacy `/work_queues/{id}` update (client.update_work_queue) does not renumber."""

    def order() -> dict[str, int]:
        with get_client(sync_client=True) as client:
            return {q.name: q.priority for q in client.read_work_queues(work_pool_name=pool)}

    with process_pool() as pool:
        with get_client(sync_client=True) as client:
            bulk = client.create_work_queue(name=unique("bulk"), work_pool_name=pool)
            assert bulk.priority == 2  # the pool's `default` queue holds 1; a new queue takes the next free
            critical = client.create_work_queue(name=unique("critical"), work_pool_name=pool, priority=1)
        assert order() == {critical.name: 1, "default": 2, bulk.name: 3}
        with httpx.Client(base_url=prefect_api_url, timeout=30) as http:
            moved = http.patch(f"/work_pools/{pool}/queues/{bulk.name}", json={"priority": 1})
        assert moved.status_code == 204, moved.text
        assert order() == {bulk.name: 1, critical.name: 2, "default": 3}
        with get_client(sync_client=True) as client:
            client.update_work_queue(critical.id, priority=1)
        assert order() == {bulk.name: 1, critical.name: 1, "default": 3}  # a tie: nothing renumbered


def test_worker_takes_a_backlog_oldest_first_up_to_the_pool_limit():
    """A worker's poll on a pool with room for one run is offered the oldest overdue run, whatever order
    the runs were created in; cleared with `WorkPoolUpdate(concurrency_limit=None)`, it is offered all."""
    from prefect.client.schemas.actions import WorkPoolUpdate
    from prefect.states import Scheduled

    def offered(pool: str) -> list[uuid.UUID]:
        with get_client(sync_client=True) as client:
            runs = client.get_scheduled_flow_runs_for_work_pool(pool, scheduled_before=now("UTC"))
        return [r.flow_run.id for r in runs]

    with process_pool(concurrency_limit=1) as pool:
        dep_id, _ = make_deployment(work_pool_name=pool)
        try:
            ages = (10, 30, 20)  # minutes overdue, created in this order: the oldest is not the first made
            runs = {age: new_run(dep_id, state=Scheduled(scheduled_time=now("UTC") - timedelta(minutes=age)))
                    for age in ages}
            assert offered(pool) == [runs[30].id]  # room for one: the oldest
            with get_client(sync_client=True) as client:
                client.update_work_pool(pool, WorkPoolUpdate(concurrency_limit=None))  # None clears the limit
                assert client.read_work_pool(pool).concurrency_limit is None
            assert offered(pool) == [runs[30].id, runs[20].id, runs[10].id]  # all of them, oldest first
        finally:
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


@flow
def claims_nightly() -> str:
    """The recipe's skip: return early when the run is over 30 minutes past its scheduled time."""
    from datetime import UTC, datetime

    from prefect.runtime import flow_run

    if datetime.now(UTC) - flow_run.scheduled_start_time > timedelta(minutes=30):
        return "skipped"
    return "ran"


def test_flow_skips_a_run_started_long_after_its_scheduled_time():
    """prefect.runtime.flow_run.scheduled_start_time is the time the run was scheduled for, not when it
    started: a run of a backlog 40 minutes late returns early, an on-time run does its work."""
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(claims_nightly.name)
        dep_id = client.create_deployment(flow_id=flow_id, name=unique("nightly"))
    try:
        stale = new_run(dep_id, state=Scheduled(scheduled_time=now("UTC") - timedelta(minutes=40)))
        fresh = new_run(dep_id)
        assert run_flow(claims_nightly, flow_run=stale, return_type="result") == "skipped"
        assert run_flow(claims_nightly, flow_run=fresh, return_type="result") == "ran"
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_redeploy_deletes_only_future_auto_scheduled_runs(prefect_api_url: str):
    """A redeploy (the upsert `prefect deploy` sends) deletes the scheduler's runs still due in the future;
    it keeps a Late run (its time is past), an AwaitingConcurrencySlot one (due in the future, but named so)
    and a run made by hand."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.states import Late, Scheduled

    hourly = DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(hours=1)), active=True)
    flow_name, dep_name = unique("flow"), unique("dep")
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(flow_name)
        dep_id = client.create_deployment(flow_id=flow_id, name=dep_name, schedules=[hourly], concurrency_limit=1)
    try:
        start = now("UTC")  # the scheduler's own endpoint: runs from 5 h ago to 3 h ahead, all auto-scheduled
        window = {"start_time": (start - timedelta(hours=5)).isoformat(),
                  "end_time": (start + timedelta(hours=3)).isoformat(), "min_runs": 8, "max_runs": 8}
        httpx.post(f"{prefect_api_url}/deployments/{dep_id}/schedule", json=window, timeout=30).raise_for_status()
        runs = sorted(_scheduled_runs(dep_id), key=lambda r: r.next_scheduled_start_time)
        past = [r for r in runs if r.next_scheduled_start_time < start]
        future = [r for r in runs if r.next_scheduled_start_time > start]
        assert len(past) >= 3 and len(future) >= 2 and all(r.auto_scheduled for r in runs), runs
        late, holder, waiting = past[:3]
        with get_client(sync_client=True) as client:  # what the late-runs service does to an overdue run
            client.set_flow_run_state(late.id, Late(scheduled_time=late.next_scheduled_start_time), force=True)
        assert propose(holder.id, Pending()).is_pending()  # takes the deployment's one slot
        awaiting = propose(waiting.id, Pending())  # limit full: back to Scheduled, retried in ~30 s
        assert awaiting.name == "AwaitingConcurrencySlot" and awaiting.state_details.scheduled_time > now("UTC")
        by_hand = new_run(dep_id, state=Scheduled(scheduled_time=start + timedelta(hours=2)))

        with get_client(sync_client=True) as client:  # redeploy: the same flow and name, sent whole again
            assert client.create_deployment(flow_id=flow_id, name=dep_name, schedules=[hourly],
                                            concurrency_limit=1) == dep_id
            of_dep = DeploymentFilter(id=DeploymentFilterId(any_=[dep_id]))
            left = {r.id for r in client.read_flow_runs(deployment_filter=of_dep, limit=200)}
        assert {late.id, waiting.id, by_hand.id, holder.id} <= left, "a kept run was deleted"
        assert not {r.id for r in future} & left, "a future auto-scheduled run survived the redeploy"
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_two_schedules_at_one_time_make_two_runs_and_scheduling_again_makes_none(prefect_api_url: str):
    """Each auto-scheduled run's idempotency key is `scheduled DEPLOYMENT_ID SCHEDULE_ID TIME`: two schedules
    with the same interval give two runs per time, each with its schedule's parameters, and scheduling the
    same window again adds no run."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    anchor = now("UTC").replace(microsecond=0) + timedelta(hours=1)
    same = IntervalSchedule(interval=timedelta(hours=1), anchor_date=anchor)
    schedules = [DeploymentScheduleCreate(schedule=same, active=True, parameters={"who": who}) for who in "ab"]
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(unique("flow"))
        dep_id = client.create_deployment(flow_id=flow_id, name=unique("dep"), schedules=schedules)
        schedule_ids = {s.parameters["who"]: s.id for s in client.read_deployment(dep_id).schedules}
    try:
        window = {"start_time": now("UTC").isoformat(), "end_time": (anchor + timedelta(minutes=90)).isoformat(),
                  "min_runs": 2, "max_runs": 2}
        for _ in range(2):  # the second time, every key exists: nothing is added
            httpx.post(f"{prefect_api_url}/deployments/{dep_id}/schedule", json=window, timeout=30).raise_for_status()
        # The server's own scheduler service may add later times for these active schedules meanwhile (a
        # full run once saw a third, two hours out); inside the window, every run is one of the four.
        end = anchor + timedelta(minutes=90)
        runs = [r for r in _scheduled_runs(dep_id) if r.expected_start_time <= end]
        seen = sorted((r.expected_start_time, r.parameters["who"], r.idempotency_key) for r in runs)
        times = sorted({t for t, _, _ in seen})
        assert len(times) == 2 and len(seen) == 4, seen  # two times, two runs each
        for when, who, key in seen:
            assert key == f"scheduled {dep_id} {schedule_ids[who]} {when.isoformat(sep=' ')}", (key, when)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def test_read_global_concurrency_limits_pages_ten_by_default():
    """`read_global_concurrency_limits()` returns one page of 10; `limit=` and `offset=` page on."""
    prefix = unique("page")
    names = {f"{prefix}-{i:02d}" for i in range(12)}
    with get_client(sync_client=True) as client:
        for name in names:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        try:
            assert len(client.read_global_concurrency_limits()) == 10  # 12 or more exist
            seen, offset = set(), 0
            while page := client.read_global_concurrency_limits(limit=200, offset=offset):
                seen |= {limit.name for limit in page}
                offset += len(page)
            assert names <= seen and offset >= 12
        finally:
            for name in names:
                client.delete_global_concurrency_limit_by_name(name)


# ---------------------------------------------------------------------------------------------
# Lease storage across a server restart
# ---------------------------------------------------------------------------------------------


class RestartableServer(PrefectServer):
    """A server of its own (the session server must not restart) with a chosen lease storage."""

    def __init__(self, lease_storage: str) -> None:
        super().__init__()
        self.lease_storage = lease_storage

    def environment(self) -> dict[str, str]:
        return dict(super().environment(), PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=self.lease_storage)

    def restart(self, timeout: float = 240.0) -> None:
        """Stop the process and start it again on the same database and PREFECT_HOME."""
        self.process.terminate()
        self.process.wait(timeout=60)
        prefect = Path(sys.executable).with_name("prefect")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until_healthy(f"{self.url}/health", self.process, timeout, self.log_path.read_text, "prefect server")


def _lease_renews(client, lease_id: uuid.UUID) -> bool:
    try:
        client.renew_concurrency_lease(lease_id, lease_duration=300)
    except httpx.HTTPStatusError as exc:
        assert exc.response.status_code in (404, 410), exc
        return False
    return True


@pytest.mark.soak  # ~15 s: a server of its own, restarted; runs in `make soak`
@pytest.mark.parametrize("storage", ["memory"])  # "filesystem" passes too (leases survive); ~1 min each
def test_server_restart_and_lease_storage(storage: str):
    """In-memory leases die with the server: a running deployment run can no longer renew (the engine
    then crashes it) and its slot comes back at Crashed, while a GCL slot stays counted for good."""
    server = RestartableServer(f"prefect.server.concurrency.lease_storage.{storage}").start()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            gcl = unique("gcl")
            with get_client(sync_client=True) as client:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=1))
                gcl_lease = client.increment_concurrency_slots_with_lease(
                    names=[gcl], slots=1, mode="concurrency", lease_duration=60).json()["lease_id"]
            dep_id, dep_gcl = make_deployment(limit=1)
            run = new_run(dep_id)
            assert propose(run.id, Pending()).is_pending()
            running = propose(run.id, Running())
            run_lease = running.state_details.deployment_concurrency_lease_id
            assert running.is_running() and run_lease

            server.restart()

            with get_client(sync_client=True) as client:
                survived = _lease_renews(client, run_lease)
                assert _lease_renews(client, gcl_lease) is survived
                client.release_concurrency_slots_with_lease(gcl_lease)  # the holder leaves its block
                gcl_after = client.read_global_concurrency_limit_by_name(gcl).active_slots
                client.set_flow_run_state(run.id, Crashed() if not survived else Completed())
                dep_after = client.read_global_concurrency_limit_by_name(dep_gcl).active_slots
        if storage == "memory":
            assert not survived
            assert gcl_after == 1  # leaked: no lease left to release or expire
        else:
            assert survived
            assert gcl_after == 0
        assert dep_after == 0  # the run's slot came back (memory: by the fallback decrement)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Task runners
# ---------------------------------------------------------------------------------------------


@task
def inner_step() -> str:
    return "inner"


# The runner counts a submission only after its executor has taken it, so a worker thread can reach
# its own nested submit before the count says it is busy (then Prefect does not warn). The flow sets
# this once its submit has returned, and the outer task waits for it: the nested submit then always
# sees the count of a busy runner.
OUTER_SUBMITTED = threading.Event()


@task
def outer_step(wait_seconds: float) -> str:
    OUTER_SUBMITTED.wait(30)
    future = inner_step.submit()
    try:
        return future.result(timeout=wait_seconds)
    except TimeoutError:
        return "deadlocked"


def _submit_outer(wait_seconds: float) -> str:
    OUTER_SUBMITTED.clear()
    future = outer_step.submit(wait_seconds)
    OUTER_SUBMITTED.set()
    return future.result()


@flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
def nested_one_worker() -> str:
    return _submit_outer(1)  # the only thread waits on a child that can never get one


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def nested_two_workers() -> str:
    return _submit_outer(60)


@task
def outer_calls_directly() -> str:
    return inner_step()  # a task called inside a task runs inline, in this worker's thread


@flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
def direct_one_worker() -> str:
    return outer_calls_directly.submit().result()


def test_nested_submit_deadlocks_with_one_worker():
    """A task that submits and waits on another task needs a free worker: max_workers=1 never has one,
    and Prefect logs a warning when a task submits while every worker thread is busy."""
    records = _Records()
    runner_logs = logging.getLogger("prefect.task_runner")
    runner_logs.addHandler(records)

    def warned() -> list[str]:
        return [r.getMessage() for r in records.records
                if r.levelno == logging.WARNING and "will deadlock" in r.getMessage()]

    try:
        assert nested_one_worker() == "deadlocked"
        assert warned(), [r.getMessage() for r in records.records]
        records.records.clear()
        assert nested_two_workers() == "inner"
        assert not warned()  # a free thread for the child: no warning
        assert direct_one_worker() == "inner"
    finally:
        runner_logs.removeHandler(records)


@task(cache_policy=NO_CACHE)
def claims_wait_for_event(event: threading.Event) -> bool:
    return event.wait(10)


@task(cache_policy=NO_CACHE)
def claims_set_event(event: threading.Event) -> bool:
    event.set()
    return True


@flow
def claims_child_setting(event: threading.Event) -> str:
    from prefect.runtime import flow_run

    claims_set_event.submit(event).result()
    return str(flow_run.get_id())


@flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
def claims_parent_one_worker(event: threading.Event) -> tuple[str, bool]:
    waiting = claims_wait_for_event.submit(event)  # holds the parent runner's only thread until the event
    return claims_child_setting(event), waiting.result()  # the child's task runs on the child's own runner


def test_subflow_has_its_own_task_runner_and_is_not_a_deployment_run():
    """A subflow's tasks run on the subflow's own runner, not on the parent's one busy thread; the subflow
    run has no deployment, so the limit of a deployment of the same flow (0: every start aborts) is not used."""
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(claims_child_setting.name)
        dep_id = client.create_deployment(flow_id=flow_id, name=unique("dep"), concurrency_limit=1)
        client.update_global_concurrency_limit(f"deployment:{dep_id}", GlobalConcurrencyLimitUpdate(limit=0))
    try:
        child_run_id, parent_task_ran = claims_parent_one_worker(threading.Event())
        assert parent_task_ran  # the child's task set the event the parent's task was holding its thread for
        with get_client(sync_client=True) as client:
            child = client.read_flow_run(uuid.UUID(child_run_id))
        assert child.deployment_id is None and child.state.is_completed(), child
        assert child.parent_task_run_id is not None  # a subflow: linked to its parent
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)

@task
def claims_db_inner() -> str:
    return "inner"


@task
def claims_db_outer(tag: str) -> str:
    future = claims_db_inner.with_options(tags=[tag]).submit()
    try:
        return future.result(timeout=1)  # this task holds the tag's only slot while it waits
    except TimeoutError:
        return "deadlocked"


@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def claims_tag_nesting(tag: str) -> str:
    return claims_db_outer.with_options(tags=[tag]).submit(tag).result()  # threads to spare: only the tag blocks


def test_tag_task_waiting_on_a_same_tag_task_holds_the_slot_it_needs():
    """Tag limit 1: a running tagged task that waits on another task with the same tag holds the slot that
    task needs, so the other never runs while the first waits."""
    tag = unique("db")
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=tag, concurrency_limit=1)
    try:
        assert claims_tag_nesting(tag) == "deadlocked"
    finally:
        with get_client(sync_client=True) as client:
            client.delete_concurrency_limit_by_tag(tag)


def test_process_pool_default_workers():
    from prefect.task_runners import ProcessPoolTaskRunner

    assert ProcessPoolTaskRunner()._max_workers == os.cpu_count()
    assert ProcessPoolTaskRunner(max_workers=2)._max_workers == 2


@task
def claims_worker_pid(_: int) -> int:
    return os.getpid()


@flow
def claims_pids_of_two_tasks() -> list[int | str]:
    first = claims_worker_pid.submit(0)
    second = claims_worker_pid.submit(1, wait_for=[first])  # a future crossing into the pool
    pids: list[int | str] = [first.result(), second.result()]
    try:
        claims_worker_pid.submit(threading.RLock()).result()  # a lock cannot cross into a process
    except Exception as exc:
        pids.append(f"{type(exc).__name__}: {exc}")
    return pids


def test_process_pool_max_workers_setting_sizes_the_default_pool(monkeypatch: pytest.MonkeyPatch):
    """PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS=1 (the env var read into the settings) gives
    ProcessPoolTaskRunner() one worker process: two tasks run in the same child process, the second with
    wait_for= the first's future; a lock passed to a task fails to pickle."""
    from prefect.settings import PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS, Settings
    from prefect.task_runners import ProcessPoolTaskRunner

    monkeypatch.setenv("PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS", "1")  # the environment, not Prefect
    assert Settings().tasks.runner.process_pool_max_workers == 1  # this is the variable's name
    with temporary_settings(updates={PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS: 1}):
        pool = ProcessPoolTaskRunner()  # left out: max_workers comes from the setting
    assert pool._max_workers == 1 != os.cpu_count()
    *pids, refused = claims_pids_of_two_tasks.with_options(task_runner=pool)()
    assert len(set(pids)) == 1 and os.getpid() not in pids, pids  # one child process ran both
    assert "cannot pickle '_thread.RLock' object" in refused, refused


# ---------------------------------------------------------------------------------------------
# Cancelling, Late runs and leases (the services the server runs on its own)
# ---------------------------------------------------------------------------------------------


def test_cancel_scheduled_run_without_infrastructure_ends_cancelled(prefect_api_url: str):
    """`prefect flow-run cancel` of a Scheduled run no worker took ends Cancelled at once; a run with an
    infrastructure pid stays Cancelling (a worker has something to stop)."""
    dep_id, _ = make_deployment()
    try:
        idle, started = new_run(dep_id), new_run(dep_id)
        with get_client(sync_client=True) as client:
            client.update_flow_run(started.id, infrastructure_pid="4242")
        prefect = str(Path(sys.executable).with_name("prefect"))
        env = dict(os.environ, PREFECT_API_URL=prefect_api_url)
        done = subprocess.run([prefect, "--no-prompt", "flow-run", "cancel", str(idle.id)], env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
        with get_client(sync_client=True) as client:
            assert client.read_flow_run(idle.id).state.is_cancelled()
        assert propose(started.id, Cancelling()).is_cancelling()
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)


def _past(seconds: float):
    from prefect.states import Scheduled

    return Scheduled(scheduled_time=now("UTC") - timedelta(seconds=seconds))


def test_late_runs_service_marks_only_scheduled_and_cancels_under_cancel_new():
    """The server's late-runs service renames an overdue `Scheduled` run `Late`, leaves an overdue
    `AwaitingConcurrencySlot` or `Pending` run alone, and cancels an overdue run of a full CANCEL_NEW
    deployment."""
    from prefect.settings import get_current_settings
    from prefect.states import Scheduled

    assert get_current_settings().server.services.late_runs.after_seconds == timedelta(seconds=15)  # the server's
    free_dep, _ = make_deployment()
    full_dep, _ = make_deployment(limit=1, strategy="CANCEL_NEW")
    try:
        overdue = new_run(free_dep, state=_past(60))
        awaiting = new_run(free_dep, state=Scheduled(scheduled_time=now("UTC") - timedelta(seconds=60),
                                                     name="AwaitingConcurrencySlot"))
        holder, extra = new_run(full_dep), new_run(full_dep, state=_past(60))
        assert propose(holder.id, Pending()).is_pending()  # the CANCEL_NEW deployment is full
        taken = new_run(free_dep, state=_past(60))  # overdue, then taken by a worker: Pending
        assert propose(taken.id, Pending()).is_pending()

        def state_of(run_id: uuid.UUID):
            with get_client(sync_client=True) as client:
                return client.read_flow_run(run_id).state

        wait_until(lambda: state_of(overdue.id).name == "Late", 90.0, "the overdue run to be marked Late")
        wait_until(lambda: state_of(extra.id).is_cancelled(), 90.0, "the overdue CANCEL_NEW run to be cancelled")
        kept = state_of(awaiting.id)  # the same service pass saw it and left it
        assert kept.is_scheduled() and kept.name == "AwaitingConcurrencySlot"
        assert state_of(taken.id).name == "Pending"  # overdue too, but Pending is never marked Late
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(free_dep)
            client.delete_deployment(full_dep)


def _prefect_cli(api_url: str, *args: str) -> subprocess.CompletedProcess:
    prefect = str(Path(sys.executable).with_name("prefect"))
    return subprocess.run([prefect, "--no-prompt", *args], env=dict(os.environ, PREFECT_API_URL=api_url),
                          capture_output=True, text=True, timeout=240)


def _scheduled_runs(dep_id: uuid.UUID, future_only: bool = False) -> list:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilterNextScheduledStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    run_filter = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])))
    if future_only:
        run_filter.next_scheduled_start_time = FlowRunFilterNextScheduledStartTime(after_=now("UTC"))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])),
                                     flow_run_filter=run_filter, limit=200)


def _scheduled_deployment(**kwargs: object) -> uuid.UUID:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    every_5_s = DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(seconds=5)), active=True)
    return make_deployment(schedules=[every_5_s], **kwargs)[0]


@pytest.mark.soak  # ~60 s: waits for the server's scheduler loops and a run to go Late; runs in `make soak`
def test_paused_pool_still_gets_scheduled_runs_and_schedule_pause_stops_them(prefect_api_url: str):
    """A paused work pool does not stop the scheduler: its deployment gets runs that nobody is offered and
    that go Late. `prefect deployment schedule pause NAME SCHEDULE_ID` stops new runs and removes the
    future ones (`--all` with a name is refused); `resume` brings them back."""
    with process_pool(is_paused=True) as pool:
        in_paused_pool = _scheduled_deployment(work_pool_name=pool)
        to_pause = _scheduled_deployment()
        control = None
        try:
            wait_until(lambda: _scheduled_runs(in_paused_pool), 60.0, "the scheduler to make runs in the paused pool")
            with get_client(sync_client=True) as client:
                offered = client.get_scheduled_flow_runs_for_work_pool(pool, scheduled_before=now("UTC")
                                                                        + timedelta(days=1))
            assert offered == []  # a worker of the paused pool is offered none of them
            wait_until(lambda: any(r.state.name == "Late" for r in _scheduled_runs(in_paused_pool)), 90.0,
                       "a run of the paused pool to go Late")

            wait_until(lambda: _scheduled_runs(to_pause, future_only=True), 60.0, "runs of the schedule to pause")
            with get_client(sync_client=True) as client:
                dep = client.read_deployment(to_pause)
                name = f"{client.read_flow(dep.flow_id).name}/{dep.name}"
            refused = _prefect_cli(prefect_api_url, "deployment", "schedule", "pause", name, "--all")
            assert refused.returncode != 0 and "Cannot specify deployment name" in refused.stdout + refused.stderr
            paused = _prefect_cli(prefect_api_url, "deployment", "schedule", "pause", name, str(dep.schedules[0].id))
            assert paused.returncode == 0, (paused.stdout + paused.stderr)[-2000:]
            assert _scheduled_runs(to_pause, future_only=True) == []  # its future runs are gone at once
            with get_client(sync_client=True) as client:  # recently changed, so the recent-deployments pass
                client.update_deployment(to_pause, DeploymentUpdate(description="touched"))  # looks at it again
            control = _scheduled_deployment()  # made after the pause: once it has runs, a pass has happened
            wait_until(lambda: _scheduled_runs(control), 60.0, "the scheduler's next pass")
            assert _scheduled_runs(to_pause, future_only=True) == []  # no new runs while paused
            resumed = _prefect_cli(prefect_api_url, "deployment", "schedule", "resume", name, str(dep.schedules[0].id))
            assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-2000:]
            wait_until(lambda: _scheduled_runs(to_pause, future_only=True), 120.0, "runs again after resume")
        finally:
            with get_client(sync_client=True) as client:
                for dep_id in (in_paused_pool, to_pause, control):
                    if dep_id:
                        client.delete_deployment(dep_id)


_SERVED_FLOW = """
import os
import time
from pathlib import Path

from prefect import flow


@flow(name="claims-served")
def held(work: str) -> None:
    Path(work, f"inside-{os.getpid()}").write_text("")
    while not Path(work, "release").exists():  # held until the test lets go
        time.sleep(0.1)
"""


@pytest.mark.soak  # ~15 s: a `prefect flow serve` process and two run subprocesses; runs in `make soak`
def test_serve_limit_caps_the_runs_the_process_runs_at_once(prefect_api_url: str, tmp_path: Path):
    """`prefect flow serve ... --limit 1` runs one run at a time: with one run inside, the process skips
    the second (it stays Scheduled) and starts it once the first has finished. `--global-limit 2` is the
    deployment's concurrency limit; serving again without it removes that limit."""
    import signal

    name = unique("served")
    (tmp_path / "flows.py").write_text(_SERVED_FLOW)
    log = tmp_path / "serve.log"
    env = dict(os.environ, PREFECT_API_URL=prefect_api_url, PREFECT_RUNNER_POLL_FREQUENCY="1",
               PREFECT_LOGGING_LEVEL="INFO")
    prefect = str(Path(sys.executable).with_name("prefect"))

    def serve(*options: str) -> subprocess.Popen:
        with open(log, "ab") as out:
            return subprocess.Popen([prefect, "flow", "serve", "flows.py:held", "--name", name, *options],
                                    cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def stop(serving: subprocess.Popen) -> None:
        if serving.poll() is None:
            os.killpg(serving.pid, signal.SIGTERM)
            try:
                serving.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(serving.pid, signal.SIGKILL)

    def deployment_limit() -> int | None:
        with get_client(sync_client=True) as client:
            gcl = client.read_deployment(dep_id).global_concurrency_limit
        return gcl.limit if gcl else None

    serving = serve("--limit", "1", "--global-limit", "2")
    dep_id = None

    def states() -> list:
        with get_client(sync_client=True) as client:
            return [client.read_flow_run(run.id).state for run in runs]

    try:
        def deployed() -> uuid.UUID | None:
            with get_client(sync_client=True) as client:
                try:
                    return client.read_deployment_by_name(f"claims-served/{name}").id
                except ObjectNotFound:
                    return None

        dep_id = wait_until(deployed, 120.0, "the served deployment")
        assert deployment_limit() == 2  # --global-limit is the deployment's limit
        runs = [new_run(dep_id, parameters={"work": str(tmp_path)}) for _ in range(2)]
        wait_until(lambda: any(s.is_running() for s in states()), 120.0, "one run to start")
        wait_until(lambda: "scheduled runs skipped (at capacity)" in log.read_text(errors="replace"), 60.0,
                   "the serve process to skip the second run")
        now_states = states()
        assert sorted(s.type.value for s in now_states) == ["RUNNING", "SCHEDULED"], now_states
        assert len(list(tmp_path.glob("inside-*"))) == 1  # one run's code is inside
        (tmp_path / "release").write_text("")
        wait_until(lambda: all(s.is_completed() for s in states()), 180.0, "both runs to complete, one after the other")
        assert len(list(tmp_path.glob("inside-*"))) == 2

        stop(serving)
        serving = serve("--limit", "1")  # served again, without --global-limit
        wait_until(lambda: deployment_limit() is None, 120.0, "serving again to remove the deployment's limit")
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n--- serve log ---\n{log.read_text(errors='replace')[-3000:]}") from failed
    finally:
        stop(serving)
        if dep_id:
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


@pytest.mark.soak  # ~15 s: a process worker and 30 of its poll intervals; runs in `make soak`
def test_worker_healthcheck_answers_503_after_30_poll_intervals_without_a_poll(proxy, tmp_path: Path):
    """`prefect worker start --with-healthcheck` serves GET /health on PREFECT_WORKER_WEBSERVER_PORT: 200
    while it polls; once its polls fail, 503 after 30 query intervals (0.2 s here: 6 s; 10 s by default:
    5 min)."""
    import signal

    from tests.fakes.prefect_server import free_port

    port = free_port()
    health = f"http://127.0.0.1:{port}/health"
    env = dict(os.environ, PREFECT_API_URL=proxy.url, PREFECT_WORKER_QUERY_SECONDS="0.2",
               PREFECT_WORKER_WEBSERVER_PORT=str(port), PREFECT_WORKER_WEBSERVER_HOST="127.0.0.1",
               PREFECT_LOGGING_LEVEL="WARNING")
    prefect = str(Path(sys.executable).with_name("prefect"))

    def status() -> int:
        try:
            return httpx.get(health, timeout=5).status_code
        except httpx.HTTPError:
            return 0

    with process_pool() as pool, open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([prefect, "worker", "start", "--pool", pool, "--type", "process",
                                   "--with-healthcheck"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            wait_until(lambda: status() == 200, 90, "the worker's healthcheck to answer 200")
            proxy.add("POST", r"/work_pools/[^/]+/get_scheduled_flow_runs", "fail", status=500)
            failing_since = time.monotonic()
            wait_until(lambda: status() == 503, 60, "the healthcheck to answer 503")
            assert time.monotonic() - failing_since >= 5, time.monotonic() - failing_since  # not before 30 x 0.2 s
        except AssertionError as failed:
            log_tail = (tmp_path / "worker.log").read_text()[-3000:]
            raise AssertionError(f"{failed}\n--- worker log ---\n{log_tail}") from failed
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(30)


@pytest.mark.soak  # ~60 s: real process workers and run subprocesses; runs in `make soak`
def test_worker_restart_resets_its_limit_count(prefect_api_url: str, tmp_path: Path):
    """A worker started with `--limit 1` runs one run at a time. Killed while that run goes on, the run
    stays Running, and a worker started again with `--limit 1` takes the next run at once: its count
    started from zero."""
    import asyncio
    import signal

    from tests.process_workers import deploy_from_source

    (tmp_path / "flows.py").write_text(_SERVED_FLOW)
    with process_pool() as pool:

        async def deploy() -> uuid.UUID:
            async with get_client() as client:
                return await deploy_from_source(client, tmp_path, "flows.py", "held", unique("held"), pool,
                                                {"work": str(tmp_path)})

        dep_id = asyncio.run(deploy())
        env = dict(os.environ, PREFECT_API_URL=prefect_api_url, PREFECT_WORKER_QUERY_SECONDS="2",
                   PREFECT_LOGGING_LEVEL="WARNING")
        prefect = str(Path(sys.executable).with_name("prefect"))

        def worker() -> subprocess.Popen:
            with open(tmp_path / "worker.log", "ab") as log:
                command = [prefect, "worker", "start", "--pool", pool, "--type", "process", "--limit", "1"]
                return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

        def state(run_id: uuid.UUID):
            with get_client(sync_client=True) as client:
                return client.read_flow_run(run_id).state

        workers = [worker()]
        try:
            first = new_run(dep_id)
            wait_until(lambda: state(first.id).is_running(), 180.0, "the first run to start")
            second = new_run(dep_id)
            os.kill(workers[0].pid, signal.SIGKILL)  # the worker dies; the run's own process goes on
            workers[0].wait(30)
            workers.append(worker())  # started again, --limit 1, while the first run still runs
            wait_until(lambda: state(second.id).is_running(), 180.0, "the restarted worker to take the next run")
            assert state(first.id).is_running()  # the dead worker's run stays Running
            assert len(list(tmp_path.glob("inside-*"))) == 2  # both runs' code is inside at once
        except AssertionError as failed:
            log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{failed}\n--- worker log ---\n{log}") from failed
        finally:
            (tmp_path / "release").write_text("")
            for proc in workers:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for proc in workers:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            with get_client(sync_client=True) as client:
                client.delete_deployment(dep_id)


_WORKER_FLOWS = """
import os
import signal
import time
from pathlib import Path

from prefect import flow, task
from prefect.deployments import run_deployment


@flow
def raises() -> None:
    raise RuntimeError("the code raised")


@task
def killed_holding_a_tag_slot(work: str) -> None:
    Path(work, "holding").write_text("")
    while not Path(work, "kill").exists():  # the test reads the held slot, then lets it die
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGKILL)  # what an OOM kill does: no exception, no report


@flow
def dies(tag: str, work: str) -> None:
    killed_holding_a_tag_slot.with_options(tags=[tag])(work)


@flow
def stubborn_child(work: str) -> None:
    def note(signum, frame):  # asked to stop: write it down and keep going
        Path(work, "sigterm").write_text(str(time.time()))

    signal.signal(signal.SIGTERM, note)
    Path(work, "stubborn-pid").write_text(str(os.getpid()))
    while True:
        time.sleep(0.2)


@flow
def stubborn(work: str) -> None:
    stubborn_child(work)  # an inline subflow: it runs in this process


@flow
def parent(deployment: str = "", child: bool = False) -> str:
    if child:
        return "child ran"
    return run_deployment(deployment, parameters={"child": True}, timeout=20, poll_interval=1).state.name
"""


@pytest.mark.soak  # ~90 s: a real process worker, four run subprocesses, a 30 s kill grace; `make soak`
def test_process_worker_failed_crashed_cancel_kill_and_parent_child_deadlock(prefect_api_url: str,
                                                                              tmp_path: Path):
    """With a real `prefect worker start --type process`:
    - code that raises ends Failed; a process killed with SIGKILL ends Crashed (the worker reports it);
    - `prefect flow-run cancel` of a run whose code ignores SIGTERM: the worker asks it to stop, kills it
      after the grace period, and the run ends Cancelled;
    - a parent under a deployment limit of 1 that runs its own deployment and waits keeps its slot while
      the child waits as AwaitingConcurrencySlot;
    - the inline subflow of the cancelled run ends Cancelled with it;
    - the tag slot of a task killed mid-run comes back by itself when its 60 s lease runs out."""
    import asyncio
    import time

    from tests.process_workers import deploy_from_source, start_process_workers, stop_process_workers

    tag = unique("tag")
    (tmp_path / "claims_flows.py").write_text(_WORKER_FLOWS)
    with process_pool() as pool:
        with get_client(sync_client=True) as client:
            client.create_concurrency_limit(tag=tag, concurrency_limit=1)

        async def deploy(flow_name: str, limit: int | None = None) -> uuid.UUID:
            async with get_client() as client:
                return await deploy_from_source(client, tmp_path, "claims_flows.py", flow_name, unique(flow_name), pool,
                                                {}, limit=limit)

        deployments = {name: asyncio.run(deploy(name, 1 if name == "parent" else None))
                       for name in ("raises", "dies", "stubborn", "parent")}
        workers = start_process_workers(prefect_api_url, [pool], tmp_path)

        def state(run_id: uuid.UUID):
            with get_client(sync_client=True) as client:
                return client.read_flow_run(run_id).state

        try:
            failing = new_run(deployments["raises"])
            dying = new_run(deployments["dies"], parameters={"tag": tag, "work": str(tmp_path)})
            stubborn = new_run(deployments["stubborn"], parameters={"work": str(tmp_path)})
            parent = new_run(deployments["parent"], parameters={"deployment": str(deployments["parent"])})

            wait_until(lambda: (tmp_path / "holding").exists(), 180.0, "the tagged task to hold its slot")
            assert gcl_slots(f"tag:{tag}") == 1
            (tmp_path / "kill").write_text("")
            killed_at = time.monotonic()
            wait_until(lambda: state(failing.id).is_final(), 180.0, "the raising run to end")
            wait_until(lambda: state(dying.id).is_final(), 180.0, "the killed run to end")
            assert state(failing.id).type.value == "FAILED", state(failing.id)
            assert state(dying.id).type.value == "CRASHED", state(dying.id)

            def child_waiting() -> bool:
                from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

                with get_client(sync_client=True) as client:
                    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                        id=DeploymentFilterId(any_=[deployments["parent"]])))
                children = [r for r in runs if r.id != parent.id]
                return bool(state(parent.id).is_running() and children
                            and children[0].state.name == "AwaitingConcurrencySlot")

            wait_until(child_waiting, 180.0, "the child to wait for the slot its running parent holds")
            assert gcl_slots(f"deployment:{deployments['parent']}") == 1  # the parent's, kept while it waits

            wait_until(lambda: (tmp_path / "stubborn-pid").exists() and state(stubborn.id).is_running(), 180.0,
                       "the stubborn run to start")
            cancel = _prefect_cli(prefect_api_url, "flow-run", "cancel", str(stubborn.id))
            assert cancel.returncode == 0, (cancel.stdout + cancel.stderr)[-2000:]
            wait_until(lambda: state(stubborn.id).is_cancelled(), 180.0, "the stubborn run to be Cancelled")
            asked_at = float((tmp_path / "sigterm").read_text())  # it was asked to stop first...
            pid = int((tmp_path / "stubborn-pid").read_text())
            wait_until(lambda: not _alive(pid), 30.0, "the stubborn process to be gone")  # ...then killed
            cancelled_at = state(stubborn.id).timestamp.timestamp()
            assert cancelled_at - asked_at >= 25, cancelled_at - asked_at  # it had the grace period first

            def inline_child():
                from prefect.client.schemas.filters import FlowRunFilterParentFlowRunId

                with get_client(sync_client=True) as client:
                    children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[stubborn.id])))
                return children[0] if children else None

            wait_until(lambda: inline_child() and inline_child().state.is_cancelled(), 120.0,
                       "the inline subflow to be Cancelled with its parent")

            # Back within 120 s of the kill: the 60 s tag lease plus a repossessor pass (15 s), not concurrency()'s
            # 300 s default; and not at once (the crash itself released nothing: red with a 30 s bound).
            wait_until(lambda: gcl_slots(f"tag:{tag}") == 0, 120.0 - (time.monotonic() - killed_at),
                       "the killed task's tag slot to come back")
        except AssertionError as failed:
            log = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))[-4000:]
            raise AssertionError(f"{failed}\n--- worker log ---\n{log}") from failed
        finally:
            stop_process_workers(workers)
            with get_client(sync_client=True) as client:
                for dep_id in deployments.values():
                    client.delete_deployment(dep_id)
                client.delete_concurrency_limit_by_tag(tag)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ServerWithSettings(PrefectServer):
    """A server of its own whose server-side settings a test chooses (the session server keeps its own)."""

    def __init__(self, **settings: str) -> None:
        super().__init__()
        self.settings = settings

    def environment(self) -> dict[str, str]:
        return dict(super().environment(), **self.settings)


@pytest.mark.soak  # ~30 s: a server of its own; runs in `make soak`
def test_cancellation_cleanup_moves_a_stuck_cancelling_run_to_cancelled():
    """A run left in Cancelling (no worker to stop it) is moved to Cancelled by the server once it has been
    Cancelling longer than PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS (300 s
    by default; 3 s on this server, so the test does not wait five minutes)."""
    server = ServerWithSettings(PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_CANCELLING_TIMEOUT_SECONDS="3").start()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            dep_id, _ = make_deployment()
            run = new_run(dep_id)
            with get_client(sync_client=True) as client:
                client.update_flow_run(run.id, infrastructure_pid="4242")  # a worker took it, then vanished
            assert propose(run.id, Pending()).is_pending() and propose(run.id, Running()).is_running()
            assert propose(run.id, Cancelling()).is_cancelling()

            def state():
                with get_client(sync_client=True) as client:
                    return client.read_flow_run(run.id).state

            wait_until(lambda: state().is_cancelled(), 90.0, "the server to end the stuck Cancelling run")
            assert "cancellation timed out" in (state().message or ""), state()
    finally:
        server.stop()


@pytest.mark.soak  # ~20 s: a server of its own (the command touches every deployment); runs in `make soak`
def test_schedule_pause_all_pauses_every_deployments_schedules():
    """`prefect deployment schedule pause --all` takes no deployment name and pauses the schedules of every
    deployment on the server; `resume --all` turns them all back on."""
    server = ServerWithSettings().start()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            deployments = [_scheduled_deployment() for _ in range(2)]

            def active() -> list[bool]:
                with get_client(sync_client=True) as client:
                    return [s.active for d in deployments for s in client.read_deployment(d).schedules]

            assert active() == [True, True]
            paused = _prefect_cli(server.url, "deployment", "schedule", "pause", "--all")
            assert paused.returncode == 0, (paused.stdout + paused.stderr)[-2000:]
            assert active() == [False, False]  # both deployments, though neither was named
            resumed = _prefect_cli(server.url, "deployment", "schedule", "resume", "--all")
            assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-2000:]
            assert active() == [True, True]
    finally:
        server.stop()


@pytest.mark.soak  # ~75 s: the server's shortest lease is 60 s; runs in `make soak`
def test_repossessor_frees_an_expired_lease_without_action():
    """A holder that stops renewing (killed, OOM) leaves a lease the server's repossessor revokes on its
    own: the slot comes back with nobody calling release or reset."""
    name = unique("gcl")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        try:
            client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency",
                                                          lease_duration=60)  # and never renewed
            assert gcl_slots(name) == 1
            wait_until(lambda: gcl_slots(name) == 0, 180.0, "the repossessor to free the expired lease")
            with concurrency(name, timeout_seconds=10, strict=True):  # a new holder gets in
                assert gcl_slots(name) == 1
        finally:
            client.delete_global_concurrency_limit_by_name(name)

# ---------------------------------------------------------------------------------------------
# Client calls and nesting
# ---------------------------------------------------------------------------------------------


def test_duplicate_create_raises_and_tag_create_updates():
    """A second create_global_concurrency_limit of a name raises ObjectAlreadyExists; a second
    create_concurrency_limit of a tag updates its limit instead."""
    from prefect.exceptions import ObjectAlreadyExists

    name, tag = unique("gcl"), unique("tag")
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=5))
        try:
            with pytest.raises(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=6))
            assert client.read_global_concurrency_limit_by_name(name).limit == 5
            client.create_concurrency_limit(tag=tag, concurrency_limit=2)
            client.create_concurrency_limit(tag=tag, concurrency_limit=3)
            assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == 3
        finally:
            client.delete_global_concurrency_limit_by_name(name)
            client.delete_concurrency_limit_by_tag(tag)


def test_nested_same_limit_waits_and_several_names_are_all_or_none():
    """concurrency(a) inside concurrency(a) with limit 1 never gets in; asking for [a, b] while a is
    full takes neither (b stays free)."""
    a, b = unique("gcl-a"), unique("gcl-b")
    with get_client(sync_client=True) as client:
        for name in (a, b):
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    try:
        with concurrency(a, strict=True):
            with pytest.raises(TimeoutError):
                with concurrency(a, timeout_seconds=1, strict=True):
                    raise AssertionError("the nested block must not get a second slot")
            with get_client(sync_client=True) as client, pytest.raises(httpx.HTTPStatusError) as refused:
                client.increment_concurrency_slots_with_lease(names=[a, b], slots=1, mode="concurrency",
                                                              lease_duration=60)
            assert refused.value.response.status_code == 423
            assert gcl_slots(b) == 0  # all or none: b was not taken while a was full
        with concurrency([a, b], timeout_seconds=10, strict=True):
            assert (gcl_slots(a), gcl_slots(b)) == (1, 1)
    finally:
        with get_client(sync_client=True) as client:
            for name in (a, b):
                client.delete_global_concurrency_limit_by_name(name)

# ---------------------------------------------------------------------------------------------
# API calls seen through the fault proxy (tests/faults_support.py) in front of the real server
# ---------------------------------------------------------------------------------------------

_INCREMENT = r"/v2/concurrency_limits/increment-with-lease$"
_RELEASE_OR_RENEW = r"/v2/concurrency_limits/(decrement-with-lease|leases/)"


def test_client_retries_a_429_after_retry_after_up_to_max_retries(proxy):
    """A 429 with Retry-After: the client waits at least that long and retries; a 429 that never ends
    is tried 1 + PREFECT_CLIENT_MAX_RETRIES (5) times, then raised."""
    import time

    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    name = unique("gcl")
    path = rf"/v2/concurrency_limits/{name}$"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=3))
    try:
        assert PREFECT_CLIENT_MAX_RETRIES.value() == 5
        with temporary_settings(updates={PREFECT_API_URL: proxy.url}), get_client(sync_client=True) as client:
            proxy.add("GET", path, "fail", status=429, headers={"Retry-After": "3"}, times=1)
            started = time.monotonic()
            assert client.read_global_concurrency_limit_by_name(name).limit == 3  # the retry got through
            waited = time.monotonic() - started
            assert (proxy.count("GET", path, forwarded=False), proxy.count("GET", path)) == (2, 1)
            # A lower bound only: without the header the first back-off is 2 s (at most 2.4 s with jitter).
            assert waited >= 3.0, waited
            proxy.add("GET", path, "fail", status=429, headers={"Retry-After": "0"})  # rate limited for good
            with pytest.raises(httpx.HTTPStatusError) as refused:
                client.read_global_concurrency_limit_by_name(name)
        assert refused.value.response.status_code == 429
        assert proxy.count("GET", path, forwarded=False) == 2 + 6  # 1 try + 5 retries, then it gave up
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def test_upsert_by_name_is_not_atomic(proxy):
    """Two first callers of upsert_global_concurrency_limit_by_name both read "missing" and both create:
    the server keeps one limit and the second caller gets ObjectAlreadyExists."""
    from prefect.exceptions import ObjectAlreadyExists

    name = unique("upsert")
    proxy.add("GET", rf"/v2/concurrency_limits/{name}$", "meet", count=2, times=2)  # both reads, then go on
    outcomes: list[str] = []

    def first_run() -> None:
        with temporary_settings(updates={PREFECT_API_URL: proxy.url}), get_client(sync_client=True) as client:
            try:
                client.upsert_global_concurrency_limit_by_name(name, 1)
                outcomes.append("created")
            except ObjectAlreadyExists:
                outcomes.append("ObjectAlreadyExists")

    threads = [threading.Thread(target=first_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert sorted(outcomes) == ["ObjectAlreadyExists", "created"], outcomes
        assert proxy.count("POST", r"/v2/concurrency_limits/$") == 2  # both tried to create
        with get_client(sync_client=True) as client:
            assert client.read_global_concurrency_limit_by_name(name).limit == 1
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


@task
def claims_labelled_step(i: int) -> int:
    return i


@flow
def claims_tagged_burst(tag_sets: list[list[str]]) -> None:
    for i, tag_set in enumerate(tag_sets):
        claims_labelled_step.with_options(tags=tag_set)(i)


def test_tagged_task_runs_ask_for_tag_slots_without_a_limit(proxy):
    """With no tag limit, a tagged task run still asks the server for its `tag:` slots; the "no limit"
    answer is remembered per tag set for 5 s in the process, so a burst with one fixed tag asks about
    once, and a distinct tag per run asks every time."""
    fixed, runs = unique("fixed"), 4
    distinct = [[unique(f"item{i}")] for i in range(runs)]

    def calls(tag_sets: list[list[str]]) -> tuple[int, int]:
        before = proxy.count("POST", _INCREMENT), proxy.count("POST", _RELEASE_OR_RENEW)
        with temporary_settings(updates={PREFECT_API_URL: proxy.url}):
            claims_tagged_burst(tag_sets)
        return proxy.count("POST", _INCREMENT) - before[0], proxy.count("POST", _RELEASE_OR_RENEW) - before[1]

    assert calls([[fixed]] * runs)[0] in range(1, runs)  # asked, but not once per run
    assert calls(distinct) == (runs, 0)  # one ask per run; nothing to release with no limit


# ---------------------------------------------------------------------------------------------
# Cache isolation
# ---------------------------------------------------------------------------------------------

_computed: dict[str, int] = {}
_computed_lock = threading.Lock()


def _waiting_in_lock_manager(thread: threading.Thread) -> bool:
    """True while `thread` is blocked in MemoryLockManager.acquire_lock (read from its live stack)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "acquire_lock" and code.co_filename.endswith(os.path.join("locking", "memory.py")):
            return True
        frame = frame.f_back
    return False


def _cache_task(isolation: str, runs: list[threading.Thread]):
    from prefect.cache_policies import INPUTS
    from prefect.locking.memory import MemoryLockManager

    policy = INPUTS.configure(isolation_level=isolation, lock_manager=MemoryLockManager())

    @task(cache_policy=policy, persist_result=True)
    def build(key: str) -> str:
        with _computed_lock:
            _computed[key] = _computed.get(key, 0) + 1
        other = next(run for run in runs if run.ident != threading.get_ident())
        # Stay inside until the other run is inside too, or is held at the lock: then both were started
        # together, and only the isolation level decides whether the other computes it again.
        poll(lambda: _computed[key] >= 2 or _waiting_in_lock_manager(other), 60.0)
        return f"built-{key}"

    return build


_FILE_LOCKED_BUILD = """
import os
import sys
import time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.locking.filesystem import FileSystemLockManager

work, day = Path(sys.argv[1]), sys.argv[2]
policy = INPUTS.configure(isolation_level=sys.argv[3],
                          lock_manager=FileSystemLockManager(lock_files_directory=work / "locks"))


@task(cache_policy=policy, persist_result=True)
def build_report(day: str) -> str:
    (work / f"computing-{os.getpid()}").touch()
    while not (work / "release").exists():  # held until the test lets go
        time.sleep(0.05)
    return f"built-{day}"


@flow
def report(day: str) -> str:
    from prefect.runtime import flow_run

    (work / f"flow-run-{os.getpid()}").write_text(flow_run.id)
    state = build_report(day, return_state=True)
    (work / f"state-{os.getpid()}").write_text(state.name)
    return state.result()


print(report(day))
"""


def test_file_system_lock_manager_serialises_one_key_across_processes(prefect_api_url: str, tmp_path: Path):
    """SERIALIZABLE with a FileSystemLockManager on a shared directory: while one process computes a key,
    another process's run of the same key waits (its task run Running, not computing) and then reads the
    cached result instead of computing it again."""
    script = tmp_path / "build.py"
    script.write_text(_FILE_LOCKED_BUILD)
    work, day = tmp_path / "work", unique("day")
    work.mkdir()
    env = dict(os.environ, PREFECT_API_URL=prefect_api_url)

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(work), day, "SERIALIZABLE"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start()
    second = None
    try:
        wait_until(lambda: list(work.glob("computing-*")), 90, "the first process to compute the key")
        second = start()

        def second_waits() -> bool:  # its task run is Running (set before the lock is taken), not computing
            flow_run_file = work / f"flow-run-{second.pid}"
            if not flow_run_file.exists():
                return False
            of_run = FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_file.read_text())]))
            with get_client(sync_client=True) as client:
                runs = client.read_task_runs(flow_run_filter=of_run)
            return any(r.state and r.state.is_running() for r in runs)

        wait_until(second_waits, 90, "the second process's run of the key to start")
        assert len(list(work.glob("computing-*"))) == 1  # the second is held at the lock
        (work / "release").touch()
        outputs = [p.communicate(timeout=120)[0] for p in (first, second)]
        assert [p.returncode for p in (first, second)] == [0, 0], outputs
        assert [o.strip().splitlines()[-1] for o in outputs] == [f"built-{day}"] * 2, outputs
        assert len(list(work.glob("computing-*"))) == 1  # computed once
        assert (work / f"state-{second.pid}").read_text() == "Cached"
    finally:
        (work / "release").touch()
        for proc in (first, second):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait(30)


@pytest.mark.parametrize("isolation", ["READ_COMMITTED", "SERIALIZABLE"])
def test_cache_isolation_same_key_started_together(isolation: str):
    """Two runs of a cached task with one key, started together: READ_COMMITTED computes it twice;
    SERIALIZABLE with a lock manager computes it once (the other waits at the lock, then reads the
    committed result)."""
    key = unique("key")
    runs: list[threading.Thread] = []
    build = _cache_task(isolation, runs)
    results: list[str] = []
    runs += [threading.Thread(target=lambda: results.append(build(key))) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(120)
    assert results == [f"built-{key}"] * 2
    assert _computed[key] == (2 if isolation == "READ_COMMITTED" else 1)


@flow(timeout_seconds=1)
def claims_overrunning_flow(release: threading.Event) -> str:
    for _ in range(600):  # Python code that keeps running past the timeout (a blocking C call is
        if release.wait(0.1):  # only interrupted when it returns)
            break
    return "finished"


def test_flow_timeout_fails_the_run_as_timed_out():
    """@flow(timeout_seconds=N) ends a run that runs longer as Failed, named TimedOut."""
    release = threading.Event()
    try:
        state = claims_overrunning_flow(release, return_state=True)
    finally:
        release.set()
    assert state.is_failed() and state.name == "TimedOut", state


_left_blocked_task: dict[str, bool] = {}  # module-level: Prefect copies a dict passed as a parameter


@task(timeout_seconds=2, cache_policy=NO_CACHE)
def claims_blocked_task(started: threading.Event, release: threading.Event, key: str) -> str:
    started.set()  # inside the timeout scope: its watcher thread is already counting
    try:
        release.wait(30)  # one blocking C call (a lock acquire) for the whole wait
    finally:
        _left_blocked_task[key] = release.is_set()  # was the wait released before the body left?
    return "finished"


@flow
def claims_submitting_flow(started: threading.Event, release: threading.Event, key: str) -> object:
    return claims_blocked_task.submit(started, release, key).wait() or "done"


def test_task_timeout_in_a_worker_thread_waits_for_the_blocking_call():
    """A submitted task's timeout fires during a blocking call, but the call runs to its end first."""
    started, release, key, seen = threading.Event(), threading.Event(), unique("timeout"), {}

    def after_the_timeout_was_sent() -> None:
        watchers = [t for t in threading.enumerate() if t.name.startswith("timeout-watcher")]
        seen["watchers"] = len(watchers)
        for watcher in watchers:
            watcher.join(10)  # gone: it has sent the timeout to the task's thread
        seen["body_still_blocked"] = key not in _left_blocked_task

    with released_after(started, release, after_the_timeout_was_sent):
        run_state = claims_submitting_flow(started, release, key, return_state=True)
    assert seen == {"watchers": 1, "body_still_blocked": True}, seen  # the timeout had fired; the wait went on
    assert _left_blocked_task.get(key) is True, _left_blocked_task  # the body left only when released
    states = wait_until(lambda: _final_task_states(run_state.state_details.flow_run_id, 1), 20, "the task run's end")
    assert states == [("FAILED", "TimedOut")], states

    def worker_thread_warning() -> bool:
        flow_run_logs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_state.state_details.flow_run_id]))
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=flow_run_logs)
        return any("running in a worker thread" in log.message for log in logs)

    wait_until(worker_thread_warning, 20, "the task's worker-thread timeout warning")


_task_past_flow_timeout: dict[str, object] = {}  # module-level: Prefect copies a dict passed as a parameter


@task(cache_policy=NO_CACHE)
def claims_task_outliving_its_flow(started: threading.Event, release: threading.Event, key: str) -> str:
    from prefect.runtime import flow_run

    _task_past_flow_timeout[f"{key}-flow-run"] = flow_run.id
    started.set()
    try:
        while not release.wait(0.1):  # Python code that runs on: a timeout raised in this thread would stop it
            pass
        _task_past_flow_timeout[key] = "released"
    except BaseException as exc:
        _task_past_flow_timeout[key] = type(exc).__name__
        raise
    return "finished"


@flow(timeout_seconds=1)
def claims_flow_timing_out(started: threading.Event, release: threading.Event, key: str) -> str:
    claims_task_outliving_its_flow.submit(started, release, key)
    while not release.wait(0.1):  # the flow keeps running Python code until its timeout stops it
        pass
    return "finished"


def test_flow_timeout_does_not_stop_a_task_running_in_a_thread():
    """A flow over its timeout is TimedOut on the server while the task it submitted goes on running in
    its worker thread; the task ends when its own work ends (and the flow call returns only then)."""
    started, release, key, seen = threading.Event(), threading.Event(), unique("flow-timeout"), {}

    def flow_state() -> str:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(uuid.UUID(str(_task_past_flow_timeout[f"{key}-flow-run"]))).state
        return state.name if state.is_final() else ""

    def once_the_flow_timed_out() -> None:
        seen["flow"] = poll(flow_state, 20)
        seen["task still running"] = key not in _task_past_flow_timeout

    with released_after(started, release, once_the_flow_timed_out):
        state = claims_flow_timing_out(started, release, key, return_state=True)
    assert seen == {"flow": "TimedOut", "task still running": True}, seen
    assert state.is_failed() and state.name == "TimedOut", state
    assert _task_past_flow_timeout[key] == "released", _task_past_flow_timeout  # not stopped: it ran to its end
    ended = wait_until(lambda: _final_task_states(state.state_details.flow_run_id, 1), 20, "the task run's end")
    assert ended == [("COMPLETED", "Completed")], ended

_async_timeout_seen: dict[str, str] = {}


@task(timeout_seconds=0.5, cache_policy=NO_CACHE)
async def claims_async_overrunning(key: str) -> str:
    import asyncio

    try:
        for _ in range(50):  # 5 s of awaits; the timeout cancels at the next one
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        _async_timeout_seen[key] = "cancelled at an await"
        raise
    _async_timeout_seen[key] = "ran to its end"
    return "finished"


@flow
def claims_async_timeout_flow(key: str) -> object:
    return claims_async_overrunning.submit(key).wait() or "done"


def test_async_task_timeout_cancels_at_the_next_await():
    """An async task submitted to the thread pool is stopped by its timeout at its next `await` (its 5 s
    of work is cancelled) and ends TimedOut."""
    key = unique("async-timeout")
    state = claims_async_timeout_flow(key, return_state=True)
    assert _async_timeout_seen[key] == "cancelled at an await", _async_timeout_seen
    ended = wait_until(lambda: _final_task_states(state.state_details.flow_run_id, 1), 20, "the task run's end")
    assert ended == [("FAILED", "TimedOut")], ended

_timeout_attempts: dict[str, int] = {}


@task(timeout_seconds=0.5, retries=1, cache_policy=NO_CACHE)
def claims_overrunning_task(key: str) -> str:
    _timeout_attempts[key] = _timeout_attempts.get(key, 0) + 1
    stop = threading.Event()
    for _ in range(600):  # Python code: the timeout is raised here at its next bytecode
        stop.wait(0.05)
    return "finished"


@flow
def claims_retrying_timeout_flow(key: str) -> object:
    return claims_overrunning_task.submit(key).wait() or "done"


def test_task_timeout_is_retried_first_then_ends_timed_out():
    """A task over its timeout_seconds is retried when it has retries; the last attempt ends Failed named
    TimedOut, with the message "Task run exceeded timeout of N second(s)"."""
    key = unique("retry-timeout")
    state = claims_retrying_timeout_flow(key, return_state=True)
    assert _timeout_attempts[key] == 2, _timeout_attempts
    with get_client(sync_client=True) as client:
        of_flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        runs = client.read_task_runs(flow_run_filter=of_flow_run)
    assert len(runs) == 1 and runs[0].run_count == 2, runs
    final = runs[0].state
    assert (final.type.value, final.name) == ("FAILED", "TimedOut"), final
    assert final.message == "Task run exceeded timeout of 0.5 second(s)", final.message


@task(cache_policy=NO_CACHE)
def claims_step(n: int) -> int:
    if n < 0:
        raise ValueError(f"bad item {n}")
    return n


@flow
def claims_direct_calls(items: list[int]) -> list[int]:
    return [claims_step(n) for n in items]  # a direct call raises at the call


@flow
def claims_submits_and_drops(items: list[int]) -> str:
    futures = claims_step.map(items)
    futures.wait()
    after = claims_step.submit(99)  # submitted after the failure: it still runs
    gated = claims_step.submit(7, wait_for=[futures[0]])  # futures[0] failed
    anyway = claims_step.submit(8, wait_for=[allow_failure(futures[0])])
    gated.wait()
    _failed_future_seen["raise_on_failure=False"] = type(futures[0].result(raise_on_failure=False)).__name__
    _failed_future_seen["gated"] = (gated.state.type.value, gated.state.name)
    return f"{after.result()} {anyway.result()}"  # drops the failed future: the flow ends Completed


@flow
def claims_returns_futures(items: list[int]) -> object:
    return claims_step.map(items)


@flow
def claims_returns_futures_in_a_tuple(items: list[int]) -> object:
    return claims_step.map(items), "done"


_failed_future_seen: dict[str, object] = {}


def test_task_failures_direct_call_futures_wait_for_and_the_flows_final_state():
    """A direct call raises at the call and fails the flow; a failure in a future stays there, later
    submissions run, `wait_for=[failed]` leaves the task Pending/NotReady, `allow_failure` runs it, and the
    flow ends Completed unless it returns the futures (a flat list: Failed, "1/4 states failed."; nested in a
    tuple: not looked into)."""
    direct = claims_direct_calls([1, -1, 2], return_state=True)
    assert direct.is_failed() and "bad item -1" in direct.message, direct
    ran = wait_until(lambda: _final_task_states(direct.state_details.flow_run_id, 2), 20, "two task runs' ends")
    assert sorted(ran) == [("COMPLETED", "Completed"), ("FAILED", "Failed")], ran  # the third never ran

    dropped = claims_submits_and_drops([-1, 1, 2, 3], return_state=True)
    assert dropped.is_completed() and dropped.result() == "99 8", dropped
    assert _failed_future_seen == {"raise_on_failure=False": "ValueError", "gated": ("PENDING", "NotReady")}

    returned = claims_returns_futures([-1, 1, 2, 3], return_state=True)
    assert returned.is_failed() and returned.message == "1/4 states failed.", returned
    in_a_tuple = claims_returns_futures_in_a_tuple([-1, 1, 2, 3], return_state=True)
    assert in_a_tuple.is_completed(), in_a_tuple


def _final_task_states(flow_run_id: uuid.UUID, count: int) -> list[tuple[str, str]]:
    """The task runs' (type, name) as the server has them, once `count` of them have ended."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    ended = [(r.state.type.value, r.state.name) for r in runs if r.state and r.state.is_final()]
    return ended if len(ended) == count else []


@task
def claims_mapped(item: int, shared: list[int]) -> tuple[int, list[int]]:
    return item, shared


@flow
def claims_mapping_flow(items: list[int], shared: list[int]) -> list[tuple[int, list[int]]]:
    return claims_mapped.map(items, unmapped(shared)).result()


def test_map_submits_one_task_run_per_item_and_unmapped_is_shared():
    """`.map(items)` is a `.submit` per item; an `unmapped(x)` argument goes whole to each of them."""
    shared = [7, 8, 9]
    state = claims_mapping_flow([1, 2, 3], shared, return_state=True)
    assert state.result() == [(1, shared), (2, shared), (3, shared)]
    ended = wait_until(lambda: _final_task_states(state.state_details.flow_run_id, 3), 20, "three task runs")
    assert ended == [("COMPLETED", "Completed")] * 3, ended


@task
def claims_own_thread_pool() -> list[str]:
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from prefect.logging import get_run_logger

    def log_from_pool(marker: str) -> str:
        get_run_logger().warning(marker)  # the tests log at WARNING and up
        return "logged"

    outcomes = []
    with ThreadPoolExecutor(2) as pool:
        outcomes.append(pool.submit(contextvars.copy_context().run, log_from_pool, "claims-copied").result())
        try:
            outcomes.append(pool.submit(log_from_pool, "claims-bare").result())
        except Exception as exc:  # the claim: without the copied context there is no run to log to
            outcomes.append(type(exc).__name__)
    return outcomes


@flow
def claims_own_pool_flow() -> list[str]:
    return claims_own_thread_pool()


def test_own_thread_pool_needs_copy_context_for_the_run_logger():
    """get_run_logger() in your own executor's thread works only when submitted via copy_context().run."""
    state = claims_own_pool_flow(return_state=True)
    assert state.result() == ["logged", "MissingContextError"]
    flow_run_id = state.state_details.flow_run_id

    def pool_lines() -> list[str]:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return [log.message for log in logs if log.message.startswith("claims-") and log.task_run_id]

    assert wait_until(pool_lines, 20, "the pool thread's log line") == ["claims-copied"]

# ---------------------------------------------------------------------------------------------
# Subflows
# ---------------------------------------------------------------------------------------------

_inside: dict[str, int] = {}


@flow
async def claims_child(key: str) -> bool:
    """True when another child of the same key was inside at the same time."""
    import asyncio

    _inside[key] = _inside.get(key, 0) + 1
    for _ in range(100):  # up to 10 s for the sibling
        if _inside[key] >= 2:
            return True
        await asyncio.sleep(0.1)
    return False


@flow
async def claims_gathering_parent(key: str) -> list[bool]:
    import asyncio

    return list(await asyncio.gather(claims_child(key), claims_child(key)))


def test_gathered_async_subflows_run_concurrently():
    """Async child flows started together with asyncio.gather are inside at the same time."""
    import asyncio

    key = unique("key")
    assert asyncio.run(claims_gathering_parent(key)) == [True, True]


@flow
async def claims_blocking_child(mine: threading.Event, other: threading.Event) -> bool:
    mine.set()
    return other.wait(1)  # sync and blocking: the parent's event loop stops here


@flow
async def claims_gathering_blockers() -> list[bool]:
    import asyncio

    first, second = threading.Event(), threading.Event()
    return list(await asyncio.gather(claims_blocking_child(first, second), claims_blocking_child(second, first)))


def test_gathered_children_doing_blocking_work_take_turns():
    """Two gathered async children that each block (a sync wait) cannot overlap: the one that runs first
    waits out its 1 s for the other, which only starts after it; unblocked children both see each other."""
    import asyncio

    assert sorted(asyncio.run(claims_gathering_blockers())) == [False, True]

@flow
def claims_launching_parent(dep_id: uuid.UUID) -> uuid.UUID:
    from prefect.deployments import run_deployment

    return run_deployment(dep_id, timeout=0).id


def test_run_deployment_timeout_zero_returns_at_once_linked_as_subflow():
    """run_deployment(..., timeout=0) in a flow returns the child run at once (nobody has run it) and
    links it to the parent: the child's parent task run belongs to the parent flow run."""
    dep_id, _ = make_deployment()
    try:
        state = claims_launching_parent(dep_id, return_state=True)
        assert state.is_completed(), state
        child_id = state.result()
        with get_client(sync_client=True) as client:
            child = client.read_flow_run(child_id)
            assert child.state.is_scheduled() and child.deployment_id == dep_id  # returned without waiting
            assert child.parent_task_run_id is not None
            link = client.read_task_run(child.parent_task_run_id)
        assert link.flow_run_id == state.state_details.flow_run_id  # a subflow of the parent run
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(dep_id)

# ---------------------------------------------------------------------------------------------
# Defaults the recipes quote
# ---------------------------------------------------------------------------------------------


def test_documented_defaults():
    """The default numbers the recipes quote are Prefect 3.9.1's field defaults (read from the settings
    models and signatures, so this process's environment cannot hide a change on upgrade)."""
    import inspect

    from prefect.settings import get_current_settings
    from prefect.task_worker import serve as serve_tasks

    def default(model: object, field: str) -> object:
        return type(model).model_fields[field].default

    s = get_current_settings()
    services = s.server.services
    assert default(s.runner, "process_limit") == 5
    assert inspect.signature(serve_tasks).parameters["limit"].default == 10
    assert default(s.client, "max_retries") == 5
    assert default(s.api, "request_timeout") == 60.0
    sqlalchemy = s.server.database.sqlalchemy
    assert (default(sqlalchemy, "pool_size"), default(sqlalchemy, "max_overflow"),
            default(sqlalchemy, "pool_timeout"), default(s.server.database, "timeout")) == (5, 10, 30.0, 10.0)
    assert inspect.signature(concurrency).parameters["lease_duration"].default == 300
    assert default(s.server.concurrency, "initial_deployment_lease_duration") == 300.0
    assert default(s.server.deployments, "concurrency_slot_wait_seconds") == 30.0
    assert default(s.flows, "heartbeat_frequency") == 180
    assert default(services.cancellation_cleanup, "cancelling_timeout_seconds") == 300.0
    assert default(services.repossessor, "loop_seconds") == 15.0
    assert default(services.scheduler, "max_runs") == 100
    assert default(services.late_runs, "after_seconds") == timedelta(seconds=15)

# ---------------------------------------------------------------------------------------------
# Background tasks (.delay / apply_async) and task workers
# ---------------------------------------------------------------------------------------------


@task
def claims_never_served(n: int) -> int:
    _never_served_ran.append(n)
    return n


_never_served_ran: list[int] = []


def test_delay_only_creates_a_task_run_and_its_future_waits_with_a_timeout():
    """`.delay(x)` is `apply_async((x,))`: each makes a Scheduled task run for a task worker and returns a
    PrefectDistributedFuture at once, running nothing here. With no worker, `wait(timeout=1)` returns and
    `result(timeout=1)` raises "did not complete within 1 seconds"."""
    from prefect.futures import PrefectDistributedFuture

    delayed, applied = claims_never_served.delay(3), claims_never_served.apply_async((4,))
    assert isinstance(delayed, PrefectDistributedFuture) and isinstance(applied, PrefectDistributedFuture)
    with get_client(sync_client=True) as client:
        runs = [client.read_task_run(f.task_run_id) for f in (delayed, applied)]
    assert [(r.state.type.value, r.state.name, r.task_key) for r in runs] == [
        ("SCHEDULED", "Scheduled", claims_never_served.task_key)] * 2, runs
    assert all(r.state.state_details.deferred for r in runs), runs
    assert delayed.wait(timeout=1) is None  # returns when the time is up, without raising
    with pytest.raises(TimeoutError, match=f"Task run {applied.task_run_id} did not complete within 1 seconds"):
        applied.result(timeout=1)
    assert _never_served_ran == []
    with get_client(sync_client=True) as client:
        assert client.read_task_run(delayed.task_run_id).state.is_scheduled()


_BACKGROUND_TASKS = """
import time
from pathlib import Path

from prefect import task


@task
def claims_bg_step(name: str, folder: str) -> str:
    work = Path(folder)
    ended = sorted(p.name for p in work.glob("ended-*"))
    (work / f"started-{name}").write_text(",".join(ended))  # what had ended when this one started
    while name == "a" and not (work / "release-a").exists():  # "a" is held until the test lets go
        time.sleep(0.05)
    (work / f"ended-{name}").touch()
    return f"done-{name}"
"""


def test_task_worker_limit_wait_for_and_results_from_another_process(prefect_api_url: str, tmp_path: Path):
    """`prefect task serve FILE:task --limit 2` runs delayed runs made before it started; a third run waits
    while two hold the worker's slots; `apply_async(wait_for=[a])` starts only after `a` ended; the test
    process reads each result the worker persisted."""
    import importlib.util

    source = tmp_path / "claims_bg_tasks.py"
    source.write_text(_BACKGROUND_TASKS)
    spec = importlib.util.spec_from_file_location(unique("bg").replace("-", "_"), source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the same file the worker imports: the same task key
    work = tmp_path / "work"
    work.mkdir()
    step = module.claims_bg_step

    a = step.delay("a", str(work))
    b = step.apply_async(("b", str(work)), wait_for=[a])
    c = step.delay("c", str(work))
    log = tmp_path / "worker.log"
    prefect = str(Path(sys.executable).with_name("prefect"))
    env = dict(os.environ, PREFECT_API_URL=prefect_api_url, PREFECT_LOGGING_LEVEL="INFO")
    with open(log, "w") as out:
        worker = subprocess.Popen([prefect, "task", "serve", f"{source}:claims_bg_step", "--limit", "2"],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def worker_said(text: str) -> bool:
            if worker.poll() is not None:
                raise AssertionError(f"the task worker exited: {log.read_text()[-3000:]}")
            return text in log.read_text()

        with get_client(sync_client=True) as client:
            names = {f: client.read_task_run(f.task_run_id).name for f in (a, b, c)}
        wait_until(lambda: (work / "started-a").exists(), 90, "the worker to start `a`")
        wait_until(lambda: all(worker_said(f"Received task run: {f.task_run_id}") for f in (a, b, c)), 30,
                   "the worker to receive all three runs")
        wait_until(lambda: worker_said(f"Submitting task run {names[b]!r} to engine"), 30, "b to take a slot")
        # a and b hold the two slots: c waits, unstarted and still Scheduled on the server
        with get_client(sync_client=True) as client:
            assert client.read_task_run(c.task_run_id).state.is_scheduled()
        assert not (work / "started-c").exists() and not (work / "started-b").exists()
        (work / "release-a").touch()
        assert [f.result(timeout=60) for f in (a, b, c)] == ["done-a", "done-b", "done-c"]
        assert "ended-a" in (work / "started-b").read_text().split(",")  # b started after a ended
        assert "ended-a" in (work / "started-c").read_text().split(",")  # c got a slot when a left
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(30)


# ---------------------------------------------------------------------------------------------
# The book and its claims
# ---------------------------------------------------------------------------------------------


@functools.cache  # one parse per file, not one per claim (over a hundred claims name this file)
def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_every_listed_claim_has_its_test():
    """Each claim quotes its own sentence from its recipe's body, and names a test that exists."""
    book = RecipeBook.load()
    ids: set[str] = set()
    for recipe in book:
        body = _squash(recipe.body)
        for claim in recipe.claims:
            assert claim.id not in ids, f"duplicate claim id {claim.id}"
            ids.add(claim.id)
            quoted = _squash(claim.sentence)
            assert quoted, (recipe.slug, claim.id, "no sentence: quote the recipe text that makes this claim")
            assert quoted in body, (recipe.slug, claim.id, "sentence not found in the recipe body", quoted)
            file, _, name = claim.test.partition("::")
            assert name and (ROOT / file).is_file(), (recipe.slug, claim.test)
            assert name in _tests_in(ROOT / file), (recipe.slug, claim.test)
    required = {"reset-frees-held-slot", "tag-limit-zero-fails", "redeploy-removes-limit", "cancel-new-cancels",
                "cancelling-holds-deployment-slot", "worker-counts-pending-running", "disabled-gcl-does-not-block",
                "strict-raises-on-missing", "mapping-form-needs-collision-strategy"}
    assert required <= ids, required - ids



@task(cache_policy=NO_CACHE)
async def claims_async_get(client: httpx.AsyncClient, url: str) -> int:
    return (await client.get(url)).status_code


@flow
def claims_shared_async_client_flow(url: str) -> list[str]:
    client = httpx.AsyncClient()  # made in the flow, handed to two submitted async tasks in turn
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(str(claims_async_get.submit(client, url).result()))
        except RuntimeError as exc:
            outcomes.append(str(exc))
    return outcomes


def test_async_client_shared_across_submitted_tasks_hits_a_closed_loop(prefect_api_url: str):
    """Each submitted async task runs in its own event loop: the second reuses a connection of a closed loop."""
    state = claims_shared_async_client_flow(prefect_api_url + "/health", return_state=True)
    assert state.result() == ["200", "Event loop is closed"]
    ended = wait_until(lambda: _final_task_states(state.state_details.flow_run_id, 2), 20, "two task runs")
    assert sorted(ended) == [("COMPLETED", "Completed"), ("FAILED", "Failed")], ended
