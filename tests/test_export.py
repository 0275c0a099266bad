"""export_recordings against the emulator: completeness, resume, refresh, safety, memory."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from realtimekit_async import (
    AuthenticationError,
    RateLimit,
    RealtimeKit,
    Recording,
    ValidationError,
)
from realtimekit_async._export_plan import (
    LOCK_NAME,
    PART_STATE_SUFFIX,
    PART_SUFFIX,
    PartState,
    encode_part_state,
    file_name,
)
from realtimekit_async.emulator import (
    Emulator,
    FaultConfig,
    expected_file_sha256,
    iter_file_bytes,
)
from realtimekit_async.export import (
    MANIFEST_NAME,
    ExportProgress,
    FileKind,
    export_recordings,
)

from ._export_support import (
    FAST,
    HOSTILE_NAMES,
    MiB,
    assert_dest_matches,
    emulated,
    expected_files,
    files_only,
    manifest_lines,
    names_in,
    plant_hostile_names,
    sha256_of,
    storage_requests_for,
    tree,
    uploaded,
)


def renew_urls_on_get(
    monkeypatch: pytest.MonkeyPatch, emu: Emulator, client: RealtimeKit
) -> list[str]:
    """Make ``recordings.get`` hand out freshly signed URLs, as a re-presigning API would.

    The emulator keeps one expiry per recording; moving it forward just before the
    real GET is answered stands in for the API signing a new URL on request.
    """
    calls: list[str] = []
    real_get = client.recordings.get

    async def get(recording_id: str, *, app_id: str | None = None) -> Recording:
        calls.append(recording_id)
        emu.store.recordings[recording_id].expiry_ms = (emu.clock.now_ms() // 1000 + 86400) * 1000
        return await real_get(recording_id, app_id=app_id)

    monkeypatch.setattr(client.recordings, "get", get)
    return calls


# -- a full export under storage faults ------------------------------------------------------


async def test_export_under_storage_faults_is_complete_and_byte_exact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="realtimekit_async")
    faults = FaultConfig(
        rate=0.15,
        kinds=("reset", "500", "502", "503", "429", "truncate", "html"),
        routes="storage",
        seed=5,
        retry_after=0.01,
    )
    async with emulated(recordings=300, meetings=40, faults=faults) as (emu, client):
        files = expected_files(emu)
        events: list[ExportProgress] = []
        report = await export_recordings(
            client, tmp_path, concurrency=6, max_retries=FAST, on_progress=events.append
        )

        assert report.failed == ()
        assert {(e.recording_id, str(e.kind)) for e in report.exported} == set(files)
        assert len(report.exported) == len(files) > 250
        assert_dest_matches(tmp_path, files)
        # Every kind of fault was really injected, and truncated bodies were resumed.
        assert set(emu.stats.faults) == {"reset", "500", "502", "503", "429", "truncate", "html"}
        assert any("Range" in r.headers for r in emu.storage_requests)
        assert report.bytes >= sum(files.values())
        # The API token never reaches the storage host; signatures never reach the logs.
        assert emu.storage_requests
        assert not any("Authorization" in r.headers for r in emu.storage_requests)
        assert "X-Signature" not in caplog.text
        # UPLOADED recordings without bucket URLs are listed as ignored, not failed.
        no_url = {
            r.id
            for r in emu.store.recordings.values()
            if r.status == "UPLOADED" and not r.expiry_ms
        }
        assert no_url
        assert {i.recording_id for i in report.ignored} == no_url
        # Progress ends complete; the totals only ever grow.
        last = events[-1]
        assert (last.files_done, last.files_total) == (len(files), len(files))
        assert last.bytes_done == last.bytes_total == sum(files.values())
        totals = [e.files_total for e in events]
        assert totals == sorted(totals)


async def test_stalled_download_times_out_and_is_retried(tmp_path: Path) -> None:
    stall = FaultConfig(first=1, kinds=("slow",), routes="storage", slow_seconds=0.3)
    async with emulated(faults=stall) as (emu, client):
        await uploaded(emu, client, "meeting-stall")
        emu.reset_stats()
        report = await export_recordings(client, tmp_path, read_timeout=0.05, max_retries=FAST)
        assert emu.stats.faults["slow"] == 1
        assert len(emu.storage_requests) == 2
        assert report.failed == ()
        assert_dest_matches(tmp_path, expected_files(emu))


async def test_rerun_downloads_nothing(tmp_path: Path) -> None:
    async with emulated(recordings=60, meetings=10) as (emu, client):
        first = await export_recordings(client, tmp_path)
        emu.reset_stats()
        second = await export_recordings(client, tmp_path)
        assert len(first.exported) == len(expected_files(emu)) > 0
        assert second.exported == ()
        assert {(e.recording_id, e.kind) for e in second.skipped} == {
            (e.recording_id, e.kind) for e in first.exported
        }
        assert emu.storage_requests == []
        assert second.bytes == 0
        assert len(manifest_lines(tmp_path)) == len(first.exported)


# -- interruption and resume ---------------------------------------------------------------------


def export_tasks() -> set[asyncio.Task[Any]]:
    """Tasks running SDK code (not the emulator's server tasks)."""

    def ours(task: asyncio.Task[Any]) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        return "realtimekit_async" in filename and "emulator" not in filename

    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and ours(t)}


async def test_interrupted_export_resumes_without_refetching(tmp_path: Path) -> None:
    async with emulated(recordings=40, meetings=8) as (emu, client):
        listed = [r async for r in client.recordings.list(status="UPLOADED") if r.download_url]
        big = listed[6]
        emu.set_file_size(big.id, 3 * MiB)
        big_name = file_name(big.id, big.output_file_name, FileKind.VIDEO)
        big_events = 0
        done_at_cancel = -1

        def cancel_inside_big_file(event: ExportProgress) -> None:
            nonlocal big_events, done_at_cancel
            if event.path == big_name:
                big_events += 1
                if big_events == 2:  # the first chunk is on disk
                    done_at_cancel = event.files_done
                    task.cancel()

        task = asyncio.create_task(
            export_recordings(client, tmp_path, concurrency=1, on_progress=cancel_inside_big_file)
        )
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await asyncio.sleep(0)
        assert export_tasks() == set()

        # Only complete files are in place, each in the manifest; the big one is a .part.
        assert done_at_cancel >= 6
        part = tmp_path / (big_name + PART_SUFFIX)
        assert not (tmp_path / big_name).exists()
        kept = part.stat().st_size
        assert 0 < kept < 3 * MiB
        finished = {(line["recording_id"], line["kind"]) for line in manifest_lines(tmp_path)}
        assert len(finished) >= done_at_cancel
        state = tmp_path / (big_name + PART_STATE_SUFFIX)
        finals = names_in(tmp_path) - {MANIFEST_NAME, LOCK_NAME, part.name, state.name}
        assert finals == {line["path"] for line in manifest_lines(tmp_path)}

        emu.reset_stats()
        report = await export_recordings(client, tmp_path)
        assert report.failed == ()
        assert {(e.recording_id, str(e.kind)) for e in report.skipped} == finished
        requested = {tuple(r.path.split("/")[2:4]) for r in emu.storage_requests}
        assert not requested & finished
        (big_request,) = storage_requests_for(emu, big.id)
        assert big_request.headers["Range"] == f"bytes={kept}-"
        assert (
            report.bytes
            == sum(expected_files(emu).values()) - sum(e.bytes for e in report.skipped) - kept
        )
        assert_dest_matches(tmp_path, expected_files(emu))
        assert not part.exists()
        assert not state.exists()


async def etag_of(client: RealtimeKit, rec: Recording) -> str:
    assert rec.download_url is not None
    async with client.session.head(rec.download_url) as response:
        return response.headers["ETag"]


def plant_part(
    dest: Path, name: str, data: bytes, *, etag: str, total: int, hashed: bytes | None = None
) -> None:
    """A ``.part`` holding ``data`` and a state file vouching for ``hashed`` (default: data)."""
    (dest / (name + PART_SUFFIX)).write_bytes(data)
    digest = hashlib.sha256(data if hashed is None else hashed).hexdigest()
    state = PartState(etag=etag, last_modified=None, total=total, size=len(data), sha256=digest)
    (dest / (name + PART_STATE_SUFFIX)).write_bytes(encode_part_state(state))


async def test_part_file_is_resumed_with_range_and_rehashed(tmp_path: Path) -> None:
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "meeting-part", size=200_000)
        name = file_name(rec.id, rec.output_file_name, FileKind.VIDEO)
        prefix = b"".join(iter_file_bytes(rec.id, "video", 0, 123_456))
        etag = await etag_of(client, rec)
        plant_part(tmp_path, name, prefix, etag=etag, total=200_000)
        emu.reset_stats()

        report = await export_recordings(client, tmp_path, meeting_id="meeting-part")

        (request,) = emu.storage_requests
        assert request.headers["Range"] == "bytes=123456-"
        assert request.headers["If-Range"] == etag
        assert report.bytes == 200_000 - 123_456
        (entry,) = report.exported
        assert entry.sha256 == expected_file_sha256(rec.id, "video", 200_000)
        assert_dest_matches(tmp_path, expected_files(emu))


@pytest.mark.parametrize(
    "damage",
    ["no state file", "bytes changed since", "If-Range no longer matches"],
)
async def test_part_file_that_is_not_a_prefix_is_restarted(tmp_path: Path, damage: str) -> None:
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "meeting-part", size=50_000)
        name = file_name(rec.id, rec.output_file_name, FileKind.VIDEO)
        prefix = b"".join(iter_file_bytes(rec.id, "video", 0, 20_000))
        wrong = b"\0" * 20_000  # not what the file starts with
        etag = await etag_of(client, rec)
        if damage == "no state file":
            (tmp_path / (name + PART_SUFFIX)).write_bytes(wrong)
        elif damage == "bytes changed since":
            plant_part(tmp_path, name, wrong, etag=etag, total=50_000, hashed=prefix)
        else:  # the state matches the .part, but it was started from another version
            plant_part(tmp_path, name, wrong, etag='"an-older-version"', total=50_000)
        emu.reset_stats()

        report = await export_recordings(client, tmp_path, meeting_id="meeting-part")

        requests = emu.storage_requests
        if damage == "If-Range no longer matches":  # the server sends it all: 200
            assert [r.headers.get("If-Range") for r in requests] == ['"an-older-version"']
        else:
            assert ["Range" in r.headers for r in requests] == [False]
        assert emu.stats.statuses[206] == 0
        (entry,) = report.exported
        assert entry.sha256 == expected_file_sha256(rec.id, "video", 50_000)
        assert_dest_matches(tmp_path, expected_files(emu))


async def test_part_file_already_full_size_is_restarted_after_416(tmp_path: Path) -> None:
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "meeting-416", size=5_000)
        name = file_name(rec.id, rec.output_file_name, FileKind.VIDEO)
        etag = await etag_of(client, rec)
        plant_part(tmp_path, name, b"\0" * 5_000, etag=etag, total=5_000)
        emu.reset_stats()

        report = await export_recordings(client, tmp_path, meeting_id="meeting-416")

        first, second = emu.storage_requests
        assert first.headers["Range"] == "bytes=5000-"
        assert "Range" not in second.headers
        assert emu.stats.statuses[416] == 1
        assert report.exported[0].sha256 == expected_file_sha256(rec.id, "video", 5_000)
        assert_dest_matches(tmp_path, expected_files(emu))


# -- manifest reconciliation ------------------------------------------------------------------------


async def test_rerun_reconciles_with_the_manifest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with emulated(recordings=30, meetings=6) as (emu, client):
        first = await export_recordings(client, tmp_path)
        missing, shrunk, *rest = first.exported
        (tmp_path / missing.path).unlink()
        with (tmp_path / shrunk.path).open("r+b") as f:
            f.truncate(shrunk.bytes - 1)
        with (tmp_path / MANIFEST_NAME).open("ab") as f:
            f.write(b'{"recording_id": "torn by a cra')  # a crash mid-append
        emu.reset_stats()

        second = await export_recordings(client, tmp_path)

        assert {e.path for e in second.exported} == {missing.path, shrunk.path}
        assert len(second.skipped) == len(rest)
        assert {r.path.split("/")[2] for r in emu.storage_requests} == {
            missing.recording_id,
            shrunk.recording_id,
        }
        # The torn line was cut off (and reported); the lines after it are intact.
        assert "torn line" in caplog.text
        raw = (tmp_path / MANIFEST_NAME).read_bytes().splitlines()
        assert b"torn by a cra" not in b"".join(raw)
        tail = [json.loads(line) for line in raw[len(first.exported) :]]
        assert sorted(t["path"] for t in tail) == sorted([missing.path, shrunk.path])
        for line in tail:
            assert (tmp_path / line["path"]).stat().st_size == line["bytes"]


# -- URL expiry -------------------------------------------------------------------------------------


async def test_expired_url_is_refreshed_before_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with emulated(url_ttl=100) as (emu, client):
        rec = await uploaded(emu, client, "meeting-exp")
        emu.advance(200)  # the listed URL is dead on the storage host now
        calls = renew_urls_on_get(monkeypatch, emu, client)
        emu.reset_stats()

        report = await export_recordings(
            client, tmp_path, meeting_id="meeting-exp", url_expiry_margin=300
        )

        assert calls == [rec.id]
        assert emu.stats.requests["get_recording"] == 1
        assert emu.stats.statuses[403] == 0  # the stale URL was never tried
        (request,) = emu.storage_requests
        expiry = emu.store.recordings[rec.id].expiry_ms
        assert expiry is not None
        assert f"X-Expires={expiry // 1000}" in request.query_string
        assert report.failed == ()
        assert_dest_matches(tmp_path, expected_files(emu))


async def test_expiry_is_judged_on_the_servers_clock(tmp_path: Path) -> None:
    # The server's clock is eight days behind ours: by our clock the URL died long
    # ago, by the server's (the one that matters) it is fresh.
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    async with emulated(url_ttl=3600, start_time=eight_days_ago) as (emu, client):
        await uploaded(emu, client, "meeting-skew")
        emu.reset_stats()

        report = await export_recordings(client, tmp_path, meeting_id="meeting-skew")

        assert emu.stats.requests["get_recording"] == 0  # no needless refresh
        assert report.failed == ()
        assert report.expired == ()
        assert_dest_matches(tmp_path, expected_files(emu))


async def test_url_expired_by_the_servers_clock_is_refreshed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with emulated(url_ttl=86400) as (emu, client):
        rec = await uploaded(emu, client, "meeting-403")
        emu.advance(2 * 86400)  # alive by our clock, dead by the server's
        calls = renew_urls_on_get(monkeypatch, emu, client)
        emu.reset_stats()

        report = await export_recordings(client, tmp_path, meeting_id="meeting-403")

        assert calls == [rec.id]
        assert [r.path for r in emu.storage_requests] == [f"/files/{rec.id}/video"]
        assert emu.stats.statuses[403] == 0
        assert report.failed == ()
        assert_dest_matches(tmp_path, expected_files(emu))


async def test_url_still_expired_after_a_refresh_is_reported_expired(tmp_path: Path) -> None:
    async with emulated(url_ttl=86400) as (emu, client):
        rec = await uploaded(emu, client, "meeting-gone")
        emu.advance(2 * 86400)
        emu.reset_stats()
        events: list[ExportProgress] = []

        report = await export_recordings(
            client, tmp_path, meeting_id="meeting-gone", on_progress=events.append
        )

        assert emu.stats.requests["get_recording"] == 1
        assert emu.storage_requests == []
        assert report.failed == ()
        (expired,) = report.expired
        assert (expired.recording_id, expired.kind) == (rec.id, FileKind.VIDEO)
        assert expired.expiry == rec.download_url_expiry
        assert report.ok
        assert all(e.files_total == 0 for e in events)  # nothing to fetch, nothing counted


# -- hostile names ----------------------------------------------------------------------------------


async def test_hostile_file_names_stay_inside_dest(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "dest"
    async with emulated(recordings=40, meetings=8) as (emu, client):
        targets = plant_hostile_names(emu)

        report = await export_recordings(client, dest)

        assert report.failed == ()
        assert_dest_matches(dest, expected_files(emu))
        # Nothing was written anywhere but directly inside dest.
        assert tree(tmp_path) == {"out", "out/dest"} | {f"out/dest/{n}" for n in names_in(dest)}
        assert files_only(dest)
        names = [e.path for e in report.exported if e.recording_id in targets]
        assert len(names) == len(set(names)) >= len(HOSTILE_NAMES)
        assert all(len(n) <= 180 for n in names)


# -- security and scheduling ---------------------------------------------------------------------


async def test_session_with_default_authorization_is_refused(tmp_path: Path) -> None:
    async with (
        Emulator(speed=0) as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {emu.token}"}) as session,
    ):
        client = RealtimeKit(
            api_token=emu.token,
            account_id=emu.account_id,
            app_id=emu.app_id,
            base_url=emu.base_url,
            session=session,
        )
        with pytest.raises(ValidationError, match="Authorization"):
            await export_recordings(client, tmp_path)
        assert not tmp_path.joinpath(MANIFEST_NAME).exists()


async def test_listing_errors_raise_as_themselves(tmp_path: Path) -> None:
    async with (
        Emulator(speed=0) as emu,
        RealtimeKit(
            api_token="wrong", account_id=emu.account_id, app_id=emu.app_id, base_url=emu.base_url
        ) as client,
    ):
        with pytest.raises(AuthenticationError):
            await export_recordings(client, tmp_path)
        assert export_tasks() == set()


async def test_downloads_do_not_use_the_api_rate_limiter(tmp_path: Path) -> None:
    async with emulated(recordings=30, meetings=6) as (emu, _):
        async with RealtimeKit(
            api_token=emu.token,
            account_id=emu.account_id,
            app_id=emu.app_id,
            base_url=emu.base_url,
            rate_limit=RateLimit(max_requests=2, period=3600),  # room for the listing only
        ) as client:
            async with asyncio.timeout(20):
                report = await export_recordings(client, tmp_path)
        assert len(report.exported) == len(expected_files(emu)) > 10
        assert emu.stats.requests["list_recordings"] == 1


async def test_concurrency_bounds_parallel_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with emulated(recordings=30, meetings=6, latency=0.02) as (_emu, client):
        session = client.session
        real_get = session.get
        in_flight = peak = 0

        @contextlib.asynccontextmanager
        async def counting_get(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                async with real_get(*args, **kwargs) as response:
                    yield response
            finally:
                in_flight -= 1

        monkeypatch.setattr(session, "get", counting_get)
        report = await export_recordings(client, tmp_path, concurrency=3)
        assert len(report.exported) > 10
        assert peak == 3


async def test_non_uploaded_recordings_are_ignored(tmp_path: Path) -> None:
    async with emulated(recordings=120, meetings=10) as (emu, client):
        report = await export_recordings(client, tmp_path, status=None, include_audio=False)
        statuses = Counter(str(i.status) for i in report.ignored)
        assert statuses["ERRORED"] > 0
        assert all(e.kind is FileKind.VIDEO for e in report.exported)
        errored = {r.id for r in emu.store.recordings.values() if r.status == "ERRORED"}
        assert errored <= {i.recording_id for i in report.ignored}
        assert not errored & {e.recording_id for e in report.exported}


async def test_bad_arguments_fail_before_any_request(tmp_path: Path) -> None:
    async with emulated() as (emu, client):
        bad: list[dict[str, Any]] = [
            {"concurrency": 0},
            {"concurrency": True},
            {"url_expiry_margin": -1},
            {"read_timeout": 0},
            {"status": [None]},
        ]
        for kwargs in bad:
            with pytest.raises(ValidationError):
                await export_recordings(client, tmp_path, **kwargs)
        assert sum(emu.stats.requests.values()) == 0


# -- memory ----------------------------------------------------------------------------------------


async def test_memory_stays_flat_on_a_large_file(tmp_path: Path) -> None:
    size = 256 * MiB
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "meeting-big", size=size)
        tracemalloc.start()
        try:
            report = await export_recordings(client, tmp_path, meeting_id="meeting-big")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        (entry,) = report.exported
        assert entry.bytes == size
        assert peak < 32 * MiB  # measured ~3 MiB, emulator included
        assert entry.sha256 == expected_file_sha256(rec.id, "video", size)
        assert sha256_of(tmp_path / entry.path) == entry.sha256
