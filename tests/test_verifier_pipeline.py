"""Through the real pipeline and model client: a migration answer that names a removed 2.x API gets
a correction round carrying Prefect's own hint, never the "internal error" apology.
"""

from __future__ import annotations

from bot.agent.registry import ToolRegistry
from bot.knowledge.verifier import verify_markdown
from bot.pipeline import APOLOGY, Pipeline, model_from_settings
from bot.settings import Settings
from bot.turns import Turn
from tests.fakes.model_api import SUITE_MODEL, text

OLD_WAY = """In Prefect 2 you wrote:

```python
from prefect.deployments import Deployment
from flows import etl

Deployment.build_from_flow(flow=etl, name="nightly", work_queue_name="default").apply()
```

In Prefect 3 use `prefect deploy flows.py:etl -n nightly -p etl-pool`.
"""
NEW_WAY = """`Deployment.build_from_flow` is gone in Prefect 3. Deploy with:

```bash
prefect deploy flows.py:etl -n nightly -p etl-pool
```
"""


def _pipeline(model_api) -> Pipeline:
    settings = Settings(_env_file=None, openai_api_key="sk-test-key-0123456789", openai_base_url=model_api.base_url,
                        openai_model=SUITE_MODEL, bot_model_max_attempts=2, bot_model_retry_max_wait_seconds=0.2)
    return Pipeline(settings=settings, tools_for_turn=lambda turn, created: ToolRegistry(),
                    model=model_from_settings(settings), verify=verify_markdown)


async def test_a_removed_name_in_an_answer_is_corrected_with_prefects_hint_not_an_apology(fresh_model):
    fresh_model.script(text(OLD_WAY), text(NEW_WAY))
    reply = await _pipeline(fresh_model).answer(Turn("how do I migrate Deployment.build_from_flow?", "U1"))
    assert reply.text == NEW_WAY.strip() and reply.verifier.ok and reply.model_rounds == 2
    assert APOLOGY.split("(")[0] not in reply.text
    feedback = fresh_model.requests[-1]["messages"][-1]["content"]
    assert "`prefect.deployments:Deployment` has been removed." in feedback
    assert "Use `flow.serve()`, `flow.deploy()`, or `prefect deploy` instead." in feedback
