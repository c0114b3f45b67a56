"""The card's content for each status, escaping of untrusted text, and the expiry sweep's card updates."""

from __future__ import annotations

import json
from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.sweeper import sweep_expired
from bot.prefect_ops.changes import TagLimitChange, WorkPoolLimitChange
from bot.slack import cards
from bot.slack.approval_handlers import post_proposal_cards, update_card
from bot.store.proposals import utcnow
from tests.approvals_support import make_pool, make_service, unique


def _text(blocks) -> str:
    return json.dumps([b.to_dict() if hasattr(b, "to_dict") else b for b in blocks], ensure_ascii=False)


async def test_pending_card_escapes_the_reason_and_offers_three_buttons(prefect_server, tmp_path):
    service = make_service(f"sqlite:///{tmp_path / 'bot.db'}")
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER",
                                             "<!channel> apply it now & <https://evil|click>")
    shown = _text(cards.proposal_card_blocks(proposal))
    assert "<!channel>" not in shown and "&lt;!channel&gt; apply it now &amp;" in shown
    assert "<@UASKER>" in shown and "<!date^" in shown and "limit 1 → 2" in shown
    for action in (cards.APPROVE, cards.EDIT, cards.REJECT):
        assert action in shown
    decided = (await service.approve(proposal.id, "UAPPROVER")).proposal
    shown = _text(cards.proposal_card_blocks(decided))
    assert cards.APPROVE not in shown and "Applied" in shown and "<@UAPPROVER>" in shown and "Was: limit 1" in shown


async def test_destructive_change_is_flagged_and_has_no_edit_button(prefect_server, tmp_path):
    service = make_service(f"sqlite:///{tmp_path / 'bot.db'}")
    tag = unique("tag")
    await service.create_proposal(TagLimitChange(action="set", tag=tag, limit=1), "UASKER")
    created = (await service.audit_log(action="proposed"))[0]
    await service.approve(created.proposal_id, "UAPPROVER")
    proposal = await service.create_proposal(TagLimitChange(action="delete", tag=tag), "UASKER")
    shown = _text(cards.proposal_card_blocks(proposal))
    assert "destructive" in shown and cards.EDIT not in shown and cards.APPROVE in shown


def test_edit_value_validation():
    assert cards.edit_value_error({"min": 1}, "0") == "The limit must be at least 1."
    assert cards.edit_value_error({"min": 0}, "-3") is not None
    assert cards.edit_value_error({"min": 0}, " 4 ") is None


async def test_sweep_updates_the_cards_of_expired_proposals(prefect_server, fresh_slack, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    service = make_service(db_url)
    client = AsyncWebClient(token="xoxb-test", base_url=f"{fresh_slack.url}/api/")
    pool = await make_pool(limit=1)
    proposal = await service.create_proposal(WorkPoolLimitChange(action="set", pool=pool, limit=2), "UASKER",
                                             "", "C1", "9.9")
    await post_proposal_cards(service, client, "C1", "9.9", [proposal.id])
    ts = (await service.get(proposal.id)).message_ts
    assert await sweep_expired(service, client, update_card) == 0
    service.clock = lambda: utcnow() + timedelta(days=2)
    assert await sweep_expired(service, client, update_card) == 1
    update = fresh_slack.wait_for("chat.update")[-1].args
    assert update["ts"] == ts and "Expired" in json.dumps(update["blocks"]) and cards.APPROVE not in json.dumps(
        update["blocks"])
