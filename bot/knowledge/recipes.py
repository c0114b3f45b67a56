"""The recipe book: one Markdown file per topic in prompts/recipes/, with YAML front matter.

The folder is the packaged copy (bot.prompts) unless BOT_PROMPTS_DIR names another; see prompt_files.

Recipes are data written by us and checked by tests (they pass the verifier, and their
runnable snippets run against a real Prefect server), so answers built on them start right.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, field_validator

from bot.knowledge.prompt_files import recipes_dir

__all__ = ["Claim", "Recipe", "RecipeBook", "RecipeError"]

_FRONT_MATTER = re.compile(r"\A---\s*\n(?P<meta>.*?)\n---\s*\n(?P<body>.*)\Z", re.DOTALL)
_SHORT = re.compile(r"^## Short answer[ \t]*\n(?P<text>.*?)(?=^## |\Z)", re.DOTALL | re.MULTILINE)
_FULL_HEADING = re.compile(r"^## Full recipe[ \t]*\n", re.MULTILINE)
# A self-test block and the line introducing it ("Proof on your server (...):"): tests run them, people never see them.
_SELF_TEST = re.compile(r"(?:^[^\n]*:[ \t]*\n)?^```python[ \t]+runnable[^\n]*\n.*?^```[ \t]*\n?",
                        re.DOTALL | re.MULTILINE)
_RUNNABLE = re.compile(r"^```python[ \t]+runnable[^\n]*\n(?P<code>.*?)^```", re.DOTALL | re.MULTILINE)


class RecipeError(ValueError):
    """A recipe file is malformed (no front matter, missing fields)."""


class Claim(BaseModel):
    """A behaviour the recipe states, and the test that makes it happen on a real server."""

    id: str
    claim: str
    test: str  # "tests/file.py::test_name"
    sentence: str = ""  # the recipe's own words for it, quoted verbatim: ties the claim to the text people read


class Recipe(BaseModel):
    """One topic: front matter fields plus the Markdown body."""

    title: str
    keywords: list[str]
    prefect_version: str
    body: str
    path: Path
    slug: str
    questions: list[str] = []  # phrasings people use for this topic: routing data
    claims: list[Claim] = []  # behavioural claims and the tests that prove them
    essentials: list[str] = []  # what the short answer must always carry (commands, flags, settings)
    # Commands, flags and APIs newer than some Prefect 3 servers: key (bot.knowledge.versions) -> first release.
    requires: dict[str, str] = {}

    @field_validator("keywords", mode="before")
    @classmethod
    def _split_keywords(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @classmethod
    def parse(cls, text: str, path: Path) -> Recipe:
        match = _FRONT_MATTER.match(text)
        if not match:
            raise RecipeError(f"{path.name}: no YAML front matter (--- ... ---)")
        meta = yaml.safe_load(match.group("meta")) or {}
        missing = {"title", "keywords", "prefect_version"} - set(meta)
        if missing:
            raise RecipeError(f"{path.name}: front matter lacks {sorted(missing)}")
        return cls(
            title=meta["title"],
            keywords=meta["keywords"],
            prefect_version=str(meta["prefect_version"]),
            body=match.group("body").strip() + "\n",
            path=path,
            slug=path.stem,
            questions=[str(q) for q in meta.get("questions") or []],
            claims=meta.get("claims") or [],
            essentials=[str(e) for e in meta.get("essentials") or []],
            requires={str(k): str(v) for k, v in (meta.get("requires") or {}).items()},
        )

    def runnable_snippets(self) -> list[str]:
        """The Python blocks fenced as ```python runnable: tests execute these."""
        return [m.group("code") for m in _RUNNABLE.finditer(self.body)]

    @property
    def short_answer(self) -> str:
        """The `## Short answer` section: what an offline answer shows (the whole body when absent)."""
        match = _SHORT.search(self.body)
        return (match.group("text") if match else self.for_people()).strip()

    def for_people(self) -> str:
        """The full recipe as people read it: no short-answer section, no self-test snippets."""
        text = _SHORT.sub("", self.body, count=1)
        text = _FULL_HEADING.sub("", text, count=1)
        return re.sub(r"\n{3,}", "\n\n", _SELF_TEST.sub("", text)).strip()

    def as_context(self) -> str:
        """The recipe as the model sees it in its first call."""
        return f"## Recipe: {self.title}\n\n{self.for_people()}\n"


class RecipeBook:
    """All recipes, loaded once; iterate it or look one up by slug."""

    def __init__(self, recipes: list[Recipe]) -> None:
        self.recipes = sorted(recipes, key=lambda r: r.slug)
        self._by_slug = {r.slug: r for r in self.recipes}

    @classmethod
    def load(cls, directory: Path | None = None) -> RecipeBook:
        """Every recipe in `directory` (a recipes folder); by default the packaged book."""
        folder = Path(directory) if directory is not None else recipes_dir()
        recipes = [Recipe.parse(p.read_text(encoding="utf-8"), p) for p in sorted(folder.glob("*.md"))]
        return cls(recipes)

    def get(self, slug: str) -> Recipe | None:
        return self._by_slug.get(slug)

    def __iter__(self):
        return iter(self.recipes)

    def __len__(self) -> int:
        return len(self.recipes)
