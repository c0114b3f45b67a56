"""The watcher soak (issue 25): a real Prefect server, real process workers, real trouble; one table.

Each scenario deploys flows from a source directory and runs them on `prefect worker start` processes:
healthy churn, `kill -9` of a flow holding a tag slot, a server restart while a tagged task runs, a busy
tag limit, a flapping pool backlog, a disabled deployment limit and a blocked `concurrency()` acquirer.
The watcher is the one `serve` runs (Watcher + SlackPoster + approvals, the Slack fake behind it).
Independently of the watcher's own code, every reset proposal is checked against the live runs at the
moment it appears: a reset while a tagged task of a running flow still runs is unsafe.

Every step waits for a condition with a generous deadline, never for a fixed time, so a loaded machine
makes the soak slower, not different:
- the busy tag, the flapping pool and the blocked acquirer keep their trouble going (holders turning
  over, runs fed to the pool, the slot held) until the watcher has posted it, or a deadline passes;
- a leaked slot (kill -9, or a restart that dropped a live holder's lease) is fixed the way an operator
  would: its reset proposal is approved through the approval service, and the slots are read back as 0,
  so the next cycle starts clean and the fix itself is exercised;
- a cycle ends when its runs have ended and its incidents are resolved.

`run_soak(minutes)` repeats the cycle until `minutes` have passed and returns the table rows;
`make soak` runs at least 10 minutes, `make test` one cycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.process_workers import deploy_from_source, start_process_workers, stop_process_workers

FLOWS = '''
import os
import time
from pathlib import Path

from prefect import flow, task
from prefect.concurrency.sync import concurrency

HERE = Path(__file__).parent
PIDS = HERE / "pids"


def released(name: str) -> bool:
    return bool(name) and (HERE / "release" / name).exists()


def pause(seconds: float, release: str = "") -> None:
    """Sleep `seconds`, cut short once the soak releases `release` (it has seen what it waited for)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not released(release):
        time.sleep(0.5)


@task
def hold(seconds: float, marker: str = "", release: str = "") -> None:
    if marker:
        PIDS.mkdir(exist_ok=True)
        (PIDS / marker).write_text(str(os.getpid()))
    pause(seconds, release)


@flow
def tagged(tag: str, seconds: float, marker: str = "", release: str = "") -> None:
    hold.with_options(tags=[tag]).submit(seconds, marker, release).result()


@flow
def turnover(tag: str, seconds: float, release: str, at_once: int = 5, longest: float = 300) -> None:
    """`at_once` tasks of `seconds` each under `tag` until `release` (at most `longest` s): the holder
    turns over every `seconds` while the others wait."""
    started = time.monotonic()
    pending = []
    while not released(release) and time.monotonic() - started < longest:
        pending = [f for f in pending if not f.wrapped_future.done()]
        while len(pending) < at_once:
            pending.append(hold.with_options(tags=[tag]).submit(seconds, "", release))
        time.sleep(0.5)
    for future in pending:
        future.result()


@flow
def sleeper(seconds: float) -> None:
    time.sleep(seconds)


@flow
def gcl_user(name: str, seconds: float, release: str = "") -> None:
    with concurrency(name, occupy=1):
        pause(seconds, release)
'''

slog = logging.getLogger("soak")
WAIT_SECONDS = 20.0
INTERVAL = 10.0
APPROVER = "USOAK"
DEADLINE = 300.0  # the most any one step may take on a loaded machine before it counts as a miss
FLAP_BACKLOG = 6  # the flapping pool is fed up to this many waiting runs until its backlog is posted
CONFIRM = 5.0  # more than the watcher's confirmation (2 s): a leak seen after the restart would be posted by then


@dataclass
class Scenario:
    name: str
    expect: str  # "detect" or "quiet"
    objects: list[str]  # names an incident about this scenario mentions
    kinds: list[str]  # incident titles that count as the detection
    once: bool = False  # trouble that lasts the whole soak (one episode), not one per cycle
    expected_in: list[int] = field(default_factory=list)  # cycles that should have a detection
    detected_in: list[int] = field(default_factory=list)
    false_alarms: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def detected(self) -> bool:
        if self.once:
            return bool(self.detected_in)
        return set(self.expected_in) <= set(self.detected_in)


class Soak:
    """Sets up the world on `api_url`, runs workers and the watcher, drives cycles, keeps score."""

    def __init__(self, server: Any, slack: Any, work: Path, client_factory: Callable[[], Any]) -> None:
        self.server = server
        self.slack = slack
        self.work = work
        self.client_factory = client_factory
        self.tag = uuid.uuid4().hex[:6]
        self.channel = f"CSOAK{self.tag}"
        self.workers: list[subprocess.Popen] = []
        self.unsafe = 0
        self.proposals_checked: set[str] = set()
        self.restart_live = False  # the restart scenario's holder runs (a post about its tag now is false)
        self.reposted: list[str] = []
        self.scenarios: dict[str, Scenario] = {}
        self.deployments: dict[str, Any] = {}
        self.cycle_posts: list[tuple[int, int]] = []  # per cycle: [first, last) index into posts()
        self.resets: list[str] = []  # one line per approved reset: tag, outcome, slots read back
        self.unfreed = 0  # approved resets after which the slots were not read back as 0
        self.unresolved: list[str] = []
        self.service: Any = None
        self.store: Any = None
        self.watcher: Any = None

    def n(self, what: str) -> str:
        return f"soak-{what}-{self.tag}"

    # --- the world ------------------------------------------------------------------------------
    async def setup(self, client: Any) -> None:
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate

        (self.work / "soak_flows.py").write_text(FLOWS)
        (self.work / "release").mkdir(exist_ok=True)
        pools = {"healthy": 2, "flap": 2, "tags": None, "misc": None}
        for pool, limit in pools.items():
            await client.create_work_pool(WorkPoolCreate(name=self.n(pool), type="process", concurrency_limit=limit))
        for tag, limit in (("kill", 1), ("restart", 1), ("busy", 1)):
            await client.create_concurrency_limit(tag=self.n(tag), concurrency_limit=limit)
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=self.n("gcl"), limit=1))

        async def deploy(key: str, flow: str, pool: str, parameters: dict, limit: int | None = None) -> None:
            self.deployments[key] = await deploy_from_source(client, self.work, "soak_flows.py", flow, self.n(key),
                                                             self.n(pool), parameters, limit=limit)

        await deploy("healthy", "sleeper", "healthy", {"seconds": 1})
        await deploy("flap", "sleeper", "flap", {"seconds": 6})
        await deploy("kill", "tagged", "tags", {"tag": self.n("kill"), "seconds": 600})
        await deploy("restart", "tagged", "tags", {"tag": self.n("restart"), "seconds": DEADLINE})
        await deploy("busy", "turnover", "tags", {"tag": self.n("busy"), "seconds": 8, "release": ""})
        await deploy("disabled", "sleeper", "misc", {"seconds": 1}, limit=1)
        await deploy("gcl", "gcl_user", "misc", {"name": self.n("gcl"), "seconds": DEADLINE})
        gcl = await client.read_global_concurrency_limit_by_name(f"deployment:{self.deployments['disabled']}")
        await client.request("PATCH", f"/v2/concurrency_limits/{gcl.id}", json={"active": False})
        waiting = ["Runs waiting on a full limit"]
        leaked = ["Leaked concurrency slots"]
        for scenario in (
            Scenario("healthy churn", "quiet", [self.n("healthy")], []),
            Scenario("kill -9 of a tag holder", "detect", [self.n("kill")], leaked),
            Scenario("server restart, live holder", "detect", [self.n("restart")], leaked),
            Scenario("busy tag limit", "detect", [self.n("busy")], waiting),
            Scenario("flapping pool backlog", "detect", [self.n("flap")], waiting),
            Scenario("disabled deployment limit", "detect", [self.n("disabled")],
                     ["Disabled deployment limit"], once=True),
            Scenario("blocked concurrency() acquirer", "detect", [self.n("gcl")],
                     ["Global concurrency limit at its limit"]),
        ):
            self.scenarios[scenario.name] = scenario

    def start_workers(self) -> None:
        self.workers = start_process_workers(self.server.url, [self.n(p) for p in ("healthy", "flap", "tags", "misc")],
                                             self.work)

    def stop_workers(self) -> None:
        stop_process_workers(self.workers)

    def release(self, name: str) -> None:
        (self.work / "release" / name).touch()

    # --- what the watcher said --------------------------------------------------------------------
    def posts(self) -> list[dict]:
        return [c.args for c in self.slack.calls_to("chat.postMessage")
                if c.args.get("channel") == self.channel and not c.args.get("thread_ts")]

    def hits(self, scenario: Scenario, posts: list[dict]) -> list[dict]:
        return [p for p in posts if any(o in json.dumps(p) for o in scenario.objects)
                and any(k in p.get("text", "") for k in scenario.kinds)]

    def posted(self, name: str, since: int) -> bool:
        """Whether the scenario's detection was posted after post number `since` (this cycle)."""
        return bool(self.hits(self.scenarios[name], self.posts()[since:]))

    def score(self) -> None:
        posts = self.posts()
        restart = self.scenarios["server restart, live holder"]
        if not restart.expected_in:  # no cycle leaked a slot: nothing to report about it
            restart.expect = "quiet"
            restart.notes.append("every restarted holder's release freed its slot")
        for scenario in self.scenarios.values():
            about = [p for p in posts if any(o in json.dumps(p) for o in scenario.objects)]
            hits = self.hits(scenario, posts)
            scenario.detected_in = [n for n, (first, last) in enumerate(self.cycle_posts, 1)
                                    if self.hits(scenario, posts[first:last])]
            if scenario.expect == "quiet":
                scenario.false_alarms += len(about)
            else:
                scenario.false_alarms += len(about) - len(hits)

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

    async def check_proposals(self, client: Any) -> None:
        """Every reset proposal, as it appears, against the live runs (read here, not by the bot)."""
        from prefect.client.schemas.objects import StateType

        from bot.store import proposals as db

        rows = await asyncio.to_thread(db.list_audit, self.service.store.sessions, action="proposed")
        for row in rows:
            if not row.proposal_id or row.proposal_id in self.proposals_checked:
                continue
            self.proposals_checked.add(row.proposal_id)
            proposal = await self.service.get(row.proposal_id)
            change = proposal.change if proposal else None
            if change is None or getattr(change, "action", "") != "reset":
                continue
            tag = getattr(change, "tag", None) or getattr(change, "name", "").removeprefix("tag:")
            for task in await _tasks_running(client, tag):
                flow_run = await client.read_flow_run(task.flow_run_id)
                if flow_run.state and flow_run.state.type == StateType.RUNNING:
                    self.unsafe += 1
                    self.note(tag, f"unsafe reset proposed while {task.name} ran")
                    break

    def note(self, tag: str, text: str) -> None:
        for scenario in self.scenarios.values():
            if tag in scenario.objects:
                scenario.notes.append(text)

    # --- the operator's side ----------------------------------------------------------------------
    async def keep_until_posted(self, name: str, since: int, release: str, ended: Callable[[], Awaitable[bool]],
                                feed: Callable[[], Awaitable[None]] | None = None) -> None:
        """Keep the trouble going (`feed` it) until the watcher posts it, then `release` it; give up when
        it `ended` by itself or the deadline passed (a miss, scored as such)."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not self.posted(name, since):
            if await ended():
                break
            if feed is not None:
                await feed()
            await asyncio.sleep(1.0)
        slog.info("%s: %s", name, "posted" if self.posted(name, since) else "not posted")
        if release:
            self.release(release)

    async def reset_leak(self, client: Any, name: str, tag: str) -> None:
        """Approve the leak's reset proposal as an approver would (the service a Slack click calls), then
        read the slots back: they must be 0. Waits for the proposal up to the deadline."""
        from bot.store import watch as watch_db

        key = f"leaked_slots:tag:{tag}"
        decided: set[str] = set()
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            row = await asyncio.to_thread(watch_db.get_incident, self.store.sessions, key)
            proposal_id = row.proposal_id if row is not None and row.status == watch_db.OPEN else None
            if proposal_id and proposal_id not in decided:
                decided.add(proposal_id)
                decision = await self.service.approve(proposal_id, APPROVER)
                if decision.outcome == "stale" and decision.fresh is not None:  # changed meanwhile: re-proposed
                    decision = await self.service.approve(decision.fresh.id, APPROVER)
                slots = (await client.read_global_concurrency_limit_by_name(f"tag:{tag}")).active_slots
                self.resets.append(f"{name}: {decision.outcome}, {slots} slot(s) read back")
                slog.info("approved the reset of %s: %s, %s slot(s) read back", tag, decision.outcome, slots)
                if decision.outcome == "applied" and slots == 0:
                    return
                self.unfreed += 1
                self.scenarios[name].notes.append(f"approved reset: {decision.outcome}, {slots} slot(s) left")
                return
            await asyncio.sleep(1.0)
        self.scenarios[name].notes.append("no reset proposal to approve")


async def _wait_for(check: Callable[[], Awaitable[Any]], timeout: float = DEADLINE, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    return None


async def _tasks_running(client: Any, tag: str) -> Any:
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


async def _all_final(client: Any, run_ids: list[Any]) -> bool:
    from bot.prefect_ops.runs import read_flow_runs_by_id

    runs = await read_flow_runs_by_id(client, run_ids)
    return all(run.state is not None and run.state.is_final() for run in runs.values())


async def _scheduled(client: Any, deployment_id: Any) -> int:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType.SCHEDULED]))),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])), limit=50)
    return len(runs)


async def _cycle(soak: Soak, number: int) -> None:
    """One pass through every scenario; trouble of different scenarios overlaps, as on a real server."""
    since = len(soak.posts())
    label = f"c{number}"
    runs: list[Any] = []  # every run of this cycle that ends by itself (the disabled one never does)
    deps = soak.deployments
    async with soak.client_factory() as client:
        async def start(key: str, **parameters: Any) -> Any:
            run = await client.create_flow_run_from_deployment(deps[key], parameters=parameters or None)
            runs.append(run.id)
            return run

        for _ in range(2):
            await start("healthy")
        for _ in range(10):
            await start("flap")
        await client.create_flow_run_from_deployment(deps["disabled"])
        await start("kill", marker=f"kill-{label}")
        restart_run = await start("restart", release=f"restart-{label}")

        pid_file = soak.work / "pids" / f"kill-{label}"

        async def pid_written() -> bool:
            return pid_file.exists()

        if await _wait_for(lambda: _tasks_running(client, soak.n("kill"))) and await _wait_for(pid_written):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the flow process holding the tag slot
            slog.info("%s: killed the kill-tag holder", label)
        else:
            soak.scenarios["kill -9 of a tag holder"].notes.append(f"{label}: the tagged task never ran")
        if await _wait_for(lambda: _tasks_running(client, soak.n("restart"))):
            soak.restart_live = True
            soak.server.restart()  # leases are in memory: every live tag holder loses its lease
            restarted = time.monotonic()
            slog.info("%s: restarted the server with a live holder", label)
        else:
            restarted = None
            soak.scenarios["server restart, live holder"].notes.append(f"{label}: the tagged task never ran")

    async with soak.client_factory() as client:  # a new connection: the server is a new process
        # the busy tag and the global limit after the restart, so their holders keep their leases: waiting,
        # not leaking (a slot taken before a restart and given back after it stays counted: a real leak)
        busy = await client.create_flow_run_from_deployment(deps["busy"], parameters={"release": f"busy-{label}"})
        gcl_runs = [await client.create_flow_run_from_deployment(deps["gcl"], parameters={"release": f"gcl-{label}"})
                    for _ in range(2)]
        runs.extend([busy.id, *(r.id for r in gcl_runs)])

        async def feed_flap() -> None:
            if await _scheduled(client, deps["flap"]) < FLAP_BACKLOG:
                for _ in range(2):
                    runs.append((await client.create_flow_run_from_deployment(deps["flap"])).id)

        async def restart_scenario() -> None:
            # the holder lives on, unleased, until the watcher has read everything again after a slot first
            # seen unleased (at its first read after the restart) would have ripened, and finished that turn
            # (posted, proposed): it had every chance to call a live holder's slot leaked
            reads: list[float] = []  # full reads: the first after the restart, the first ripe one

            async def had_its_chance() -> bool:
                last = soak.watcher.last_full  # set when a full read returns, before that turn posts
                if restarted is None:
                    return True
                if not reads and last > restarted:
                    reads.append(last)
                elif len(reads) == 1 and last - reads[0] > WAIT_SECONDS + CONFIRM:
                    reads.append(last)
                return len(reads) == 2 and last > reads[1]  # a later full read: that turn is over

            await _wait_for(had_its_chance)
            slog.info("%s: releasing the restarted holder", label)
            soak.release(f"restart-{label}")
            done = await _wait_for(lambda: _all_final(client, [restart_run.id]))
            soak.restart_live = False
            slots = (await client.read_global_concurrency_limit_by_name(f"tag:{soak.n('restart')}")).active_slots
            slog.info("%s: restart holder %s, %s slot(s) counted", label, "ended" if done else "still runs", slots)
            if slots:  # its release did not count (the lease was gone): a leak the watcher must report
                soak.scenarios["server restart, live holder"].expected_in.append(number)
                await soak.reset_leak(client, "server restart, live holder", soak.n("restart"))

        async def never() -> bool:
            return False

        await asyncio.gather(
            soak.keep_until_posted("busy tag limit", since, f"busy-{label}", lambda: _all_final(client, [busy.id])),
            soak.keep_until_posted("blocked concurrency() acquirer", since, f"gcl-{label}",
                                   lambda: _all_final(client, [r.id for r in gcl_runs])),
            soak.keep_until_posted("flapping pool backlog", since, "", never, feed=feed_flap),
            soak.reset_leak(client, "kill -9 of a tag holder", soak.n("kill")),
            restart_scenario(),
        )
        for name in ("kill -9 of a tag holder", "busy tag limit", "flapping pool backlog",
                     "blocked concurrency() acquirer"):
            soak.scenarios[name].expected_in.append(number)
        if not await _wait_for(lambda: _all_final(client, runs)):
            soak.unresolved.append(f"{label}: runs still going after {DEADLINE:.0f} s")
        if not await _wait_for(lambda: _settled(soak)):
            soak.unresolved.append(f"{label}: incidents still open after {DEADLINE:.0f} s")
    soak.cycle_posts.append((since, len(soak.posts())))
    slog.info("%s: done", label)


async def _settled(soak: Soak) -> bool:
    """Every incident of this soak resolved, but the disabled deployment's (it lasts the whole soak)."""
    from bot.store import watch as watch_db

    rows = await asyncio.to_thread(watch_db.incident_rows, soak.store.sessions, (watch_db.OPEN,))
    disabled = soak.n("disabled")
    return not [r for r in rows if soak.tag in r.key and disabled not in r.key]


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

    # the watcher's decisions (every read) and the soak's steps go to trace.log only, not to the console
    trace = logging.FileHandler(work / "trace.log")
    trace.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in ("bot.watch.watcher", "soak")]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(trace)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    soak = Soak(server, slack, work, client_factory)
    async with client_factory() as client:
        await soak.setup(client)
    store = Store.open(f"sqlite:///{work / 'soak.db'}")
    settings = load_settings(bot_approver_ids=[APPROVER])
    service = ApprovalService(store, ApprovalPolicy(settings), client_factory=client_factory)
    soak.service, soak.store = service, store
    poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/"), soak.channel, store,
                         service)
    watcher = Watcher(store, poster, interval=INTERVAL, wait_seconds=WAIT_SECONDS, max_posts_per_hour=1000,
                      max_calls_per_minute=settings.bot_watch_max_calls_per_minute, api_url=server.url)
    soak.watcher = watcher
    soak.start_workers()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url}):  # the event stream follows this server
        task = asyncio.ensure_future(watcher.run())
    started = time.monotonic()
    stop = asyncio.Event()

    async def checker() -> None:
        logged = 0
        restart = soak.scenarios["server restart, live holder"]
        while not stop.is_set():
            posts = soak.posts()
            for post in posts[logged:]:
                slog.info("post: %s", str(post.get("text", ""))[:160])
                if soak.restart_live and any(o in json.dumps(post) for o in restart.objects):
                    restart.false_alarms += 1  # posted while the holder still ran: a leak it was not
                    restart.notes.append("posted while the holder still ran")
            logged = len(posts)
            try:
                async with client_factory() as client:
                    await soak.check_proposals(client)
            except Exception:  # the server is restarting: check again in a moment
                pass
            await asyncio.sleep(1.0)

    checking = asyncio.ensure_future(checker())
    cycles = 0
    try:
        while cycles == 0 or time.monotonic() - started < minutes * 60:
            cycles += 1
            await _cycle(soak, cycles)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, checking, return_exceptions=True)
        soak.stop_workers()
        async with client_factory() as client:
            await soak.check_proposals(client)
        store.close()
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(trace)
            logger.setLevel(level)
            logger.propagate = propagate
        trace.close()
    soak.score()
    elapsed = (time.monotonic() - started) / 60
    per_incident = soak.posts_per_incident()
    return dict(minutes=elapsed, cycles=cycles, scenarios=list(soak.scenarios.values()), unsafe=soak.unsafe,
                posts_per_incident=per_incident, reposted=soak.reposted, calls_per_minute=watcher.meter.total / elapsed,
                reads=dict(watcher.reads), resets=soak.resets, unfreed=soak.unfreed, unresolved=soak.unresolved,
                trace=str(work / "trace.log"))


def table(result: dict) -> str:
    lines = [f"Watcher soak: {result['minutes']:.1f} min, {result['cycles']} cycle(s), "
             f"API calls/min {result['calls_per_minute']:.0f} (cap 100), reads {result['reads']}; "
             f"every read's decision: {result['trace']}",
             "| Situation | Expected | Seen | False alarms | Notes |", "|---|---|---|---|---|"]
    for s in result["scenarios"]:
        if s.expect == "detect":
            cycles = "the soak" if s.once else f"{len(set(s.detected_in) & set(s.expected_in))} of " \
                                               f"{len(s.expected_in)} cycle(s)"
            seen = f"{'detected' if s.detected else 'missed'} ({cycles})"
        else:
            seen = "quiet" if not s.false_alarms else "posted"
        lines.append(f"| {s.name} | {s.expect} | {seen} | {s.false_alarms} | {'; '.join(s.notes)[:200]} |")
    lines.append(f"| unsafe proposals | 0 | {result['unsafe']} | | |")
    lines.append(f"| posts per incident (max) | 1 | {result['posts_per_incident']} | | "
                 f"{', '.join(result.get('reposted') or [])[:300]} |")
    kinds = {line: result["resets"].count(line) for line in result["resets"]}
    lines.append(f"| approved resets that freed the slots | all | {len(result['resets']) - result['unfreed']} of "
                 f"{len(result['resets'])} | | {'; '.join(f'{n} × {line}' for line, n in kinds.items())[:300]} |")
    lines.append(f"| cycles ended with runs done and incidents resolved | all | "
                 f"{'all' if not result['unresolved'] else 'not all'} | | {'; '.join(result['unresolved'])[:300]} |")
    return "\n".join(lines)
