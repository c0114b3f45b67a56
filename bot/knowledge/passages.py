"""Passages: every self-contained unit of every recipe, searchable on its own.

An offline answer is one recipe's short answer, and a real question often needs one detail that
sits further down that recipe (or in a neighbouring one). So the book is also cut into units a
person can read out of context: a sentence or a short paragraph, a bullet, a code block with the
sentence that leads into it, a single command line, a table row. Each unit records the code it
carries (commands, flags, settings, API names): an answer only adds units that bring something a
reader can run or set. Units are tokenized by the router's own tokenizer (bot.knowledge.search),
so routing and passages read a question the same way; bot.offline.compose picks among them.

Units are cut only between sentences, list items and blocks, never inside a code span or a fenced
block, so whatever a unit shows is text of a recipe that passes the verifier.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from bot.knowledge.recipes import Recipe, RecipeBook
from bot.knowledge.search import tokenize

__all__ = ["Passage", "PassageIndex", "code_keys", "recipe_passages", "sentences", "split_units"]

SENTENCE_SPLIT_OVER = 240  # a prose block longer than this is offered sentence by sentence
_FENCE = re.compile(r"^```")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_TABLE = re.compile(r"^\s*\|")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_SPAN = re.compile(r"`[^`\n]+`")
# A sentence ends at . ! or ? followed by a space and a capital, a quote, a bold mark or a code span.
_NEXT = r"(?=[A-Z`*“\"(\x00])"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+" + _NEXT + r"|(?<=[.!?][)\"”])\s+" + _NEXT)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "cf.")
_SETTING = re.compile(r"\bPREFECT_[A-Z0-9_]+\b")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
_SUBSTANTIVE = re.compile(r"[\s_\-(=./:\[]|^[A-Z][A-Z0-9_]{3,}$")


@dataclass(frozen=True)
class Passage:
    """One unit of a recipe: its Markdown, what code it carries, and where it came from."""

    slug: str
    text: str
    keys: tuple[str, ...]
    in_short_answer: bool
    order: int  # position in its recipe, so units of one recipe can be shown in reading order
    kind: str = "prose"  # "prose" (a sentence, paragraph or bullet), "block" (fenced code), "line", "row"
    words: frozenset[str] = frozenset()  # its tokens (bot.knowledge.search.tokenize)

    @property
    def is_block(self) -> bool:
        return self.kind == "block"


def code_keys(text: str) -> tuple[str, ...]:
    """The runnable or settable things `text` names: code spans, code lines, flags, PREFECT_ settings.

    Only substantive ones count (a span such as `Late` is a word, not something to run or set).
    """
    keys: list[str] = []
    inside = False
    for line in text.split("\n"):
        if _FENCE.match(line.strip()):
            inside = not inside
            continue
        if inside:
            stripped = re.sub(r"\s+#\s.*$", "", line).strip()  # a trailing comment is not code
            if stripped and not stripped.startswith("#"):
                keys.append(stripped)
            continue
        keys.extend(span[1:-1].strip() for span in _SPAN.findall(line))
        outside = _SPAN.sub(" ", line)
        keys.extend(_SETTING.findall(outside))
        keys.extend(_FLAG.findall(outside))
    return tuple(dict.fromkeys(k for k in keys if k and _SUBSTANTIVE.search(k)))


def _protect(text: str) -> tuple[str, list[str]]:
    """`text` with code spans and abbreviations swapped for placeholders no sentence split can enter."""
    saved: list[str] = []

    def keep(match: re.Match[str]) -> str:
        saved.append(match.group(0))
        return f"\x00{len(saved) - 1}\x00"

    protected = _SPAN.sub(keep, text)
    for abbreviation in _ABBREVIATIONS:
        protected = re.sub(re.escape(abbreviation), keep, protected)
    protected = re.sub(r"\d\.\d", keep, protected)  # 0.5, 3.7.1
    return protected, saved


def _restore(text: str, saved: list[str]) -> str:
    while "\x00" in text:
        text = re.sub(r"\x00(\d+)\x00", lambda m: saved[int(m.group(1))], text)
    return text


def sentences(text: str) -> list[str]:
    """Whole sentences of a prose block; a code span or a decimal number is never cut."""
    protected, saved = _protect(" ".join(text.split()))
    return [_restore(part, saved).strip() for part in _SENTENCE_END.split(protected) if part.strip()]


def _blocks(text: str) -> list[tuple[str, str]]:
    """The Markdown cut into (kind, text): "code", "table", "bullet" and "prose" blocks, in order."""
    blocks: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _FENCE.match(line.strip()):
            end = i + 1
            while end < len(lines) and not _FENCE.match(lines[end].strip()):
                end += 1
            blocks.append(("code", "\n".join(lines[i:end + 1])))
            i = end + 1
            continue
        if _TABLE.match(line):
            end = i
            while end < len(lines) and _TABLE.match(lines[end]):
                end += 1
            blocks.append(("table", "\n".join(lines[i:end])))
            i = end
            continue
        kind = "bullet" if _BULLET.match(line) else "prose"
        end = i + 1
        while end < len(lines):
            nxt = lines[end]
            if not nxt.strip() or _FENCE.match(nxt.strip()) or _TABLE.match(nxt) or _BULLET.match(nxt):
                break
            end += 1
        body = " ".join(part.strip() for part in lines[i:end])
        blocks.append((kind, _BULLET.sub("", body, count=1) if kind == "bullet" else body))
        i = end
    return blocks


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _table_units(table: str) -> list[str]:
    """One unit per data row: its cells joined, so it reads as a line ("goal — use — set with")."""
    rows = [r for r in table.split("\n") if r.strip() and not _TABLE_RULE.match(r)]
    return [" — ".join(c for c in _cells(row) if c) for row in rows[1:]]


def split_units(text: str, join_up_to: int = SENTENCE_SPLIT_OVER) -> list[tuple[str, str]]:
    """`text` (a recipe's Markdown) cut into (kind, unit): units a reader can take out of context.

    A prose block or bullet up to `join_up_to` characters is one unit, a longer one gives a unit per
    sentence. A fenced block is one unit with its lead-in sentence (the one ending in ":" right
    above it); a lead-in never stands alone. Each line of a multi-line shell block is also a unit of
    its own, as inline code. Headings-only lines ("**Who holds the slots?**") are left out.
    """
    units: list[tuple[str, str]] = []
    blocks = _blocks(text)
    for index, (kind, block) in enumerate(blocks):
        if kind == "code":
            lead = ""
            if index and blocks[index - 1][0] in ("prose", "bullet"):
                last = sentences(blocks[index - 1][1])[-1:] or [""]
                lead = last[0] if last[0].endswith(":") else ""
            units.append(("block", f"{lead}\n{block}" if lead else block))
            lines = [ln.strip() for ln in block.split("\n")[1:-1] if ln.strip() and not ln.strip().startswith("#")]
            if block.startswith(("```bash", "```sh", "```shell", "```console")) and len(lines) > 1:
                units.extend(("line", f"`{ln}`") for ln in lines if "`" not in ln)
            continue
        if kind == "table":
            units.extend(("row", row) for row in _table_units(block))
            continue
        parts = sentences(block)
        if parts and parts[-1].endswith(":"):
            parts = parts[:-1]  # a lead-in goes with its code block, or leads into a list: never alone
        if not parts:
            continue
        joined = " ".join(parts)
        if len(joined) <= join_up_to:
            units.append(("prose", joined))
        else:
            units.extend(("prose", part) for part in parts)
    return [(kind, u) for kind, u in units if not re.fullmatch(r"\*\*[^*]+\*\*", u.strip())]


def recipe_passages(recipe: Recipe) -> list[Passage]:
    """The recipe's short-answer units (one per sentence, so an answer can leave one out), then the
    units of its full text that the short answer lacks."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for in_short, text in ((True, recipe.short_answer), (False, recipe.for_people())):
        for kind, unit in split_units(text, 0 if in_short else SENTENCE_SPLIT_OVER):
            norm = " ".join(unit.split()).lower()
            if norm in seen:
                continue
            seen.add(norm)
            passages.append(Passage(recipe.slug, unit, code_keys(unit), in_short, len(passages), kind,
                                    frozenset(tokenize(unit))))
    return passages


class PassageIndex:
    """Every unit of every recipe, with how much each word says about which unit answers; read-only."""

    def __init__(self, book: RecipeBook) -> None:
        self.passages = [p for recipe in book for p in recipe_passages(recipe)]
        counts = Counter(word for p in self.passages for word in p.words)
        # Rare words (a flag, a setting, an API name) say the most: inverse document frequency over units.
        self.weights = {word: math.log(1 + len(self.passages) / n) for word, n in counts.items()}

    @staticmethod
    def words_of(text: str) -> frozenset[str]:
        """The tokens of any text, made as the passages' `words` are."""
        return frozenset(tokenize(text))
