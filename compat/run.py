"""`make compat`: the same checks on a real server of every Prefect release in the matrix.

For each version: build (or reuse) its virtual environment, start its server, then drive the
bot's own CLI against it the way a user would (`demo --yes`, `limits --json`, `diagnose`,
`watch --once`, `demo --clean`) and apply one change of each kind, reading each back from the
server. A Prefect 2 server must be refused in one line. Prints a version x capability table and
writes it to bench/results/compat.md (and .json) with the date and the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compat.venvs import FLOOR, MATRIX, PREFECT2, VenvBuildError

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
COLUMNS = ("server", "map", "diagnose", "watch", "demo", "demo --clean", "writes")
REFUSAL = "this is Prefect {version}; the bot needs a Prefect 3 server"
# What the bot does without each capability (the figures stay the same unless said otherwise).
DEGRADED = {
    "pool_concurrency_status": "pool slots counted from runs",
    "queue_concurrency_status": "queue slots counted from runs",
    "tag_limits_as_global": "tag limits read and written as v1 limits",
    "slot_leases": "no slot leases (stuck slots reset by count)",
    "flow_labels": "demo creates flows without labels",
    "deployment_limits": "no deployment limits",
    "deployment_grace_period": "a deployment limit's grace period is refused before approval",
    "events": "no events API (global-limit holders unnamed)",
}


def _cli(url: str, data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SLACK_"))}
    env.update(PREFECT_API_URL=url, BOT_DATA_DIR=str(data), PREFECT_HOME=str(data / "home"), PYTHONPATH=str(REPO),
               COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, cwd=data, capture_output=True,
                          text=True, timeout=300)


def _said(done: subprocess.CompletedProcess) -> str:
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[-1][:160] if text else f"exit {done.returncode}, no output"


def _fails(done: subprocess.CompletedProcess) -> str:
    return f"fails: {_said(done)}"


def check_map(url: str, data: Path) -> str:
    done = _cli(url, data, "limits", "--json")
    if done.returncode != 0:
        return _fails(done)
    rows = {(r["kind"], r["name"]): r for r in json.loads(done.stdout)["limits"]}
    want = {
        ("work_pool", "demo-reports"): (1, ["demo-report-1"]),
        ("work_queue", "demo-reports/default"): (1, ["demo-report-1"]),
        ("deployment", "demo-etl/nightly"): (1, ["demo-nightly-1"]),
        ("tag", "demo-db"): (1, None),
    }
    for key, (slots, holders) in want.items():
        row = rows.get(key)
        if row is None:
            return f"fails: {key[0]} {key[1]} is missing from the map"
        names = [h.get("name") for h in row["holders"]]
        if row["active_slots"] != slots or (holders is not None and names != holders):
            return f"fails: {key[1]} shows {row['active_slots']} slot(s) held by {names}"
    return "works"


def check_diagnose(url: str, data: Path) -> str:
    done = _cli(url, data, "diagnose", "demo-nightly-2")
    if done.returncode != 0 or "[BLOCKING] deployment_limit" not in done.stdout:
        return _fails(done)
    full = _cli(url, data, "diagnose", "demo-report-2")
    if "work pool `demo-reports` has limit 1 and it is full" not in full.stdout:
        return _fails(full)
    return "works"


def check_watch(url: str, data: Path) -> str:
    done = _cli(url, data, "watch", "--once")
    if done.returncode != 0 or "demo-backfill" not in done.stdout:
        return _fails(done)
    return "works"


async def check_writes(url: str) -> str:
    """One change of each kind, applied the way an approval applies it, then read back."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate

    from bot.prefect_ops.changes import (
        DeploymentLimitChange,
        GlobalLimitChange,
        TagLimitChange,
        WorkPoolLimitChange,
        WorkQueueLimitChange,
        WorkQueuePauseChange,
    )

    suffix = uuid.uuid4().hex[:6]
    pool, gcl, tag = f"compat-pool-{suffix}", f"compat-gcl-{suffix}", f"compat-tag-{suffix}"
    steps: list[tuple[str, Any, dict]] = [
        ("pool limit", WorkPoolLimitChange(action="set", pool=pool, limit=3), {"limit": 3}),
        ("queue limit", WorkQueueLimitChange(action="set", pool=pool, queue="default", limit=2), {"limit": 2}),
        ("queue pause", WorkQueuePauseChange(action="pause", pool=pool, queue="default"), {"paused": True}),
        ("deployment limit", DeploymentLimitChange(action="set", deployment="demo-reports/hourly", limit=2,
                                                   collision_strategy="CANCEL_NEW"),
         {"limit": 2, "collision_strategy": "CANCEL_NEW"}),
        ("global limit", GlobalLimitChange(action="create", name=gcl, limit=4), {"limit": 4}),
        ("tag limit", TagLimitChange(action="set", tag=tag, limit=2), {"limit": 2}),
    ]
    failed = []
    async with PrefectClient(api=url) as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        for label, change, expected in steps:
            try:
                change = await change.resolve(client)
                await change.apply(client)
                after = await change.read(client)
            except Exception as exc:  # reported in the table, never raised
                failed.append(f"{label}: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            if any(after.get(k) != v for k, v in expected.items()):
                failed.append(f"{label}: read back {after}")
        await client.delete_work_pool(pool)
    return "works (6 kinds read back)" if not failed else "fails: " + "; ".join(failed)


async def server_cell(url: str) -> str:
    from prefect.client.orchestration import PrefectClient

    from bot.prefect_ops.capabilities import FEATURES, capabilities

    async with PrefectClient(api=url) as client:
        caps = await capabilities(client, refresh=True)
    lacking = [DEGRADED.get(name, f"no {FEATURES[name].label}") for name in FEATURES
               if not caps.has(name)]  # type: ignore[arg-type]
    if not lacking:
        return "works: every capability"
    return "degraded: " + "; ".join(lacking)


def run_version(version: str, log) -> dict[str, str]:
    from compat.servers import start_server

    row = {"version": version}
    started = time.monotonic()
    try:
        server = start_server(version, use_postgres=False)
    except (VenvBuildError, RuntimeError) as exc:
        row.update({c: "—" for c in COLUMNS})
        row["server"] = f"fails to start: {str(exc).strip().splitlines()[-1][:120]}"
        return row
    log(f"{version}: server up in {time.monotonic() - started:.0f}s at {server.url}")
    try:
        with tempfile.TemporaryDirectory(prefix=f"compat-{version}-") as tmp:
            data = Path(tmp)
            if version.startswith("2."):
                for command in ("limits", "demo"):
                    args = [command] + (["--yes"] if command == "demo" else [])
                    done = _cli(server.url, data, *args)
                    said = (done.stdout + done.stderr).strip()
                    ok = said.endswith(REFUSAL.format(version=version)) and len(said.splitlines()) == 1
                    row[command if command != "limits" else "map"] = "refused in one line" if ok else _fails(done)
                row.update(server=f"{version}: refused (Prefect 2)", diagnose="—", watch="—",
                           **{"demo --clean": "—"}, writes="—")
                return row
            row["server"] = asyncio.run(server_cell(server.url))
            seeded = _cli(server.url, data, "demo", "--yes")
            row["demo"] = "works" if seeded.returncode == 0 and "Seeded" in seeded.stdout else _fails(seeded)
            row["map"] = check_map(server.url, data)
            row["diagnose"] = check_diagnose(server.url, data)
            row["watch"] = check_watch(server.url, data)
            row["writes"] = asyncio.run(check_writes(server.url))
            cleaned = _cli(server.url, data, "demo", "--clean", "--yes")
            row["demo --clean"] = "works" if cleaned.returncode == 0 else _fails(cleaned)
    finally:
        server.stop()
    log(f"{version}: checked in {time.monotonic() - started:.0f}s")
    return row


def table(rows: list[dict[str, str]]) -> str:
    head = "| version | " + " | ".join(COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 1)
    return "\n".join([head, rule, *("| " + " | ".join([r["version"], *(r.get(c, "") for c in COLUMNS)]) + " |"
                                    for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help=f"default: {' '.join([*MATRIX, PREFECT2])}")
    args = parser.parse_args(argv)
    versions = args.versions or [*MATRIX, PREFECT2]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    started = time.monotonic()
    rows = [run_version(v, lambda line: print(line, flush=True)) for v in versions]
    text = table(rows)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    summary = (f"Prefect compatibility, {when}; {len(versions)} servers in {time.monotonic() - started:.0f}s "
               f"(load {load:.1f}, {os.cpu_count()} cores). Floor: {FLOOR}.")
    print(f"\n{summary}\n\n{text}")
    broken = [r["version"] for r in rows if any(str(r.get(c, "")).startswith("fails") for c in COLUMNS)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.versions:  # only a full run replaces the recorded table
        (RESULTS / "compat.md").write_text(f"{summary}\n\n{text}\n", encoding="utf-8")
        (RESULTS / "compat.json").write_text(json.dumps({"when": when, "floor": FLOOR, "rows": rows}, indent=2) + "\n",
                                             encoding="utf-8")
        print(f"\nwritten to {RESULTS / 'compat.md'}")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
