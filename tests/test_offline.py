"""Offline answers (no model) against the real Prefect server: routing, essentials, and the change grammar.

The objects are created once per module with unique names; each question's answer must contain
its essentials. The grammar tests go all the way: text → proposal → approval → value on the server.
"""

from __future__ import annotations

import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyOptions

from bot.knowledge.recipes import RecipeBook
from bot.knowledge.search import RecipeSearch
from bot.offline import MODEL_OFF, OfflineAnswerer, classify, parse_change_request
from bot.turns import Turn
from tests.approvals_support import make_service, pool_limit

pytestmark = pytest.mark.timeout(240)


def _u(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def search() -> RecipeSearch:
    return RecipeSearch(RecipeBook.load())


@pytest.fixture(scope="module")
async def world(prefect_api_url):
    """A pool with a limit, a queue with a limit, a serial deployment with a late run, a GCL and a tag limit."""
    names = {"pool": _u("offpool"), "queue": _u("offq"), "flow": _u("offflow"), "dep": _u("offdep"),
             "gcl": _u("offgcl"), "tag": _u("offtag"), "run": _u("offrun")}
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=names["pool"], type="process", concurrency_limit=2))
        await client.create_work_queue(name=names["queue"], work_pool_name=names["pool"], concurrency_limit=1)
        flow_id = await client.create_flow_from_name(names["flow"])
        dep_id = await client.create_deployment(
            flow_id, names["dep"], work_pool_name=names["pool"], work_queue_name=names["queue"],
            concurrency_limit=1, concurrency_options=ConcurrencyOptions(collision_strategy="CANCEL_NEW"))
        await client.create_flow_run_from_deployment(dep_id, name=names["run"])
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=names["gcl"], limit=3))
        await client.create_concurrency_limit(tag=names["tag"], concurrency_limit=2)
    names["deployment"] = f"{names['flow']}/{names['dep']}"
    return names


@pytest.fixture
def service(tmp_path):
    return make_service(f"sqlite:///{tmp_path / 'offline.db'}")


def _questions(w: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(question, essentials) pairs; `{x}` is replaced by the world's real names."""
    return [
        ("show limits", [w["pool"], w["deployment"], w["gcl"], w["tag"], "CANCEL_NEW"]),
        ("what limits do we have?", [w["pool"], w["gcl"]]),
        (f"inspect pool {w['pool']}", [f"work pool `{w['pool']}`", "0/2"]),
        (f"how full is {w['queue']} queue", [f"{w['pool']}/{w['queue']}", "0/1"]),
        (f"inspect gcl {w['gcl']}", [w["gcl"], "0/3"]),
        (f"inspect tag {w['tag']}", [w["tag"], "0/2"]),
        (f"inspect deployment {w['deployment']}", [w["deployment"], "0/1", "CANCEL_NEW"]),
        (f"why is run {w['run']} stuck?", [w["run"], "Checks made", "deployment limit", "more diagnosing-stuck-runs"]),
        (f"diagnose {w['run']}", [w["run"], "Checks made"]),
        (f"why is {w['deployment']} not running", [w["deployment"], "Checks made"]),
        (f"only one run of {w['deployment']} at a time, skip overlapping runs",  # already so: no proposal
         [f"Deployment `{w['deployment']}` already has limit 1"]),
        (f"how do I put a limit on the {w['pool']} pool?",
         ["Work pool limits", f"set-concurrency-limit {w['pool']}"]),
        ("how do I rate limit calls to an external API?", ["Rate limiting with slot decay", "rate_limit"]),
        ("skip the run if it is already running", ["Skip a run", "TimeoutError"]),
        ("how many tasks run in parallel by default with the task runner?", ["max_workers"]),
        ("limit task concurrency with tags", ["Tag-based task concurrency limits", "concurrency-limit create"]),
        (f"limit tasks tagged {w['tag']} to 2 at once", [f"concurrency-limit create {w['tag']}"]),
        ("what happens to leases with several server replicas?", ["Lease storage", "replicas"]),
        ("which kind of limit should I choose?", ["choose between the seven limiters", "work pool limit"]),
        ("runs are stuck in AwaitingConcurrencySlot", ["AwaitingConcurrencySlot", "Diagnosing"]),
        ("global concurrency limit with concurrency() in async code", ["Global concurrency limits", "concurrency("]),
        ("is the deployment limit only on Prefect Cloud?", ["Cloud"]),
        (f"set work pool {w['pool']} limit to 5", [f"work pool `{w['pool']}`: limit 2 → 5", "approver"]),
        (f"limit deployment {w['deployment']} to 2 enqueue",
         [f"deployment `{w['deployment']}`", "limit 1 → 2", "CANCEL_NEW → ENQUEUE"]),
        (f"clear queue {w['queue']} limit", [f"work queue `{w['queue']}` in pool `{w['pool']}`: limit 1 → none"]),
        (f"set gcl {w['gcl']} limit to 4", [f"global limit `{w['gcl']}`: limit 3 → 4"]),
        (f"set tag limit {w['tag']} to 6", [f"tag limit `{w['tag']}`: limit 2 → 6"]),
        ("set work pool no-such-pool-xyz limit to 3", ["No work pool named `no-such-pool-xyz`", "work pools are"]),
        (f"set work pool {w['pool']} limit to -3", ["couldn't read", "set work pool NAME limit to N"]),
    ]


async def test_offline_answers_include_their_essentials(world, search, service):
    answerer = OfflineAnswerer(search, service)
    questions = _questions(world)
    assert len(questions) >= 20
    missing = {}
    for question, essentials in questions:
        reply = await answerer.answer(Turn(question, "UASKER", channel="C1"), "no model is configured")
        assert reply.offline and not reply.failed
        assert reply.text.startswith(MODEL_OFF.format(reason="no model is configured")), question
        assert reply.text.count("The model is off") == 1
        absent = [e for e in essentials if e not in reply.text]
        if absent:
            missing[question] = (absent, reply.text[:600])
    assert not missing, missing


async def test_real_names_fill_the_recipe(world, search):
    answerer = OfflineAnswerer(search)
    reply = await answerer.answer(Turn(f"only one run of {world['deployment']} at a time", "U1"), "test")
    assert "--pool my-pool" in reply.text  # the pool is not named in the question
    assert f"--name {world['dep']}" in reply.text and f"- name: {world['dep']}" in reply.text
    assert "On your server now" in reply.text and "0/1 (CANCEL_NEW)" in reply.text


@pytest.mark.parametrize("text, expected", [
    ("set work pool etl limit to 5", dict(kind="work_pool_limit", action="set", name="etl", limit=5)),
    ("Please set the concurrency limit of work pool etl to 5.", dict(kind="work_pool_limit", name="etl", limit=5)),
    ("clear queue q limit", dict(kind="work_queue_limit", action="clear", name="q", pool=None)),
    ("clear queue q limit in pool p", dict(kind="work_queue_limit", action="clear", name="q", pool="p")),
    ("set queue p/q limit to 2", dict(kind="work_queue_limit", name="q", pool="p", limit=2)),
    ("limit deployment flow/dep to 1 cancel new",
     dict(kind="deployment_limit", name="flow/dep", limit=1, collision_strategy="CANCEL_NEW")),
    ("set deployment f/d limit to 2 with grace period 120s", dict(limit=2, grace_period_seconds=120)),
    ("set gcl db-writes limit to 3", dict(kind="global_limit", action="update", name="db-writes", limit=3)),
    ("create gcl api with limit 5 decay 0.5", dict(action="create", limit=5, slot_decay_per_second=0.5)),
    ("disable gcl api", dict(kind="global_limit", action="disable", name="api")),
    ("set tag limit db to 3", dict(kind="tag_limit", action="set", name="db", limit=3)),
    ("reset tag db", dict(kind="tag_limit", action="reset", name="db")),
    ("<@UBOT> set work-pool `my pool` limit to 2 please", dict(name="my pool", limit=2)),
])
def test_grammar_reads_change_requests(text, expected):
    request = parse_change_request(text)
    assert request is not None, text
    assert {k: getattr(request, k) for k in expected} == expected


@pytest.mark.parametrize("text", ["why is my run stuck?", "how do I limit a pool?", "set up a flow", "show limits"])
def test_questions_are_not_change_requests(text):
    assert parse_change_request(text) is None
    assert classify(text).kind != "change"




async def test_grammar_to_proposal_to_approval_to_server(search, service, prefect_api_url):
    pool, queue = _u("gpool"), _u("gq")
    flow, dep = _u("gflow"), _u("gdep")
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        await client.create_work_queue(name=queue, work_pool_name=pool, concurrency_limit=4)
        flow_id = await client.create_flow_from_name(flow)
        await client.create_deployment(flow_id, dep, work_pool_name=pool)
    answerer = OfflineAnswerer(search, service)

    async def propose_and_approve(text: str) -> str:
        reply = await answerer.answer(Turn(text, "UASKER", channel="C9"), "no model is configured")
        assert len(reply.proposals) == 1, reply.text
        decision = await service.approve(reply.proposals[0], "UAPPROVER")
        assert decision.outcome == "applied", decision.message
        return decision.message

    assert await pool_limit(pool) is None
    await propose_and_approve(f"set work pool {pool} limit to 5")
    assert await pool_limit(pool) == 5

    await propose_and_approve(f"clear queue {queue} limit")  # the pool is found from the queue's name
    async with get_client() as client:
        assert (await client.read_work_queue_by_name(queue, work_pool_name=pool)).concurrency_limit is None

    await propose_and_approve(f"limit deployment {flow}/{dep} to 1 cancel new")
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(f"{flow}/{dep}")
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"

    gcl = _u("ggcl")
    await propose_and_approve(f"set gcl {gcl} limit to 2")  # a GCL that does not exist yet is created
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(gcl)).limit == 2

    audit = await service.audit_log()
    assert {"proposed", "applied"} <= {row.action for row in audit}
    assert all(row.requester == "UASKER" for row in audit if row.action == "applied")


async def test_proposals_are_never_applied_without_approval(search, service, prefect_api_url):
    pool = _u("napool")
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
    reply = await OfflineAnswerer(search, service).answer(Turn(f"set pool {pool} to 9", "UASKER"), "off")
    assert reply.proposals
    assert await pool_limit(pool) == 1
    refused = await service.approve(reply.proposals[0], "USTRANGER")
    assert refused.outcome == "refused" and await pool_limit(pool) == 1


async def test_a_slack_connect_guest_cannot_propose_offline(search, service, prefect_api_url):
    pool = _u("guestpool")
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
    guest = Turn(f"set work pool {pool} limit to 9", "UGUEST", may_propose=False)
    reply = await OfflineAnswerer(search, service).answer(guest, "off")
    assert reply.proposals == [] and "Only people in this workspace" in reply.text
    assert not [row for row in await service.audit_log() if row.requester == "UGUEST"]


async def test_slash_style_commands(world, search, service):
    engine = OfflineAnswerer(search, service)
    turn = Turn("", "UASKER", channel="C1", source="slash")
    listed = await engine.command("list", turn)
    assert world["gcl"] in listed.text and "model is off" not in listed.text
    inspected = await engine.command(f"inspect {world['pool']}", turn)
    assert f"work pool `{world['pool']}`" in inspected.text
    diagnosed = await engine.command(f"diagnose {world['run']}", turn)
    assert world["run"] in diagnosed.text
    missing = await engine.command("inspect nothing-like-this-exists-zz", turn)
    assert "No object named `nothing-like-this-exists-zz`" in missing.text
    helped = await engine.command("help", turn)
    assert "inspect NAME" in helped.text and "set work pool NAME limit to N" in helped.text
