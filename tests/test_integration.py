"""The SDK end to end against the emulator: real HTTP, real lifecycle, real faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from realtimekit_async import (
    APIConnectionError,
    AudioCodec,
    AudioConfig,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    RateLimit,
    RealtimeKit,
    RecordingStatus,
    RetryPolicy,
    StartReasonType,
    StopReasonType,
    TrackLayer,
    TrackOutput,
    TrackOutputType,
)
from realtimekit_async.emulator import Emulator, FaultConfig

from ._support import emulator_client

FAST = RetryPolicy(max_retries=4, initial_delay=0.001, max_delay=0.01)


def client_for(emu: Emulator, **kwargs: Any) -> RealtimeKit:
    return emulator_client(emu, **kwargs)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(recordings=120, meetings=12, seed=11, speed=0) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[RealtimeKit]:
    async with client_for(emu) as rtk:
        yield rtk


async def test_full_lifecycle(emu: Emulator, client: RealtimeKit) -> None:
    started = await client.recordings.start(
        "standup", audio_config=AudioConfig(codec=AudioCodec.AAC), max_seconds=3600
    )
    assert started.status is RecordingStatus.INVOKED
    assert started.start_reason is not None
    assert started.start_reason.reason is StartReasonType.API_CALL
    assert (await client.recordings.get_active("standup")).id == started.id

    emu.advance(3)
    assert (await client.recordings.get(started.id)).status is RecordingStatus.RECORDING
    assert (await client.recordings.pause(started.id)).status is RecordingStatus.PAUSED
    emu.advance(30)  # paused time is not recorded
    assert (await client.recordings.resume(started.id)).status is RecordingStatus.RECORDING
    emu.advance(20)
    stopped = await client.recordings.stop(started.id)
    assert stopped.status is RecordingStatus.UPLOADING
    assert stopped.stop_reason is not None
    assert stopped.stop_reason.reason is StopReasonType.API_CALL
    with pytest.raises(NotFoundError):
        await client.recordings.get_active("standup")

    emu.advance(5)
    done = await client.recordings.get(started.id)
    assert done.status is RecordingStatus.UPLOADED
    assert done.recording_duration == 1 + 20  # 1 s before the pause, 20 s after it
    assert done.file_size is not None
    assert done.file_size > 0
    assert done.download_url is not None
    assert done.audio_download_url is not None
    assert done.download_url_expiry is not None
    # Presigned for 7 days from the upload (a few emulated seconds ago).
    assert (
        timedelta(days=7, seconds=-10) < done.download_url_expiry - emu.now() <= timedelta(days=7)
    )
    assert done.stopped_time is not None
    assert done.started_time is not None


async def test_short_recording_errors(emu: Emulator, client: RealtimeKit) -> None:
    rec = await client.recordings.start("quick")
    emu.advance(3)
    await client.recordings.stop(rec.id)
    emu.advance(10)
    assert (await client.recordings.get(rec.id)).status is RecordingStatus.ERRORED


async def test_max_seconds_auto_stop(emu: Emulator, client: RealtimeKit) -> None:
    rec = await client.recordings.start("capped", max_seconds=60)
    emu.advance(2 + 61)
    emu.advance(5)
    done = await client.recordings.get(rec.id)
    assert done.status is RecordingStatus.UPLOADED
    assert done.recording_duration == 60


async def test_one_active_recording_per_meeting(emu: Emulator, client: RealtimeKit) -> None:
    first = await client.recordings.start("busy")
    with pytest.raises(ConflictError) as info:
        await client.recordings.start("busy")
    assert info.value.status == 409
    second = await client.recordings.start("busy", allow_multiple_recordings=True)
    assert second.id != first.id
    assert emu.stats.starts_by_meeting["busy"] == 2


async def test_start_track(emu: Emulator, client: RealtimeKit) -> None:
    layers = {"default": TrackLayer(outputs=[TrackOutput(type=TrackOutputType.REALTIMEKIT_BUCKET)])}
    rec = await client.recordings.start_track("tracks", layers=layers, max_seconds=120)
    assert rec is not None
    assert rec.status is RecordingStatus.INVOKED
    assert (await client.recordings.get(rec.id)).id == rec.id


async def test_listing_matches_the_emulator(emu: Emulator, client: RealtimeKit) -> None:
    everything = [r async for r in client.recordings.list(per_page=7, prefetch=3)]
    assert sorted(r.id for r in everything) == sorted(emu.store.recordings)
    uploaded = [r async for r in client.recordings.list(status="UPLOADED", per_page=10)]
    assert uploaded
    assert {r.status for r in uploaded} == {RecordingStatus.UPLOADED}
    expected = sum(1 for r in everything if r.status is RecordingStatus.UPLOADED)
    assert len(uploaded) == expected
    meeting = everything[0].meeting
    assert meeting is not None
    mine = [r async for r in client.recordings.list(meeting_id=meeting.id)]
    assert mine
    assert all(r.meeting is not None and r.meeting.id == meeting.id for r in mine)


async def test_time_window_and_sort(emu: Emulator, client: RealtimeKit) -> None:
    asc = [r async for r in client.recordings.list(sort_order="ASC", per_page=50)]
    times = [r.invoked_time for r in asc]
    assert times == sorted(times)
    middle = asc[len(asc) // 2].invoked_time
    assert middle is not None
    later = [r async for r in client.recordings.list(start_time=middle)]
    assert later
    assert all(r.invoked_time is not None and r.invoked_time >= middle for r in later)


async def test_pagination_over_thousands() -> None:
    async with (
        Emulator(recordings=5000, meetings=300, seed=5, speed=0) as emu,
        client_for(emu) as rtk,
    ):
        ids = [r.id async for r in rtk.recordings.list(per_page=100)]
        assert len(ids) == 5000
        assert set(ids) == set(emu.store.recordings)
        assert emu.stats.requests["list_recordings"] == 50


async def test_bad_token(emu: Emulator) -> None:
    async with RealtimeKit(
        api_token="wrong", account_id=emu.account_id, app_id=emu.app_id, base_url=emu.base_url
    ) as rtk:
        with pytest.raises(AuthenticationError) as info:
            await rtk.recordings.get("x")
    assert info.value.code == 10000


async def test_bad_paging_is_rejected_by_the_server(emu: Emulator, client: RealtimeKit) -> None:
    # The SDK only sends sensible paging; a raw request shows the server's own check.
    from realtimekit_async import BadRequestError

    with pytest.raises(BadRequestError, match="per_page must be a number >= 0"):
        await client.recordings.list(extra_query=[("per_page", "-1")])


@pytest.mark.parametrize("prefetch", [1, 2, 8])
@pytest.mark.parametrize(("cap", "asked"), [(7, 20), (100, 250)])
async def test_a_server_capping_per_page_silently_loses_nothing(
    prefetch: int, cap: int, asked: int
) -> None:
    async with Emulator(
        recordings=230, speed=0, max_per_page=cap, default_per_page=min(cap, 20)
    ) as emu:
        expected = [
            r.id
            for r in sorted(
                emu.store.recordings.values(), key=lambda r: (r.invoked_ms, r.id), reverse=True
            )
        ]
        async with emulator_client(emu) as rtk:
            first = await rtk.recordings.list(per_page=asked)
            assert len(first.data) == cap  # the cap is silent: no error, fewer items
            got = [r.id async for r in rtk.recordings.list(per_page=asked, prefetch=prefetch)]
        assert got == expected
        assert emu.stats.requests["list_recordings"] <= 1 + -(-230 // cap) + prefetch


async def test_retries_through_injected_faults() -> None:
    faults = FaultConfig(
        seed=1, rate=0.3, kinds=("503", "429", "reset", "html", "500"), retry_after=0.01
    )
    patient = RetryPolicy(max_retries=10, initial_delay=0.001, max_delay=0.01)
    async with (
        Emulator(recordings=300, seed=2, speed=0, faults=faults) as emu,
        client_for(emu, max_retries=patient) as rtk,
    ):
        ids = [r.id async for r in rtk.recordings.list(per_page=20)]
        assert sorted(ids) == sorted(emu.store.recordings)
        assert sum(emu.stats.faults.values()) >= 5
        assert set(emu.stats.faults) == {"503", "429", "reset", "html", "500"}


async def test_start_is_not_retried_after_possible_processing() -> None:
    # A truncated answer means the start happened; retrying would start it twice.
    faults = FaultConfig(kinds=("truncate",), first=1, methods=("POST",))
    async with Emulator(speed=0, faults=faults) as emu, client_for(emu) as rtk:
        with pytest.raises(APIConnectionError):
            await rtk.recordings.start("once")
        assert emu.stats.starts_by_meeting["once"] == 1
        active = await rtk.recordings.get_active("once")  # what a careful caller does
        assert active.status is RecordingStatus.INVOKED
    assert emu.stats.duplicate_starts() == {}


async def test_start_is_retried_after_429() -> None:
    faults = FaultConfig(kinds=("429",), first=2, methods=("POST",), retry_after=0.01)
    async with Emulator(speed=0, faults=faults) as emu, client_for(emu) as rtk:
        rec = await rtk.recordings.start("after-429")
    assert emu.stats.faults["429"] == 2
    assert emu.stats.starts_by_meeting == {"after-429": 1}
    assert rec.status is RecordingStatus.INVOKED


async def test_client_rate_limit_keeps_under_the_servers() -> None:
    # One and a half windows' worth: without the client's limit the 11th request is a
    # 429, which max_retries=0 would raise. A short window keeps the test quick.
    async with (
        Emulator(recordings=50, speed=0, rate_limit=(10, 1.0)) as emu,
        client_for(emu, rate_limit=RateLimit(10, 1.0), max_retries=0) as rtk,
    ):
        for _ in range(15):
            await rtk.recordings.list(per_page=5)
    assert emu.stats.rate_limited == 0
    assert emu.stats.requests["list_recordings"] == 15


async def test_stop_whose_answer_was_lost_still_reports_the_stop() -> None:
    faults = FaultConfig(kinds=("truncate",), first=1, methods=("PUT",))
    async with Emulator(speed=0, faults=faults) as emu, client_for(emu) as rtk:
        rec = await rtk.recordings.start("lost-answer")
        emu.advance(30)
        stopped = await rtk.recordings.stop(rec.id)  # applied, answer cut, retry refused
        assert stopped.status is RecordingStatus.UPLOADING
        assert emu.stats.faults["truncate"] == 1
        assert emu.stats.requests["control_recording"] == 2
