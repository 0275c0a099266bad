"""Sharded export and sync on a real Dask cluster: a ``LocalCluster`` of two worker
processes, the emulator and moto's S3 server, all on 127.0.0.1 and started here.

The workers get the API token and the store's credentials from their own
environment, as in production; the tasks carry neither. Marked ``newest``: the
oldest-dependencies run has no ``distributed``.
"""

from __future__ import annotations

import asyncio
import collections
import io
import pickle
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from realtimekit_async import RateLimit, RateLimits, ValidationError
from realtimekit_async._cli import build_parser, run
from realtimekit_async._dest import S3Settings
from realtimekit_async._export_plan import parse_manifest
from realtimekit_async.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN, Emulator
from realtimekit_async.export import read_manifest
from realtimekit_async.shards import ShardJob, plan_job, run_on_dask

from ._export_support import LONG_TTL, expected_files, uploaded
from ._moto_support import CREDENTIALS, keys, read
from ._support import emulator_client

distributed = pytest.importorskip("distributed")

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

pytestmark = pytest.mark.newest

PREFIX = "archive"
WORKER_ENV = {
    "CLOUDFLARE_API_TOKEN": DEFAULT_TOKEN,
    "CLOUDFLARE_ACCOUNT_ID": DEFAULT_ACCOUNT_ID,
    "AWS_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
    "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
    "AWS_REGION": CREDENTIALS["region"],
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread each, with the credentials in their environment
    (not in this process's: the tasks must not need them from here)."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # a free port: xdist runs two clusters at once
        env=WORKER_ENV,
    ) as local:
        yield local


@pytest.fixture
async def dask(cluster: Any) -> AsyncIterator[Any]:
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        await client.wait_for_workers(2)
        yield client


def _emulator(**options: Any) -> Emulator:
    settings: dict[str, Any] = {
        "speed": 0,
        "bytes_per_second": 2,
        "url_ttl": LONG_TTL,
        "seed": 3,
        "recordings": 24,
        "meetings": 6,
    }
    settings.update(options)
    return Emulator(**settings)


def _job(emu: Emulator, moto_url: str, bucket: str, **options: Any) -> ShardJob:
    settings: dict[str, Any] = {
        "dest": f"s3://{bucket}/{PREFIX}",
        "app_ids": (emu.app_id,),
        "base_url": emu.base_url,
        "s3": S3Settings(endpoint_url=moto_url),
        "max_retries": 4,
    }
    settings.update(options)
    return ShardJob(**settings)


async def _manifest_lines(raw: S3Client, bucket: str) -> list[tuple[str, str]]:
    """The ``(recording_id, kind)`` of every line of every manifest segment, repeats kept."""
    found = [k for k in await keys(raw, bucket) if k.startswith(f"{PREFIX}/manifest/")]
    lines: list[tuple[str, str]] = []
    for key in found:
        for line in (await read(raw, bucket, key)).splitlines(keepends=True):
            entries = parse_manifest([line]).entries
            assert len(entries) == 1, line
            lines.extend((rid, kind.value) for rid, kind in entries)
    return lines


async def _assert_exactly_once(
    raw: S3Client, bucket: str, moto_url: str, files: dict[tuple[str, str], int]
) -> None:
    lines = await _manifest_lines(raw, bucket)
    repeated = [k for k, n in collections.Counter(lines).items() if n > 1]
    assert repeated == []
    assert sorted(lines) == sorted(files)
    entries = await read_manifest(
        f"s3://{bucket}/{PREFIX}", S3Settings(endpoint_url=moto_url, **CREDENTIALS)
    )
    stored = {k for k in await keys(raw, bucket) if not k.startswith(f"{PREFIX}/manifest/")}
    assert {f"{PREFIX}/{e.path}" for e in entries} <= stored
    for entry in entries:
        assert entry.bytes == files[(entry.recording_id, entry.kind.value)]


async def test_every_recording_is_exported_once_with_a_worker_killed_mid_shard(
    dask: Any, moto_url: str, raw: S3Client, bucket: str, tmp_path: Path
) -> None:
    from ._dask_support import KillAfterStoring

    marker = tmp_path / "killed"
    await dask.register_plugin(KillAfterStoring(str(marker), files=2), name="kill-once")
    try:
        async with _emulator() as emu:
            files = expected_files(emu)
            report = await run_on_dask(dask, _job(emu, moto_url, bucket, concurrency=2))
    finally:
        await dask.unregister_worker_plugin("kill-once")
    assert marker.exists()  # a worker was killed, after storing two files of its shard
    assert report.ok, (report.failed_shards, report.export.failed)
    assert len(report.shards) == 2 * 2  # two shards per worker thread
    done = {(e.recording_id, e.kind.value) for e in report.export.exported}
    done |= {(e.recording_id, e.kind.value) for e in report.export.skipped}
    assert done == set(files)
    # The files the killed attempt stored were found by the rerun, not fetched again.
    assert len(report.export.skipped) >= 2
    await _assert_exactly_once(raw, bucket, moto_url, files)


async def test_a_sharded_sync_keeps_a_cursor_per_shard_and_a_rerun_skips_everything(
    dask: Any, moto_url: str, raw: S3Client, bucket: str
) -> None:
    # Fresh recordings: a sync lists only the retention window, the seeded data is older.
    async with _emulator(recordings=0) as emu, emulator_client(emu) as client:
        for n in range(10):
            await uploaded(emu, client, f"meeting-{n % 3}")
        files = expected_files(emu)
        job = _job(emu, moto_url, bucket, sync=True)
        shards = plan_job(job, 3)
        first = await run_on_dask(dask, job, shards=shards)
        emu.reset_stats()
        again = await run_on_dask(dask, job, shards=shards)
        downloads = emu.stats.requests["download"]
    assert first.ok
    assert again.ok
    assert {(e.recording_id, e.kind.value) for e in first.export.exported} == set(files)
    assert again.export.exported == ()
    assert len(again.export.skipped) == len(files)
    assert downloads == 0
    assert all(s.cursor is not None and s.since is not None for s in first.shards)
    cursors = [k for k in await keys(raw, bucket) if ".realtimekit-sync." in k]
    assert len(cursors) == len(first.shards) == 3
    await _assert_exactly_once(raw, bucket, moto_url, files)


async def test_all_workers_together_stay_within_the_rate_budget(
    dask: Any, moto_url: str, bucket: str
) -> None:
    # Pages of 2: each of the 4 shards walks 6 pages of the listing. The emulator
    # enforces 6 requests a second for the token; the job's budget is the same, split
    # among the 2 workers in flight, so the emulator never has to refuse one.
    budget = RateLimit(6, 1.0)
    async with _emulator(
        recordings=12, default_per_page=2, max_per_page=2, rate_limit=(6, 1.0)
    ) as emu:
        job = _job(emu, moto_url, bucket, rate_limit=RateLimits((budget,)))
        report = await run_on_dask(dask, job)
        api_requests = sum(n for route, n in emu.stats.requests.items() if route != "download")
        refused = emu.stats.rate_limited
    assert report.ok, (report.failed_shards, report.export.failed)
    assert api_requests >= 4 * 6
    assert refused == 0


async def test_secrets_stay_out_of_the_tasks_unless_sent_on_purpose(
    dask: Any, moto_url: str, bucket: str
) -> None:
    async with _emulator(recordings=4, token="only-this-job-knows") as emu:
        job = _job(emu, moto_url, bucket, api_token=emu.token)
        with pytest.raises(ValidationError, match="send_credentials"):
            await run_on_dask(dask, job)
        # Without the token the workers use theirs, which this emulator refuses ...
        anonymous = await run_on_dask(dask, _job(emu, moto_url, bucket))
        assert not anonymous.ok
        assert [(s.error or "").partition(":")[0] for s in anonymous.shards] == [
            "AuthenticationError"
        ] * len(anonymous.shards)
        # ... and shipped on purpose, the job's own token is the one used.
        sent = await run_on_dask(
            dask, _job(emu, moto_url, bucket, api_token=emu.token, send_credentials=True)
        )
        files = expected_files(emu)
    assert sent.ok, sent.failed_shards
    assert len(sent.export.exported) == len(files)
    assert "only-this-job-knows" not in repr(job)
    assert b"only-this-job-knows" in pickle.dumps(job)  # why it takes the opt-in


async def test_a_distributed_run_refuses_a_local_directory(dask: Any, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="object store"):
        await run_on_dask(dask, ShardJob(dest=str(tmp_path), app_ids=("app",)))


async def test_the_cli_runs_an_export_on_a_dask_scheduler(
    cluster: Any, moto_url: str, raw: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # not a secret: shipped to the workers
    for name in ("CLOUDFLARE_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    async with _emulator(recordings=8) as emu:
        files = expected_files(emu)
        argv = [
            "export",
            "--dest",
            f"s3://{bucket}/{PREFIX}",
            "--base-url",
            emu.base_url,
            "--app-id",
            emu.app_id,
            "--dask",
            cluster.scheduler_address,
        ]
        out, err = io.StringIO(), io.StringIO()
        code = await run(build_parser().parse_args(argv), out, err)
    assert (code, err.getvalue()) == (0, "")
    assert "4 shards" in out.getvalue()
    await _assert_exactly_once(raw, bucket, moto_url, files)


async def test_the_cli_refuses_a_token_flag_for_dask_without_the_opt_in(
    cluster: Any, moto_url: str, bucket: str
) -> None:
    argv = ["export", "--dest", f"s3://{bucket}/p", "--app-id", "a", "--api-token", "t"]
    args = build_parser().parse_args([*argv, "--dask", cluster.scheduler_address])
    err = io.StringIO()
    assert await run(args, io.StringIO(), err) == 2
    assert "send_credentials" in err.getvalue() or "--dask-send-credentials" in err.getvalue()
    await asyncio.sleep(0)
