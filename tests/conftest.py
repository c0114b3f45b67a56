"""Shared fixtures: one real Prefect server per run, a fake Slack Web API, a scripted model.

PREFECT_API_URL and PREFECT_HOME are set here, at import time, before anything imports
prefect, because Prefect reads its settings once when it is first imported.
"""

from __future__ import annotations

import os
import tempfile

from tests.fakes.prefect_server import PrefectServer, free_port

_PORT = free_port()
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PORT}/api"
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-client-home-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_KEY", None)
# The bot must not pick up a developer's real credentials in tests.
for _name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "OPENAI_API_KEY",
              "OPENAI_BASE_URL", "BOT_DATABASE_URL", "BOT_APPROVER_IDS", "BOT_ALLOWED_CHANNELS"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402

from tests.fakes.model_api import FakeModelAPI  # noqa: E402
from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402
from tests.faults_support import pytest_terminal_summary  # noqa: E402,F401  (prints the fault table)


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API server shared by the whole run; tests use uniquely named objects."""
    server = PrefectServer(port=_PORT).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server) -> str:
    return prefect_server.url


@pytest.fixture(scope="session")
def slack_api():
    server = FakeSlackAPI().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_slack(slack_api):
    slack_api.reset()
    return slack_api


@pytest.fixture(scope="session")
def model_api():
    server = FakeModelAPI().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_model(model_api):
    model_api.reset()
    return model_api
