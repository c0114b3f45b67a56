"""The load generator: signed Slack `app_mention` events at a set rate, or all at once.

It runs as its own process (`python -m bench.loadgen`, a JSON spec on stdin, JSON results on
stdout) so that its timings do not share an event loop or a GIL with the bot or the fakes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
from pydantic import BaseModel
from slack_sdk.signature import SignatureVerifier

TEAM = "T1"


class LoadSpec(BaseModel):
    url: str
    secret: str
    channel: str
    text: str  # formatted with {n}
    rate: float = 0.0  # events per second; 0 = all at once
    count: int = 1
    first: int = 0


class Sent(BaseModel):
    n: int
    ts: str
    posted: float  # time.monotonic() just before the request was written
    acked: float | None = None
    status: int = 0


def envelope(spec: LoadSpec, n: int, ts: str) -> dict[str, Any]:
    event = {"type": "app_mention", "user": f"U{n % 50:03d}", "text": f"<@UBOT> {spec.text.format(n=n)}",
             "channel": spec.channel, "ts": ts, "event_ts": ts, "team": TEAM}
    return {"token": "legacy", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
            "event_id": f"Ev{spec.channel}{n}x{time.time_ns()}", "event_time": int(time.time()), "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}]}


async def send_one(session: aiohttp.ClientSession, spec: LoadSpec, signer: SignatureVerifier, n: int) -> Sent:
    ts = f"{int(time.time())}.{n:06d}"
    body = json.dumps(envelope(spec, n, ts))
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": signer.generate_signature(timestamp=stamp, body=body)}
    sent = Sent(n=n, ts=ts, posted=time.monotonic())
    try:
        async with session.post(spec.url, data=body, headers=headers) as response:
            await response.read()
            sent.acked, sent.status = time.monotonic(), response.status
    except aiohttp.ClientError:
        sent.status = -1
    return sent


async def run(spec: LoadSpec) -> list[Sent]:
    signer = SignatureVerifier(spec.secret)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        tasks = []
        for i in range(spec.count):
            if spec.rate > 0:
                delay = start + i / spec.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send_one(session, spec, signer, spec.first + i)))
        return list(await asyncio.gather(*tasks))


def main() -> None:
    spec = LoadSpec.model_validate_json(sys.stdin.read())
    results = asyncio.run(run(spec))
    sys.stdout.write(json.dumps([r.model_dump() for r in results]))


if __name__ == "__main__":
    main()
