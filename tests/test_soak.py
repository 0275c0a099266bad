"""Chaos soak: the SDK against the emulator with ~10 % mixed faults on every route.

Three phases, one after the other (each one's oracle is the emulator's store):

1. list every recording: each listed exactly once;
2. export files: each one byte-exact and exactly once in the manifest, no ``.part`` left;
3. start/pause/resume/stop cycles, one meeting each, reconciling the way a careful
   caller must: a start that failed after it may have been processed is followed
   by ``get_active`` (adopt what is there, or start again), never a blind retry;
   an action whose retry was refused because the first attempt had already taken
   effect is checked with ``get``. The emulator then counts no duplicate start.

The default run is scaled down (:data:`SMALL`); ``make soak`` runs :data:`FULL`
(``-m slow``). Figures go to stdout; the full run's also to
``benchmarks/results/soak-full.json``, the small one's only into its ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs
import pytest

from realtimekit_async import (
    APIConnectionError,
    APIError,
    ConflictError,
    Hooks,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RealtimeKit,
    Recording,
    RecordingStatus,
    RequestEvent,
    RetryEvent,
    RetryPolicy,
)
from realtimekit_async._lifecycle import action_applied
from realtimekit_async.emulator import FAULT_KINDS, Emulator, FaultConfig, expected_file_sha256
from realtimekit_async.emulator._util import ms_to_datetime
from realtimekit_async.export import MANIFEST_NAME, export_recordings

from ._support import emulator_client

RESULTS: Final = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
FAULT_RATE: Final = 0.1


@attrs.frozen
class SoakSize:
    name: str
    recordings: int
    files: int
    cycles: int


SMALL: Final = SoakSize("small", recordings=2_000, files=50, cycles=20)
FULL: Final = SoakSize("full", recordings=20_000, files=500, cycles=200)


@attrs.define
class RetryCounter:
    """Counts the client's API attempts and retries through its hooks (not its logs)."""

    attempts: int = 0
    retries: int = 0

    def hooks(self) -> Hooks:
        return Hooks(on_request=self._attempted, on_retry=self._retried)

    def _attempted(self, event: RequestEvent) -> None:
        self.attempts += 1

    def _retried(self, event: RetryEvent) -> None:
        self.retries += 1


@attrs.define
class Tally:
    reconciled_starts: Counter[str] = attrs.field(factory=Counter)
    reconciled_actions: Counter[str] = attrs.field(factory=Counter)


async def _start_carefully(client: RealtimeKit, meeting: str, tally: Tally) -> Recording:
    """Start once: after a failure that may hide a processed start, ask before starting again."""
    while True:
        try:
            return await client.recordings.start(meeting, file_name_prefix="soak")
        except RateLimitError:
            tally.reconciled_starts["429 after retries: start again"] += 1
            continue  # a 429 proves nothing happened
        except (APIConnectionError, InternalServerError, ConflictError) as exc:
            kind = type(exc).__name__
        while True:  # may have been processed: look before starting again
            try:
                active = await client.recordings.get_active(meeting)
            except NotFoundError:
                tally.reconciled_starts[f"{kind}: nothing started, start again"] += 1
                break
            except APIError:
                continue  # the read itself failed past its retries: ask again
            tally.reconciled_starts[f"{kind}: it had started, adopted"] += 1
            return active


async def _act_carefully(client: RealtimeKit, rec: Recording, action: str, tally: Tally) -> None:
    """pause/resume/stop until it has taken effect.

    The SDK itself settles a retry refused after a lost answer (see
    ``pause_resume_stop``); what is left to the caller is retries running out.
    """
    while True:
        try:
            await client.recordings.pause_resume_stop(rec.id, action)
            return
        except APIError as exc:  # retries exhausted
            current = await client.recordings.get(rec.id)
            if action_applied(action, current.status):
                tally.reconciled_actions[f"{action}: {type(exc).__name__}, had taken effect"] += 1
                return
            tally.reconciled_actions[f"{action}: {type(exc).__name__}, again"] += 1


async def _cycle(client: RealtimeKit, meeting: str, tally: Tally) -> str:
    rec = await _start_carefully(client, meeting, tally)
    await client.recordings.wait_for(
        rec.id, RecordingStatus.RECORDING, timeout=30, poll_interval=0.005, max_poll_interval=0.05
    )
    await _act_carefully(client, rec, "pause", tally)
    await _act_carefully(client, rec, "resume", tally)
    await asyncio.sleep(0.03)  # ~6 emulated seconds at speed 200: long enough to upload
    await _act_carefully(client, rec, "stop", tally)
    return rec.id


def _export_window(emu: Emulator, files: int) -> tuple[datetime, datetime, set[str]]:
    """A time window holding exactly ``files`` exportable recordings (newest first)."""
    now = emu.clock.now_ms()
    margin_ms = 3600 * 1000  # well clear of the export's refresh margin
    exportable = sorted(
        (
            r
            for r in emu.store.recordings.values()
            if r.status == "UPLOADED" and r.expiry_ms is not None and r.expiry_ms > now + margin_ms
        ),
        key=lambda r: r.invoked_ms,
        reverse=True,
    )
    assert len(exportable) > files, "seed more recordings for this many files"
    chosen = exportable[:files]
    since, until = chosen[-1].invoked_ms, chosen[0].invoked_ms
    # Nothing else may share the boundary millisecond.
    assert exportable[files].invoked_ms < since
    return ms_to_datetime(since), ms_to_datetime(until), {r.id for r in chosen}


def _names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def run_soak(size: SoakSize, dest: Path) -> dict[str, Any]:
    counter = RetryCounter()
    faults = FaultConfig(
        seed=2024,
        rate=FAULT_RATE,
        kinds=FAULT_KINDS,
        routes="all",
        retry_after=0.01,
        slow_seconds=0.05,
    )
    tally = Tally()
    timings: dict[str, float] = {}
    async with (
        Emulator(
            recordings=size.recordings,
            seed=17,
            speed=200.0,
            bytes_per_second=16,  # small files: 30 s .. 2 h of recording -> 0.5 .. 115 KB
            faults=faults,
        ) as emu,
        emulator_client(
            emu,
            max_retries=RetryPolicy(max_retries=10, initial_delay=0.002, max_delay=0.05),
            hooks=counter.hooks(),
        ) as client,
    ):
        # 1. list everything: each recording exactly once
        began = time.perf_counter()
        store_ids = set(emu.store.recordings)
        listed = [r.id async for r in client.recordings.list(per_page=100, prefetch=8)]
        timings["list_s"] = time.perf_counter() - began
        listed_twice = len(listed) - len(set(listed))
        not_listed = store_ids - set(listed)
        phantom = set(listed) - store_ids
        assert listed_twice == 0
        assert not_listed == set()
        assert phantom == set()

        # 2. export: every file byte-exact, once in the manifest, no partial file
        began = time.perf_counter()
        since, until, chosen = _export_window(emu, size.files)
        downloads_before = emu.stats.requests["download"]
        report = await export_recordings(
            client,
            dest,
            start_time=since,
            end_time=until,
            include_audio=False,
            concurrency=8,
            url_expiry_margin=60,
        )
        timings["export_s"] = time.perf_counter() - began
        # Downloads do not go through the API hooks: the storage site counts each GET.
        download_gets = emu.stats.requests["download"] - downloads_before
        assert report.failed == ()
        lines = (dest / MANIFEST_NAME).read_text().splitlines()
        entries = [json.loads(line) for line in lines]
        per_file = Counter((e["recording_id"], e["kind"]) for e in entries)
        assert set(per_file) == {(rid, "video") for rid in chosen}
        assert max(per_file.values()) == 1
        byte_exact = 0
        for entry in entries:
            rid = entry["recording_id"]
            size_on_server = emu.file_size(rid)
            assert size_on_server is not None
            assert entry["bytes"] == size_on_server
            assert entry["sha256"] == expected_file_sha256(rid, "video", size_on_server)
            assert (dest / entry["path"]).stat().st_size == size_on_server
            byte_exact += 1
        names = _names_in(dest)
        leftovers = [name for name in names if name.endswith((".part", ".part.meta"))]
        assert leftovers == []
        assert len(names) == size.files + 2  # the files, the manifest and the lock

        # 3. start/pause/resume/stop cycles, one meeting each, many at once
        began = time.perf_counter()
        meetings = [f"soak-meeting-{n:04d}" for n in range(size.cycles)]
        slots = asyncio.Semaphore(25)

        async def one(meeting: str) -> str:
            async with slots:
                return await _cycle(client, meeting, tally)

        cycled = await asyncio.gather(*(one(m) for m in meetings))
        timings["cycles_s"] = time.perf_counter() - began
        starts = emu.stats.starts_by_meeting
        duplicate_starts = emu.stats.duplicate_starts()
        assert duplicate_starts == {}
        assert [starts[m] for m in meetings] == [1] * size.cycles
        assert len(set(cycled)) == size.cycles
        final = [emu.store.recordings[rid].status for rid in cycled]
        assert all(s in {"UPLOADING", "UPLOADED", "ERRORED"} for s in final)

        figures: dict[str, Any] = {
            "size": size.name,
            "fault_rate": FAULT_RATE,
            "faults_injected": dict(sorted(emu.stats.faults.items())),
            "faults_total": sum(emu.stats.faults.values()),
            "api_attempts": counter.attempts,
            "api_retries": counter.retries,
            "download_retries": download_gets - len(report.exported),
            "recordings_listed": len(listed),
            "items_lost": len(not_listed),
            "duplicates": listed_twice,
            "files_exported": len(report.exported),
            "files_byte_exact": byte_exact,
            "bytes_exported": report.bytes,
            "part_files_left": len(leftovers),
            "cycles": size.cycles,
            "duplicate_starts": sum(n - 1 for n in duplicate_starts.values()),
            "reconciled_starts": dict(tally.reconciled_starts),
            "reconciled_actions": dict(tally.reconciled_actions),
            "final_statuses": dict(Counter(str(s) for s in final)),
            "seconds": {k: round(v, 2) for k, v in timings.items()},
        }
    # The soak is only meaningful if the faults really hit every route and kind.
    assert set(figures["faults_injected"]) == set(FAULT_KINDS)
    assert figures["api_retries"] > 0
    return figures


def _record(figures: dict[str, Any], results: Path) -> Path:
    """Print the figures and write them to ``results/soak-<size>.json``; return that path."""
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(f"\nsoak figures:\n{text}")
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"soak-{figures['size']}.json"
    path.write_text(text + "\n")
    return path


async def test_soak_small(tmp_path: Path) -> None:
    # Into tmp_path: the default suite never writes into the repository.
    written = _record(await run_soak(SMALL, tmp_path / "export"), tmp_path)
    assert json.loads(written.read_text())["size"] == "small"


@pytest.mark.slow
async def test_soak_full(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # Only when asked for (`-m slow`, as `make soak` does): the default run has test_soak_small.
    chosen = str(request.config.getoption("markexpr") or "")
    if "slow" not in chosen or "not slow" in chosen:
        pytest.skip("the full soak runs with -m slow (make soak)")
    _record(await run_soak(FULL, tmp_path / "export"), RESULTS)
