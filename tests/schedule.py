"""How the suite is laid out over the pytest-xdist workers (`make test`: `pytest -n 2 --dist loadfile
--no-loadscope-reorder`).

- Long runs stay out of the normal suite: a test marked `soak`, `compat` or `llama` runs only when the
  `-m` expression names its marker (`make soak`, `make compat`, `make test-llama`, `pytest -m soak ...`).
- A test module is the unit of work (`--dist loadfile`): its module-scoped fixtures (a bot, an
  installed wheel) are built once, on one worker. (`--dist loadgroup` would allow finer units, but
  with pytest 9.2 it silently stops grouping: pytest-xdist issue 1386.)
- The installed-artifact module (marked `artifact`) is handed out first: its pip install takes
  anywhere from half a minute to three, and must not be what the run waits for at the end.
- The other modules follow slowest first, from the seconds per test in tests/durations.json (a
  test not measured yet counts as the mean of its module's measured tests, else UNMEASURED), so the
  last units handed out are short and both workers finish at about the same time. xdist hands out
  the modules in collection order because of --no-loadscope-reorder.

Refresh the figures after adding slow tests: run the suite with `--junitxml=run.xml`, then
`.venv/bin/python -m tests.schedule run.xml` (merges the measured seconds into tests/durations.json).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

LONG_RUNS = ("soak", "compat", "llama")
FIRST = "artifact"
DURATIONS = Path(__file__).with_name("durations.json")
UNMEASURED = 2.0  # seconds per test: a new module goes after the known slow ones, before the many quick ones


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _leave_out_long_runs(config, items)
    items[:] = _slowest_first(items, _measured())


def _leave_out_long_runs(config: pytest.Config, items: list[pytest.Item]) -> None:
    expression = config.getoption("markexpr", "") or ""
    kept, left_out = [], []
    for item in items:
        long_marks = {mark.name for mark in item.iter_markers() if mark.name in LONG_RUNS}
        (left_out if any(name not in expression for name in long_marks) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def _module_of(node_id: str) -> str:
    return node_id.split("::", 1)[0]


def _slowest_first(items: list[pytest.Item], measured: dict[str, float]) -> list[pytest.Item]:
    by_module: dict[str, list[float]] = {}
    for node_id, seconds in measured.items():
        by_module.setdefault(_module_of(node_id), []).append(seconds)

    def cost(item: pytest.Item) -> float:
        if item.nodeid in measured:
            return measured[item.nodeid]
        known = by_module.get(_module_of(item.nodeid))
        return sum(known) / len(known) if known else UNMEASURED

    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(_module_of(item.nodeid), []).append(item)

    def order(module: list[pytest.Item]) -> tuple[bool, float]:
        return (not any(item.get_closest_marker(FIRST) for item in module), -sum(cost(item) for item in module))

    return [item for module in sorted(modules.values(), key=order) for item in module]  # stable on ties


def _measured() -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError):
        return {}


def record(junit_xml: Path) -> int:
    """Merge the per-test seconds of a JUnit XML report into tests/durations.json; returns how many.

    A module in the report replaces its old figures (so renamed tests leave nothing behind); the
    figures of modules the report did not run are kept."""
    measured: dict[str, float] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        parts = case.get("classname", "").split(".")  # tests.test_x or tests.test_x.TestClass
        end = next((i for i, part in enumerate(parts) if part.startswith("test_")), len(parts) - 1) + 1
        node_id = "::".join(["/".join(parts[:end]) + ".py", *parts[end:], case.get("name", "")])
        measured[node_id] = round(float(case.get("time", "0")), 2)
    modules = {_module_of(node_id) for node_id in measured}
    figures = {k: v for k, v in _measured().items() if _module_of(k) not in modules} | measured
    DURATIONS.write_text(json.dumps(dict(sorted(figures.items())), indent=0) + "\n")
    return len(measured)


if __name__ == "__main__":
    print(f"recorded {record(Path(sys.argv[1]))} tests in {DURATIONS}")
