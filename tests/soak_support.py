"""The watcher soak (issue 25): a real Prefect server, real process workers, real trouble; one table.

Each scenario deploys flows from a source directory and runs them on `prefect worker start` processes:
healthy churn, `kill -9` of a flow holding a tag slot, a server restart while a tagged task runs, a busy
tag limit, a flapping pool backlog, a disabled deployment limit and a blocked `concurrency()` acquirer.
The watcher is the one `serve` runs (Watcher + SlackPoster + approvals, the Slack fake behind it).
Independently of the watcher's own code, every reset proposal is checked against the live runs at the
moment it appears: a reset while a tagged task of a running flow still runs is unsafe.

`run_soak(minutes)` repeats the scenario cycle until `minutes` have passed and returns the table rows;
`make soak` runs at least 10 minutes, `make test` one short cycle.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLOWS = '''
import os
import time
from pathlib import Path

from prefect import flow, task
from prefect.concurrency.sync import concurrency

PIDS = Path(__file__).with_name("pids")


@task
def hold(seconds: float, marker: str) -> None:
    PIDS.mkdir(exist_ok=True)
    (PIDS / marker).write_text(str(os.getpid()))
    time.sleep(seconds)


@flow
def tagged(tag: str, seconds: float, count: int = 1, marker: str = "") -> None:
    futures = [hold.with_options(tags=[tag]).submit(seconds, f"{marker}-{i}") for i in range(count)]
    for future in futures:
        future.result()


@flow
def sleeper(seconds: float) -> None:
    time.sleep(seconds)


@flow
def gcl_user(name: str, seconds: float) -> None:
    with concurrency(name, occupy=1):
        time.sleep(seconds)
'''

WAIT_SECONDS = 20.0
INTERVAL = 10.0


@dataclass
class Scenario:
    name: str
    expect: str  # "detect" or "quiet"
    objects: list[str]  # names an incident about this scenario mentions
    kinds: list[str]  # incident titles that count as the detection
    detected: bool = False
    false_alarms: int = 0
    notes: list[str] = field(default_factory=list)


class Soak:
    """Sets up the world on `api_url`, runs workers and the watcher, drives cycles, keeps score."""

    def __init__(self, server: Any, slack: Any, work: Path) -> None:
        self.server = server
        self.slack = slack
        self.work = work
        self.tag = uuid.uuid4().hex[:6]
        self.channel = f"CSOAK{self.tag}"
        self.workers: list[subprocess.Popen] = []
        self.unsafe = 0
        self.proposals_checked: set[str] = set()
        self.restart_task_done_at: float | None = None
        self.first_restart_post_at: float | None = None
        self.reposted: list[str] = []
        self.scenarios: dict[str, Scenario] = {}
        self.deployments: dict[str, Any] = {}

    def n(self, what: str) -> str:
        return f"soak-{what}-{self.tag}"

    # --- the world ------------------------------------------------------------------------------
    async def setup(self, client: Any) -> None:
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate

        (self.work / "soak_flows.py").write_text(FLOWS)
        steps = [{"prefect.deployments.steps.set_working_directory": {"directory": str(self.work)}}]
        pools = {"healthy": 2, "flap": 2, "tags": None, "misc": None}
        for pool, limit in pools.items():
            await client.create_work_pool(WorkPoolCreate(name=self.n(pool), type="process", concurrency_limit=limit))
        for tag, limit in (("kill", 1), ("restart", 1), ("busy", 1)):
            await client.create_concurrency_limit(tag=self.n(tag), concurrency_limit=limit)
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=self.n("gcl"), limit=1))

        async def deploy(key: str, flow: str, pool: str, parameters: dict, limit: int | None = None) -> None:
            flow_id = await client.create_flow_from_name(flow)
            self.deployments[key] = await client.create_deployment(
                flow_id=flow_id, name=self.n(key), work_pool_name=self.n(pool), entrypoint=f"soak_flows.py:{flow}",
                pull_steps=steps, parameters=parameters, concurrency_limit=limit)

        await deploy("healthy", "sleeper", "healthy", {"seconds": 1})
        await deploy("flap", "sleeper", "flap", {"seconds": 6})
        await deploy("kill", "tagged", "tags", {"tag": self.n("kill"), "seconds": 600, "marker": "kill"})
        await deploy("restart", "tagged", "tags", {"tag": self.n("restart"), "seconds": 40, "marker": "restart"})
        await deploy("busy", "tagged", "tags", {"tag": self.n("busy"), "seconds": 10, "count": 5, "marker": "busy"})
        await deploy("disabled", "sleeper", "misc", {"seconds": 1}, limit=1)
        await deploy("gcl", "gcl_user", "misc", {"name": self.n("gcl"), "seconds": 45})
        gcl = await client.read_global_concurrency_limit_by_name(f"deployment:{self.deployments['disabled']}")
        await client.request("PATCH", f"/v2/concurrency_limits/{gcl.id}", json={"active": False})
        s = self.scenarios
        s["healthy churn"] = Scenario("healthy churn", "quiet", [self.n("healthy")], [])
        s["kill -9 of a tag holder"] = Scenario("kill -9 of a tag holder", "detect", [self.n("kill")],
                                                ["Leaked concurrency slots"])
        s["server restart, live holder"] = Scenario("server restart, live holder", "detect", [self.n("restart")],
                                                    ["Leaked concurrency slots"])
        s["busy tag limit"] = Scenario("busy tag limit", "detect", [self.n("busy")], ["Runs waiting on a full limit"])
        s["flapping pool backlog"] = Scenario("flapping pool backlog", "detect", [self.n("flap")],
                                              ["Runs waiting on a full limit"])
        s["disabled deployment limit"] = Scenario("disabled deployment limit", "detect", [self.n("disabled")],
                                                  ["Disabled deployment limit"])
        s["blocked concurrency() acquirer"] = Scenario("blocked concurrency() acquirer", "detect", [self.n("gcl")],
                                                       ["Global concurrency limit at its limit"])

    def start_workers(self) -> None:
        env = {**os.environ, "PREFECT_API_URL": self.server.url, "PREFECT_WORKER_QUERY_SECONDS": "2",
               "PREFECT_LOGGING_LEVEL": "WARNING"}
        prefect = Path(sys.executable).with_name("prefect")
        for pool in ("healthy", "flap", "tags", "misc"):
            log = open(self.work / f"worker-{pool}.log", "ab")
            self.workers.append(subprocess.Popen(
                [str(prefect), "worker", "start", "--pool", self.n(pool), "--type", "process"],
                env=env, cwd=str(self.work), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    # --- scoring ----------------------------------------------------------------------------------
    def posts(self) -> list[dict]:
        return [c.args for c in self.slack.calls_to("chat.postMessage")
                if c.args.get("channel") == self.channel and not c.args.get("thread_ts")]

    def score(self) -> None:
        for scenario in self.scenarios.values():
            about = [p for p in self.posts() if any(o in json.dumps(p) for o in scenario.objects)]
            hits = [p for p in about if any(k in p.get("text", "") for k in scenario.kinds)]
            scenario.detected = bool(hits)
            if scenario.expect == "quiet":
                scenario.false_alarms = len(about)
            else:
                scenario.false_alarms = len(about) - len(hits)
        restart = self.scenarios["server restart, live holder"]
        if self.first_restart_post_at is not None and (
                self.restart_task_done_at is None or self.first_restart_post_at < self.restart_task_done_at):
            restart.false_alarms += 1  # posted while the holder still ran: a leak it was not
            restart.notes.append("posted before the holder finished")

    def posts_per_incident(self) -> int:
        """Messages per episode: a post for a key whose earlier message was not resolved yet is a duplicate;
        a post after "Resolved" is a new episode (trouble that came back after the settling window)."""
        def keys_of(args: dict) -> set[str]:
            return {e.get("value") for b in args.get("blocks", []) if b.get("type") == "actions"
                    for e in b.get("elements", []) if e.get("value")} - {None}

        calls = list(self.slack.calls)
        posts = [c for c in calls if c.method == "chat.postMessage" and c.args.get("channel") == self.channel
                 and not c.args.get("thread_ts")]
        tops = sorted((m["ts"] for (ch, _), msgs in list(self.slack.messages.items()) if ch == self.channel
                       for m in msgs if m["ts"] == m["thread_ts"]), key=float)
        keys_by_ts = {ts: keys_of(post.args) for ts, post in zip(tops, posts, strict=False)}
        open_posts: dict[str, int] = {}
        worst: dict[str, int] = {}
        for call in calls:
            if call.args.get("channel") != self.channel or call.args.get("thread_ts"):
                continue
            if call.method == "chat.postMessage":
                for key in keys_of(call.args):
                    open_posts[key] = open_posts.get(key, 0) + 1
                    worst[key] = max(worst.get(key, 0), open_posts[key])
            elif call.method == "chat.update" and str(call.args.get("text", "")).startswith("Resolved"):
                for key in keys_by_ts.get(call.args.get("ts"), set()):
                    open_posts[key] = 0
        self.reposted = sorted(key for key, count in worst.items() if count > 1)
        return max(worst.values(), default=0)

    async def check_proposals(self, service: Any, client: Any) -> None:
        """Every reset proposal, as it appears, against the live runs (read here, not by the bot)."""
        from prefect.client.schemas.filters import (
            TaskRunFilter,
            TaskRunFilterState,
            TaskRunFilterStateType,
            TaskRunFilterTags,
        )
        from prefect.client.schemas.objects import StateType

        from bot.store import proposals as db

        rows = await asyncio.to_thread(db.list_audit, service.store.sessions, action="proposed")
        for row in rows:
            if not row.proposal_id or row.proposal_id in self.proposals_checked:
                continue
            self.proposals_checked.add(row.proposal_id)
            proposal = await service.get(row.proposal_id)
            change = proposal.change if proposal else None
            if change is None or getattr(change, "action", "") != "reset":
                continue
            tag = getattr(change, "tag", None) or getattr(change, "name", "").removeprefix("tag:")
            running = await client.read_task_runs(task_run_filter=TaskRunFilter(
                tags=TaskRunFilterTags(all_=[tag]),
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING]))))
            for task in running:
                flow_run = await client.read_flow_run(task.flow_run_id)
                if flow_run.state and flow_run.state.type == StateType.RUNNING:
                    self.unsafe += 1
                    self.scenarios_note(tag, f"unsafe reset proposed while {task.name} ran")
                    break

    def scenarios_note(self, tag: str, text: str) -> None:
        for scenario in self.scenarios.values():
            if tag in scenario.objects:
                scenario.notes.append(text)


async def _wait_for(check, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    return None


async def _task_running(client: Any, tag: str) -> Any:
    from prefect.client.schemas.filters import (
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
        TaskRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    return await client.read_task_runs(task_run_filter=TaskRunFilter(
        tags=TaskRunFilterTags(all_=[tag]),
        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING]))))


async def _cycle(soak: Soak, client_factory: Any) -> None:
    """One pass through every scenario; trouble of different scenarios overlaps, as on a real server."""
    from uuid import UUID

    async with client_factory() as client:
        for _ in range(2):
            await client.create_flow_run_from_deployment(soak.deployments["healthy"])
        for _ in range(10):
            await client.create_flow_run_from_deployment(soak.deployments["flap"])
        await client.create_flow_run_from_deployment(soak.deployments["disabled"])
        for _ in range(2):
            await client.create_flow_run_from_deployment(soak.deployments["gcl"])
        await client.create_flow_run_from_deployment(soak.deployments["kill"])
        restart_run = await client.create_flow_run_from_deployment(soak.deployments["restart"])

        killed = await _wait_for(lambda: _task_running(client, soak.n("kill")), 240)
        pid_file = soak.work / "pids" / "kill-0"
        if killed and pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the flow process holding the tag slot
            pid_file.unlink()
        else:
            soak.scenarios["kill -9 of a tag holder"].notes.append("the tagged task never ran")
        if await _wait_for(lambda: _task_running(client, soak.n("restart")), 240):
            soak.server.restart()  # leases are in memory: every live tag holder loses its lease
        else:
            soak.scenarios["server restart, live holder"].notes.append("the tagged task never ran")

    async with client_factory() as client:  # a new connection: the server is a new process
        async def restart_done() -> bool:
            run = await client.read_flow_run(UUID(str(restart_run.id)))
            return bool(run.state and run.state.is_final())

        if await _wait_for(restart_done, 300):
            soak.restart_task_done_at = time.monotonic()
        # the busy tag after the restart, so its holders keep their leases: waiting, not leaking
        busy = await client.create_flow_run_from_deployment(soak.deployments["busy"])

        async def busy_done() -> bool:
            run = await client.read_flow_run(UUID(str(busy.id)))
            return bool(run.state and run.state.is_final())

        await _wait_for(busy_done, 300)


async def run_soak(server: Any, slack: Any, work: Path, minutes: float) -> dict:
    """Run the soak for at least `minutes` (one cycle at the least) and return the table."""
    from prefect.client.orchestration import PrefectClient
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.approvals.policy import ApprovalPolicy
    from bot.approvals.service import ApprovalService
    from bot.settings import load_settings
    from bot.slack.watch_poster import SlackPoster
    from bot.store import Store
    from bot.watch.watcher import Watcher

    def client_factory() -> Any:
        return PrefectClient(api=server.url)

    soak = Soak(server, slack, work)
    async with client_factory() as client:
        await soak.setup(client)
    store = Store.open(f"sqlite:///{work / 'soak.db'}")
    settings = load_settings(bot_approver_ids=["USOAK"])
    service = ApprovalService(store, ApprovalPolicy(settings), client_factory=client_factory)
    poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/"), soak.channel, store,
                         service)
    watcher = Watcher(store, poster, interval=INTERVAL, wait_seconds=WAIT_SECONDS, max_posts_per_hour=1000,
                      max_calls_per_minute=settings.bot_watch_max_calls_per_minute, api_url=server.url)
    soak.start_workers()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url}):  # the event stream follows this server
        task = asyncio.ensure_future(watcher.run())
    started = time.monotonic()
    stop = asyncio.Event()

    async def checker() -> None:
        while not stop.is_set():
            if soak.first_restart_post_at is None and any(soak.n("restart") in json.dumps(p) for p in soak.posts()):
                soak.first_restart_post_at = time.monotonic()
            try:
                async with client_factory() as client:
                    await soak.check_proposals(service, client)
            except Exception:  # the server is restarting: check again in a moment
                pass
            await asyncio.sleep(1.0)

    checking = asyncio.ensure_future(checker())
    cycles = 0
    try:
        while cycles == 0 or time.monotonic() - started < minutes * 60:
            await _cycle(soak, client_factory)
            cycles += 1
        await asyncio.sleep(WAIT_SECONDS + 3 * INTERVAL)  # the last trouble ripens and settles
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, checking, return_exceptions=True)
        soak.stop_workers()
        async with client_factory() as client:
            await soak.check_proposals(service, client)
        store.close()
    async with client_factory() as client:  # did the restart leave a leak? then it must be detected, else quiet
        left = (await client.read_global_concurrency_limit_by_name(f"tag:{soak.n('restart')}")).active_slots
    restart = soak.scenarios["server restart, live holder"]
    if not left:
        restart.expect = "quiet"
        restart.notes.append("the holder's release freed the slot after the restart: nothing leaked")
    else:
        restart.notes.append(f"{left} slot(s) still counted after the holder finished")
    soak.score()
    elapsed = (time.monotonic() - started) / 60
    per_incident = soak.posts_per_incident()
    return dict(minutes=elapsed, cycles=cycles, scenarios=list(soak.scenarios.values()), unsafe=soak.unsafe,
                posts_per_incident=per_incident, reposted=soak.reposted, calls_per_minute=watcher.meter.total / elapsed,
                reads=dict(watcher.reads))


def table(result: dict) -> str:
    lines = [f"Watcher soak: {result['minutes']:.1f} min, {result['cycles']} cycle(s), "
             f"API calls/min {result['calls_per_minute']:.0f} (cap 100), reads {result['reads']}",
             "| Situation | Expected | Seen | False alarms | Notes |", "|---|---|---|---|---|"]
    for s in result["scenarios"]:
        seen = ("detected" if s.detected else "missed") if s.expect == "detect" else (
            "quiet" if not s.false_alarms else "posted")
        lines.append(f"| {s.name} | {s.expect} | {seen} | {s.false_alarms} | {'; '.join(s.notes)[:200]} |")
    lines.append(f"| unsafe proposals | 0 | {result['unsafe']} | | |")
    lines.append(f"| posts per incident (max) | 1 | {result['posts_per_incident']} | | "
                 f"{', '.join(result.get('reposted') or [])[:300]} |")
    return "\n".join(lines)
