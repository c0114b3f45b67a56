"""What a doctor run found: one row per check, each ✓, ⚠ or ✗, with a one-line fix for every row that is not ✓.

Rows are plain data so the same report renders as a terminal table, JSON (`--json`, `/healthz?detail=1`),
a startup log block and Home-tab lines. Text in rows comes from settings and from services' answers, so
front ends escape it the way they escape any untrusted text.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum

__all__ = ["GROUPS", "Report", "Row", "Status"]

GROUPS = ("Settings", "Slack", "Prefect", "Model", "Store")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def mark(self) -> str:
        return {"ok": "✓", "warn": "⚠", "fail": "✗"}[self.value]


@dataclass(frozen=True)
class Row:
    """One check. `fix` is required for ⚠ and ✗; `unsafe` marks a ✗ that `serve` must not start with."""

    group: str
    name: str
    status: Status
    detail: str
    fix: str = ""
    unsafe: bool = False

    def __post_init__(self) -> None:
        if self.status is not Status.OK and not self.fix:
            raise ValueError(f"doctor row {self.group}/{self.name} is {self.status.value} without a fix line")


def ok(group: str, name: str, detail: str) -> Row:
    return Row(group, name, Status.OK, detail)


def warn(group: str, name: str, detail: str, fix: str) -> Row:
    return Row(group, name, Status.WARN, detail, fix)


def fail(group: str, name: str, detail: str, fix: str, unsafe: bool = False) -> Row:
    return Row(group, name, Status.FAIL, detail, fix, unsafe)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status is Status.FAIL for r in self.rows)

    @property
    def unsafe(self) -> list[Row]:
        """✗ rows that make the bot unsafe to run: `serve` refuses to start on these."""
        return [r for r in self.rows if r.status is Status.FAIL and r.unsafe]

    def problems(self) -> list[Row]:
        """✗ rows first, then ⚠ rows, in check order."""
        return ([r for r in self.rows if r.status is Status.FAIL]
                + [r for r in self.rows if r.status is Status.WARN])

    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {s.value: sum(r.status is s for r in self.rows) for s in Status}

    def summary(self) -> str:
        c = self.counts()
        return f"{c['ok']} ✓, {c['warn']} ⚠, {c['fail']} ✗"

    def table(self) -> str:
        """The terminal table: rows grouped as checked, the fix indented under each ⚠/✗ row."""
        width = max((len(r.name) for r in self.rows), default=0)
        lines: list[str] = []
        for group in dict.fromkeys(r.group for r in self.rows):
            lines.append(group)
            for row in (r for r in self.rows if r.group == group):
                lines.append(f"  {row.status.mark} {row.name.ljust(width)}  {row.detail}")
                if row.fix:
                    lines.append(f"    {' ' * width}  → {row.fix}")
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": not self.failed, "summary": self.counts(),
                "checks": [{**asdict(r), "status": r.status.value} for r in self.rows]}

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)
