"""No traceback from the CLI, ever: each input issue 23 listed exits non-zero with one clear line.

Each case runs the real `concurrency-bot` entry point in a subprocess with the hostile input.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fakes.prefect_server import free_port

pytestmark = pytest.mark.timeout(120)


def run(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PREFECT_HOME": str(tmp_path / "home"), "BOT_DATABASE_URL": f"sqlite:///{tmp_path}/b.db",
               **env}
    for name in [k for k, v in environ.items() if v == "<unset>"]:
        environ.pop(name)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=110,
                          env=environ, cwd=tmp_path)


def assert_one_clear_line(done: subprocess.CompletedProcess, *words: str) -> None:
    shown = done.stdout + done.stderr
    assert done.returncode != 0, shown[-2000:]
    assert "Traceback" not in shown and 'File "' not in shown, shown[-3000:]
    last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1]
    for word in words:
        assert word in last, last


@pytest.mark.parametrize("url", ["http://[::1/api", "http://h:99x/api", "ftp://h/api"])
@pytest.mark.parametrize("command", [["limits"], ["watch", "--once"], ["ask", "show limits"]])
def test_a_malformed_prefect_api_url(command, url, tmp_path):
    if command[0] != "limits" and url != "http://[::1/api":
        pytest.skip("one URL is enough for the other commands")
    done = run(command, tmp_path, PREFECT_API_URL=url)
    assert_one_clear_line(done, "PREFECT_API_URL")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_verify_on_a_binary_file(tmp_path):
    (tmp_path / "blob.md").write_bytes(bytes(range(256)) * 8)
    assert_one_clear_line(run(["verify", "blob.md"], tmp_path), "not UTF-8")


def test_demo_with_prefect_down(tmp_path):
    done = run(["demo", "--yes"], tmp_path, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    assert_one_clear_line(done, "cannot reach")


def test_audit_since_beyond_any_date(tmp_path):
    assert_one_clear_line(run(["audit", "--since", "999999999d"], tmp_path), "--since")


# Fixed ids: every xdist worker must collect the same test names (a free port in an id differs per worker).
@pytest.mark.parametrize("url", ["garbage", "garbage://x", "postgresql://u:secret-pw@127.0.0.1:{port}/db"],
                         ids=["garbage", "unknown-scheme", "unreachable-postgres"])
def test_a_garbage_or_unreachable_database_url(url, tmp_path):
    url = url.format(port=free_port())
    done = run(["audit"], tmp_path, BOT_DATABASE_URL=url)
    assert_one_clear_line(done, "BOT_DATABASE_URL")
    assert "secret-pw" not in done.stdout + done.stderr


def test_serve_on_a_port_that_does_not_exist(tmp_path):
    done = run(["serve", "--port", "99999"], tmp_path, SLACK_BOT_TOKEN="xoxb-1-2", SLACK_SIGNING_SECRET="abcdef123456")
    assert_one_clear_line(done, "99999", "port")
