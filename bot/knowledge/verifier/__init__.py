"""The verifier: checks the commands, Python and prefect.yaml in an answer against the installed Prefect."""

from bot.knowledge.verifier.report import Finding, VerifyReport
from bot.knowledge.verifier.verify import verify_markdown

__all__ = ["Finding", "VerifyReport", "verify_markdown"]
