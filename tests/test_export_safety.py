"""export_recordings and the destination: planted links and FIFOs, a second run, a full disk.

Every test plants something in ``dest`` (or holds its lock) and checks the bytes
on disk afterwards, inside ``dest`` and outside it.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import logging
import os
from pathlib import Path

import pytest

from realtimekit_async import DestinationError, DestinationLockedError, ExportError
from realtimekit_async import export as export_module
from realtimekit_async._export_plan import (
    CURSOR_NAME,
    LOCK_NAME,
    PART_SUFFIX,
    FileKind,
    file_name,
)
from realtimekit_async.emulator import Emulator
from realtimekit_async.export import (
    MANIFEST_NAME,
    ExportProgress,
    _ManifestWriter,
    export_recordings,
    sync_recordings,
)

from ._export_support import (
    assert_dest_matches,
    emulated,
    expected_files,
    manifest_lines,
    names_in,
    sha256_of,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symlinks, FIFOs and flock")

OUTSIDE = b"precious bytes outside dest\n"


def first_video_name(emu: Emulator) -> tuple[str, str]:
    """The (recording id, file name) of one exportable video."""
    rec = next(r for r in emu.store.recordings.values() if emu.file_size(r.id, "video"))
    return rec.id, file_name(rec.id, rec.output_file_name, FileKind.VIDEO)


def untouched(path: Path) -> bool:
    return path.read_bytes() == OUTSIDE


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_bytes(OUTSIDE)
    return path


# -- planted links and special files ---------------------------------------------------------


async def test_symlink_planted_at_a_part_is_not_followed(tmp_path: Path, outside: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    async with emulated(recordings=10, meetings=2) as (emu, client):
        rid, name = first_video_name(emu)
        (dest / (name + PART_SUFFIX)).symlink_to(outside)

        report = await export_recordings(client, dest)

        (failure,) = report.failed
        assert failure.recording_id == rid
        assert "link or special file" in failure.reason
        assert untouched(outside)
        assert (dest / (name + PART_SUFFIX)).is_symlink()  # left for the user to look at
        assert len(report.exported) == len(expected_files(emu)) - 1


async def test_hard_link_planted_at_a_part_is_not_written(tmp_path: Path, outside: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    async with emulated(recordings=10, meetings=2) as (emu, client):
        _, name = first_video_name(emu)
        os.link(outside, dest / (name + PART_SUFFIX))

        report = await export_recordings(client, dest)

        assert len(report.failed) == 1
        assert untouched(outside)


async def test_fifo_planted_at_a_part_fails_at_once_instead_of_blocking(tmp_path: Path) -> None:
    async with emulated(recordings=10, meetings=2) as (emu, client):
        _, name = first_video_name(emu)
        os.mkfifo(tmp_path / (name + PART_SUFFIX))

        async with asyncio.timeout(30):  # before the fix: blocked for ever in open()
            report = await export_recordings(client, tmp_path)

        (failure,) = report.failed
        assert "link or special file" in failure.reason
        assert len(report.exported) == len(expected_files(emu)) - 1


@pytest.mark.parametrize("planted", [MANIFEST_NAME, LOCK_NAME])
async def test_symlink_planted_at_the_manifest_or_lock_stops_the_export(
    tmp_path: Path, outside: Path, planted: str
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / planted).symlink_to(outside)
    async with emulated(recordings=10, meetings=2) as (emu, client):
        with pytest.raises(ExportError, match="link or special file"):
            await export_recordings(client, dest)
        assert emu.storage_requests == []
    assert untouched(outside)


async def test_symlink_at_a_final_name_is_replaced_not_followed(
    tmp_path: Path, outside: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    async with emulated(recordings=10, meetings=2) as (emu, client):
        _, name = first_video_name(emu)
        (dest / name).symlink_to(outside)

        report = await export_recordings(client, dest)

        assert report.failed == ()
        assert not (dest / name).is_symlink()
        assert untouched(outside)
        assert_dest_matches(dest, expected_files(emu))


# -- two runs, one destination ------------------------------------------------------------------


async def test_a_second_export_into_a_busy_dest_is_refused(tmp_path: Path) -> None:
    async with emulated(recordings=20, meetings=4, latency=0.02) as (emu, client):
        started = asyncio.Event()

        def progress(event: ExportProgress) -> None:
            started.set()

        first = asyncio.create_task(export_recordings(client, tmp_path, on_progress=progress))
        await started.wait()
        with pytest.raises(DestinationLockedError, match="another export is running"):
            await export_recordings(client, tmp_path)
        report = await first

        assert report.failed == ()
        assert_dest_matches(tmp_path, expected_files(emu))
        again = await export_recordings(client, tmp_path)  # the lock went with the run
        assert again.exported == ()


async def test_a_lock_held_by_another_process_is_respected(tmp_path: Path) -> None:
    # flock locks belong to open file descriptions: this fd stands in for another process.
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        async with emulated(recordings=5, meetings=1) as (emu, client):
            with pytest.raises(DestinationLockedError):
                await export_recordings(client, tmp_path)
            assert emu.storage_requests == []
    finally:
        os.close(fd)


# -- what a skip checks ----------------------------------------------------------------------------


async def test_a_file_changed_since_export_is_fetched_again(tmp_path: Path) -> None:
    async with emulated(recordings=20, meetings=4) as (emu, client):
        first = await export_recordings(client, tmp_path)
        damaged, *rest = first.exported
        path = tmp_path / damaged.path
        path.write_bytes(b"\0" * damaged.bytes)  # same size, other bytes
        emu.reset_stats()

        second = await export_recordings(client, tmp_path)

        assert [e.path for e in second.exported] == [damaged.path]
        assert second.exported[0].sha256 == damaged.sha256
        assert len(second.skipped) == len(rest)
        assert sha256_of(path) == damaged.sha256


async def test_an_old_manifest_without_mtimes_is_verified_by_hash(tmp_path: Path) -> None:
    async with emulated(recordings=20, meetings=4) as (emu, client):
        first = await export_recordings(client, tmp_path)
        manifest = tmp_path / MANIFEST_NAME
        lines = [json.loads(line) for line in manifest.read_bytes().splitlines()]
        for line in lines:
            line.pop("mtime_ns")
        manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
        emu.reset_stats()

        second = await export_recordings(client, tmp_path)

        assert second.exported == ()
        assert len(second.skipped) == len(first.exported)
        assert emu.storage_requests == []


async def test_progress_counts_only_the_files_it_fetches(tmp_path: Path) -> None:
    async with emulated(recordings=20, meetings=4) as (_emu, client):
        first = await export_recordings(client, tmp_path)
        (tmp_path / first.exported[0].path).unlink()
        events: list[ExportProgress] = []

        await export_recordings(client, tmp_path, on_progress=events.append)

        last = events[-1]
        assert (last.files_done, last.files_total) == (1, 1)
        assert last.bytes_done == last.bytes_total == first.exported[0].bytes


# -- a full disk -----------------------------------------------------------------------------------


async def test_a_failed_manifest_append_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = _ManifestWriter._write
    appends = 0

    def disk_fills_up(self: _ManifestWriter, data: bytes) -> None:
        nonlocal appends
        appends += 1
        if appends == 3:  # half the line reaches the disk, then ENOSPC
            real_write(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, data)

    monkeypatch.setattr(_ManifestWriter, "_write", disk_fills_up)
    async with emulated(recordings=20, meetings=4) as (emu, client):
        first = await export_recordings(client, tmp_path, concurrency=1)

        (failure,) = first.failed
        assert "No space left on device" in failure.reason
        raw = (tmp_path / MANIFEST_NAME).read_bytes()
        assert raw.endswith(b"\n")
        lines = manifest_lines(tmp_path)  # every line whole, none glued to a torn one
        assert len(lines) == len(first.exported) == len(expected_files(emu)) - 1

        monkeypatch.undo()
        caplog.set_level(logging.WARNING, logger="realtimekit_async")
        second = await export_recordings(client, tmp_path)

        assert [(e.recording_id, e.kind) for e in second.exported] == [
            (failure.recording_id, failure.kind)
        ]
        assert "unreadable" not in caplog.text
        assert_dest_matches(tmp_path, expected_files(emu))


# -- a destination the disk refuses ----------------------------------------------------------


async def test_dest_that_is_a_regular_file_is_a_destination_error(tmp_path: Path) -> None:
    dest = tmp_path / "exports"
    dest.write_bytes(OUTSIDE)
    async with emulated(recordings=2) as (_emu, client):
        with pytest.raises(DestinationError) as info:
            await export_recordings(client, dest)
    assert isinstance(info.value, ExportError)
    assert info.value.path == str(dest)
    assert info.value.errno == errno.EEXIST
    assert str(dest) in str(info.value)
    assert untouched(dest)


async def test_dest_under_a_regular_file_is_a_destination_error(tmp_path: Path) -> None:
    parent = tmp_path / "not-a-dir"
    parent.write_bytes(OUTSIDE)
    async with emulated(recordings=2) as (_emu, client):
        with pytest.raises(DestinationError) as info:
            await export_recordings(client, parent / "exports")
    assert info.value.errno == errno.ENOTDIR
    assert info.value.reason == os.strerror(errno.ENOTDIR)
    assert untouched(parent)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
async def test_dest_under_a_read_only_directory_is_a_destination_error(tmp_path: Path) -> None:
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        async with emulated(recordings=2) as (_emu, client):
            with pytest.raises(DestinationError) as info:
                await export_recordings(client, locked / "exports")
    finally:
        locked.chmod(0o755)
    assert info.value.errno == errno.EACCES
    assert info.value.path == str(locked / "exports")
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "code"), [(LOCK_NAME, errno.EROFS), (MANIFEST_NAME, errno.ENOSPC)]
)
async def test_a_lock_or_manifest_the_disk_refuses_is_a_destination_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: int
) -> None:
    real_open = export_module._open_plain

    def refusing(path: Path, flags: int) -> int:
        if path.name == name and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags)

    monkeypatch.setattr(export_module, "_open_plain", refusing)
    async with emulated(recordings=4) as (emu, client):
        with pytest.raises(DestinationError) as info:
            await export_recordings(client, tmp_path)
        assert (info.value.path, info.value.errno) == (str(tmp_path / name), code)
        assert info.value.reason == os.strerror(code)
        assert names_in(tmp_path) <= {LOCK_NAME, MANIFEST_NAME}  # no file was fetched

        monkeypatch.undo()  # the lock was released: the next run goes ahead
        report = await export_recordings(client, tmp_path)
        assert report.ok
        assert_dest_matches(tmp_path, expected_files(emu))


async def test_a_sync_cursor_the_disk_refuses_is_a_destination_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(export_module, "_replace_plain", full)
    async with emulated(recordings=4) as (_emu, client):
        with pytest.raises(DestinationError) as info:
            await sync_recordings(client, tmp_path)
    assert info.value.path == str(tmp_path / CURSOR_NAME)
    assert info.value.errno == errno.ENOSPC
    assert manifest_lines(tmp_path)  # the files themselves were exported
    assert not (tmp_path / CURSOR_NAME).exists()
