"""Verify a whole Markdown answer: every command, Python block and prefect.yaml block in it."""

from __future__ import annotations

from bot.knowledge.verifier.commands import check_command
from bot.knowledge.verifier.extract import extract_blocks, extract_commands
from bot.knowledge.verifier.python_check import check_python
from bot.knowledge.verifier.report import Finding, VerifyReport
from bot.knowledge.verifier.yaml_check import check_yaml

__all__ = ["verify_markdown"]


def verify_markdown(markdown: str) -> VerifyReport:
    """Check a Markdown answer against the installed Prefect; pure and thread-safe."""
    blocks, prose = extract_blocks(markdown)
    findings: list[Finding] = []
    checked = 0
    seen: set[tuple[str, bool]] = set()
    for command, inline in extract_commands(blocks, prose):
        if (command, inline) in seen:
            continue
        seen.add((command, inline))
        checked += 1
        finding = check_command(command, inline=inline)
        if finding is not None:
            findings.append(finding)
    for block in blocks:
        if block.kind == "python":
            checked += 1
            findings.extend(check_python(block.text))
        elif block.kind in ("yaml", "shell", "other") and "deployments" in block.text:
            block_findings, was_prefect_yaml = check_yaml(block.text, labelled_yaml=block.kind == "yaml")
            checked += int(was_prefect_yaml)
            findings.extend(block_findings)
    return VerifyReport(findings=findings, checked=checked)
