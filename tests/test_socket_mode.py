"""Socket Mode against a local WebSocket server: envelopes are acked, retries answered once."""

from __future__ import annotations

import time

import pytest

from tests.fakes.model_api import text
from tests.fakes.socket_mode import FakeSocketMode
from tests.harness import BotHarness, mention


@pytest.fixture
def socket_bot(fresh_slack, fresh_model, prefect_api_url, tmp_path):
    socket = FakeSocketMode().start()
    fresh_slack.socket_url = socket.url
    bot = BotHarness(fresh_slack, fresh_model, f"sqlite:///{tmp_path / 'bot.db'}", socket_mode=True,
                     bot_streaming=False).start()
    yield bot, socket
    bot.stop()
    socket.stop()
    fresh_slack.socket_url = None


def test_socket_mode_event_is_acked_and_retries_are_answered_once(socket_bot, fresh_slack, fresh_model):
    bot, socket = socket_bot
    deadline = time.monotonic() + 20
    while socket.connections == 0:
        assert time.monotonic() < deadline, "the bot never opened the WebSocket"
        time.sleep(0.05)
    fresh_model.script(text("answered over the socket"))
    body = bot.event_envelope(mention("over the socket?", ts="1740000000.000100"), event_id="EvSOCK")
    socket.send_event(body, envelope_id="env-1")
    socket.send_event(body, envelope_id="env-2", retry_attempt=1)
    socket.send_event(body, envelope_id="env-3", retry_attempt=2)
    acks = socket.wait_for_acks(3)
    assert {a["envelope_id"] for a in acks} == {"env-1", "env-2", "env-3"}
    fresh_slack.wait_for("chat.postMessage")
    bot.wait_idle()
    time.sleep(0.2)
    assert fresh_slack.bot_texts("C1", "1740000000.000100") == ["answered over the socket"]
    assert len(fresh_model.requests) == 1
    assert fresh_slack.calls_to("apps.connections.open")
