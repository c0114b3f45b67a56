"""Block Kit checks the way Slack applies them: slack_sdk's models plus Slack's documented limits.

Any problem makes the fake answer `invalid_blocks`, as Slack does; the reason is kept in
`response_metadata.messages` (Slack puts its details there too) so a failing test says why.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = {"home": 100, "modal": 100}
SECTION_TEXT = 3000
SECTION_FIELD = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
CONTEXT_ELEMENTS = 10
MESSAGE_TEXT = 40_000  # chat.postMessage text: longer is `msg_too_long`


def _text(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text") or "")
    return str(obj or "")


def _walk_elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    elements = list(block.get("elements") or [])
    if isinstance(block.get("accessory"), dict):
        elements.append(block["accessory"])
    if isinstance(block.get("element"), dict):
        elements.append(block["element"])
    return [e for e in elements if isinstance(e, dict)]


def _limit_problems(block: dict[str, Any]) -> list[str]:
    problems = []
    kind = block.get("type")
    if kind == "section":
        if len(_text(block.get("text"))) > SECTION_TEXT:
            problems.append(f"section text longer than {SECTION_TEXT}")
        if not block.get("text") and not block.get("fields"):
            problems.append("section needs text or fields")
        for field in block.get("fields") or []:
            if len(_text(field)) > SECTION_FIELD:
                problems.append(f"section field longer than {SECTION_FIELD}")
    if kind == "header" and len(_text(block.get("text"))) > HEADER_TEXT:
        problems.append(f"header text longer than {HEADER_TEXT}")
    if kind == "context" and len(block.get("elements") or []) > CONTEXT_ELEMENTS:
        problems.append(f"more than {CONTEXT_ELEMENTS} context elements")
    for element in _walk_elements(block):
        if element.get("type") == "button":
            if len(_text(element.get("text"))) > BUTTON_TEXT:
                problems.append(f"button text longer than {BUTTON_TEXT}")
            if len(str(element.get("value") or "")) > BUTTON_VALUE:
                problems.append(f"button value longer than {BUTTON_VALUE}")
        if element.get("type") in ("mrkdwn", "plain_text") and len(_text(element)) > SECTION_TEXT:
            problems.append(f"context text longer than {SECTION_TEXT}")
    return problems


def block_problems(blocks: Any, max_blocks: int = MESSAGE_BLOCKS) -> list[str]:
    """Why Slack would refuse these blocks (empty: it would take them)."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["blocks must be a JSON array"]
    problems = []
    if len(blocks) > max_blocks:
        problems.append(f"{len(blocks)} blocks, more than {max_blocks}")
    for index, raw in enumerate(blocks):
        if not isinstance(raw, dict):
            problems.append(f"block {index} is not an object")
            continue
        block = Block.parse(raw)
        if block is None or type(block) is Block:
            problems.append(f"block {index}: unknown type {raw.get('type')!r}")
            continue
        try:
            block.validate_json()
        except (SlackObjectFormationError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"block {index}: {exc}")
        problems.extend(f"block {index}: {p}" for p in _limit_problems(raw))
    return problems


def view_problems(view: Any) -> list[str]:
    """Why views.publish/open/update would refuse this view."""
    if not isinstance(view, dict):
        return ["view must be a JSON object"]
    kind = view.get("type")
    if kind not in VIEW_BLOCKS:
        return [f"view type {kind!r} is not home or modal"]
    problems = block_problems(view.get("blocks") or [], VIEW_BLOCKS[kind])
    if kind == "modal":
        if not view.get("title"):
            problems.append("a modal needs a title")
        if len(_text(view.get("title"))) > MODAL_TITLE:
            problems.append(f"modal title longer than {MODAL_TITLE}")
        for key in ("submit", "close"):
            if len(_text(view.get(key))) > MODAL_BUTTON:
                problems.append(f"modal {key} longer than {MODAL_BUTTON}")
    if len(str(view.get("private_metadata") or "")) > PRIVATE_METADATA:
        problems.append(f"private_metadata longer than {PRIVATE_METADATA}")
    try:
        View(**view).validate_json()
    except (SlackObjectFormationError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"view: {exc}")
    return problems
