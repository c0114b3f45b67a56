"""Proposal state machine and approver policy: the only path by which a limit change is applied."""

from bot.approvals.policy import ApprovalPolicy, Refusal
from bot.approvals.service import ApprovalService, Decision, ProposalRefused, ProposalView

__all__ = ["ApprovalPolicy", "ApprovalService", "Decision", "ProposalRefused", "ProposalView", "Refusal"]
