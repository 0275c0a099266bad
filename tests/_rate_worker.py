"""A client process for the rate-limit tests: ``python -m tests._rate_worker '<json>'``.

Lists every recording of the emulator named in the spec with the SDK's default
rate limiting and prints one JSON line: how many recordings, how many distinct.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from realtimekit_async import RealtimeKit, RetryPolicy


async def main(spec: dict[str, Any]) -> None:
    async with RealtimeKit(
        api_token=spec["token"],
        account_id=spec["account_id"],
        app_id=spec["app_id"],
        base_url=spec["base_url"],
        max_retries=RetryPolicy(max_retries=8),
    ) as client:
        ids = [rec.id async for rec in client.recordings.list(per_page=spec["per_page"])]
        budget = client.rate_budget
    print(json.dumps({"count": len(ids), "distinct": len(set(ids)), "limit": budget.limit}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
