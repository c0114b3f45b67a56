"""Setting names in an answer (`prefect config set NAME=…`, `PREFECT_*` variables) checked against
the installed Prefect's settings model, the same list `prefect config set` validates against.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from bot.knowledge.verifier.commands import is_placeholder
from bot.knowledge.verifier.extract import split_command
from bot.knowledge.verifier.report import Finding

__all__ = ["check_config_command", "check_env_names", "env_names"]

_ENV = re.compile(r"(?<![A-Za-z0-9_])PREFECT_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_*])")
# Settings of integration packages (prefect-redis, prefect-aws, …): not in core's model.
_READ_BACK = re.compile(r"\$\{?(PREFECT_[A-Z0-9_]+)")
_INTEGRATION_SEGMENTS = frozenset(
    {"REDIS", "INTEGRATIONS", "AWS", "GCP", "AZURE", "DOCKER", "KUBERNETES", "DBT", "DASK", "RAY",
     "SHELL", "SQLALCHEMY", "SNOWFLAKE", "DATABRICKS", "GITHUB", "GITLAB", "BITBUCKET", "SLACK", "EMAIL"}
)
_NOT_BY_CONFIG_SET = ("PREFECT_HOME", "PREFECT_PROFILES_PATH")


@lru_cache(maxsize=1)
def setting_names() -> frozenset[str]:
    """Every name `prefect config set` accepts (canonical names and their aliases)."""
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    return frozenset(_get_valid_setting_names(Settings))


@lru_cache(maxsize=1)
def _runtime_env() -> tuple[frozenset[str], tuple[str, ...]]:
    """Names Prefect reads straight from the environment (`PREFECT__FLOW_RUN_ID`, logging overrides).

    Found by reading the installed package's source for `"PREFECT_…"` literals; those ending in
    `_` are prefixes (e.g. `PREFECT_LOGGING_` for logging.yml overrides).
    """
    import prefect

    found: set[str] = set()
    literal = re.compile(r"[\"'](PREFECT_[A-Z0-9_]+)[\"']")
    for path in Path(prefect.__file__).parent.rglob("*.py"):
        try:
            found.update(literal.findall(path.read_text(errors="ignore")))
        except OSError:
            continue
    prefixes = tuple(n for n in found if n.endswith("_") and n != "PREFECT_API_") + ("PREFECT__",)
    return frozenset(n for n in found if not n.endswith("_")), prefixes


def is_known(name: str) -> bool:
    if name in setting_names():
        return True
    exact, prefixes = _runtime_env()
    if name in exact or name.startswith(prefixes):
        return True
    return name.split("_")[1] in _INTEGRATION_SEGMENTS


def env_names(text: str) -> list[str]:
    return _ENV.findall(text)


def _near(name: str) -> str | None:
    from difflib import get_close_matches

    near = get_close_matches(name, sorted(setting_names()), n=3, cutoff=0.75)
    return ("Did you mean: " + ", ".join(near)) if near else None


def check_env_names(texts: list[str]) -> list[Finding]:
    """An error per `PREFECT_*` name (in code) that the installed Prefect does not know."""
    findings: list[Finding] = []
    # A name the answer itself reads back (`$PREFECT_IMAGE_NAME`, `{{ $PREFECT_IMAGE_NAME }}`) is the
    # user's own variable, not a claimed Prefect setting.
    seen: set[str] = {m for text in texts for m in _READ_BACK.findall(text)}
    for text in texts:
        for name in env_names(text):
            if name in seen or is_known(name):
                continue
            seen.add(name)
            findings.append(
                Finding(
                    kind="command",
                    severity="error",
                    snippet=name,
                    message=f"{name} is not a Prefect setting in the installed Prefect; Prefect ignores it.",
                    fix=_near(name),
                )
            )
    return findings


def check_config_command(command: str) -> Finding | None:
    """`prefect config set NAME=VALUE …` / `prefect config unset NAME …` with names Prefect knows."""
    tokens = split_command(command)
    if len(tokens) < 4 or tokens[:2] != ["prefect", "config"] or tokens[2] not in ("set", "unset"):
        return None
    problems: list[str] = []
    fixes: list[str] = []
    for item in tokens[3:]:
        if item.startswith("-") or item.endswith("...") or is_placeholder(item):
            continue  # an option, or a synopsis metavariable such as SETTINGS... or <NAME=VALUE>
        name, eq, _ = item.partition("=")
        if tokens[2] == "set" and not eq:
            problems.append(f"Failed to parse argument {item!r}. Use the format 'VAR=VAL'.")
            continue
        if name.startswith(("<", "$", "{")) or not name.startswith("PREFECT_") and name.isupper() and "_" not in name:
            continue  # a placeholder such as <NAME> or VAR
        if name not in setting_names():
            problems.append(f"Unknown setting name {name!r}.")
            near = _near(name)
            if near:
                fixes.append(near)
        elif tokens[2] == "set" and name in _NOT_BY_CONFIG_SET:
            problems.append(f"{name} cannot be changed with `prefect config set`; use an environment variable.")
    if not problems:
        return None
    return Finding(
        kind="command",
        severity="error",
        snippet=command,
        message=" ".join(problems),
        fix="\n".join(fixes) or None,
    )
