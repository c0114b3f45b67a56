"""Real `prefect worker start --type process` workers and flows deployed from a source folder.

Shared by the watcher soak (tests/soak_support.py) and the what-if-after-Approve tests: the flows live
in a file in `work`, each deployment pulls from that folder (`set_working_directory`), and one worker
per pool runs them as real subprocesses against the test's Prefect server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

QUERY_SECONDS = "2"  # how often a worker polls: short, so a raised limit shows within seconds


def start_process_workers(api_url: str, pools: list[str], work: Path) -> list[subprocess.Popen]:
    """One process worker per pool, each in its own session (so stopping one stops what it started)."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": QUERY_SECONDS,
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    prefect = Path(sys.executable).with_name("prefect")
    workers = []
    for pool in pools:
        log = open(work / f"worker-{pool}.log", "ab")
        workers.append(
            subprocess.Popen(
                [str(prefect), "worker", "start", "--pool", pool, "--type", "process"],
                env=env,
                cwd=str(work),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return workers


STOP_GRACE_SECONDS = 5.0  # for all workers together; their runs are over, nothing needs a clean exit


def stop_process_workers(workers: list[subprocess.Popen]) -> None:
    """SIGTERM every worker's process group at once, then SIGKILL what is still there after one shared
    grace period. In a full suite run a worker can take its whole grace to exit (the module that stops
    two of them spent 2 x 20 s here, one after the other), while alone it exits in 0.2 s."""
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in workers:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def deploy_from_source(
    client: Any,
    work: Path,
    source: str,
    flow: str,
    name: str,
    pool: str,
    parameters: dict,
    *,
    limit: int | None = None,
    queue: str | None = None,
) -> UUID:
    """A deployment of `flow` from the file `source` in `work`, run by the process worker of `pool`."""
    steps = [{"prefect.deployments.steps.set_working_directory": {"directory": str(work)}}]
    flow_id = await client.create_flow_from_name(flow)
    return await client.create_deployment(
        flow_id=flow_id,
        name=name,
        work_pool_name=pool,
        work_queue_name=queue,
        entrypoint=f"{source}:{flow}",
        pull_steps=steps,
        parameters=parameters,
        concurrency_limit=limit,
    )
