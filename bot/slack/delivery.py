"""Putting an answer in the thread: streamed (chat.startStream/appendStream/stopStream) where Slack
allows it, else a plain post; either way with 👍/👎 feedback buttons under it.

Only verified text is streamed: the verifier runs before delivery, so the stream carries the
final answer in pieces rather than raw model tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.models.blocks import (
    Block,
    ContextActionsBlock,
    FeedbackButtonObject,
    FeedbackButtonsElement,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.safe_text import PREFECT_DOCS_HOSTS, safe_markdown
from bot.slack.history import newest_replies
from bot.slack.mrkdwn import split_message, to_mrkdwn

log = logging.getLogger(__name__)

FEEDBACK_ACTION = "answer_feedback"
STREAM_PIECE = 600
SECTION_LIMIT = 2900
STREAM_COOLDOWN_SECONDS = 900.0  # after Slack refuses streaming for the app, post plainly this long
# Refusals that say nothing about the app's right to stream: try streaming again next time.
PASSING_STREAM_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                         "request_timeout", "channel_not_found", "not_in_channel", "is_archived",
                         "thread_not_found", "msg_too_long"}


def feedback_blocks() -> list[Block]:
    return [ContextActionsBlock(elements=[FeedbackButtonsElement(
        action_id=FEEDBACK_ACTION,
        positive_button=FeedbackButtonObject(text="Good answer", value="up", accessibility_label="Good answer"),
        negative_button=FeedbackButtonObject(text="Bad answer", value="down", accessibility_label="Bad answer"),
    )])]


@dataclass
class Recipient:
    user_id: str | None
    team_id: str | None


@dataclass
class AnswerDelivery:
    streaming: bool = True
    cooldown_seconds: float = STREAM_COOLDOWN_SECONDS
    clock: Callable[[], float] = time.monotonic
    _stream_refused_until: float = field(default=0.0, init=False, repr=False)

    @property
    def stream_available(self) -> bool:
        return self.streaming and self.clock() >= self._stream_refused_until

    def _note_stream_failure(self, exc: Exception) -> None:
        """Remember an app-level refusal of chat.startStream, so answers stop paying for it."""
        if not isinstance(exc, SlackApiError):
            return
        if not str(getattr(exc.response, "api_url", "")).endswith("chat.startStream"):
            return
        error = exc.response.get("error")
        if exc.response.status_code >= 500 or error in PASSING_STREAM_ERRORS:
            return
        self._stream_refused_until = self.clock() + self.cooldown_seconds
        log.warning("Slack refused streaming for this app (%s): posting answers plainly for %.0f s",
                    error, self.cooldown_seconds)
    link_hosts: frozenset[str] = field(default=PREFECT_DOCS_HOSTS)  # links kept in answers (safe_text)

    async def deliver(self, client: AsyncWebClient, channel: str, thread_ts: str, markdown: str,
                      recipient: Recipient, feedback: bool = True) -> str | None:
        """Returns the ts of the (last) answer message, or None when Slack refused every attempt."""
        if self.stream_available and recipient.user_id and recipient.team_id:
            ts = await self._stream(client, channel, thread_ts, markdown, recipient, feedback)
            if ts is not None:
                return ts
        return await self.post(client, channel, thread_ts, markdown, feedback)

    async def _stream(self, client: AsyncWebClient, channel: str, thread_ts: str, markdown: str,
                      recipient: Recipient, feedback: bool) -> str | None:
        stream = await client.chat_stream(channel=channel, thread_ts=thread_ts, buffer_size=STREAM_PIECE,
                                          recipient_user_id=recipient.user_id,
                                          recipient_team_id=recipient.team_id)
        safe = safe_markdown(markdown, self.link_hosts)  # Slack reads markdown_text itself: make it safe first
        try:
            for start in range(0, len(safe), STREAM_PIECE):
                await stream.append(markdown_text=safe[start:start + STREAM_PIECE])
            await stream.stop(blocks=feedback_blocks() if feedback else None)
            return stream.ts
        except (SlackApiError, SlackClientError) as exc:
            log.warning("streaming failed, falling back to a plain post: %s", exc)
            self._note_stream_failure(exc)
            if stream.ts:  # a half-written stream message: replace it with the whole answer, else remove it
                if await self._update(client, channel, stream.ts, markdown):
                    return stream.ts
                await self._delete(client, channel, stream.ts)
            return None

    async def _update(self, client: AsyncWebClient, channel: str, ts: str, markdown: str) -> bool:
        text = to_mrkdwn(markdown, self.link_hosts)
        if len(text) > SECTION_LIMIT:
            return False
        try:
            await client.chat_update(channel=channel, ts=ts, text=text)
            return True
        except SlackApiError as exc:
            log.warning("chat.update failed: %s", exc.response.get("error"))
            return False

    async def _delete(self, client: AsyncWebClient, channel: str, ts: str) -> None:
        try:
            await client.chat_delete(channel=channel, ts=ts)
        except SlackApiError as exc:
            log.warning("could not remove the half-written answer: %s", exc.response.get("error"))

    async def post(self, client: AsyncWebClient, channel: str, thread_ts: str, markdown: str,
                   feedback: bool = False) -> str | None:
        chunks = split_message(to_mrkdwn(markdown, self.link_hosts), SECTION_LIMIT)
        ts = None
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            blocks = [SectionBlock(text=chunk), *feedback_blocks()] if (last and feedback) else None
            try:
                response = await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=chunk,
                                                         blocks=blocks, unfurl_links=False, unfurl_media=False)
                ts = response.get("ts")
            except SlackApiError as exc:
                if exc.response.status_code >= 500:  # it may have been posted anyway: look before posting again
                    landed = await self._landed(client, channel, thread_ts, chunk)
                    if landed is not None:
                        ts = landed
                        continue
                if blocks is not None or exc.response.status_code >= 500:  # once more: words before buttons
                    try:
                        response = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                                                 text=chunk, unfurl_links=False)
                        ts = response.get("ts")
                        continue
                    except SlackApiError:
                        pass
                log.error("could not post the answer: %s", exc.response.get("error"))
                return ts
        return ts

    async def _landed(self, client: AsyncWebClient, channel: str, thread_ts: str, text: str) -> str | None:
        """The ts of a message with exactly this text among the thread's newest, if Slack kept it."""
        for message in reversed(await newest_replies(client, channel, thread_ts, 20)):
            if message.get("text") == text and (message.get("bot_id") or message.get("app_id")):
                return message.get("ts")
        return None
