"""Knowledge tools offered to the model: recipe search, exact CLI syntax, answer verification.

Plain typed functions; the registry builds their JSON schemas from the type hints and uses the
first docstring paragraph as the description the model reads.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = ["KNOWLEDGE_TOOLS", "cli_help", "search_recipes", "verify_answer"]


@lru_cache(maxsize=1)
def _search():
    from bot.knowledge.prompt_files import recipes_dir
    from bot.knowledge.recipes import RecipeBook
    from bot.knowledge.search import RecipeSearch
    from bot.settings import load_settings

    return RecipeSearch(RecipeBook.load(recipes_dir(load_settings().bot_prompts_dir)))


def search_recipes(query: str, k: int = 3) -> list[dict[str, Any]]:
    """Search our verified recipe book on Prefect concurrency and return the best matching recipes in full.

    Use it for how-to questions (deployment limits, skip-if-busy, work pools, tag limits, rate limits,
    diagnosing stuck runs) before writing commands or code.
    """
    hits = _search().search(query, k=max(1, min(k, 5)))
    return [
        {"slug": h.recipe.slug, "title": h.recipe.title, "score": round(h.score, 3), "recipe": h.recipe.for_people()}
        for h in hits
    ]


def cli_help(command: str) -> str:
    """Exact syntax of a `prefect` CLI command from the installed Prefect, e.g. "work-pool set-concurrency-limit".

    Aliases such as "gcl" are resolved; an unknown command lists the nearest ones. Call it before
    writing any prefect command you are not sure about.
    """
    from bot.prefect_ops.cli_help import cli_help as _cli_help

    return _cli_help(command)


def verify_answer(markdown: str) -> dict[str, Any]:
    """Check a draft Markdown answer's prefect commands, Python and prefect.yaml against the installed Prefect.

    Returns ok plus the problems found, each with the correct syntax to use instead.
    """
    from bot.knowledge.verifier import verify_markdown

    report = verify_markdown(markdown)
    return {
        "ok": report.ok,
        "checked": report.checked,
        "findings": [f.model_dump(exclude_none=True) for f in report.findings],
    }


KNOWLEDGE_TOOLS: list[Callable[..., Any]] = [search_recipes, cli_help, verify_answer]
