"""Which names may reach a Prefect URL path, how they are encoded, and what the Approve value carries."""

from __future__ import annotations

import pytest

from bot.prefect_ops.changes import ChangeError, parse_change
from bot.prefect_ops.names import path_segment, unsafe_name_reason
from bot.slack.cards import parse_approve_value


@pytest.mark.parametrize("name", [
    "tmp/../../0b0c", "a?b", "a#b", "a%2Fb", "..", "a\x00b", "a\nb", "a\u202eb", "a&b", "a<b", "a>b",
    " lead", "trail ", "", "x" * 12_001, "a\\b",
])
def test_unsafe_names_are_refused_with_a_reason(name):
    assert unsafe_name_reason(name)
    with pytest.raises(ChangeError, match="refused before anything was sent|at least 1 character"):
        parse_change({"kind": "tag_limit", "action": "delete", "tag": name})


@pytest.mark.parametrize("name", ["etl", "nightly etl", "deployment:1f0e", "ünï-codé", "a.b_c-d", "a+b=c;d@e"])
def test_ordinary_names_pass_and_are_fully_encoded(name):
    assert unsafe_name_reason(name) is None
    encoded = path_segment(name)
    assert all(c.isalnum() or c in "-._~%" for c in encoded)


def test_each_part_of_a_deployment_name_is_checked():
    with pytest.raises(ChangeError, match="flow name contains '..'"):
        parse_change({"kind": "deployment_limit", "action": "set", "deployment": "../x", "limit": 1})
    with pytest.raises(ChangeError, match="deployment name contains '\\?'"):
        parse_change({"kind": "deployment_limit", "action": "set", "deployment": "f/d?x=1", "limit": 1})


@pytest.mark.parametrize(("value", "expected"), [
    ("abc:3", ("abc", 3)), ("abc", ("abc", 1)), ('{"id": "abc", "limit": 99}', ('{"id": "abc", "limit": 99}', 1)),
    ("abc:", ("abc:", 1)), ("abc:x", ("abc:x", 1)),
])
def test_approve_value_carries_id_and_version(value, expected):
    assert parse_approve_value(value) == expected
