"""Recipes mark the minimum Prefect version of what they use; the verifier flags what a server lacks."""

from __future__ import annotations

import pytest

from bot.knowledge.prompt_files import recipes_dir
from bot.knowledge.recipes import RecipeBook
from bot.knowledge.verifier import verify_markdown
from bot.knowledge.versions import VERSIONED, older_server_notes


@pytest.mark.parametrize("recipe", RecipeBook.load(recipes_dir(None)).recipes, ids=lambda r: r.slug)
def test_front_matter_lists_every_versioned_feature_the_recipe_uses(recipe):
    used = {v.key: v.since for v in VERSIONED if v.pattern.search(recipe.body)}
    assert recipe.requires == used


def test_the_verifier_flags_a_command_newer_than_the_server():
    answer = "See the holders:\n\n```bash\nprefect work-pool slots my-pool\n```\n"
    older = [f for f in verify_markdown(answer, server_version="3.4.25").findings if f.kind == "version"]
    assert [f.message for f in older] == [
        "`prefect work-pool slots` needs Prefect 3.6.23 and your server is 3.4.25: there, count the pool's runs "
        "with `prefect flow-run ls --state Pending --state Running` (or `concurrency-bot limits --kind work_pool`)"]
    assert all(f.severity == "warning" for f in older)
    assert not [f for f in verify_markdown(answer, server_version="3.9.1").findings if f.kind == "version"]
    assert not [f for f in verify_markdown(answer).findings if f.kind == "version"]  # server unknown: no guess


def test_each_feature_is_flagged_only_below_its_release():
    for entry in VERSIONED:
        major, minor, *rest = (int(x) for x in entry.since.split("."))
        below = f"{major}.{minor - 1}.99" if minor else "2.99.0"
        sample = {"work-pool-slots": "prefect work-pool slots p", "work-queue-slots": "prefect work-queue slots q",
                  "concurrency-status-api": "client.read_work_pool_concurrency_status('p')",
                  "tag-limit-as-gcl": "prefect gcl update tag:db --active-slots 0",
                  "slot-leases": "concurrency('x', lease_duration=60)",
                  "deployment-grace-period": "grace_period_seconds: 120"}[entry.key]
        assert [e.key for e, _ in older_server_notes(sample, below)] == [entry.key]
        assert older_server_notes(sample, entry.since) == []
