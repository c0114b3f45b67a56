"""Answers without a model: the best recipe from the book, with one line saying the model is off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.turns import Reply, Turn

MODEL_OFF = "_The model is off ({reason}), so this answer comes straight from our verified recipe book._"


@dataclass
class OfflineAnswerer:
    search: Any  # bot.knowledge.search.RecipeSearch
    approvals: Any | None = None

    async def answer(self, turn: Turn, reason: str) -> Reply:
        hits = self.search.search(turn.text, k=1)
        if not hits:
            body = ("I couldn't match that to a recipe. Try *\"one run at a time\"*, *\"rate limit\"* "
                    "or *\"why is my run stuck\"*.")
        else:
            body = hits[0].recipe.body.strip()
        return Reply(text=f"{MODEL_OFF.format(reason=reason)}\n\n{body}", offline=True)
