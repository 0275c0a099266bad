"""export_recordings into s3:// against the emulator and moto, both on 127.0.0.1.

What the bucket holds is read back with a separate aiobotocore client; what the
emulator served is read from its request log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from realtimekit_async import RealtimeKit, ValidationError
from realtimekit_async._dest import S3Settings
from realtimekit_async._objstore import DEFAULT_PART_SIZE
from realtimekit_async.emulator import expected_file_sha256
from realtimekit_async.export import export_recordings, read_manifest

from ._export_support import emulated, expected_files, plant_hostile_names, uploaded
from ._moto_support import (
    CREDENTIALS,
    MakeProxy,
    MiB,
    keys,
    kill_mid_upload,
    read,
    settings_for,
    uploads,
)
from ._support import cli
from ._support import emulator_flags as flags

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

PREFIX = "exports/day-1"


def manifest_keys(found: list[str]) -> list[str]:
    return [k for k in found if k.startswith(f"{PREFIX}/manifest/")]


def store_checksum(body: bytes) -> str:
    """S3's SHA-256 checksum of ``body`` as the export uploads it: of the whole body
    for one PUT, else of its parts' SHA-256s, suffixed with the part count."""
    if len(body) <= DEFAULT_PART_SIZE:
        return base64.b64encode(hashlib.sha256(body).digest()).decode()
    parts = range(0, len(body), DEFAULT_PART_SIZE)
    digests = b"".join(hashlib.sha256(body[i : i + DEFAULT_PART_SIZE]).digest() for i in parts)
    return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{len(parts)}"


async def assert_bucket_matches(
    raw: S3Client, bucket: str, files: dict[tuple[str, str], int]
) -> None:
    """The prefix holds exactly ``files`` (byte-exact, with the store's SHA-256 checksum,
    and a one-PUT object with its SHA-256 and size as metadata), each once in the
    manifest with its SHA-256, size and store checksum, and no incomplete upload."""
    dest = f"s3://{bucket}/{PREFIX}"
    entries = await read_manifest(
        dest, S3Settings(endpoint_url=raw.meta.endpoint_url, **CREDENTIALS)
    )
    assert sorted((e.recording_id, e.kind.value) for e in entries) == sorted(files)
    found = await keys(raw, bucket)
    assert set(found) - set(manifest_keys(found)) == {f"{PREFIX}/{e.path}" for e in entries}
    for entry in entries:
        size = files[(entry.recording_id, entry.kind.value)]
        expected = expected_file_sha256(entry.recording_id, entry.kind.value, size)
        key = f"{PREFIX}/{entry.path}"
        body = await read(raw, bucket, key)
        assert (len(body), hashlib.sha256(body).hexdigest()) == (size, expected)
        assert (entry.bytes, entry.sha256, entry.checksum) == (size, expected, store_checksum(body))
        head = await raw.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert entry.checksum is not None
        assert head["ChecksumSHA256"].partition("-")[0] == entry.checksum.partition("-")[0]
        # A multipart object's metadata is fixed when the upload starts, before its
        # SHA-256 is known: then the manifest holds it, tied to the object by the checksum.
        one_put = size <= DEFAULT_PART_SIZE
        assert head["Metadata"] == ({"sha256": expected, "bytes": str(size)} if one_put else {})
    assert await uploads(raw, bucket) == []


async def test_export_into_a_bucket_mirrors_the_local_layout(
    moto_url: str, raw: S3Client, bucket: str, tmp_path: Any
) -> None:
    async with emulated(recordings=12, meetings=3) as (emu, client):
        report = await export_recordings(
            client, f"s3://{bucket}/{PREFIX}", s3=settings_for(moto_url)
        )
        local = await export_recordings(client, tmp_path)
        files = expected_files(emu)
    assert report.failed == ()
    assert len(report.exported) == len(files) > 5
    await assert_bucket_matches(raw, bucket, files)
    assert [e.path for e in report.exported] == [e.path for e in local.exported]
    assert len(manifest_keys(await keys(raw, bucket))) == 1  # one segment for this run


async def test_a_large_file_is_uploaded_in_parts_without_a_temporary_file(
    moto_url: str, raw: S3Client, bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "m-big", size=19 * MiB)
        report = await export_recordings(
            client, f"s3://{bucket}/{PREFIX}", s3=settings_for(moto_url), include_audio=False
        )
    assert report.failed == ()
    assert [e.bytes for e in report.exported] == [19 * MiB]
    await assert_bucket_matches(raw, bucket, {(rec.id, "video"): 19 * MiB})
    head = await raw.head_object(
        Bucket=bucket, Key=f"{PREFIX}/{report.exported[0].path}", PartNumber=1
    )
    assert head["PartsCount"] == 3  # 8 MiB parts
    assert list(tmp_path.iterdir()) == []  # nothing staged on disk


async def test_rerun_skips_complete_objects_without_downloading(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    dest = f"s3://{bucket}/{PREFIX}"
    async with emulated(recordings=10, meetings=2) as (emu, client):
        first = await export_recordings(client, dest, s3=settings_for(moto_url))
        served = len(emu.storage_requests)
        again = await export_recordings(client, dest, s3=settings_for(moto_url))
        assert len(emu.storage_requests) == served  # not one download
        files = expected_files(emu)
    assert again.exported == ()
    assert again.failed == ()
    assert [e.path for e in again.skipped] == [e.path for e in first.exported]
    await assert_bucket_matches(raw, bucket, files)


async def test_a_multipart_object_is_skipped_on_its_checksum_until_replaced(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    dest = f"s3://{bucket}/{PREFIX}"
    size = 2 * DEFAULT_PART_SIZE + 1
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "m-parts", size=size)
        first = await export_recordings(
            client, dest, s3=settings_for(moto_url), include_audio=False
        )
        served = len(emu.storage_requests)
        again = await export_recordings(
            client, dest, s3=settings_for(moto_url), include_audio=False
        )
        assert len(emu.storage_requests) == served  # skipped without a download
        assert [(e.path, e.sha256, e.checksum) for e in again.skipped] == [
            (e.path, e.sha256, e.checksum) for e in first.exported
        ]
        # Someone replaces it with other bytes of the same size (no metadata either):
        # the store's checksum no longer is the manifest's, so it is fetched again.
        key = f"{PREFIX}/{first.exported[0].path}"
        await raw.put_object(Bucket=bucket, Key=key, Body=bytes(size), ChecksumAlgorithm="SHA256")
        third = await export_recordings(
            client, dest, s3=settings_for(moto_url), include_audio=False
        )
        assert len(emu.storage_requests) > served
    assert [e.path for e in third.exported] == [e.path for e in first.exported]
    await assert_bucket_matches(raw, bucket, {(rec.id, "video"): size})


async def test_an_object_changed_since_its_export_is_fetched_again(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    dest = f"s3://{bucket}/{PREFIX}"
    async with emulated(recordings=6, meetings=2) as (emu, client):
        first = await export_recordings(client, dest, s3=settings_for(moto_url))
        victim = f"{PREFIX}/{first.exported[0].path}"
        await raw.put_object(Bucket=bucket, Key=victim, Body=b"overwritten by someone")
        again = await export_recordings(client, dest, s3=settings_for(moto_url))
        files = expected_files(emu)
    assert [f"{PREFIX}/{e.path}" for e in again.exported] == [victim]
    await assert_bucket_matches(raw, bucket, files)


async def test_a_killed_run_leaves_nothing_visible_and_the_rerun_cleans_up(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    dest = f"s3://{bucket}/{PREFIX}"
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "m-killed", size=40 * MiB)
        # The progress callback slows the child down (it blocks its loop) so the
        # kill lands mid-upload.
        script = textwrap.dedent(
            f"""
            import asyncio, time
            from realtimekit_async import RealtimeKit
            from realtimekit_async._dest import S3Settings
            from realtimekit_async.export import export_recordings

            async def main():
                async with RealtimeKit(api_token={emu.token!r}, account_id={emu.account_id!r},
                                       app_id={emu.app_id!r}, base_url={emu.base_url!r}) as c:
                    await export_recordings(
                        c, {dest!r}, include_audio=False,
                        s3=S3Settings(endpoint_url={moto_url!r}, **{CREDENTIALS!r}),
                        on_progress=lambda e: time.sleep(0.01),
                    )

            asyncio.run(main())
            """
        )
        await kill_mid_upload(script, raw, bucket, within=60)
        assert await keys(raw, bucket) == []  # no partial object, no manifest entry
        assert len(await uploads(raw, bucket)) == 1

        report = await export_recordings(
            client, dest, s3=settings_for(moto_url), include_audio=False
        )
    assert report.failed == ()
    assert len(report.exported) == 1
    await assert_bucket_matches(raw, bucket, {(rec.id, "video"): 40 * MiB})


async def test_concurrent_runs_keep_each_others_entries(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    dest = f"s3://{bucket}/{PREFIX}"
    async with emulated(recordings=16, meetings=4) as (emu, client):
        meetings = sorted({r.meeting_id for r in emu.store.recordings.values()})
        runs = await asyncio.gather(
            export_recordings(client, dest, s3=settings_for(moto_url)),
            export_recordings(client, dest, s3=settings_for(moto_url), meeting_id=meetings[0]),
            export_recordings(client, dest, s3=settings_for(moto_url), meeting_id=meetings[1]),
        )
        files = expected_files(emu)
    assert all(r.failed == () for r in runs)
    assert len(manifest_keys(await keys(raw, bucket))) >= 2
    await assert_bucket_matches(raw, bucket, files)


async def test_hostile_names_stay_under_the_prefix(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    async with emulated(recordings=40, meetings=8) as (emu, client):
        plant_hostile_names(emu)
        report = await export_recordings(
            client, f"s3://{bucket}/{PREFIX}", s3=settings_for(moto_url)
        )
        files = expected_files(emu)
    assert report.failed == ()
    await assert_bucket_matches(raw, bucket, files)
    for key in await keys(raw, bucket):
        rest = key.removeprefix(f"{PREFIX}/")
        assert rest != key
        assert ".." not in rest.split("/")
        assert "\\" not in rest


async def test_a_store_failing_some_requests_still_gets_every_file(
    proxied: MakeProxy, raw: S3Client, bucket: str
) -> None:
    calls = 0

    def every_third_request_fails(method: str, query: dict[str, str]) -> int | None:
        nonlocal calls
        calls += 1
        return 503 if calls % 3 == 0 else None

    proxy = await proxied(every_third_request_fails)
    async with emulated(recordings=8, meetings=2) as (emu, client):
        report = await export_recordings(
            client, f"s3://{bucket}/{PREFIX}", s3=settings_for(proxy.url)
        )
        files = expected_files(emu)
    assert report.failed == ()
    assert proxy.failed > 3
    await assert_bucket_matches(raw, bucket, files)


async def test_uploads_that_keep_failing_are_reported_and_leave_nothing(
    proxied: MakeProxy, raw: S3Client, bucket: str
) -> None:
    proxy = await proxied(lambda method, query: 500 if method == "PUT" else None)
    async with emulated() as (emu, client):
        rec = await uploaded(emu, client, "m-fail", size=300_000)
        report = await export_recordings(
            client, f"s3://{bucket}/{PREFIX}", s3=settings_for(proxy.url), include_audio=False
        )
    assert [(f.recording_id, f.kind) for f in report.failed] == [(rec.id, "video")]
    assert "HTTP 500" in report.failed[0].reason
    assert report.exported == ()
    assert await keys(raw, bucket) == []
    assert await uploads(raw, bucket) == []


async def test_bad_destinations_fail_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on this port: a request sent first would fail otherwise.
    async with RealtimeKit(
        api_token="t0k", account_id="acc", app_id="app", base_url="http://127.0.0.1:9"
    ) as client:
        for dest in ("gs://bucket/x", "az://container/x"):
            with pytest.raises(ValidationError, match="s3://"):
                await export_recordings(client, dest)
        with pytest.raises(ValidationError, match="plain http"):
            await export_recordings(
                client, "s3://bucket/x", s3=S3Settings(endpoint_url="http://store.example")
            )
        monkeypatch.setenv("AWS_ENDPOINT_URL", "http://store.example")
        with pytest.raises(ValidationError, match="plain http"):
            await export_recordings(client, "s3://bucket/x")
        with pytest.raises(ValidationError, match="bucket"):
            await export_recordings(client, "s3://B/x")
        with pytest.raises(ValidationError, match="segment"):
            await export_recordings(client, "s3://bucket/a/../b")


async def test_the_cli_exports_into_a_bucket_named_by_dest(
    moto_url: str, raw: S3Client, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", CREDENTIALS["region"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret_access_key"])
    async with emulated(recordings=6, meetings=2) as (emu, _):
        code, out, _ = await cli("export", "--dest", f"s3://{bucket}/{PREFIX}", *flags(emu))
        files = expected_files(emu)
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["exported", str(len(files))]
    await assert_bucket_matches(raw, bucket, files)


@pytest.mark.parametrize("dest", ["gs://bucket/x", "az://container/x"])
async def test_the_cli_refuses_stores_it_cannot_write(dest: str) -> None:
    async with emulated() as (emu, _):
        code, out, err = await cli("export", "--dest", dest, *flags(emu))
    assert (code, out) == (2, "")
    assert "not supported" in err
    assert "s3://" in err
