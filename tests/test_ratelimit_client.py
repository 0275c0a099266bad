"""Rate limits as a client sees them against the emulator, in one and in several processes."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

import pytest

from realtimekit_async import (
    RateLimit,
    RateLimitError,
    RateLimits,
)
from realtimekit_async.emulator import Emulator, RateLimitRule

from ._support import emulator_client

ROOT = Path(__file__).resolve().parent.parent


async def test_a_long_block_fails_every_call_fast_on_the_client_and_its_copies() -> None:
    rule = RateLimitRule(2, 60.0, "global", block=300.0)
    async with (
        # No headers to pace by: the block comes without warning.
        Emulator(recordings=5, speed=0, rate_limit=rule, rate_limit_headers="none") as emu,
        emulator_client(emu, rate_limit=RateLimits(())) as client,
    ):
        await client.recordings.list()
        await client.recordings.list()
        began = time.monotonic()
        with pytest.raises(RateLimitError) as first:
            await client.recordings.list()  # Retry-After 300 > the 60 s retry cap: at once
        assert first.value.retry_after == 300
        sent = sum(emu.stats.requests.values())
        copy = client.with_options(max_retries=5)
        with pytest.raises(RateLimitError) as later:
            await copy.recordings.get("c0ffee00-0000-4000-8000-000000000000")
        assert time.monotonic() - began < 5  # nothing was slept through
        assert sum(emu.stats.requests.values()) == sent  # and nothing was sent
        assert later.value.status == 429
        assert later.value.code == first.value.code == 971
        assert later.value.message == first.value.message
        assert later.value.request_id == first.value.request_id
        assert later.value.retry_after is not None
        assert 295 < later.value.retry_after <= 300
        assert later.value.method == "GET"
        assert later.value.path.endswith("/recordings/c0ffee00-0000-4000-8000-000000000000")
        assert client.rate_budget.blocked
        assert client.rate_budget.remaining == 0


async def test_a_short_429_is_waited_out_by_every_caller() -> None:
    async with (
        Emulator(recordings=5, speed=0, rate_limit=(2, 1.0)) as emu,
        emulator_client(emu, rate_limit=RateLimits((), adaptive=False)) as client,
    ):
        results = await asyncio.gather(*(client.recordings.list() for _ in range(4)))
    assert [len(page.data) for page in results] == [5] * 4
    # Without pacing the first refusal pauses the others: at most the two in flight
    # beside it are refused too, not every retry of every caller.
    assert emu.stats.rate_limited <= 2


async def test_budget_is_read_from_the_headers(caplog: pytest.LogCaptureFixture) -> None:
    rules = (RateLimitRule(4, 1.0, "short"), RateLimitRule(50, 60.0, "long"))
    async with (
        Emulator(recordings=5, speed=0, rate_limit=rules) as emu,
        emulator_client(emu, rate_limit=RateLimits(())) as client,
    ):
        assert client.rate_budget.source == "none"
        await client.recordings.list()
        budget = client.rate_budget
        assert (budget.remaining, budget.limit, budget.source) == (3, 4, "short")
        assert budget.reset is not None
        assert 0 < budget.reset <= 1
        assert not budget.blocked
        caplog.set_level(logging.DEBUG, logger="realtimekit_async")
        for _ in range(5):
            await client.recordings.list()
    assert emu.stats.rate_limited == 0
    pauses = [r.getMessage() for r in caplog.records if "for rate limits" in r.getMessage()]
    assert pauses
    assert all("paused" in p and "server quota 'short'" in p for p in pauses)


async def test_each_pause_is_logged_once_with_its_length(caplog: pytest.LogCaptureFixture) -> None:
    async with (
        Emulator(recordings=5, speed=0) as emu,
        emulator_client(emu, rate_limit=RateLimit(2, 0.8)) as client,
    ):
        caplog.set_level(logging.DEBUG, logger="realtimekit_async")
        first = time.monotonic()
        for _ in range(2):
            await client.recordings.list()
        third = time.monotonic()
        await client.recordings.list()
    pauses = [r.getMessage() for r in caplog.records if "for rate limits" in r.getMessage()]
    assert len(pauses) == 1
    seconds = float(pauses[0].split("paused ")[1].split("s ")[0])
    # The third request waits for what is left of the first one's window (however long
    # the first two took on a loaded machine), and never longer than the window.
    left = 0.8 - (third - first)
    assert left - 0.01 <= seconds <= 0.8
    assert "client limit 2/0.8s" in pauses[0]


async def test_layers_are_shared_by_copies() -> None:
    async with (
        Emulator(recordings=5, speed=0) as emu,
        emulator_client(emu, rate_limit=RateLimit(3, 60.0)) as client,
    ):
        copy = client.with_options(max_retries=1)  # the emulator knows one app only
        await client.recordings.list()
        await copy.recordings.list()
        assert client.rate_budget.remaining == copy.rate_budget.remaining == 1


async def test_processes_sharing_one_token_all_finish_without_many_429s() -> None:
    quota, window, processes = 50, 1.0, 3
    async with Emulator(recordings=300, speed=0, rate_limit=RateLimitRule(quota, window)) as emu:
        spec = {
            "token": emu.token,
            "account_id": emu.account_id,
            "app_id": emu.app_id,
            "base_url": emu.base_url,
            "per_page": 10,  # 30 pages each: 90 requests, about 2 windows
        }
        workers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests._rate_worker",
                json.dumps(spec),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(w.communicate() for w in workers)), timeout=60
        )
        windows = emu.rate_limit_windows()["default"]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-2000:]
        assert json.loads(out) == {"count": 300, "distinct": 300, "limit": quota}
    served = sum(w.served for w in windows)
    refused = sum(w.refused for w in windows)
    assert served == processes * 30
    assert all(w.served <= quota for w in windows)
    assert refused <= 2  # a stray collision at a window's edge, not a storm
