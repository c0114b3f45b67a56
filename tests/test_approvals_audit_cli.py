"""`concurrency-bot audit` prints the audit rows the approval service wrote, with filters."""

from __future__ import annotations

import json
import subprocess
import sys

from bot.prefect_ops.changes import WorkPoolLimitChange
from tests.approvals_support import make_pool, make_service


def audit(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", "audit", "--database-url", db_url, *args],
                          capture_output=True, text=True, timeout=120)


async def test_audit_lists_and_filters(prefect_server, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    service = make_service(db_url)
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER",
                                             "runs queue up")
    await service.approve(proposal.id, "USTRANGER")
    await service.approve(proposal.id, "UAPPROVER")
    await service.approve("forged", "UAPPROVER")

    everything = audit(db_url, "--json")
    assert everything.returncode == 0, everything.stderr
    rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["action"] for r in rows] == ["refused", "applied", "refused", "proposed"]
    applied = rows[1]
    assert applied["actor"] == "UAPPROVER" and applied["requester"] == "UASKER"
    assert applied["diff"] == f"work pool `{pool}`: limit 1 → 2" and json.loads(applied["before"]) == {"limit": 1}

    refused = [json.loads(x) for x in audit(db_url, "--json", "--action", "refused").stdout.splitlines()]
    assert {r["result"] for r in refused} == {"not_approver", "not_found"}
    mine = audit(db_url, "--json", "--proposal", proposal.id[:8], "--user", "USTRANGER").stdout.splitlines()
    assert [json.loads(x)["actor"] for x in mine] == ["USTRANGER"]
    assert audit(db_url, "--json", "--since", "2099-01-01").stdout == ""

    table = audit(db_url, "--limit", "2")
    assert table.returncode == 0 and "Audit log" in table.stdout and "applied" in table.stdout
    assert "proposed" not in table.stdout  # --limit 2 keeps the two newest rows
    assert audit(db_url, "--since", "yesterday-ish").returncode == 2
