"""Fault injection, rate limiting and latency as a client observes them."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from realtimekit_async.emulator import Emulator, FaultConfig, RateLimitRule
from realtimekit_async.emulator.pytest_plugin import EmulatorFactory

from ._support import auth, call, control, get_recording, start


async def test_429_fault_has_retry_after(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(faults=FaultConfig(first=1, kinds=("429",), retry_after=2))
    reply = await call(session, "GET", emu.recordings_url, emu=emu)
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "2"
    assert reply.body["success"] is False
    assert reply.body["errors"][0]["code"] == 971
    assert reply.body["result"] is None
    assert (await call(session, "GET", emu.recordings_url, emu=emu)).status == 200
    assert emu.stats.faults == {"429": 1}


async def test_status_faults_shapes(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(faults=FaultConfig(first=4, kinds=("500", "502", "503", "html")))
    r500 = await call(session, "GET", emu.recordings_url, emu=emu)
    assert r500.status == 500
    assert r500.body == {
        "success": False,
        "error": {"code": 500, "message": "Internal server error"},
    }
    r502 = await call(session, "GET", emu.recordings_url, emu=emu)
    assert r502.status == 502
    assert r502.body["error"]["code"] == 502
    r503 = await call(session, "GET", emu.recordings_url, emu=emu)
    assert r503.status == 503
    assert r503.body["errors"][0]["code"] == 10503
    html = await call(session, "GET", emu.recordings_url, emu=emu)
    assert html.status == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in html.body
    assert "cf-ray" in html.headers
    assert emu.stats.faults == {"500": 1, "502": 1, "503": 1, "html": 1}


async def test_faults_precede_the_handler(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(faults=FaultConfig(first=2, kinds=("503", "reset"), methods=("POST",)))
    reply = await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "m"})
    assert reply.status == 503
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "m"})
    assert emu.store.recordings == {}
    assert sum(emu.stats.starts_by_meeting.values()) == 0
    assert (await call(session, "GET", emu.recordings_url, emu=emu)).status == 200  # GET exempt
    await start(session, emu, "m")  # the schedule is exhausted
    assert emu.stats.starts_by_meeting == {"m": 1}


async def test_truncate_runs_the_handler_then_breaks_the_body(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(faults=FaultConfig(first=1, kinds=("truncate",)))
    with pytest.raises(aiohttp.ClientPayloadError):
        await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "m"})
    # The start happened: a blind retry now conflicts, the classic non-idempotent trap.
    assert len(emu.store.recordings) == 1
    assert emu.stats.starts_by_meeting == {"m": 1}
    retry = await call(session, "POST", emu.recordings_url, emu=emu, json={"meeting_id": "m"})
    assert retry.status == 409
    assert emu.stats.faults == {"truncate": 1}


async def test_slow_fault_delays_then_answers(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(faults=FaultConfig(first=2, kinds=("slow",), slow_seconds=0.3))
    with pytest.raises(asyncio.TimeoutError):
        await call(
            session,
            "GET",
            emu.recordings_url,
            emu=emu,
            timeout=aiohttp.ClientTimeout(total=0.1),
        )
    began = time.monotonic()
    reply = await call(session, "GET", emu.recordings_url, emu=emu)
    assert reply.status == 200
    assert time.monotonic() - began >= 0.29


async def test_every_k_schedule_over_http(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(faults=FaultConfig(every=3, kinds=("500",)))
    statuses = [(await call(session, "GET", emu.recordings_url, emu=emu)).status for _ in range(7)]
    assert statuses == [200, 200, 500, 200, 200, 500, 200]
    assert emu.stats.requests["list_recordings"] == 7


async def test_rate_schedule_is_reproducible(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    async def pattern(seed: int) -> list[int]:
        emu = await make_emu(faults=FaultConfig(seed=seed, rate=0.4, kinds=("503",)))
        return [(await call(session, "GET", emu.recordings_url, emu=emu)).status for _ in range(20)]

    first = await pattern(3)
    assert first == await pattern(3)
    assert 503 in first
    assert 200 in first


async def test_storage_faults(make_emu: EmulatorFactory, session: aiohttp.ClientSession) -> None:
    emu = await make_emu()
    rec = await start(session, emu, "m")
    emu.set_file_size(rec["id"], 100_000)
    emu.advance(10)
    await control(session, emu, rec["id"], "stop")
    emu.advance(3)
    url = (await get_recording(session, emu, rec["id"]))["download_url"]
    emu.faults = FaultConfig(first=2, kinds=("truncate", "502"), routes="storage")
    assert (await call(session, "GET", emu.recordings_url, emu=emu)).status == 200  # API spared
    async with session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "100000"
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    async with session.get(url) as resp:
        assert resp.status == 502
        assert "<Code>BadGateway</Code>" in await resp.text()
    async with session.get(url) as resp:
        assert resp.status == 200
        assert len(await resp.read()) == 100_000
    emu.faults = None
    assert emu.faults is None


async def test_rate_limit(make_emu: EmulatorFactory, session: aiohttp.ClientSession) -> None:
    emu = await make_emu(rate_limit=(3, 30.0))
    replies = [await call(session, "GET", emu.recordings_url, emu=emu) for _ in range(5)]
    assert [r.status for r in replies] == [200, 200, 200, 429, 429]
    assert [r.headers["Ratelimit"] for r in replies[:3]] == [
        '"default";r=2;t=30',
        '"default";r=1;t=30',
        '"default";r=0;t=30',
    ]
    assert {r.headers["Ratelimit-Policy"] for r in replies} == {'"default";q=3;w=30'}
    refused = replies[3]
    assert refused.body["errors"][0]["code"] == 971
    assert 29 <= int(refused.headers["Retry-After"]) <= 30
    reset = parsedate_to_datetime(refused.headers["X-RateLimit-Reset"])
    assert 28 <= (reset - datetime.now(UTC)).total_seconds() <= 31
    assert emu.stats.rate_limited == 2
    windows = emu.rate_limit_windows()["default"]
    assert [(w.served, w.refused) for w in windows] == [(3, 2)]
    # The public key on the origin root is not rate limited.
    assert (await call(session, "GET", emu.webhook_keys_url)).status == 200


async def test_rate_limit_layers_and_headers_on_errors(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    rules = (RateLimitRule(5, 10.0, "burst"), RateLimitRule(2, 60.0, "hourly"))
    emu = await make_emu(rate_limit=rules)
    missing = await call(session, "GET", f"{emu.recordings_url}/nope", emu=emu)
    assert missing.status == 404  # an error answer counts and carries the headers too
    assert missing.headers["Ratelimit"] == '"burst";r=4;t=10, "hourly";r=1;t=60'
    assert missing.headers["Ratelimit-Policy"] == '"burst";q=5;w=10, "hourly";q=2;w=60'
    assert (await call(session, "GET", emu.recordings_url, emu=emu)).status == 200
    refused = await call(session, "GET", emu.recordings_url, emu=emu)
    assert refused.status == 429  # the tighter layer is spent, the other is not
    assert 59 <= int(refused.headers["Retry-After"]) <= 60
    unauthorized = await call(session, "GET", emu.recordings_url)
    assert unauthorized.status == 401
    assert "Ratelimit" not in unauthorized.headers


async def test_rate_limit_legacy_headers(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(rate_limit=(2, 30.0), rate_limit_headers="legacy")
    ok = await call(session, "GET", emu.recordings_url, emu=emu)
    assert (ok.headers["X-RateLimit-Limit"], ok.headers["X-RateLimit-Remaining"]) == ("2", "1")
    assert "Ratelimit" not in ok.headers
    await call(session, "GET", emu.recordings_url, emu=emu)
    refused = await call(session, "GET", emu.recordings_url, emu=emu)
    assert refused.status == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert "Retry-After" in refused.headers
    assert "X-RateLimit-Reset" in refused.headers


async def test_rate_limit_window_resets(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await make_emu(rate_limit=(2, 0.2))
    for _ in range(2):
        assert (await call(session, "GET", emu.recordings_url, emu=emu)).status == 200
    assert (await call(session, "GET", emu.recordings_url, emu=emu)).status == 429
    await asyncio.sleep(0.25)
    fresh = await call(session, "GET", emu.recordings_url, emu=emu)
    assert fresh.status == 200
    assert fresh.headers["Ratelimit"] == '"default";r=1;t=1'  # whole seconds, rounded up


async def test_latency(make_emu: EmulatorFactory, session: aiohttp.ClientSession) -> None:
    emu = await make_emu(latency=0.15)
    began = time.monotonic()
    await call(session, "GET", emu.recordings_url, headers=auth(emu))
    assert time.monotonic() - began >= 0.15


async def test_soak_counts_expose_duplicate_starts(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    await start(session, emu, "a")
    await start(session, emu, "b")
    await start(session, emu, "b", allow_multiple_recordings=True)
    assert emu.stats.duplicate_starts() == {"b": 2}
    emu.reset_stats()
    assert emu.stats.starts_by_meeting == {}
