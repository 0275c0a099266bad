"""The pytest plugin fixtures, serve(), construction errors and seeding speed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from realtimekit_async.emulator import DEFAULT_TOKEN, Emulator, serve
from realtimekit_async.emulator._parsing import parse_list_query
from realtimekit_async.emulator.pytest_plugin import EmulatorFactory

from ._support import call, start


async def test_default_fixture(
    realtimekit_emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    emu = realtimekit_emulator
    assert emu.base_url.startswith("http://127.0.0.1:")
    assert emu.base_url.endswith("/client/v4")
    assert emu.token == DEFAULT_TOKEN
    assert emu.recordings_url == (
        f"{emu.base_url}/accounts/{emu.account_id}/realtime/kit/{emu.app_id}/recordings"
    )
    reply = await call(session, "GET", emu.recordings_url, emu=emu)
    assert reply.body == {
        "success": True,
        "data": [],
        "paging": {"start_offset": 1, "end_offset": 0, "total_count": 0},
    }
    # Default speed is real time: a start becomes RECORDING after ~2 s, not instantly.
    rec = await start(session, emu, "m")
    assert emu.store.recordings[rec["id"]].status == "INVOKED"


async def test_factory_fixture_custom_options(
    realtimekit_emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    emu = await realtimekit_emulator_factory(token="t0k", account_id="acc", recordings=5)
    assert emu.account_id == "acc"
    reply = await call(session, "GET", emu.recordings_url, headers={"Authorization": "Bearer t0k"})
    assert reply.status == 200
    assert reply.body["paging"]["total_count"] == 5


async def test_serve_runs_until_cancelled(session: aiohttp.ClientSession) -> None:
    lines: list[str] = []
    task = asyncio.create_task(serve(port=0, announce=lines.append, recordings=3, speed=0))
    for _ in range(200):
        if len(lines) >= 7:
            break
        await asyncio.sleep(0.01)
    base = lines[0].split()[-1]
    assert base.endswith("/client/v4")
    token = next(line.split()[-1] for line in lines if "token" in line)
    account = next(line.split()[-1] for line in lines if "account_id" in line)
    app = next(line.split()[-1] for line in lines if "app_id" in line)
    url = f"{base}/accounts/{account}/realtime/kit/{app}/recordings"
    reply = await call(session, "GET", url, headers={"Authorization": f"Bearer {token}"})
    assert reply.body["paging"]["total_count"] == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(session, "GET", url)


async def test_addresses_need_a_started_emulator() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.base_url
    await emu.close()  # closing an unstarted emulator is harmless


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_per_page": 0},
        {"default_per_page": 150},
        {"webhook_statuses": ("DONE",)},
        {"webhook_urls": "http://x"},
        {"speed": -1.0},
        {"rate_limit": (0, 1.0)},
        {"rate_limit_headers": "draft"},
    ],
)
def test_invalid_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any validation message
        Emulator(**kwargs)  # type: ignore[arg-type]


def test_seeding_100k_is_listable() -> None:
    # How fast seeding is belongs to the benchmarks (scale workload), not to a timed test.
    emu = Emulator(recordings=100_000, seed=9, speed=0)
    assert len(emu.store.recordings) == 100_000
    query = parse_list_query([("status", "UPLOADED"), ("per_page", "100"), ("page_no", "300")])
    items, window = emu.store.list_page(query)
    assert len(items) == 100
    assert window.start_offset == 29_901
    assert window.total_count > 80_000
