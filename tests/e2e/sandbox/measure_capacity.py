"""Measure the sandbox's memory per identifier and its 10,000-member add latency.

Not a test (pytest does not collect it): run `python tests/e2e/sandbox/measure_capacity.py [N]`.
It fills one Snapchat segment with N (default 10,000,000) distinct SHA-256 identifiers through
the real request path in 10,000-member batches (in process, no socket), then reports resident
memory per identifier and the latency of the 10,000-member add requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import sys
import time

import httpx
import psutil

from audience_sync.sandbox import create_app

AUTH = {"Authorization": "Bearer sandbox-token"}
BATCH = 10_000


def batch_body(start: int) -> bytes:
    data = [
        [hashlib.sha256(i.to_bytes(8, "little")).hexdigest()] for i in range(start, start + BATCH)
    ]
    return json.dumps({"users": [{"schema": ["EMAIL_SHA256"], "data": data}]}).encode()


async def main(total: int) -> None:
    app = create_app()
    process = psutil.Process()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        body = {"segments": [{"name": "capacity", "retention_in_days": 9999}]}
        await c.put("/_sandbox/rate_limits", json={"family": "snapchat", "limit": None})
        created = await c.post("/snapchat/v1/adaccounts/a/segments", json=body, headers=AUTH)
        segment = created.json()["segments"][0]["segment"]["id"]
        url = f"/snapchat/v1/segments/{segment}/users"
        headers = {**AUTH, "Content-Type": "application/json"}
        before = process.memory_info().rss
        latencies = []
        for start in range(0, total, BATCH):
            payload = batch_body(start)  # built outside the timing
            t0 = time.perf_counter()
            response = await c.post(url, content=payload, headers=headers)
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
        after = process.memory_info().rss
        held = app.state.sandbox.audience("snapchat", segment)
        print(f"identifiers held: {held.size:,}")
        print(f"resident memory growth: {(after - before) / 2**20:,.0f} MiB")
        print(f"bytes per identifier: {(after - before) / held.size:.1f}")
        ms = sorted(x * 1000 for x in latencies)
        print(
            f"10k-member add: median {statistics.median(ms):.1f} ms, "
            f"p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} requests"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000))
