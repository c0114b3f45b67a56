"""The eval harness runs questions through the real pipeline against the scripted model server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from bot.commands import eval as eval_command
from bot.knowledge.evaluation import (
    EvalQuestion,
    load_questions,
    render_table,
    run_eval,
    score_answer,
    summarize,
)
from bot.knowledge.recipes import RecipeBook
from bot.pipeline import build_pipeline
from bot.settings import load_settings
from bot.turns import Reply
from tests.fakes.model_api import text

BAD_FLAG = "Run this:\n```bash\nprefect work-pool set-concurrency-limit etl-pool --limit 5\n```\n"
FIXED = "Run this:\n```bash\nprefect work-pool set-concurrency-limit etl-pool 5\n```\nExtra runs stay Scheduled.\n"
WRONG_DEFAULT = "By default the ThreadPoolTaskRunner uses min(32, cpu + 4) threads."
WRONG_PATTERNS = ["re:(?:uses|is|defaults to|default is)\\s+`?min\\(32",
                  "re:(?:uses|is|defaults to|default is)\\s+`?cpu \\+ 4"]


def test_questions_file_is_complete():
    questions = load_questions()
    assert len(questions) >= 30
    assert len({q.id for q in questions}) == len(questions)
    assert all(q.must_include for q in questions)
    topics = {q.topic for q in questions}
    assert {"deployment-concurrency", "skip-if-busy", "work-pools-and-queues", "tag-limits"} <= topics


def test_recipes_never_state_a_fact_the_eval_calls_wrong():
    """Each question's wrong-fact patterns stay silent on its own topic's recipe (which may name them as wrong)."""
    book = RecipeBook.load()
    for question in load_questions():
        recipe = book.get(question.topic)
        assert recipe is not None, question.id
        result = score_answer(question, Reply(text=recipe.body), 0.0)
        assert result.wrong_facts == [], (question.id, result.wrong_facts)
        assert result.verifier_ok


async def test_scores_a_corrected_answer_and_a_wrong_one(fresh_model, tmp_path):
    settings = load_settings(openai_api_key="test-key", openai_base_url=fresh_model.base_url,
                             bot_data_dir=tmp_path, bot_model_max_attempts=1)
    pipeline = build_pipeline(settings)
    questions = [q for q in load_questions() if q.id in ("work-pool-limit", "default-max-workers")]
    fresh_model.script(text(BAD_FLAG, 400, 30, 0), text(FIXED, 500, 25, 0), text(WRONG_DEFAULT, 300, 15, 0))

    results = await run_eval(pipeline, questions, concurrency=1)

    pool, workers = results
    assert pool.id == "work-pool-limit"
    assert pool.model_rounds == 2 and pool.verifier_ok and pool.wrong_facts == []
    assert (pool.essentials_hit, pool.essentials_total) == (1, 1)
    assert (pool.prompt_tokens, pool.completion_tokens) == (900, 55)
    first_call, correction = fresh_model.requests[0], fresh_model.requests[1]
    assert "Work pool limits" in json.dumps(first_call["messages"])  # retrieval before the first call
    assert "Unknown option: --limit." in correction["messages"][-1]["content"]

    assert workers.id == "default-max-workers" and workers.model_rounds == 1
    assert workers.wrong_facts == WRONG_PATTERNS[:1] and workers.missing == ["sys.maxsize | unbounded | unlimited"]
    assert workers.essentials_hit == 1 and workers.verifier_ok

    summary = summarize(results)
    assert summary.questions == 2 and summary.wrong_facts == 1 and summary.verifier_pass_rate == 1.0
    assert summary.essentials_ratio == round(2 / 3, 3)
    console = Console(record=True, width=160)
    console.print(render_table(results, summary))
    rendered = console.export_text()
    assert "work-pool-limit" in rendered and "100% pass" in rendered and "67%" in rendered


async def test_an_answer_that_stays_wrong_fails_the_verifier_column(fresh_model, tmp_path):
    settings = load_settings(openai_api_key="test-key", openai_base_url=fresh_model.base_url,
                             bot_data_dir=tmp_path, bot_model_max_attempts=1)
    question = EvalQuestion(id="stubborn", question="limit my pool", must_include=["set-concurrency-limit"],
                            must_not_include=["re:set-concurrency-limit\\s+\\S+\\s+--limit\\b"])
    fresh_model.script(text(BAD_FLAG), text(BAD_FLAG))
    [result] = await run_eval(build_pipeline(settings), [question], concurrency=1)
    assert not result.verifier_ok and result.verifier_errors == 1
    assert result.wrong_facts and result.model_rounds == 2


def test_eval_command_prints_json(fresh_model, tmp_path):
    fresh_model.script(text(FIXED))
    env = dict(os.environ, OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fresh_model.base_url,
               BOT_DATA_DIR=str(tmp_path), BOT_MODEL_MAX_ATTEMPTS="1")
    cli = Path(sys.executable).with_name("concurrency-bot")
    result = subprocess.run([str(cli), "eval", "--only", "work-pool-limit", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout)
    assert data["summary"]["questions"] == 1 and data["summary"]["verifier_pass_rate"] == 1.0
    assert data["results"][0]["id"] == "work-pool-limit" and data["results"][0]["essentials_hit"] == 1


def test_eval_command_needs_a_model(capsys):
    args = argparse.Namespace(questions=None, only=None, limit=None, concurrency=1, json=False,
                              min_essentials=0.0)
    assert eval_command.run(args) == 2
    assert "no model configured" in capsys.readouterr().err
