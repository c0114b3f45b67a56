"""Slack's length limits, applied to every block and view the bot builds, before Slack sees them.

Slack refuses a whole message or view (`invalid_blocks`) when one text is too long, and
slack_sdk refuses to serialise it at all. Clipping with "…" keeps the rest of the card or
Home tab visible; the numbers are Slack's documented Block Kit limits.
"""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    SectionBlock,
)
from slack_sdk.models.views import View

__all__ = ["clip", "fit_blocks", "fit_view", "MESSAGE_BLOCKS", "VIEW_BLOCKS"]

ELLIPSIS = "…"
SECTION_TEXT = 3000
SECTION_FIELD = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
CONTEXT_TEXT = 3000
LABEL_TEXT = 2000
MODAL_TITLE = 24
MODAL_BUTTON = 24
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
MESSAGE_TEXT = 3000  # the notification fallback: Slack allows more, but nobody reads past this
TEXT_LIMIT = 40_000  # a message's `text`: longer is refused with msg_too_long


def clip(text: str, limit: int) -> str:
    """`text` if it fits, else its first `limit - 1` characters and "…"."""
    return text if len(text) <= limit else text[:limit - 1] + ELLIPSIS


def _clip_object(obj: object, limit: int) -> None:
    if obj is not None and isinstance(getattr(obj, "text", None), str):
        obj.text = clip(obj.text, limit)  # type: ignore[attr-defined]


def _fit_block(block: Block) -> None:
    if isinstance(block, SectionBlock):
        _clip_object(block.text, SECTION_TEXT)
        for field in block.fields or []:
            _clip_object(field, SECTION_FIELD)
    elif isinstance(block, HeaderBlock):
        _clip_object(block.text, HEADER_TEXT)
    elif isinstance(block, ContextBlock):
        for element in block.elements or []:
            _clip_object(element, CONTEXT_TEXT)
    elif isinstance(block, InputBlock):
        _clip_object(block.label, LABEL_TEXT)
    elif isinstance(block, ActionsBlock):
        for element in block.elements or []:
            if isinstance(element, ButtonElement):
                _clip_object(element.text, BUTTON_TEXT)


def fit_blocks(blocks: list[Block], max_blocks: int = MESSAGE_BLOCKS) -> list[Block]:
    """The blocks with every text clipped to Slack's limit, and at most `max_blocks` of them."""
    for block in blocks:
        _fit_block(block)
    return blocks[:max_blocks]


def fit_view(view: View) -> View:
    """A Home tab or modal that Slack will take whatever the length of what it shows."""
    view.blocks = fit_blocks(list(view.blocks or []), VIEW_BLOCKS)
    _clip_object(view.title, MODAL_TITLE)
    _clip_object(view.submit, MODAL_BUTTON)
    _clip_object(view.close, MODAL_BUTTON)
    return view
