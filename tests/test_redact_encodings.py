"""Redaction by value, in every encoding a secret travels in, and Prefect error bodies summarised.

The issue-23 probe: Prefect (or a proxy in front of it) echoes the `Authorization` header in an
error body while PREFECT_API_AUTH_STRING is set; `Basic YWRt…` reached the model, a JSON log line and
the Slack answer. Here a real HTTP server echoes the header back with a 401 to a real PrefectClient
holding the auth string; the error goes through the agent's real tool-call path, the JSON log
handler and the Slack renderer, and no encoding of the secret may come out.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from urllib.parse import quote, quote_plus

import pytest
from prefect.client.orchestration import PrefectClient
from pythonjsonlogger.json import JsonFormatter

from bot.agent.loop import run_tool_call
from bot.agent.registry import ToolRegistry
from bot.prefect_ops import by_name
from bot.prefect_ops.errors import api_url_of
from bot.redact import REDACTED, RedactingFilter, RedactingFormatter, error_summary, redact, remember, shown_url
from bot.safe_text import PREFECT_DOCS_HOSTS, safe_markdown

AUTH = "admin:pa@ss/w0rd+=&x"


def forms(secret: str) -> list[str]:
    """The test's own list of what must never appear (independent of bot.redact.encodings)."""
    password = secret.split(":", 1)[1]
    found = []
    for value in (secret, password):
        found += [value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]]
    basic = base64.b64encode(secret.encode()).decode()
    return found + [basic, basic.rstrip("="), base64.urlsafe_b64encode(secret.encode()).decode()]


def assert_no_secret(text: str, where: str) -> None:
    for form in forms(AUTH):
        assert form not in text, f"{where}: {form!r} in {text[:400]!r}"


class Echo(BaseHTTPRequestHandler):
    """A server (or proxy) that answers 401 and echoes every request header into its body."""

    def _answer(self) -> None:
        body = json.dumps({"detail": "not authorised", "headers": dict(self.headers),
                           "url": f"http://admin:{AUTH.split(':', 1)[1]}@proxy{self.path}?token=abc123def"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()


@pytest.mark.parametrize("secret", [AUTH, "s3cr3t-key-0123456789", "p@ss word/ü%"])
def test_every_encoding_of_a_given_secret_is_redacted(secret):
    text = " | ".join([secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret),
                       "Basic " + base64.b64encode(secret.encode()).decode()])
    shown = redact(text, [secret])
    assert secret not in shown and quote(secret, safe="") not in shown and quote_plus(secret) not in shown
    assert base64.b64encode(secret.encode()).decode().rstrip("=") not in shown


@pytest.mark.parametrize(("text", "secret"), [
    ("postgresql://bot:p@ss@w0rd@db:5432/bot", "p@ss@w0rd"), ("https://h/api?token=abc123def&x=1", "abc123def"),
    ("password=hunter22", "hunter22"), ('{"password": "hunter22"}', "hunter22"),
    ("Authorization: Basic dXNlcjpzZWNyZXQtcGFzcw==", "dXNlcjpzZWNyZXQtcGFzcw"), ("api_key: sk_live_abcdef", "sk_live"),
    # a key glued to a name by '-' or '_' (a tag such as `leak-pnb_…`) is still a key; only letters or
    # digits right before it (the `sk-` in `task-runner`) make it part of a word
    ("tag leak-pnb_0123456789abcdefABCDEF", "pnb_0123456789"), ("x_sk-abcdefghijklmnop", "sk-abcdefghijkl"),
])
def test_shapes_of_secrets_we_do_not_hold(text, secret):
    shown = redact(text)
    assert REDACTED in shown and secret not in shown and secret.split("@")[-1] not in shown.replace("@db", ""), shown


def test_the_host_of_a_url_with_a_password_stays():
    assert redact("postgresql://bot:p@ss@w0rd@db:5432/bot") == f"postgresql://bot:{REDACTED}@db:5432/bot"


def test_cli_urls_show_no_password(echo_url):
    with_password = echo_url.replace("http://", f"http://{AUTH}@")
    assert_no_secret(shown_url(with_password), "shown_url")
    client = PrefectClient(with_password)
    assert_no_secret(api_url_of(client), "api_url_of")
    assert "127.0.0.1" in api_url_of(client)


async def test_an_echoed_authorization_header_reaches_no_one(echo_url):
    async with PrefectClient(echo_url, auth_string=AUTH) as client:
        with pytest.raises(Exception) as caught:
            await by_name.read_work_pool(client, "etl")
        exc = caught.value
        assert base64.b64encode(AUTH.encode()).decode() in str(exc)  # the probe: the body does echo it

        assert error_summary(exc) == "HTTP 401 from Prefect: not authorised"

        async def read_pool(name: str) -> dict:
            """Read one pool (the tool the model would call)."""
            return (await by_name.read_work_pool(client, name)).model_dump(mode="json")

        registry = ToolRegistry()
        registry.add(read_pool)
        call = type("Call", (), {"id": "c1", "function": type("F", (), {"name": "read_pool",
                                                                       "arguments": '{"name": "etl"}'})()})()
        message = await run_tool_call(registry, call, 4000)
    assert_no_secret(json.dumps(message), "tool message to the model")
    assert "HTTP 401 from Prefect" in message["content"]

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(JsonFormatter("%(levelname)s %(message)s"), [AUTH]))
    handler.addFilter(RedactingFilter([AUTH]))
    log = logging.getLogger(f"test.redact.{id(stream)}")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise exc
    except Exception:
        log.exception("reading failed: %s", exc)
    assert_no_secret(stream.getvalue(), "JSON log line")

    remember([AUTH])  # what configure_logging/build_runtime do with Settings.secret_values()
    assert_no_secret(safe_markdown(f"Prefect said: {exc}", PREFECT_DOCS_HOSTS), "Slack answer")
