"""The on-call watcher: detectors over live Prefect state, incidents kept once in the store, posted to Slack.

`detectors` and `reads` know nothing about Slack or the store; `watcher` puts them together.
"""

from bot.watch.detectors import DETECTORS, detect, ripe
from bot.watch.incidents import INCIDENT_KINDS, Incident, incident_key
from bot.watch.reads import WatchSnapshot, read_snapshot

__all__ = ["DETECTORS", "INCIDENT_KINDS", "Incident", "WatchSnapshot", "detect", "incident_key",
           "read_snapshot", "ripe"]
