"""`make bench`: the bot against local Slack, model and Prefect servers, beside a naive baseline."""
