"""Property-based tests of cancellation at random points: a list walk, a wait and an
export leave nothing behind.

Hypothesis settings stay modest so the default run stays fast; async scenarios run
each example in its own ``asyncio.run`` so every example starts from a clean loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import typing
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtimekit_async import (
    APIError,
    RealtimeKit,
)
from realtimekit_async._export_plan import LOCK_NAME, PART_STATE_SUFFIX, PART_SUFFIX
from realtimekit_async.emulator import Emulator, FaultConfig
from realtimekit_async.export import MANIFEST_NAME, ExportProgress, export_recordings

from ._properties import ASYNC
from ._support import emulator_client

# -- cancellation at random points ---------------------------------------------------------


def _client_for(emu: Emulator, **options: Any) -> RealtimeKit:
    return emulator_client(emu, retries=3, **options)


async def _cancel_after(task: asyncio.Task[Any], turns: int, ready: asyncio.Event | None) -> None:
    """Cancel ``task`` ``turns`` loop turns after ``ready`` is set (or the task ended)."""
    if ready is not None:
        # Whichever comes first: the moment to cancel, or the task ending by itself.
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}


@pytest.fixture
def collect_garbage() -> typing.Iterator[None]:
    """A full collection after the test: an unclosed session or connector found
    there warns (ResourceWarning), and warnings are errors in this suite.
    (Once per test, not per example: a full collection is slow.)"""
    yield
    gc.collect()


def _run_cancel_scenario(scenario: Callable[[], typing.Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


@ASYNC
@given(
    prefetch=st.integers(min_value=1, max_value=8),
    after_items=st.one_of(st.none(), st.integers(min_value=1, max_value=60)),
    turns=st.integers(min_value=0, max_value=40),
    faulty=st.booleans(),
)
@pytest.mark.usefixtures("collect_garbage")
def test_cancelling_a_list_walk_leaves_nothing_behind(
    prefetch: int, after_items: int | None, turns: int, faulty: bool
) -> None:
    async def scenario() -> None:
        faults = (
            FaultConfig(seed=turns, rate=0.2, kinds=("500", "slow", "reset"), slow_seconds=0.01)
            if faulty
            else None
        )
        async with Emulator(recordings=80, speed=0, faults=faults) as emu:
            ready = asyncio.Event() if after_items is not None else None
            sessions: list[Any] = []

            async def walk() -> None:
                async with _client_for(emu) as client:
                    sessions.append(client.session)
                    count = 0
                    try:
                        async for _rec in client.recordings.list(per_page=5, prefetch=prefetch):
                            count += 1
                            if ready is not None and count == after_items:
                                ready.set()
                    except APIError:
                        pass  # faults outlasted the retries: an ending like any other

            task = asyncio.create_task(walk())
            await _cancel_after(task, turns, ready)  # after the item count, if there is one
            assert all(s.closed for s in sessions)
        await _settle()

    _run_cancel_scenario(scenario)


@ASYNC
@given(turns=st.integers(min_value=0, max_value=60), poll_ms=st.integers(min_value=0, max_value=5))
@pytest.mark.usefixtures("collect_garbage")
def test_cancelling_wait_for_leaves_nothing_behind(turns: int, poll_ms: int) -> None:
    async def scenario() -> None:
        async with Emulator(speed=0) as emu:
            sessions: list[Any] = []

            async def wait() -> None:
                async with _client_for(emu) as client:
                    sessions.append(client.session)
                    rec = await client.recordings.start("meeting-w")
                    await client.recordings.wait_for(
                        rec.id, poll_interval=0.0005 + poll_ms / 1000, max_poll_interval=0.01
                    )

            task = asyncio.create_task(wait())
            await _cancel_after(task, turns, None)
            assert task.cancelled()
            assert all(s.closed for s in sessions)
        await _settle()

    _run_cancel_scenario(scenario)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.integers(min_value=0, max_value=300),
    after_events=st.one_of(st.none(), st.integers(min_value=1, max_value=40)),
    concurrency=st.integers(min_value=1, max_value=4),
    faulty=st.booleans(),
)
@pytest.mark.usefixtures("collect_garbage")
def test_cancelling_an_export_leaves_only_complete_files_and_parts(
    turns: int,
    after_events: int | None,
    concurrency: int,
    faulty: bool,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dest = tmp_path_factory.mktemp("export")

    async def scenario() -> None:
        faults = (
            FaultConfig(
                seed=turns,
                rate=0.3,
                kinds=("truncate", "slow", "503"),
                routes="storage",
                slow_seconds=0.005,
            )
            if faulty
            else None
        )
        async with Emulator(
            recordings=40,
            seed=5,
            speed=0,
            bytes_per_second=256,
            url_ttl=90 * 86400.0,
            faults=faults,
        ) as emu:
            sessions: list[Any] = []
            events = 0
            ready = asyncio.Event()

            def progress(_event: ExportProgress) -> None:
                nonlocal events
                events += 1
                if after_events is not None and events >= after_events:
                    ready.set()

            async def export() -> None:
                async with _client_for(emu) as client:
                    sessions.append(client.session)
                    await export_recordings(
                        client, dest, concurrency=concurrency, on_progress=progress
                    )

            task = asyncio.create_task(export())
            await _cancel_after(task, turns, ready if after_events is not None else None)
            assert all(s.closed for s in sessions)
            # Every final file is complete, byte-exact and in the manifest; the rest are .part.
            manifest = dest / MANIFEST_NAME
            entries = {}
            if manifest.exists():
                for line in manifest.read_text().splitlines():
                    entry = json.loads(line)
                    entries[entry["path"]] = entry
            for path in dest.iterdir():
                if path.name in (MANIFEST_NAME, LOCK_NAME) or path.name.endswith(
                    (PART_SUFFIX, PART_STATE_SUFFIX)
                ):
                    continue
                entry = entries.get(path.name)
                assert entry is not None, f"{path.name} is in place but not in the manifest"
                data = path.read_bytes()
                assert (
                    len(data)
                    == entry["bytes"]
                    == emu.file_size(entry["recording_id"], entry["kind"])
                )
                assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        await _settle()

    _run_cancel_scenario(scenario)
