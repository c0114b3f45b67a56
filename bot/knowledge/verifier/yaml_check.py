"""Check YAML that looks like prefect.yaml against the deployment concurrency schema.

`prefect deploy` silently ignores unknown deployment keys, so a misplaced `collision_strategy`
deploys without error and without the behaviour the user asked for; we make it an error.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from bot.knowledge.verifier.report import Finding

__all__ = ["check_yaml"]

STRATEGIES = ("ENQUEUE", "CANCEL_NEW")
_LIMIT_KEYS = {"limit", "collision_strategy", "grace_period_seconds"}
_FIX = """concurrency_limit: 1              # an int, or:
concurrency_limit:
  limit: 1
  collision_strategy: CANCEL_NEW    # ENQUEUE (default) | CANCEL_NEW
  grace_period_seconds: 120         # optional, 60..86400"""


@lru_cache(maxsize=1)
def _deployment_keys() -> frozenset[str]:
    """The keys prefect.yaml deployments accept in the installed Prefect."""
    from prefect.cli.deploy._models import DeploymentConfig

    return frozenset(DeploymentConfig.model_fields) | {"schedule", "schedules", "job_variables"}


def _error(snippet: str, message: str, fix: str | None = _FIX, severity: str = "error") -> Finding:
    return Finding(kind="yaml", severity=severity, snippet=snippet, message=message, fix=fix)  # type: ignore[arg-type]


def _check_limit(name: str, value: Any) -> list[Finding]:
    where = f"deployment {name!r}: concurrency_limit"
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | dict):
        return [_error(f"concurrency_limit: {value!r}", f"{where} must be an int or a mapping.")]
    if isinstance(value, int):
        if value < 0:
            return [_error(f"concurrency_limit: {value}", f"{where} must be >= 0.")]
        if value == 0:
            return [
                _error(
                    f"concurrency_limit: {value}",
                    f"{where} of 0 blocks every run of the deployment "
                    "(the server aborts the transition to PENDING).",
                    severity="warning",
                )
            ]
        return []
    findings = []
    snippet = f"concurrency_limit: {value}"
    unknown = set(value) - _LIMIT_KEYS
    if unknown:
        findings.append(
            _error(
                snippet,
                f"{where} has unknown key(s) {sorted(unknown)}; allowed: "
                "limit, collision_strategy, grace_period_seconds.",
            )
        )
    limit = value.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        findings.append(_error(snippet, f"{where}.limit is required and must be an int >= 0."))
    strategy = value.get("collision_strategy")
    if strategy is not None and strategy not in STRATEGIES:
        findings.append(
            _error(snippet, f"{where}.collision_strategy must be ENQUEUE or CANCEL_NEW, got {strategy!r}.")
        )
    grace = value.get("grace_period_seconds")
    if grace is not None and (
        not isinstance(grace, int) or isinstance(grace, bool) or not 60 <= grace <= 86400
    ):
        findings.append(
            _error(snippet, f"{where}.grace_period_seconds must be an int from 60 to 86400, got {grace!r}.")
        )
    return findings


def _check_deployment(index: int, deployment: Any) -> list[Finding]:
    if not isinstance(deployment, dict):
        return [_error(f"deployments[{index}]", "Each deployment must be a mapping.", fix=None)]
    name = deployment.get("name", f"#{index}")
    findings = _check_limit(name, deployment.get("concurrency_limit"))
    for key in ("collision_strategy", "grace_period_seconds", "concurrency_options"):
        if key in deployment:
            findings.append(
                _error(
                    f"{key}: {deployment[key]!r}",
                    f"deployment {name!r}: {key} is not a "
                    "deployment key in prefect.yaml (it is ignored); put it under concurrency_limit.",
                )
            )
    work_pool = deployment.get("work_pool")
    if isinstance(work_pool, dict) and "concurrency_limit" in work_pool:
        findings.append(
            _error(
                "work_pool: concurrency_limit",
                f"deployment {name!r}: work_pool.concurrency_limit "
                "is ignored by prefect deploy. Set the pool's limit with "
                "`prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT`, or the "
                "deployment's with concurrency_limit.",
                fix="prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT",
            )
        )
    unknown = sorted(
        k
        for k in deployment
        if k not in _deployment_keys()
        and k not in ("collision_strategy", "grace_period_seconds", "concurrency_options")
    )
    if unknown:
        findings.append(
            _error(
                f"deployments[{index}]",
                f"deployment {name!r}: unknown key(s) {unknown} (prefect deploy ignores them).",
                fix=None,
                severity="warning",
            )
        )
    return findings


def looks_like_prefect_yaml(data: Any) -> bool:
    return isinstance(data, dict) and "deployments" in data


def check_yaml(text: str, labelled_yaml: bool = True) -> tuple[list[Finding], bool]:
    """Findings for a YAML block, and whether it was a prefect.yaml we actually checked."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if not labelled_yaml:
            return [], False
        return [_error(text.strip().split("\n")[0], f"Invalid YAML: {exc}".split("\n")[0], fix=None)], True
    if not looks_like_prefect_yaml(data):
        return [], False
    deployments = data.get("deployments")
    if not isinstance(deployments, list):
        return [_error("deployments:", "deployments must be a list of mappings.", fix=None)], True
    findings: list[Finding] = []
    for index, deployment in enumerate(deployments):
        findings.extend(_check_deployment(index, deployment))
    return findings, True
