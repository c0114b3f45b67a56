"""Compose an offline answer: the routed recipe's short answer, plus what else the question asks about.

A short answer is written for a topic, not for a question. Real questions often need one detail
that the recipe's full text has (a flag, a setting, a warning with its command) or touch a second
topic. So the answer adds the few units of the book (bot.knowledge.passages) that add the most of
the question's own words to the answer and carry a command, flag or setting it does not show yet:
from the routed recipe's full text and from the recipes ranked after it, each naming where it is
from (`more SLUG`). They fill only the room left under the answer's length cap, so an answer that
was already long is unchanged and no answer grows past the cap.

Everything shown is recipe text that passes the verifier, cut only between whole units (never
inside a code span or block), with the user's object names filled in as in the short answer
(bot.offline.fill).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge.passages import Passage, PassageIndex, code_keys
from bot.offline.fill import fill_names

__all__ = ["Extra", "compose", "render_extras", "EXTRAS_MAX", "HEADING"]

EXTRAS_MAX = 3  # units added at most
NEIGHBOUR_WEIGHT = 1.0  # a ranked neighbour's units count times its router score relative to the routed recipe's
MIN_WORTH = 3.0  # the weight of new question words a unit must bring (one rare word weighs about 5)
LENGTH_EXPONENT = 0.5  # units are ranked by worth / (length / 100) ** this: above 0 prefers short units
# A unit that opens by pointing back ("It takes…", "This also…", "Register one…") needs the text before it.
_LEANS_BACK = re.compile(r"(?:\*\*)?(?:it|its|this|that|these|those|they|them|then|here|so|or|and|but|also|both|"
                         r"such|register one|use one)\b", re.IGNORECASE)
HEADING = "**Also in the book:**"
# Everyday words the recipes seldom use: rare in the book, so they would weigh like a flag name, but
# they say nothing about what the question needs ("just", "still", "too", "allow").
GENERAL_WORDS = frozenset("""
about above across after again against all allow allowing almost already also although always am among any anyone
anything anyway around away back because been before being below between both but came come comes could did
doe done down during each else even ever every everything few first found get gets getting give given go goe going
gone got great had has have having here how however into just keep know last later least less let like likely
look looking lot made make makes making many may maybe might more most much must never new next no none nor not
nothing now off often ok okay once one only other others otherwise out over own per perhaps possible pretty quite
rather really right said same say says see seem seems seen several shall should show shows since some someone
something sometimes soon still such sure take taken than thank thanks that thing things think those though through
thu time times too tried try trying two under unless until up upon us use used useful using very via way ways well
went were whether while whole whose within without would yes yet
""".split())


@dataclass(frozen=True)
class Extra:
    passage: Passage
    text: str  # the unit with the user's names filled in
    worth: float


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _item(passage: Passage, text: str, top_slug: str) -> str:
    """One list item: the unit, naming its recipe when it is not the routed one."""
    where = "" if passage.slug == top_slug else f"`more {passage.slug}`: "
    if passage.is_block:
        lead, _, block = text.partition("```")
        return f"- {where}{lead.strip() or 'for example:'}\n```{block}"
    return f"- {where}{text}"


def compose(index: PassageIndex, tokens: list[str], ranked: list[tuple[str, float]], shown: str,
            objects: dict[str, str], room: int, most: int = EXTRAS_MAX) -> list[Extra]:
    """The units to add to an answer that already shows `shown` (title and short answer), best first.

    `tokens` are the question's words as the router reads them; `ranked` is the router's (slug,
    score) list, best first (its first entry is the routed recipe). A unit's worth is the weight of
    the question's words it adds to the answer (words rare in the book weigh more; everyday words
    weigh nothing), times its recipe's weight (the routed recipe 1, a neighbour its score relative to
    the routed one, times NEIGHBOUR_WEIGHT). A unit is added when it is worth MIN_WORTH, carries a
    command, flag, setting or API name the answer lacks, and its Markdown fits in `room` characters.
    A unit that opens by pointing back at the text before it ("It takes…", "Or delete it…") is never
    offered: out of its recipe it reads as half a thought. At most `most` units are added.
    """
    asked = {t: index.weights[t] for t in set(tokens) if t in index.weights and t not in GENERAL_WORDS}
    if not ranked or not asked or room <= 0:
        return []
    top_slug, top_score = ranked[0]
    weight = {top_slug: 1.0}
    for slug, score in ranked[1:]:
        weight[slug] = NEIGHBOUR_WEIGHT * (score / top_score if top_score > 0 else 0.0)
    candidates = [p for p in index.passages if p.slug in weight and not (p.slug == top_slug and p.in_short_answer)
                  and not _LEANS_BACK.match(p.text)]
    picked: list[Extra] = []
    text_so_far = shown
    while len(picked) < most:
        covered = index.words_of(text_so_far)
        scored = []
        for passage in candidates:
            gain = sum(w for t, w in asked.items() if t in passage.words and t not in covered)
            worth = gain * weight[passage.slug]
            if worth >= MIN_WORTH:
                scored.append((worth / max(1.0, len(passage.text) / 100) ** LENGTH_EXPONENT, worth, passage))
        scored.sort(key=lambda item: -item[0])
        seen = _norm(text_so_far)
        for _, worth, passage in scored:
            text = fill_names(passage.text, objects)
            cost = len(_item(passage, text, top_slug)) + 1 + (0 if picked else len(HEADING) + 2)
            if cost > room or _norm(text) in seen:
                continue
            keys = code_keys(text)
            new = [k for k in keys if _norm(k) not in seen]
            if not new or (passage.is_block and len(new) * 2 < len(keys)):
                continue  # nothing new to run or set, or a code block mostly shown already
            picked.append(Extra(passage, text, worth))
            room -= cost
            text_so_far += "\n" + text
            candidates.remove(passage)
            break
        else:
            break
    return picked


def render_extras(extras: list[Extra], top_slug: str) -> str:
    """The extras as a compact list; a unit from another recipe names it (`more SLUG`)."""
    if not extras:
        return ""
    return "\n".join([HEADING] + [_item(extra.passage, extra.text, top_slug) for extra in extras])
