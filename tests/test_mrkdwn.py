"""Markdown → Slack mrkdwn, and long answers split under Slack's limits without breaking code fences."""

from __future__ import annotations

from bot.slack.mrkdwn import split_message, to_mrkdwn


def test_markdown_becomes_mrkdwn_and_code_is_left_alone():
    text = to_mrkdwn("# Fix\n**Use** a [deployment limit](https://docs.prefect.io).\n- one\n\n"
                     "```bash\nprefect deploy --concurrency-limit 1 **not bold**\n```")
    assert "*Fix*" in text and "*Use*" in text
    assert "<https://docs.prefect.io|deployment limit>" in text
    assert "• one" in text
    assert "```bash\nprefect deploy --concurrency-limit 1 **not bold**\n```" in text


def test_long_answers_split_on_lines_and_fences_are_closed_and_reopened():
    code = "\n".join(f"line_{i} = {i}" for i in range(400))
    text = "Intro paragraph.\n\n```python\n" + code + "\n```\n\nAfter the code."
    chunks = split_message(text, limit=1000)
    assert len(chunks) > 3
    assert all(len(chunk) <= 1000 for chunk in chunks)
    assert all(chunk.count("```") % 2 == 0 for chunk in chunks), "every chunk has balanced fences"
    assert chunks[1].startswith("```python")
    rebuilt = "\n".join(chunks).replace("\n```\n```python", "")
    assert rebuilt == text


def test_a_short_answer_is_one_chunk_and_a_huge_line_is_wrapped():
    assert split_message("short") == ["short"]
    chunks = split_message("x" * 5000, limit=1000)
    assert all(len(c) <= 1000 for c in chunks) and "".join(chunks) == "x" * 5000
