"""The Assistant pane: suggested prompts when a thread starts, a status while working, a title."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.responder import Responder

SUGGESTED_PROMPTS = ["Why is my run stuck?", "Show all limits", "One run of a deployment at a time"]
GREETING = ("Hi! I know your Prefect server's concurrency limits. Ask me why a run is waiting, "
            "or how to limit something.")


def register_assistant(app: AsyncApp, responder: Responder) -> None:
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def on_thread_started(say: Any, set_suggested_prompts: Any) -> None:
        await say(GREETING)
        await set_suggested_prompts(prompts=SUGGESTED_PROMPTS)

    @assistant.user_message
    async def on_user_message(payload: dict[str, Any], context: Any, client: AsyncWebClient,
                              set_status: Any, set_title: Any) -> None:
        text = (payload.get("text") or "").strip()
        if text:
            await set_title(text[:80])
        await set_status("is looking at your Prefect server…")
        responder.spawn(responder.handle(client, payload, dict(context)))

    app.assistant(assistant)
