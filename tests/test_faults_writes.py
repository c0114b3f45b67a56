"""Fault rows for writes: every approved change does exactly what its card says, and nothing else.

All rows run against the real Prefect server. Where a row must see which requests reach Prefect,
or make Prefect slow, the bot's own Prefect client talks to it through `PrefectProxy`, a plain
forwarding HTTP proxy; nothing in the code under test is wrapped or patched. Slack-facing rows
drive a bot built the way `serve` builds it, through signed Bolt requests.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from httpx import HTTPStatusError
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate

from bot.approvals.policy import ApprovalPolicy
from bot.approvals.service import ApprovalService
from bot.approvals.tools import proposal_tools
from bot.prefect_ops.changes import DeploymentLimitChange, TagLimitChange, WorkPoolLimitChange
from bot.prefect_ops.leaks import find_leaked_slots
from bot.settings import load_settings
from bot.slack import cards
from bot.slack.approval_handlers import post_proposal_cards
from bot.store import Store
from tests.approvals_support import make_deployment, make_gcl, make_pool, pool_limit, unique
from tests.fakes.model_api import text, tool_calls
from tests.faults_support import PrefectProxy, check
from tests.harness import BotHarness, mention, wait_until
from tests.slack_transport import block_action

pytestmark = pytest.mark.faults

ASKER, APPROVER, OTHER, THIRD = "UASKER", "UAPPROVER", "UOTHER", "UTHIRD"


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proxy(prefect_api_url):
    server = PrefectProxy(prefect_api_url).start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def service(proxy, tmp_path):
    """The approval service as the app builds it, its Prefect client going through the proxy."""
    built: list[ApprovalService] = []

    def make(**settings: Any) -> ApprovalService:
        cfg = load_settings(bot_approver_ids=[APPROVER, OTHER, THIRD, ASKER], **settings)
        svc = ApprovalService(Store.open(f"sqlite:///{tmp_path / 'bot.db'}"), ApprovalPolicy(cfg),
                              client_factory=lambda: PrefectClient(api=proxy.url),
                              interrupted_after_seconds=0, max_proposals_per_answer=cfg.bot_max_proposals_per_answer)
        built.append(svc)
        return svc

    yield make
    for svc in built:
        svc.store.close()


@pytest.fixture(scope="module")
def four_eyes_bot(slack_api, model_api, prefect_api_url, tmp_path_factory):
    """A bot as `serve` builds it, with both second-person rules on."""
    db = f"sqlite:///{tmp_path_factory.mktemp('writes') / 'bot.db'}"
    harness = BotHarness(slack_api, model_api, db, bot_approver_ids=[APPROVER, OTHER, THIRD, ASKER],
                         bot_approval_require_second_person=True, bot_destructive_require_second_person=True,
                         bot_streaming=False).start()
    yield harness
    harness.stop()


def new_ts() -> str:
    return f"{time.time():.6f}"


def short(value: str, n: int = 80) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= n else value[:n - 1] + "…"


def seen_since(proxy: PrefectProxy, mark: int) -> list[tuple[str, str]]:
    with proxy.lock:
        return list(proxy.seen[mark:])


# --- 1. the card names one object, the write hits another --------------------------------------
async def _victims() -> dict[str, Any]:
    """A tag limit and a work pool that a hostile name would reach if it were spliced into a path."""
    tag, pool = unique("victim-tag"), await make_pool(limit=4)
    async with get_client() as client:
        limit_id = await client.create_concurrency_limit(tag=tag, concurrency_limit=3)
    return {"tag": tag, "tag_id": str(limit_id), "pool": pool}


async def _victims_intact(v: dict[str, Any]) -> bool:
    async with get_client() as client:
        tag_limit = await client.read_concurrency_limit_by_tag(v["tag"])
    return tag_limit.concurrency_limit == 3 and await pool_limit(v["pool"]) == 4


@pytest.mark.parametrize("case", ["traversal", "question mark", "hash"])
async def test_names_that_cut_a_path_are_refused_before_any_request(service, proxy, case):
    v = await _victims()
    args = {
        # the attack: the DELETE would land on /concurrency_limits/<victim id>
        "traversal": dict(kind="tag_limit", action="delete", name=f"unused-tmp/../../{v['tag_id']}"),
        # PATCH /work_pools/<victim>?x=1 and PATCH /work_pools/<victim>#x both hit the victim pool
        "question mark": dict(kind="work_pool_limit", action="set", name=f"{v['pool']}?x=1", limit=0),
        "hash": dict(kind="work_pool_limit", action="set", name=f"{v['pool']}#x", limit=0),
    }[case]
    [propose] = proposal_tools(service(), ASKER, "C1", new_ts())
    mark = len(proxy.seen)
    result = await propose(reason="hostile name", **args)
    sent = seen_since(proxy, mark)
    check("writes", f"{case} name: {short(args['name'], 50)}", "refused with a clear message, no request, "
          "victims unchanged", f"{short(result.get('error') or result, 70)!r}; requests sent {len(sent)}",
          not result["ok"] and "refused before anything was sent" in result["error"] and not sent
          and await _victims_intact(v))


async def test_a_name_that_reaches_a_path_is_percent_encoded(service, proxy):
    pool = f"etl: nightly {uuid.uuid4().hex[:6]} ü"  # legal in Prefect; ':' ' ' and 'ü' go encoded
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
    svc = service()
    mark = len(proxy.seen)
    proposal = await svc.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), ASKER)
    decision = await svc.approve(proposal.id, APPROVER)
    paths = [p for _, p in seen_since(proxy, mark) if "/work_pools/" in p]
    encoded = "/work_pools/etl%3A%20nightly%20"
    check("writes", "pool name with ':', space and 'ü'", "every path encodes the name; applied to it",
          f"{decision.outcome}; {len(paths)} pool request(s), all encoded: "
          f"{all(encoded in p for p in paths)}; limit {await pool_limit(pool)}",
          decision.outcome == "applied" and paths and all(encoded in p for p in paths)
          and await pool_limit(pool) == 2)


async def test_a_limit_named_like_another_limits_id_is_refused(service):
    victim = await make_gcl(limit=2)
    async with get_client() as client:
        victim_id = str((await client.read_global_concurrency_limit_by_name(victim)).id)
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=victim_id, limit=1))
    [propose] = proposal_tools(service(), ASKER, "C1", new_ts())
    result = await propose(kind="global_limit", action="delete", name=victim_id, reason="cleanup")
    async with get_client() as client:
        names = {g.name for g in await client.read_global_concurrency_limits(limit=200, offset=0)}
    check("writes", "GCL named like another limit's id (delete)", "refused: the server answered with another "
          "limit; both remain", f"{short(result.get('error') or result, 70)!r}; victim kept {victim in names}",
          not result["ok"] and "answered with limit" in result["error"] and victim in names and victim_id in names)


async def test_an_object_recreated_after_the_proposal_is_not_written(service):
    pool = await make_pool(limit=2)
    svc = service()
    proposal = await svc.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=5), ASKER)
    async with get_client() as client:
        await client.delete_work_pool(pool)
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=2))
    decision = await svc.approve(proposal.id, APPROVER)
    check("writes", "pool deleted and re-created under the same name, then Approve",
          "not applied (stale: the pinned id is gone); new pool unchanged",
          f"{decision.outcome}; new pool limit {await pool_limit(pool)}",
          decision.outcome == "stale" and await pool_limit(pool) == 2 and proposal.change.target_id is not None)


# --- 2. resets that really free slots ----------------------------------------------------------
async def _acquire(tag: str, holder: str | None = None) -> tuple[int, str | None]:
    """One acquire of the tag's V2 limit through the v2 API; (HTTP status, lease id)."""
    body: dict[str, Any] = {"names": [f"tag:{tag}"], "slots": 1, "mode": "concurrency", "lease_duration": 300}
    if holder:
        body["holder"] = {"type": "task_run", "id": holder}
    async with get_client() as client:
        try:
            response = await client.request("POST", "/v2/concurrency_limits/increment-with-lease", json=body)
        except HTTPStatusError as exc:
            return exc.response.status_code, None
    return response.status_code, str(response.json()["lease_id"])


async def _active(tag: str) -> int:
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(f"tag:{tag}")).active_slots


async def test_reset_of_a_really_held_tag_slot_frees_it(service):
    tag = unique("leaky")
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
    status, old_lease = await _acquire(tag, holder=str(uuid.uuid4()))  # a task run that no longer exists
    blocked, _ = await _acquire(tag)
    assert status == 200 and blocked == 423, "precondition: the slot is really held"

    async with get_client() as client:
        leaks = [leak for leak in await find_leaked_slots(client) if leak.limit_name == tag]
    suggested = leaks[0].reset.propose if leaks else None
    check("writes", "leaked tag slot: what the diagnosis proposes", "tag_limit reset of that tag",
          json.dumps(suggested), suggested == {"kind": "tag_limit", "action": "reset", "name": tag})

    svc = service()
    [propose] = proposal_tools(svc, ASKER, "C1", new_ts())
    made = await propose(reason="leaked slot", **(suggested or {}))
    decision = await svc.approve(made["proposal_id"], APPROVER)
    after, new_lease = await _acquire(tag)
    async with get_client() as client:  # the old holder now exits: its lease is gone, nothing is freed twice
        try:
            await client.request("POST", "/v2/concurrency_limits/decrement-with-lease", json={"lease_id": old_lease})
        except HTTPStatusError:
            pass
    check("writes", "reset of a really held tag slot, then a new acquire", "acquire succeeds at once (200); "
          "the old holder's exit frees nothing twice", f"{decision.outcome}; acquire → {after}; "
          f"active slots after old holder exits {await _active(tag)}",
          decision.outcome == "applied" and after == 200 and new_lease and await _active(tag) == 1)

    # A `set` of the existing tag limit keeps the new holder's slot.
    bigger = await svc.create_proposal(TagLimitChange(action="set", tag=tag, limit=3), ASKER)
    assert (await svc.approve(bigger.id, APPROVER)).outcome == "applied"
    assert await _active(tag) == 1


# --- 3 and 4. four eyes, and approve what you saw (through Slack) --------------------------------
def _click(bot: BotHarness, action_id: str, value: str, user: str, card_ts: str) -> int:
    return bot.post_interaction(block_action(action_id, value, user, message_ts=card_ts)).status


def _submit_edit(bot: BotHarness, metadata: dict[str, Any], value: str, user: str) -> int:
    payload = {
        "type": "view_submission", "token": "legacy", "api_app_id": "A1", "trigger_id": f"trig-{time.time_ns()}",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"}, "team": {"id": "T1", "domain": "t"},
        "view": {"id": "V1", "type": "modal", "callback_id": cards.EDIT_VIEW, "private_metadata": json.dumps(metadata),
                 "state": {"values": {cards.VALUE_BLOCK: {cards.VALUE_ACTION: {"type": "number_input",
                                                                                "value": value}}}}},
    }
    return bot.post_interaction(payload).status


def _card(bot: BotHarness, change) -> tuple[str, str]:
    service = bot.runtime.approvals
    thread = new_ts()
    proposal = bot.call(lambda: service.create_proposal(change, ASKER, "reason", "C1", thread))
    bot.call(lambda: post_proposal_cards(service, bot.runtime.app.client, "C1", thread, [proposal.id]))
    return proposal.id, bot.call(lambda: service.get(proposal.id)).message_ts


def _view(bot: BotHarness, pid: str):
    return bot.call(lambda: bot.runtime.approvals.get(pid))


def _note_after(slack, before: int) -> str:
    try:
        notes = wait_until(lambda: slack.calls_to("chat.postEphemeral")[before:], 20, "a note to the clicker")
    except AssertionError:
        return "(no note)"
    return notes[-1].args["text"]


def _edit(bot: BotHarness, slack, pid: str, value: str, user: str) -> None:
    before, updates = _view(bot, pid).version, len(slack.calls_to("chat.update"))
    meta = {"id": pid, "min": 0, "version": before}
    assert _submit_edit(bot, meta, value, user) == 200
    wait_until(lambda: _view(bot, pid).version == before + 1, 20, "the edit stored")
    wait_until(lambda: len(slack.calls_to("chat.update")) > updates, 20, "the edited card redrawn")


def test_edit_then_self_approve_with_second_person_on(four_eyes_bot, fresh_slack, fresh_model):
    bot = four_eyes_bot
    pool = bot.call(lambda: make_pool(limit=2))
    pid, card_ts = _card(bot, WorkPoolLimitChange(action="set", pool=pool, limit=3))
    _edit(bot, fresh_slack, pid, "9", APPROVER)  # B edits A's proposal…
    value = cards.approve_value(_view(bot, pid))
    before = len(fresh_slack.calls_to("chat.postEphemeral"))
    _click(bot, cards.APPROVE, value, APPROVER, card_ts)  # …and approves their own value
    note = _note_after(fresh_slack, before)
    limit, status = bot.call(lambda: pool_limit(pool)), _view(bot, pid).status
    check("four eyes", "edit a colleague's proposal, then approve it yourself (second person on)",
          "refused: you edited it; limit unchanged", f"{short(note, 60)!r}; limit {limit}, {status}",
          "you edited" in note and limit == 2 and status == "pending")
    _click(bot, cards.APPROVE, value, OTHER, card_ts)
    wait_until(lambda: _view(bot, pid).status == "applied", 20, "applied by a third person")
    assert bot.call(lambda: pool_limit(pool)) == 9


async def test_setting_a_limit_to_zero_is_destructive(service):
    pool = await make_pool(limit=2)
    svc = service(bot_destructive_require_second_person=True)  # only the destructive rule is on
    proposal = await svc.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=0), ASKER)
    card = json.dumps([b.to_dict() for b in cards.proposal_card_blocks(proposal)], ensure_ascii=False)
    decision = await svc.approve(proposal.id, ASKER)  # the requester approves their own 0
    limit = await pool_limit(pool)
    check("four eyes", "pool limit set to 0, approved by its requester (destructive rule on)",
          "destructive: refused; the card says what 0 does",
          f"destructive={proposal.destructive}; {decision.outcome}: {short(decision.message, 40)!r}; limit {limit}; "
          f"card explains 0: {'no flow run in this pool starts' in card}",
          proposal.destructive and decision.outcome == "refused" and "second person" in decision.message
          and limit == 2 and "no flow run in this pool starts" in card and "_destructive_" in card)


def test_approve_of_a_stale_version_is_refused(four_eyes_bot, fresh_slack, fresh_model):
    bot = four_eyes_bot
    pool = bot.call(lambda: make_pool(limit=2))
    pid, card_ts = _card(bot, WorkPoolLimitChange(action="set", pool=pool, limit=3))
    seen = cards.approve_value(_view(bot, pid))  # the confirm dialog is open on version 1…
    _edit(bot, fresh_slack, pid, "8", THIRD)  # …while someone edits it to 8
    updates_before = len(fresh_slack.calls_to("chat.update"))
    before = len(fresh_slack.calls_to("chat.postEphemeral"))
    _click(bot, cards.APPROVE, seen, OTHER, card_ts)
    note = _note_after(fresh_slack, before)
    redrawn = wait_until(lambda: fresh_slack.calls_to("chat.update")[updates_before:], 20, "card refreshed")
    shown = json.dumps(redrawn[-1].args["blocks"], ensure_ascii=False)
    limit, status = bot.call(lambda: pool_limit(pool)), _view(bot, pid).status
    check("approve what you saw", "Approve clicked on version 1 after an edit to 8",
          "refused with a note, card redrawn with 8, limit unchanged",
          f"{short(note, 50)!r}; card shows 8: {'→ 8' in shown}; limit {limit}, {status}",
          "edited since you saw it" in note and "→ 8" in shown and f"{pid}:2" in shown
          and limit == 2 and status == "pending")

    stale_modal = {"id": pid, "min": 0, "version": 1}  # an Edit modal opened before the edit
    before = len(fresh_slack.calls_to("chat.postEphemeral"))
    _submit_edit(bot, stale_modal, "1", OTHER)
    note = _note_after(fresh_slack, before)
    change = _view(bot, pid).change
    check("approve what you saw", "Edit modal submitted on version 1 after an edit to 8",
          "refused with a note; the value stays 8", f"{short(note, 50)!r}; value {change.limit}",
          "edited since you saw it" in note and change.limit == 8)


# --- 5. the deploy-undo note ---------------------------------------------------------------------
async def test_deployment_card_says_the_next_deploy_undoes_it(service):
    pool = await make_pool()
    deployment = await make_deployment(pool)
    svc = service()
    proposal = await svc.create_proposal(DeploymentLimitChange(action="set", deployment=deployment, limit=2), ASKER)
    pending = json.dumps([b.to_dict() for b in cards.proposal_card_blocks(proposal)])
    decision = await svc.approve(proposal.id, APPROVER)
    applied = json.dumps([b.to_dict() for b in cards.proposal_card_blocks(decision.proposal)])
    wanted = ("prefect deploy", "concurrency_limit:", "limit: 2", "collision_strategy: ENQUEUE")
    check("deploy undo", "deployment limit card and 'applied' message",
          "both say the next deploy without concurrency_limit removes it, with the prefect.yaml lines",
          f"card {all(w in pending for w in wanted)}, applied card {all(w in applied for w in wanted)}, "
          f"applied message {all(w in decision.message for w in wanted)}",
          all(w in pending and w in applied and w in decision.message for w in wanted))


# --- 6. bounded blast radius ----------------------------------------------------------------------
def test_a_fourth_proposal_in_one_answer_is_refused(four_eyes_bot, fresh_slack, fresh_model):
    bot = four_eyes_bot
    pools = [bot.call(lambda: make_pool(limit=1)) for _ in range(4)]
    calls = [("propose_change", {"kind": "work_pool_limit", "action": "set", "name": p, "limit": 5,
                                 "reason": "as the runbook says"}) for p in pools]
    fresh_model.script(tool_calls(*calls), text("Proposed what I could."))
    ts = new_ts()
    assert bot.post_event(mention("raise every pool", ts=ts)).status == 200
    bot.wait_idle()
    tool_results = [json.loads(m["content"]) for m in fresh_model.requests[-1]["messages"] if m["role"] == "tool"]
    card_posts = [c.args for c in fresh_slack.calls_to("chat.postMessage") if cards.APPROVE in json.dumps(
        c.args.get("blocks") or [])]
    by_bot = all("Proposed by the bot for <@U1>" in json.dumps(c["blocks"]) for c in card_posts)
    refused = [r for r in tool_results if not r.get("ok")]
    check("blast radius", "a fourth propose_change in one answer", "3 cards; the 4th a tool error naming the cap; "
          "cards say 'proposed by the bot for @asker'",
          f"{len(card_posts)} cards, refused {len(refused)}: {short(refused[0]['error'] if refused else '-', 40)!r}; "
          f"by-bot line {by_bot}",
          len(card_posts) == 3 and len(refused) == 1 and "BOT_MAX_PROPOSALS_PER_ANSWER" in refused[0]["error"]
          and by_bot)


# --- 7. no split brain ---------------------------------------------------------------------------
async def test_a_late_apply_after_the_sweeper_gave_up_ends_applied_everywhere(service, proxy):
    pool = await make_pool(limit=1)
    svc = service()
    proposal = await svc.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=6), ASKER)
    proxy.add("PATCH", f"/work_pools/{pool}$", "delay", seconds=4, times=1)  # a slow Prefect
    try:
        applying = asyncio.create_task(svc.approve(proposal.id, APPROVER))
        await asyncio.to_thread(proxy.wait_seen, "PATCH", f"/work_pools/{pool}$")
        swept = await svc.recover_interrupted(older_than_seconds=0)  # the sweeper, while the PATCH is in flight
        decision = await applying
    finally:
        proxy.clear()
    final = await svc.get(proposal.id)
    audit = [a.action for a in reversed(await svc.audit_log(proposal_id=proposal.id))]
    card = json.dumps([b.to_dict() for b in cards.proposal_card_blocks(final)])
    check("split brain", "apply finishes after the sweeper marked it failed",
          "database, card and audit say applied, as Prefect shows",
          f"sweeper said {[s.status for s in swept]}; then db {final.status}, card Applied {'Applied' in card}, "
          f"audit {audit[-2:]}, Prefect {await pool_limit(pool)}",
          [s.status for s in swept] == ["failed"] and final.status == "applied" and decision.outcome == "applied"
          and ":white_check_mark: *Applied*" in card and audit[-1] == "applied" and await pool_limit(pool) == 6)
