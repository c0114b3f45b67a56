"""The recipe book: complete, verified, and its runnable snippets really do what they claim."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.knowledge.recipes import Recipe, RecipeBook, RecipeError
from bot.knowledge.verifier import verify_markdown

BOOK = RecipeBook.load()
TOPICS = {
    "deployment-concurrency", "skip-if-busy", "work-pools-and-queues", "global-concurrency-limits",
    "rate-limiting", "tag-limits", "task-runner-and-fanout", "diagnosing-stuck-runs", "lease-storage-ha",
    "choosing-a-limiter", "prefect-cloud",
}
# What each runnable snippet must print: the behaviour its recipe claims, observed on a real server.
EXPECTED_OUTPUT = {
    "deployment-concurrency": ["first: PENDING second: CANCELLED Deployment concurrency limit reached."],
    "skip-if-busy": ["while another run holds the slot: False", "when the slot is free: True",
                     "body errors propagate: ValueError", "a missing limit raises ConcurrencySlotAcquisitionError"],
    "global-concurrency-limits": ["strict=False ran the body without a limit", "strict=True raised:",
                                  "must be created before acquiring slots", "active slots while inside: 1"],
    "rate-limiting": ["the third waited"],
    "tag-limits": ["with_options(tags=['other']): {'other'}", "create on an existing tag updates it"],
    "task-runner-and-fanout": [f"default max_workers: {sys.maxsize}"],
}


def test_every_topic_has_a_recipe_with_front_matter():
    assert {r.slug for r in BOOK} >= TOPICS
    for recipe in BOOK:
        assert recipe.title and recipe.keywords and recipe.prefect_version == "3.9.1"
        assert recipe.path.parent.name == "recipes"


def test_a_file_without_front_matter_is_rejected(tmp_path: Path):
    bad = tmp_path / "bad.md"
    bad.write_text("# no front matter\n")
    with pytest.raises(RecipeError):
        RecipeBook.load(tmp_path)
    ok = Recipe.parse("---\ntitle: T\nkeywords: a, b\nprefect_version: 3.9.1\n---\nBody\n", bad)
    assert ok.keywords == ["a", "b"] and ok.slug == "bad" and ok.body == "Body\n"


@pytest.mark.parametrize("recipe", list(BOOK), ids=lambda r: r.slug)
def test_recipe_passes_the_verifier(recipe: Recipe):
    report = verify_markdown(recipe.body)
    assert report.checked > 0
    assert report.findings == [], report.feedback_for_model()


def test_each_recipe_with_a_claim_to_prove_has_a_runnable_snippet():
    with_snippets = {r.slug for r in BOOK if r.runnable_snippets()}
    assert with_snippets == set(EXPECTED_OUTPUT)


RUNNABLE = [(r.slug, i, code) for r in BOOK for i, code in enumerate(r.runnable_snippets())]


@pytest.mark.parametrize(("slug", "index", "code"), RUNNABLE, ids=[f"{s}-{i}" for s, i, _ in RUNNABLE])
def test_runnable_snippet_runs_against_the_real_server(prefect_api_url, tmp_path, slug, index, code):
    """Each snippet runs in its own interpreter (it creates flows and limits) against the test server."""
    script = tmp_path / f"{slug}_{index}.py"
    script.write_text(code)
    env = dict(os.environ, PREFECT_API_URL=prefect_api_url)
    env.pop("PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS", None)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    for expected in EXPECTED_OUTPUT[slug]:
        assert expected in result.stdout, (expected, result.stdout)


@pytest.mark.parametrize("recipe", list(BOOK), ids=lambda r: r.slug)
def test_short_answer_carries_its_essentials(recipe: Recipe):
    """What the offline answer shows (the short answer) keeps the must-have commands the recipe lists."""
    assert len(recipe.essentials) >= 2, f"{recipe.slug}: list the short answer's must-have commands in `essentials:`"
    missing = [item for item in recipe.essentials if item not in recipe.short_answer]
    assert not missing, f"{recipe.slug}: the short answer lost {missing}"
