"""sync_recordings and ``realtimekit sync``: windows, cursor, the second walk, churn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from realtimekit_async import Recording, RetryPolicy, ValidationError
from realtimekit_async._cli import parse_duration
from realtimekit_async._export_plan import (
    CURSOR_NAME,
    DEFAULT_SYNC_LAG,
    RETENTION,
    encode_cursor,
    next_cursor,
    parse_cursor,
    sync_since,
)
from realtimekit_async.emulator import Emulator, FaultConfig
from realtimekit_async.export import (
    MANIFEST_NAME,
    _walk_twice,
    export_one,
    read_manifest,
    sync_recordings,
)

from ._export_support import emulated, expected_files, manifest_lines, uploaded
from ._moto_support import settings_for
from ._support import cli
from ._support import emulator_flags as flags

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

FAST = RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.002)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


# -- the pure decisions ------------------------------------------------------------------------


def test_the_first_run_lists_the_whole_retention() -> None:
    assert sync_since(None, NOW, DEFAULT_SYNC_LAG) == NOW - RETENTION


def test_a_later_run_lists_from_the_cursor_minus_the_lag_within_retention() -> None:
    cursor = NOW - timedelta(hours=2)
    assert sync_since(cursor, NOW, timedelta(hours=1)) == NOW - timedelta(hours=3)
    assert sync_since(NOW - timedelta(days=30), NOW, timedelta(0)) == NOW - RETENTION


def test_the_cursor_moves_forward_only_after_a_run_without_failures() -> None:
    old, new = NOW - timedelta(hours=1), NOW
    assert next_cursor(old, new, ok=True) == new
    assert next_cursor(old, new, ok=False) == old
    assert next_cursor(new, old, ok=True) == new  # a slower concurrent run cannot undo it
    assert next_cursor(None, new, ok=False) is None


@pytest.mark.parametrize("data", [None, b"", b"{", b'{"cursor": 3}', b'{"cursor": "2026-03-10"}'])
def test_an_unreadable_cursor_is_no_cursor(data: bytes | None) -> None:
    assert parse_cursor(data) is None


def test_a_cursor_round_trips() -> None:
    assert parse_cursor(encode_cursor(NOW)) == NOW


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1.5d", 129600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


async def test_the_second_walk_yields_what_the_first_missed() -> None:
    class Rec:
        def __init__(self, rid: str) -> None:
            self.id = rid

    walks = [["a", "c"], ["a", "b", "c"]]

    async def walk() -> AsyncIterator[Any]:
        for rid in walks.pop(0):
            yield Rec(rid)

    assert [r.id async for r in _walk_twice(walk)] == ["a", "c", "b"]
    assert walks == []


# -- against the emulator --------------------------------------------------------------------------


def retained_files(emu: Emulator) -> dict[tuple[str, str], int]:
    """The downloadable files of recordings invoked within the retention (older seeded
    ones would be gone on the real service)."""
    oldest = (emu.now() - RETENTION).timestamp() * 1000
    return {
        key: size
        for key, size in expected_files(emu).items()
        if emu.store.recordings[key[0]].invoked_ms >= oldest
    }


async def test_sync_under_churn_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Several runs while recordings start, stop and upload, also during a run."""
    async with emulated(recordings=30, meetings=5) as (emu, client):
        running: list[Recording] = []

        async def churn(step: int) -> None:
            for i in range(3):
                running.append(await client.recordings.start(f"m-churn-{step}-{i}"))
                await asyncio.sleep(0)
            emu.advance(20)
            for rec in running[:-2]:  # the newest two keep recording into the next run
                await client.recordings.stop(rec.id)
            del running[:-2]
            emu.advance(10)

        reports = []
        for step in range(4):
            task = asyncio.create_task(churn(step))
            reports.append(await sync_recordings(client, tmp_path))
            await task
        for rec in running:
            await client.recordings.stop(rec.id)
        emu.advance(60)
        reports.append(await sync_recordings(client, tmp_path))
        caught_up = await sync_recordings(client, tmp_path)
        files = retained_files(emu)

    assert all(r.caught_up for r in reports)
    lines = Counter((line["recording_id"], line["kind"]) for line in manifest_lines(tmp_path))
    assert set(lines) == set(files)  # 0 lost
    assert set(lines.values()) == {1}  # 0 duplicated, each once in the manifest
    assert caught_up.export.exported == ()
    assert reports[0].since < reports[-1].since  # later runs list a trailing window only
    assert parse_cursor((tmp_path / CURSOR_NAME).read_bytes()) == caught_up.cursor


async def test_a_failed_file_keeps_the_cursor_and_the_next_run_gets_it(tmp_path: Path) -> None:
    async with emulated(recordings=6, meetings=2) as (emu, client):
        first = await sync_recordings(client, tmp_path)
        emu.advance(3600)
        rec = await uploaded(emu, client, "m-late")
        emu.faults = FaultConfig(routes="storage", rate=1.0, kinds=("500",))
        failed = await sync_recordings(client, tmp_path, max_retries=FAST)
        emu.faults = None
        emu.advance(3600)
        recovered = await sync_recordings(client, tmp_path)
        files = retained_files(emu)
    assert first.cursor is not None
    assert not failed.caught_up
    assert {f.recording_id for f in failed.export.failed} == {rec.id}
    assert failed.cursor == first.cursor  # unchanged: the failure is listed again
    assert recovered.caught_up
    assert {e.recording_id for e in recovered.export.exported} == {rec.id}
    assert recovered.cursor is not None
    assert recovered.cursor > first.cursor
    lines = Counter((line["recording_id"], line["kind"]) for line in manifest_lines(tmp_path))
    assert set(lines) == set(files)
    assert set(lines.values()) == {1}


async def test_bad_lag_is_refused_before_any_request(tmp_path: Path) -> None:
    async with emulated() as (_, client):
        with pytest.raises(ValidationError, match="lag"):
            await sync_recordings(client, tmp_path, lag=timedelta(hours=-1))
    assert not (tmp_path / MANIFEST_NAME).exists()


async def test_sync_into_a_bucket_keeps_its_cursor_there(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    dest = f"s3://{bucket}/sync"
    async with emulated(recordings=8, meetings=2) as (emu, client):
        first = await sync_recordings(client, dest, s3=settings_for(moto_url))
        served = len(emu.storage_requests)
        again = await sync_recordings(client, dest, s3=settings_for(moto_url))
        assert len(emu.storage_requests) == served
        files = retained_files(emu)
    entries = await read_manifest(dest, settings_for(moto_url))
    assert sorted((e.recording_id, e.kind.value) for e in entries) == sorted(files)
    assert len(first.export.exported) == len(files)
    assert again.export.exported == ()
    answer = await raw.get_object(Bucket=bucket, Key=f"sync/{CURSOR_NAME}")
    async with answer["Body"] as body:
        assert parse_cursor(await body.read()) == again.cursor


# -- the command line ------------------------------------------------------------------------------


async def test_the_cli_syncs_once_and_exits_0_when_caught_up(tmp_path: Path) -> None:
    async with emulated(recordings=6, meetings=2) as (emu, _):
        code, out, _ = await cli("sync", "--dest", str(tmp_path), "--lag", "2h", *flags(emu))
        files = retained_files(emu)
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["exported", str(len(files))]
    assert len(manifest_lines(tmp_path)) == len(files)


async def test_the_cli_repeats_until_sigterm(tmp_path: Path) -> None:
    async with emulated(recordings=6, meetings=2) as (emu, client):
        script = "import sys; from realtimekit_async._cli import main; sys.exit(main(sys.argv[1:]))"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            "sync",
            "--dest",
            str(tmp_path),
            "--every",
            "0.2s",
            "--json",
            *flags(emu),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        try:
            runs = [json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))]
            rec = await uploaded(emu, client, "m-between-runs")
            while not any(e["recording_id"] == rec.id for e in runs[-1]["export"]["exported"]):
                runs.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), 30)))
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        files = retained_files(emu)
    assert code == 0
    assert len(runs) >= 2
    lines = Counter((line["recording_id"], line["kind"]) for line in manifest_lines(tmp_path))
    assert set(lines) == set(files)
    assert set(lines.values()) == {1}
    assert (tmp_path / MANIFEST_NAME).exists()


# -- webhook-driven ------------------------------------------------------------------------------


async def test_export_one_and_the_sync_skip_each_others_files(tmp_path: Path) -> None:
    async with emulated(recordings=6, meetings=2) as (emu, client):
        rec = await uploaded(emu, client, "m-webhook")
        one = await export_one(client, rec.id, tmp_path)
        served = len(emu.storage_requests)
        synced = await sync_recordings(client, tmp_path)
        again = await export_one(client, await client.recordings.get(rec.id), tmp_path)
        assert len(emu.storage_requests) == served + len(synced.export.exported) * 1
        files = retained_files(emu)
    assert {e.recording_id for e in one.exported} == {rec.id}
    assert rec.id not in {e.recording_id for e in synced.export.exported}
    assert {e.path for e in synced.export.skipped} >= {e.path for e in one.exported}
    assert again.exported == ()
    assert {e.path for e in again.skipped} == {e.path for e in one.exported}
    lines = Counter((line["recording_id"], line["kind"]) for line in manifest_lines(tmp_path))
    assert set(lines) == set(files)
    assert set(lines.values()) == {1}


async def test_export_one_into_a_bucket_is_skipped_by_the_sync(moto_url: str, bucket: str) -> None:
    dest = f"s3://{bucket}/hooks"
    async with emulated(recordings=4, meetings=1) as (emu, client):
        rec = await uploaded(emu, client, "m-webhook")
        one = await export_one(client, rec.id, dest, s3=settings_for(moto_url))
        synced = await sync_recordings(client, dest, s3=settings_for(moto_url))
    assert [e.recording_id for e in one.exported] == [rec.id] * len(one.exported)
    assert rec.id not in {e.recording_id for e in synced.export.exported}
    entries = await read_manifest(dest, settings_for(moto_url))
    assert Counter(e.recording_id for e in entries)[rec.id] == len(one.exported)


async def test_export_one_of_a_recording_not_uploaded_yet_ignores_it(tmp_path: Path) -> None:
    async with emulated() as (_, client):
        rec = await client.recordings.start("m-early")
        report = await export_one(client, rec, tmp_path)
    assert report.exported == ()
    assert [i.recording_id for i in report.ignored] == [rec.id]
