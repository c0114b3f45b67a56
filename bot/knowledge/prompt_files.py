"""Where the system prompt and the recipe book are read from: the package, or BOT_PROMPTS_DIR.

The top-level `prompts/` folder is built into the wheel as the package `bot.prompts` (setup.py),
so an installed bot finds them with importlib.resources from any working directory, and an
editable install reads the folder people edit. A team that runs its own recipes points
BOT_PROMPTS_DIR at a folder of the same shape: `system.md` and `recipes/*.md`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["PACKAGE", "PromptsError", "prompts_root", "recipes_dir", "system_prompt_path"]

PACKAGE = "bot.prompts"
SYSTEM_PROMPT = "system.md"
RECIPES = "recipes"


class PromptsError(ValueError):
    """The prompts folder is missing or incomplete; the message names the path and what is missing."""


def packaged_root() -> Path:
    """The copy shipped in the package. Wheels install unzipped, so it is a real folder."""
    try:
        root = resources.files(PACKAGE)
    except ModuleNotFoundError as exc:  # a build that forgot package data, or a stale editable install
        raise PromptsError(f"this install has no packaged prompts ({PACKAGE}); reinstall the bot, "
                           "or set BOT_PROMPTS_DIR") from exc
    if not isinstance(root, Path):
        raise PromptsError(f"the packaged prompts are not a folder on disk ({root!r}); set BOT_PROMPTS_DIR")
    return root


def prompts_root(override: Path | str | None = None) -> Path:
    """BOT_PROMPTS_DIR when given (checked to hold system.md and recipes/), else the packaged copy."""
    if override is None or str(override).strip() == "":
        return packaged_root()
    root = Path(override).expanduser()
    if not root.is_dir():
        raise PromptsError(f"BOT_PROMPTS_DIR={root} is not a folder")
    missing = [name for name, ok in ((SYSTEM_PROMPT, (root / SYSTEM_PROMPT).is_file()),
                                     (f"{RECIPES}/*.md", any((root / RECIPES).glob("*.md")))) if not ok]
    if missing:
        raise PromptsError(f"BOT_PROMPTS_DIR={root} has no {' and no '.join(missing)} "
                           "(it replaces the packaged prompts, so it needs both)")
    return root


def system_prompt_path(override: Path | str | None = None) -> Path:
    return prompts_root(override) / SYSTEM_PROMPT


def recipes_dir(override: Path | str | None = None) -> Path:
    return prompts_root(override) / RECIPES
