"""Answers without a model: live Prefect tools, a small change grammar and the recipe book.

`OfflineAnswerer(search, approvals).answer(turn, reason)` is the pipeline's offline hook; the
same engine backs the `/concurrency` slash command.
"""

from bot.offline.engine import GRAMMAR_HELP, MODEL_OFF, OfflineEngine
from bot.offline.grammar import ChangeRequest, parse_change_request
from bot.offline.intents import Intent, classify

OfflineAnswerer = OfflineEngine

__all__ = ["GRAMMAR_HELP", "MODEL_OFF", "ChangeRequest", "Intent", "OfflineAnswerer", "OfflineEngine", "classify",
           "parse_change_request"]
