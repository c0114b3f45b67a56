"""Shared fixtures: one real Prefect server per test process, a fake Slack Web API, a scripted model.

`make test` runs the suite on two pytest-xdist workers. Each worker is its own process and owns its
own servers (a Prefect server on its own port, with its own PREFECT_HOME and its own PostgreSQL
database, a fake Slack, a model server), its own client PREFECT_HOME and its own bot data folder:
nothing a test can reach is shared between workers. Without xdist the process is the one worker.

PREFECT_API_URL and PREFECT_HOME are set here, at import time, before anything imports prefect,
because Prefect reads its settings once when it is first imported. Under xdist this import happens
in each worker (after PYTEST_XDIST_WORKER is set), so the values below are the worker's own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from tests.fakes.prefect_server import PrefectServer, drop_stale_databases, free_port, worker_name

_WORKER = worker_name()
_PORT = free_port()
_CLIENT_HOME = tempfile.mkdtemp(prefix=f"prefect-client-home-{_WORKER}-")
_DATA_DIR = tempfile.mkdtemp(prefix=f"cbot-data-{_WORKER}-")
atexit.register(shutil.rmtree, _CLIENT_HOME, True)
atexit.register(shutil.rmtree, _DATA_DIR, True)
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PORT}/api"
os.environ["PREFECT_HOME"] = _CLIENT_HOME  # never the developer's own profiles, never another worker's
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_KEY", None)
# The bot must not pick up a developer's real credentials in tests.
for _name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "OPENAI_API_KEY",
              "OPENAI_BASE_URL", "BOT_DATABASE_URL", "BOT_APPROVER_IDS", "BOT_ALLOWED_CHANNELS"):
    os.environ.pop(_name, None)
# A bot built without a database URL keeps its SQLite file here, not in ~/.concurrency-bot.
os.environ["BOT_DATA_DIR"] = _DATA_DIR

import pytest  # noqa: E402

from tests.fakes.model_api import FakeModelAPI  # noqa: E402
from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402
from tests.faults_support import (  # noqa: E402,F401  (prints the fault table, gathered from every worker)
    PrefectProxy,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)
from tests.schedule import pytest_collection_modifyitems  # noqa: E402,F401  (long runs out, slowest first)


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API server shared by the worker's tests; tests use uniquely named objects."""
    drop_stale_databases()
    server = PrefectServer(port=_PORT, database_suffix=_WORKER).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prefect_api_url(prefect_server) -> str:
    return prefect_server.url


@pytest.fixture
def proxy(prefect_api_url):
    """A fault-injecting proxy in front of the worker's real Prefect server, for one test. Modules that
    need one for all their tests define their own module-scoped `proxy`, which overrides this."""
    running = PrefectProxy(prefect_api_url).start()
    yield running
    running.clear()
    running.stop()


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
    yield model_api
    model_api.restore_provider()  # a module-scoped bot built next must not inherit this test's profile or keys
