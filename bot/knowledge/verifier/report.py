"""Typed results of a verification: one Finding per problem, one VerifyReport per answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Finding", "VerifyReport"]


class Finding(BaseModel):
    """One problem in an answer, with the corrected syntax when we know it."""

    kind: Literal["command", "python", "yaml", "version"]
    severity: Literal["error", "warning"]
    snippet: str
    message: str
    fix: str | None = None


class VerifyReport(BaseModel):
    """Everything the verifier found in one Markdown answer; `ok` means no errors."""

    findings: list[Finding] = []
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def feedback_for_model(self) -> str:
        """A compact list of the problems and the right syntax, for one correction round."""
        if not self.findings:
            return "The verifier found no problems."
        lines = [
            "The verifier checked your answer against the installed Prefect and found problems. "
            "Fix every error, keep everything else, and answer again in full:"
        ]
        for number, finding in enumerate(self.findings, 1):
            lines.append(
                f"{number}. [{finding.severity}] {finding.kind}: `{_short(finding.snippet)}`: "
                f"{finding.message}"
            )
            if finding.fix:
                lines.append("   Correct: " + finding.fix.replace("\n", "\n   "))
        return "\n".join(lines)

    def summary(self) -> str:
        return f"checked {self.checked} item(s): {len(self.errors)} error(s), {len(self.warnings)} warning(s)"


def _short(text: str, limit: int = 160) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
