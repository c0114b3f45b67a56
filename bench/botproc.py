"""The bot as a real process (`concurrency-bot serve`, or the naive baseline), with its RSS sampled."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.fakes.prefect_server import free_port
from tests.fakes.processes import wait_until_healthy

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token-123456"
MODEL_KEY = "sk-bench-model-key-abcdef"
REPO = Path(__file__).resolve().parent.parent


def bot_environment(slack_url: str, model_url: str, prefect_url: str, database_url: str,
                    streaming: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "BOT_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=f"{slack_url}/api/",
        OPENAI_API_KEY=MODEL_KEY, OPENAI_BASE_URL=model_url, OPENAI_MODEL=os.environ.get("BENCH_MODEL", "gpt-5-mini"),
        PREFECT_API_URL=prefect_url, BOT_DATABASE_URL=database_url, BOT_USER_RATE_LIMIT_PER_MINUTE="0",
        BOT_STREAMING="true" if streaming else "false", BOT_MODEL_MAX_ATTEMPTS="2",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    return env


def rss_kib(pid: int) -> int:
    """Resident set size from /proc (Linux), in KiB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (from /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BotProcess:
    """Start a bot entry point on a free port, wait for /healthz, sample its RSS in a thread."""

    def __init__(self, module: str, env: dict[str, str], log_dir: Path) -> None:
        self.module = module
        self.env = env
        self.port = free_port()
        self.log_path = log_dir / f"{module.replace('.', '-')}-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.samples: list[tuple[float, int]] = []
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> BotProcess:
        args = [sys.executable, "-m", self.module, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        log = open(self.log_path, "wb")
        env = dict(self.env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")])))
        # A neutral working directory: no developer `.env` file can leak settings into the run.
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=tempfile.gettempdir())
        try:
            wait_until_healthy(f"{self.url}/healthz", self.process, timeout, self.log_path.read_text, self.module)
        except RuntimeError:
            self.stop()
            raise
        return self

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid) if self.process else 0

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid) if self.process else 0.0

    def sample_rss(self, every: float = 0.25) -> None:
        """Start recording (monotonic time, RSS KiB) pairs until `stop_sampling`."""
        self._sampling.clear()

        def loop() -> None:
            while not self._sampling.wait(every):
                self.samples.append((time.monotonic(), self.rss_kib()))

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> None:
        self._sampling.set()
        if self._sampler:
            self._sampler.join(5)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            return response.read().decode()

    def stop(self) -> None:
        self.stop_sampling()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
