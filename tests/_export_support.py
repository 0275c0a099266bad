"""Helpers of the export tests (local, S3, sync, sharded): an emulator with small files
and a client on it, recordings taken to UPLOADED, what a destination must hold."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from realtimekit_async import RealtimeKit, Recording, RetryPolicy
from realtimekit_async._export_plan import LOCK_NAME
from realtimekit_async.emulator import Emulator, expected_file_sha256
from realtimekit_async.export import MANIFEST_NAME

MiB = 1024 * 1024
FAST = RetryPolicy(max_retries=8, initial_delay=0.001, max_delay=0.01)
LONG_TTL = 90 * 86400.0  # every seeded URL is still valid
FileKey = tuple[str, str]


@contextlib.asynccontextmanager
async def emulated(**options: Any) -> AsyncIterator[tuple[Emulator, RealtimeKit]]:
    """An emulator with small files (2 bytes per recorded second) and a client on it."""
    settings: dict[str, Any] = {"speed": 0, "bytes_per_second": 2, "url_ttl": LONG_TTL, "seed": 1}
    settings.update(options)
    async with (
        Emulator(**settings) as emu,
        RealtimeKit(
            api_token=emu.token,
            account_id=emu.account_id,
            app_id=emu.app_id,
            base_url=emu.base_url,
            max_retries=FAST,
        ) as client,
    ):
        yield emu, client


async def uploaded(
    emu: Emulator, client: RealtimeKit, meeting: str, *, size: int | None = None
) -> Recording:
    """A fresh recording of ``meeting`` taken through to UPLOADED on the frozen clock."""
    rec = await client.recordings.start(meeting)
    emu.advance(30)
    await client.recordings.stop(rec.id)
    if size is not None:
        emu.set_file_size(rec.id, size)
    emu.advance(10)
    return await client.recordings.get(rec.id)


def expected_files(emu: Emulator) -> dict[FileKey, int]:
    """Every downloadable file the emulator holds, with its size."""
    files: dict[FileKey, int] = {}
    for rid in emu.store.recordings:
        for kind in ("video", "audio"):
            size = emu.file_size(rid, kind)
            if size is not None:
                files[(rid, kind)] = size
    return files


def names_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def files_only(directory: Path) -> bool:
    return all(p.is_file() and not p.is_symlink() for p in directory.iterdir())


def manifest_lines(dest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dest / MANIFEST_NAME).read_bytes().splitlines()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def assert_dest_matches(dest: Path, files: dict[FileKey, int]) -> None:
    """``dest`` holds exactly ``files``, byte-exact, each listed once in the manifest."""
    lines = manifest_lines(dest)
    keys = Counter((line["recording_id"], line["kind"]) for line in lines)
    assert keys == Counter(files.keys())
    on_disk = {p.name for p in dest.iterdir()} - {MANIFEST_NAME, LOCK_NAME}
    assert on_disk == {line["path"] for line in lines}
    for line in lines:
        size = files[(line["recording_id"], line["kind"])]
        path = dest / line["path"]
        assert path.stat().st_size == size == line["bytes"]
        expected = expected_file_sha256(line["recording_id"], line["kind"], size)
        assert line["sha256"] == expected
        assert sha256_of(path) == expected


def storage_requests_for(emu: Emulator, rid: str) -> list[Any]:
    return [r for r in emu.storage_requests if r.path.startswith(f"/files/{rid}/")]


HOSTILE_NAMES = [
    "../../etc/passwd",
    "/abs/path.mp4",
    "a\\b.mp4",
    "..\\..\\win.mp4",
    "nul\x00byte.mp4",
    "x" * 300 + ".mp4",
    "CON",
    "..",
    "",
    "../../etc/passwd",  # twice: two recordings, two files
]


def plant_hostile_names(emu: Emulator) -> set[str]:
    """Give downloadable recordings the :data:`HOSTILE_NAMES` as file names; return their ids."""
    targets = [r for r in emu.store.recordings.values() if r.status == "UPLOADED" and r.expiry_ms]
    for rec, hostile in zip(targets[: len(HOSTILE_NAMES)], HOSTILE_NAMES, strict=True):
        rec.output_file_name = hostile
    return {rec.id for rec in targets[: len(HOSTILE_NAMES)]}
