"""Name resolution over known names: exact, case-insensitive, prefix, fuzzy, and ambiguity."""

from bot.prefect_ops.errors import Ambiguous, NotFound
from bot.prefect_ops.resolve import Named, require_match, resolve_among, split_kind_hint

ITEMS = [
    Named(kind="deployment", name="nightly/nightly-etl"),
    Named(kind="deployment", name="hourly/hourly-sync"),
    Named(kind="work_pool", name="etl"),
    Named(kind="work_queue", name="etl/default"),
    Named(kind="global", name="etl-serial"),
    Named(kind="tag", name="db"),
]


def test_stages_in_order():
    assert resolve_among("etl", ITEMS).match.stage == "exact"
    assert resolve_among("Nightly ETL", ITEMS).match.name == "nightly/nightly-etl"
    assert resolve_among("Nightly ETL", ITEMS).match.stage == "case_insensitive"
    assert resolve_among("hourly-s", ITEMS).match.stage == "prefix"
    fuzzy = resolve_among("etl-seral", ITEMS)
    assert fuzzy.match.name == "etl-serial" and fuzzy.match.stage == "fuzzy"


def test_kind_words_narrow_the_search():
    assert split_kind_hint("etl pool") == ("etl", "work_pool")
    assert resolve_among("etl queue", ITEMS).match.name == "etl/default"
    assert resolve_among("etl-serial", ITEMS, kind="global").match.kind == "global"


def test_ambiguous_returns_candidates_and_unknown_lists_names():
    several = resolve_among("ly", [Named(kind="tag", name="lyra"), Named(kind="tag", name="lynx")])
    assert several.match is None and several.ambiguous
    try:
        require_match(several, [])
    except Ambiguous as exc:
        assert "lyra" in str(exc) and "lynx" in str(exc)
    else:
        raise AssertionError("expected Ambiguous")
    none = resolve_among("zzz", ITEMS, kind="work_pool")
    try:
        require_match(none, ITEMS, "work pool")
    except NotFound as exc:
        assert str(exc) == "no work pool named `zzz`; work pools are: etl"
    else:
        raise AssertionError("expected NotFound")
