"""Verify a whole Markdown answer: every command, Python block and prefect.yaml block in it.

The verifier never raises: an answer is arbitrary model output, and a checker bug must not turn a
good answer into the bot's "internal error" apology. A check that fails unexpectedly is logged and
skipped; the other checks still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from bot.knowledge.verifier.commands import check_command
from bot.knowledge.verifier.cross_check import Uses, command_uses, cross_check, python_uses
from bot.knowledge.verifier.extract import CodeBlock, extract_blocks, extract_commands, inline_spans
from bot.knowledge.verifier.pycon import is_session, session_source
from bot.knowledge.verifier.python_check import check_python
from bot.knowledge.verifier.report import Finding, VerifyReport
from bot.knowledge.verifier.settings_check import check_config_command, check_env_names
from bot.knowledge.verifier.yaml_check import check_yaml
from bot.knowledge.versions import older_server_notes

__all__ = ["verify_markdown"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _safely(what: str, check: Callable[[], T], default: T) -> T:
    """Run one check; a crash in it is logged and counts as 'nothing found'."""
    try:
        return check()
    except Exception:  # noqa: BLE001 - by design: one broken check must not sink the answer
        log.exception("verifier check failed on %s", what)
        return default


def _python_source(block: CodeBlock) -> str:
    return session_source(block.text) if block.lang == "pycon" or is_session(block.text) else block.text


def verify_markdown(markdown: str, server_version: str | None = None) -> VerifyReport:
    """Check a Markdown answer against the installed Prefect; pure, thread-safe, never raises.

    With `server_version` (the user's live server), a command, flag or API newer than that server
    is a warning of kind "version" whose message gives the form that works there.
    """
    try:
        report = _verify(markdown if isinstance(markdown, str) else str(markdown))
        report.findings.extend(_safely("server version", lambda: _older_server(str(markdown), server_version), []))
        return report
    except Exception:  # noqa: BLE001 - the last line of defence (extraction itself failed)
        log.exception("verifier failed on an answer of %d characters", len(str(markdown)))
        return VerifyReport()


def _older_server(markdown: str, server_version: str | None) -> list[Finding]:
    return [Finding(kind="version", severity="warning", snippet=entry.what, message=message)
            for entry, message in older_server_notes(markdown, server_version)]


def _verify(markdown: str) -> VerifyReport:
    blocks, prose = extract_blocks(markdown)
    findings: list[Finding] = []
    uses = Uses()
    checked = 0
    seen: set[tuple[str, bool]] = set()
    for command, inline in extract_commands(blocks, prose):
        if (command, inline) in seen:
            continue
        seen.add((command, inline))
        checked += 1
        finding = _safely("command", lambda c=command, i=inline: check_command(c, inline=i), None)
        finding = finding or _safely("config command", lambda c=command: check_config_command(c), None)
        if finding is not None:
            findings.append(finding)
        _safely("command uses", lambda c=command: command_uses(c, uses), None)
    for block in blocks:
        if block.kind == "python":
            checked += 1
            source = _python_source(block)
            findings.extend(_safely("python", lambda s=source: check_python(s), []))
            _safely("python uses", lambda s=source: python_uses(s, uses), None)
        elif block.kind in ("yaml", "shell", "other") and "deployments" in block.text:
            block_findings, was_prefect_yaml = _safely(
                "yaml", lambda b=block: check_yaml(b.text, labelled_yaml=b.kind == "yaml"), ([], False)
            )
            checked += int(was_prefect_yaml)
            findings.extend(block_findings)
    code = [b.text for b in blocks] + inline_spans(prose)
    findings.extend(_safely("setting names", lambda: check_env_names(code), []))
    findings.extend(_safely("cross-block", lambda: cross_check(uses), []))
    return VerifyReport(findings=findings, checked=checked)
