"""Data flows down (DESIGN.md): lower layers never import the layers above them, or Slack/OpenAI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
FRONT_ENDS = ("bot.slack", "bot.terminal", "bot.commands", "bot.runtime", "bot.cli", "bot.doctor")
VENDORS = ("slack_sdk", "slack_bolt", "openai")
FORBIDDEN = {
    "store": FRONT_ENDS + VENDORS + ("bot.pipeline", "bot.agent", "bot.approvals", "bot.knowledge", "bot.offline"),
    "prefect_ops": FRONT_ENDS + VENDORS + ("bot.pipeline", "bot.agent", "bot.approvals", "bot.knowledge"),
    "knowledge": FRONT_ENDS + VENDORS + ("bot.pipeline", "bot.agent", "bot.approvals"),
    "approvals": FRONT_ENDS + VENDORS + ("bot.pipeline", "bot.agent"),
    "agent": FRONT_ENDS + ("slack_sdk", "slack_bolt"),
    "offline": FRONT_ENDS + VENDORS,
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_from_above(layer):
    offenders = []
    for path in sorted((BOT / layer).rglob("*.py")):
        for module in imported_modules(path):
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                offenders.append(f"{path.relative_to(BOT.parent)} imports {module}")
    assert offenders == []
