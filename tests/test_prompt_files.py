"""The system prompt and recipes come from the package (built from ./prompts) or from BOT_PROMPTS_DIR."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bot.knowledge.prompt_files import PromptsError, prompts_root, recipes_dir, system_prompt_path
from bot.knowledge.recipes import RecipeBook
from bot.pipeline import build_pipeline, prefect_version
from bot.settings import load_settings
from bot.version import CHECKED_PREFECT, version_line

ROOT = Path(__file__).resolve().parent.parent


def own_prompts(folder: Path) -> Path:
    (folder / "recipes").mkdir(parents=True)
    (folder / "system.md").write_text("Our copilot, on Prefect {prefect_version}.\n")
    (folder / "recipes" / "zebra-lanes.md").write_text(
        "---\ntitle: Zebra lanes\nkeywords: zebra, lanes\nprefect_version: \"3.9.1\"\n---\nOne run per stripe.\n")
    return folder


def test_the_packaged_prompts_are_the_folder_people_edit():
    """In a checkout, bot.prompts *is* ./prompts: no second copy that could drift."""
    assert prompts_root().resolve() == (ROOT / "prompts").resolve()
    assert system_prompt_path().is_file()
    assert len(RecipeBook.load()) == len(list((ROOT / "prompts" / "recipes").glob("*.md")))


def test_bot_prompts_dir_replaces_the_system_prompt_and_the_recipe_book(tmp_path):
    pipeline = build_pipeline(load_settings(bot_prompts_dir=str(own_prompts(tmp_path))))
    assert pipeline.system_prompt == f"Our copilot, on Prefect {prefect_version()}.\n"
    [hit] = pipeline.search.search("how do zebra lanes work", k=1)
    assert hit.recipe.title == "Zebra lanes" and hit.recipe.path.parent == tmp_path / "recipes"
    assert "Prefect 3 (the installed version is" in build_pipeline(load_settings()).system_prompt


def test_a_blank_bot_prompts_dir_means_the_packaged_copy():
    assert load_settings(bot_prompts_dir="  ").bot_prompts_dir is None
    assert recipes_dir(None) == recipes_dir("") == prompts_root() / "recipes"


def test_an_incomplete_prompts_dir_is_named_with_what_it_lacks(tmp_path):
    with pytest.raises(PromptsError, match=f"BOT_PROMPTS_DIR={tmp_path / 'nope'} is not a folder"):
        prompts_root(tmp_path / "nope")
    folder = own_prompts(tmp_path / "ours")
    (folder / "recipes" / "zebra-lanes.md").unlink()
    with pytest.raises(PromptsError, match=r"has no recipes/\*\.md"):
        prompts_root(folder)
    (folder / "system.md").unlink()
    with pytest.raises(PromptsError, match=r"has no system\.md and no recipes/\*\.md"):
        build_pipeline(load_settings(bot_prompts_dir=str(folder)))


def test_the_checked_prefect_is_the_recipes_and_inside_the_pinned_range():
    assert {r.prefect_version for r in RecipeBook.load()} == {CHECKED_PREFECT}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [prefect] = [Requirement(d) for d in pyproject["dependencies"] if Requirement(d).name == "prefect"]
    assert CHECKED_PREFECT in prefect.specifier
    expected = f"concurrency-bot {pyproject['version']} (checked against Prefect {CHECKED_PREFECT}"
    assert version_line().startswith(expected)
