"""Check YAML that looks like prefect.yaml against the deployment concurrency schema.

`prefect deploy` silently ignores unknown deployment keys, so a misplaced `collision_strategy`
deploys without error and without the behaviour the user asked for; we make it an error.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml
from pydantic import ValidationError

from bot.knowledge.verifier.report import Finding

__all__ = ["check_yaml"]

STRATEGIES = ("ENQUEUE", "CANCEL_NEW")
_LIMIT_KEYS = {"limit", "collision_strategy", "grace_period_seconds"}
_FIX = """concurrency_limit: 1              # an int (ENQUEUE), or the mapping form:
concurrency_limit:
  limit: 1
  collision_strategy: CANCEL_NEW    # required in the mapping form: ENQUEUE | CANCEL_NEW
  grace_period_seconds: 120         # optional, 60..86400"""
# Keys people put at the wrong level, and where they belong.
_MISPLACED = {
    "job_variables": "put it under work_pool (work_pool: {name: ..., job_variables: {...}})",
    "work_queue_name": "put it under work_pool",
    "work_pool_name": "use work_pool: {name: ...}",
    "cron": "put it under schedules (schedules: [{cron: ...}])",
    "interval": "put it under schedules (schedules: [{interval: ...}])",
    "rrule": "put it under schedules (schedules: [{rrule: ...}])",
    "timezone": "put it under schedules, next to cron or rrule",
    "work_queue": "it is work_pool: {work_queue_name: ...}",
    "queue": "it is work_pool: {work_queue_name: ...}",
    "image": "put it under work_pool: {job_variables: {image: ...}}",
    "env": "put it under work_pool: {job_variables: {env: {...}}}",
    "infrastructure": "2.x infrastructure blocks are gone; use a work pool and work_pool.job_variables",
    "storage": "2.x storage blocks are gone; use pull steps",
}
_POOL_MISPLACED = {
    "work_queue": "it is work_queue_name",
    "queue": "it is work_queue_name",
    "queue_name": "it is work_queue_name",
    "cron": "schedules belong to the deployment (schedules: [{cron: ...}])",
    "schedules": "schedules belong to the deployment, not the work pool",
    "schedule": "schedules belong to the deployment, not the work pool",
    "concurrency_limit": "the deployment's limit is the deployment key concurrency_limit; the pool's is "
    "`prefect work-pool set-concurrency-limit NAME CONCURRENCY-LIMIT`",
    "type": "the pool's type is set when the pool is created (`prefect work-pool create NAME --type TYPE`)",
}


@lru_cache(maxsize=1)
def _deployment_keys() -> frozenset[str]:
    """The keys prefect.yaml deployments accept in the installed Prefect."""
    from prefect.cli.deploy._models import DeploymentConfig

    return frozenset(DeploymentConfig.model_fields)


@lru_cache(maxsize=1)
def _work_pool_keys() -> frozenset[str]:
    """The keys a deployment's work_pool section accepts (name, work_queue_name, job_variables)."""
    from prefect.cli.deploy._models import WorkPoolConfig

    return frozenset(WorkPoolConfig.model_fields)


def _listed(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys))


def _names(keys: Any) -> list[str]:
    """Keys as sorted strings: YAML keys may mix types (`on:`/`yes:` load as booleans)."""
    return sorted(str(k) for k in keys)


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
                f"{where} has unknown key(s) {_names(unknown)}; allowed: "
                "limit, collision_strategy, grace_period_seconds.",
            )
        )
    limit = value.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        findings.append(_error(snippet, f"{where}.limit is required and must be an int >= 0."))
    strategy = value.get("collision_strategy")
    if strategy is None:
        findings.append(
            _error(
                snippet,
                f"{where} in the mapping form needs collision_strategy: without it `prefect deploy` "
                "fails validation (ENQUEUE is the default only for the int form).",
            )
        )
    elif strategy not in STRATEGIES:
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
    findings.extend(_check_work_pool(name, deployment.get("work_pool")))
    handled = ("collision_strategy", "grace_period_seconds", "concurrency_options")
    for key in _names(k for k in deployment if str(k) not in _deployment_keys() and k not in handled):
        where = _MISPLACED.get(key)
        findings.append(
            _error(
                f"{key}: ...",
                f"deployment {name!r}: {key!r} is not a deployment key in prefect.yaml; prefect deploy "
                "ignores it" + (f" ({where})." if where else f". Known keys: {_listed(_deployment_keys())}."),
                fix=None,
            )
        )
    return findings


def _check_work_pool(name: Any, work_pool: Any) -> list[Finding]:
    if work_pool is None:
        return []
    if not isinstance(work_pool, dict):
        if isinstance(work_pool, str):
            return [_error(f"work_pool: {work_pool}", f"deployment {name!r}: work_pool must be a mapping.",
                           fix=f"work_pool:\n  name: {work_pool}")]
        return [_error("work_pool", f"deployment {name!r}: work_pool must be a mapping.", fix=None)]
    findings = []
    for key in _names(k for k in work_pool if str(k) not in _work_pool_keys()):
        where = _POOL_MISPLACED.get(key)
        findings.append(
            _error(
                f"work_pool: {key}",
                f"deployment {name!r}: work_pool.{key} is not a work_pool key; prefect deploy ignores it"
                + (f" ({where})." if where else f". Known keys: {_listed(_work_pool_keys())}."),
                fix=None,
            )
        )
    return findings


def looks_like_prefect_yaml(data: Any) -> bool:
    return isinstance(data, dict) and "deployments" in data


def check_yaml(text: str, labelled_yaml: bool = True) -> tuple[list[Finding], bool]:
    """Findings for a YAML block, and whether it was a prefect.yaml we actually checked."""
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        return [], False
    except (yaml.YAMLError, ValueError, TypeError) as exc:
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
    findings.extend(_model_errors(data))
    return findings, True


def _model_errors(data: dict) -> list[Finding]:
    """What Prefect's own prefect.yaml model rejects; `prefect deploy` then skips the whole file.

    concurrency_limit problems are left to the specific checks above, which say more.
    """
    from prefect.cli.deploy._models import PrefectYamlModel

    try:
        PrefectYamlModel.model_validate(data)
    except ValidationError as exc:
        first: dict[str, str] = {}  # one message per field; a union reports once per branch
        for e in exc.errors():
            if "concurrency_limit" in e["loc"] or e.get("input") in ("...", "…"):  # `build: ...` elides
                continue
            where = ".".join(str(p) for p in e["loc"] if isinstance(p, int) or "[" not in p and "(" not in p)
            first.setdefault(where, e["msg"])
        problems = [f"{where}: {msg}" for where, msg in first.items()]
        if problems:
            return [
                _error(
                    problems[0].split(":")[0],
                    "prefect deploy rejects this prefect.yaml and skips all of its deployments: "
                    + "; ".join(problems[:5])
                    + ".",
                    fix=None,
                )
            ]
    return []
