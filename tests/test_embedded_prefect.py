"""The embedded Prefect's lifecycle: when to start one, reuse of a recorded server, start, stop, failure.

The full cold start of a real `prefect server start` is covered by test_terminal_chat.py; here the
start command is injected (a tiny health-answering HTTP server in a real subprocess) so the
lifecycle is checked in a second, and reuse is checked against the real fixture Prefect server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bot.embedded_prefect import EmbeddedPrefect, PrefectStartError, configured_api_url, healthy

HEALTH_SERVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
time.sleep(float(sys.argv[2]))
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/api/health"
        self.send_response(200 if ok else 404); self.end_headers(); self.wfile.write(b"true")
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def health_server(delay: float = 0.5):
    return lambda port: [sys.executable, "-c", HEALTH_SERVER, str(port), str(delay)]


def test_configured_url_from_environment_or_active_profile(tmp_path):
    assert configured_api_url({"PREFECT_API_URL": "http://x/api", "PREFECT_HOME": str(tmp_path)}) == "http://x/api"
    assert configured_api_url({"PREFECT_HOME": str(tmp_path)}) is None
    (tmp_path / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://work:4200/api"\n[profiles.other]\n')
    assert configured_api_url({"PREFECT_HOME": str(tmp_path)}) == "http://work:4200/api"
    assert configured_api_url({"PREFECT_HOME": str(tmp_path), "PREFECT_PROFILE": "other"}) is None


def test_starts_records_reuses_and_stops(tmp_path):
    messages: list[str] = []
    first = EmbeddedPrefect(tmp_path, command=health_server(), progress=messages.append, start_timeout=30)
    url = first.ensure()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api") and healthy(url)
        assert not first.reused and first.process is not None
        assert any("Starting a local Prefect server" in m for m in messages)
        assert any("ready" in m for m in messages)
        record = json.loads((tmp_path / "prefect" / "server.json").read_text())
        assert record["url"] == url and record["pid"] == first.process.pid

        second = EmbeddedPrefect(tmp_path, command=health_server(), start_timeout=30)
        assert second.ensure() == url and second.reused and second.process is None
        second.stop()  # the starter still uses it: still up
        assert healthy(url)
    finally:
        first.stop()
    assert not healthy(url)
    assert not (tmp_path / "prefect" / "server.json").exists()


def test_the_last_session_out_stops_the_server_even_if_it_only_reused_it(tmp_path):
    starter = EmbeddedPrefect(tmp_path, command=health_server(), start_timeout=30)
    url = starter.ensure()
    reuser = EmbeddedPrefect(tmp_path, command=health_server(), start_timeout=30)
    try:
        assert reuser.ensure() == url and reuser.reused
        starter.stop()  # the starter leaves first: the other session keeps its server
        assert healthy(url)
    finally:
        reuser.stop()
        starter.stop()
    assert not healthy(url)
    assert not (tmp_path / "prefect" / "server.json").exists()


def test_reuses_a_recorded_server_that_answers(tmp_path, prefect_api_url):
    home = tmp_path / "prefect"
    home.mkdir()
    (home / "server.json").write_text(json.dumps({"url": prefect_api_url, "port": 0, "pid": 0}))
    embedded = EmbeddedPrefect(tmp_path, command=lambda port: ["false"])
    assert embedded.ensure() == prefect_api_url and embedded.reused


def test_a_stale_record_starts_a_new_server(tmp_path):
    home = tmp_path / "prefect"
    home.mkdir()
    (home / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9/api", "port": 9, "pid": 999999}))
    with EmbeddedPrefect(tmp_path, command=health_server(0), start_timeout=30) as embedded:
        url = embedded.ensure()
        assert not embedded.reused and url != "http://127.0.0.1:9/api" and healthy(url)
    assert not healthy(url)


def test_a_server_that_dies_is_reported_with_its_log(tmp_path):
    failing = EmbeddedPrefect(tmp_path, command=lambda port: [sys.executable, "-c", "print('boom: bad config')"],
                              start_timeout=30)
    with pytest.raises(PrefectStartError) as caught:
        failing.ensure()
    assert "boom: bad config" in str(caught.value)
    assert str(Path(tmp_path) / "prefect" / "server.log") in str(caught.value)
