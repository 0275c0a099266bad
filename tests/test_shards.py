"""Sharded runs without Dask: ``--shard K/N``, several apps as one job, the job's checks,
and the core SDK never importing ``distributed``."""

from __future__ import annotations

import collections
import io
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from realtimekit_async import ValidationError
from realtimekit_async._cli import build_parser, run
from realtimekit_async._shard_plan import plan_shards
from realtimekit_async.export import read_manifest
from realtimekit_async.shards import ShardJob, run_shard_of, run_shards

from ._export_support import emulated, expected_files, uploaded
from ._moto_support import CREDENTIALS, keys, settings_for
from ._support import emulator_flags

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(build_parser().parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()


async def test_shard_k_of_n_runs_cover_the_job_once_into_a_bucket(
    moto_url: str, raw: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
        "AWS_REGION": CREDENTIALS["region"],
    }.items():
        monkeypatch.setenv(name, value)
    dest = f"s3://{bucket}/k-of-n"
    async with emulated(recordings=15, meetings=3) as (emu, _client):
        files = expected_files(emu)
        outputs = []
        for k in range(3):  # as three pods of an indexed Job would, one after another here
            code, out, err = await _run(
                ["export", "--dest", dest, *emulator_flags(emu), "--shard", f"{k}/3", "--json"]
            )
            assert (code, err) == (0, "")
            outputs.append(out)
        again = await _run(["export", "--dest", dest, *emulator_flags(emu), "--shard", "1/3"])
    entries = await read_manifest(dest, settings_for(moto_url))
    assert sorted((e.recording_id, e.kind.value) for e in entries) == sorted(files)
    assert all('"exported":[' in out for out in outputs)
    assert again[0] == 0
    assert "1 shards" in again[1]
    manifest = [k for k in await keys(raw, bucket) if "/manifest/" in k]
    assert len(manifest) == 3  # one segment per shard that stored something; the rerun none


async def test_a_shard_of_a_local_directory_and_a_rerun_that_skips_it(tmp_path: Path) -> None:
    async with emulated(recordings=12, meetings=3) as (emu, _client):
        files = expected_files(emu)
        job = ShardJob(
            dest=str(tmp_path),
            app_ids=(emu.app_id,),
            base_url=emu.base_url,
            api_token=emu.token,
            account_id=emu.account_id,
        )
        parts = [await run_shard_of(job, k, 2) for k in range(2)]
        rerun = await run_shard_of(job, 0, 2)
    done = [(e.recording_id, e.kind.value) for p in parts for e in p.export.exported]
    assert sorted(done) == sorted(files)  # disjoint halves
    assert rerun.export.exported == ()
    assert len(rerun.export.skipped) == len(parts[0].export.exported)
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(files)


async def test_several_apps_are_one_job_and_a_failing_app_fails_only_its_shard(
    tmp_path: Path,
) -> None:
    async with emulated(recordings=8, meetings=2) as (emu, _client):
        files = expected_files(emu)
        code, out, err = await _run(
            [
                "export",
                "--dest",
                str(tmp_path),
                *emulator_flags(emu),
                "--app-id",
                "an-app-this-token-does-not-have",
            ]
        )
    assert (code, err) == (1, "")
    assert "2 shards" in out
    assert "NotFoundError" in out
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(files)


async def test_a_sharded_sync_keeps_the_default_cursor_alone(tmp_path: Path) -> None:
    async with emulated(recordings=0) as (emu, client):
        for n in range(4):
            await uploaded(emu, client, f"m-{n}")
        job = ShardJob(
            dest=str(tmp_path),
            app_ids=(emu.app_id,),
            sync=True,
            base_url=emu.base_url,
            api_token=emu.token,
            account_id=emu.account_id,
        )
        report = await run_shards(job, plan_shards([emu.app_id], buckets=2))
    assert report.ok
    assert len(report.export.exported) == len(expected_files(emu))
    cursors = [n for n in _names(tmp_path) if n.startswith(".realtimekit-sync")]
    assert len(cursors) == 2
    assert ".realtimekit-sync.json" not in cursors


async def test_bad_jobs_are_refused_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        ShardJob(dest=str(tmp_path), app_ids=("a",), status=["NOPE"])
    assert caught.value.field == "status"
    for dest, concurrency, field in (("gs://b/p", 1, "dest"), (str(tmp_path), 0, "concurrency")):
        bad = ShardJob(dest=dest, app_ids=("a",), concurrency=concurrency)
        with pytest.raises(ValidationError) as caught:
            await run_shards(bad, [])
        assert caught.value.field == field
    with pytest.raises(ValidationError) as caught:
        ShardJob(dest=str(tmp_path), app_ids=("a",), options={"on_progress": print})
    assert caught.value.field == "on_progress"
    unknown = ShardJob(dest=str(tmp_path), app_ids=("a",), options={"read_timeout": -1})
    with pytest.raises(ValidationError) as caught:
        await run_shards(unknown, [])
    assert caught.value.field == "read_timeout"
    windowed = ShardJob(dest=str(tmp_path), app_ids=("a",), sync=True, end_time=T0)
    with pytest.raises(ValidationError) as caught:
        await run_shards(windowed, [])
    assert caught.value.field == "start_time"
    with pytest.raises(ValidationError, match="K/N"):
        await run_shard_of(ShardJob(dest=str(tmp_path), app_ids=("a",)), 2, 2)
    no_audio = ShardJob(dest=str(tmp_path), app_ids=("a",), options={"include_audio": False})
    assert no_audio.options == {"include_audio": False}


@pytest.mark.parametrize(
    "argv",
    [
        ["recordings", "list", "--app-id", "a", "--app-id", "b"],
        ["export", "--dest", "d", "--emulator", "--app-id", "a", "--app-id", "b"],
    ],
)
async def test_several_apps_only_where_a_job_takes_them(argv: list[str]) -> None:
    code, _out, err = await _run(argv)
    assert code == 2
    assert "app" in err or "emulator" in err


def test_the_cli_refuses_a_bad_shard_spec(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["export", "--dest", "d", "--shard", "3/3"])
    assert caught.value.code == 2
    assert "K/N" in capsys.readouterr().err


def test_the_sdk_and_the_plain_cli_never_import_distributed(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import realtimekit_async, realtimekit_async.export, realtimekit_async.shards
        from realtimekit_async._cli import build_parser
        build_parser().parse_args(["export", "--dest", "d", "--shard", "0/2"])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("distributed", "dask"))
        print(loaded)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip() == "[]"
    assert collections.Counter(done.stderr.split())["Traceback"] == 0


async def test_the_cli_runs_shards_of_a_sync_and_one_of_a_filtered_export(tmp_path: Path) -> None:
    async with emulated(recordings=0) as (emu, client):
        for n in range(4):
            await uploaded(emu, client, f"m-{n}")
        files = expected_files(emu)
        synced = [
            await _run(["sync", "--dest", str(tmp_path / "s"), *emulator_flags(emu), "--shard", k])
            for k in ("0/2", "1/2")
        ]
        status = ["--status", "UPLOADED", "--status", "ERRORED"]
        exported = await _run(
            [
                "export",
                "--dest",
                str(tmp_path / "e"),
                *emulator_flags(emu),
                *status,
                "--shard",
                "0/1",
            ]
        )
    assert [code for code, _out, _err in synced] == [0, 0]
    lines = (tmp_path / "s" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len(files)
    cursors = [n for n in _names(tmp_path / "s") if n.startswith(".realtimekit-sync.")]
    assert len(cursors) == 2
    assert exported[0] == 0
    assert len((tmp_path / "e" / "manifest.jsonl").read_text().splitlines()) == len(files)
