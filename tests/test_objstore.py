"""The object-store adapter against a real S3 server: moto on 127.0.0.1, started once.

Every assertion about what is in the store reads it back with a separate
aiobotocore client, not through the adapter under test. Faults are injected
by a small aiohttp proxy in front of moto.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from realtimekit_async import StorageError, ValidationError
from realtimekit_async._dest import MIN_PART_SIZE, S3Settings, b64_sha256
from realtimekit_async._objstore import ObjectStore

from ._moto_support import (
    CREDENTIALS,
    MakeProxy,
    MiB,
    keys,
    kill_mid_upload,
    read,
    store_on,
    stream,
    uploads,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def test_small_stream_is_one_put_with_its_sha256(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).hexdigest()
    put = await store.put("rec_meeting.mp4", stream(data), content_type="video/mp4")
    assert (put.key, put.size, put.sha256) == ("exports/rec_meeting.mp4", len(data), sha)
    assert await read(raw, bucket, put.key) == data
    head = await raw.head_object(Bucket=bucket, Key=put.key, ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": sha, "bytes": str(len(data))}
    assert head["ChecksumSHA256"] == b64_sha256(hashlib.sha256(data).digest())
    assert head["ContentType"] == "video/mp4"
    assert await uploads(raw, bucket) == []

    found = await store.head("rec_meeting.mp4")
    assert found is not None
    assert (found.key, found.size, found.sha256, found.etag) == (put.key, len(data), sha, put.etag)


async def test_empty_stream_stores_an_empty_object(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    put = await store.put("empty.mp4", stream(b""))
    assert put.sha256 == hashlib.sha256(b"").hexdigest()
    assert await read(raw, bucket, "exports/empty.mp4") == b""


async def test_large_stream_is_multipart_and_sealed_with_its_metadata(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    data = os.urandom(2 * MIN_PART_SIZE + 12345)  # three parts
    sha = hashlib.sha256(data).hexdigest()
    put = await store.put("big.mp4", stream(data, chunk=3 * MiB + 1))
    assert (put.size, put.sha256) == (len(data), sha)
    assert await read(raw, bucket, "exports/big.mp4") == data
    head = await raw.head_object(Bucket=bucket, Key="exports/big.mp4", ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": sha, "bytes": str(len(data))}
    # The seal's copy makes the store compute a whole-object SHA-256: the stream's.
    assert head["ChecksumSHA256"] == b64_sha256(hashlib.sha256(data).digest())
    assert await uploads(raw, bucket) == []
    found = await store.head("big.mp4")
    assert found is not None
    assert (found.size, found.sha256, found.checksum_sha256) == (
        len(data),
        sha,
        put.checksum_sha256,
    )


async def test_unsealed_multipart_has_no_sha256_metadata(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    data = os.urandom(MIN_PART_SIZE + 1)
    async with store_on(moto_url, bucket, seal=False) as store:
        put = await store.put("x.mp4", stream(data))
        assert put.sha256 is None
        found = await store.head("x.mp4")
    assert found is not None
    assert (found.size, found.sha256) == (len(data), None)
    assert await read(raw, bucket, "p/x.mp4") == data


async def test_a_caller_hashed_stream_is_checked_before_it_becomes_visible(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    data = os.urandom(MIN_PART_SIZE + 1)
    counts: list[int] = []

    def refuse(size: int) -> str:
        counts.append(size)
        raise CutError("size disagrees")

    async with store_on(moto_url, bucket, seal=False) as store:
        with pytest.raises(CutError, match="size disagrees"):
            await store.put("x.mp4", stream(data), finish=refuse)
        assert counts == [len(data)]  # called once, after the last byte
        assert await keys(raw, bucket) == []  # aborted, never completed
        assert await uploads(raw, bucket) == []
        sha = hashlib.sha256(data).hexdigest()
        put = await store.put("x.mp4", stream(data), finish=lambda size: sha)
    assert put.checksum_sha256 is not None
    assert put.checksum_sha256.endswith("-2")
    assert await keys(raw, bucket) == ["p/x.mp4"]
    assert await read(raw, bucket, "p/x.mp4") == data


async def test_head_of_a_missing_object_is_none(store: ObjectStore) -> None:
    assert await store.head("nothing.mp4") is None


async def test_head_ignores_metadata_recorded_for_another_size(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    await raw.put_object(
        Bucket=bucket, Key="exports/o.mp4", Body=b"abc", Metadata={"sha256": "a" * 64, "bytes": "9"}
    )
    found = await store.head("o.mp4")
    assert found is not None
    assert (found.size, found.sha256) == (3, None)


# -- failures mid-upload -------------------------------------------------------------------


class CutError(Exception):
    pass


async def test_a_stream_that_raises_leaves_no_object_and_no_upload(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        for _ in range(12):  # two full parts, then the download breaks
            yield os.urandom(MiB)
        raise CutError("download cut")

    with pytest.raises(CutError, match="download cut"):  # the caller's error, unchanged
        await store.put("cut.mp4", failing())
    assert await keys(raw, bucket) == []
    assert await uploads(raw, bucket) == []
    assert await store.head("cut.mp4") is None


async def test_a_cancelled_upload_is_aborted(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    reached = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield os.urandom(MiB)
        reached.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.create_task(store.put("slow.mp4", slow()))
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await uploads(raw, bucket) == []
    assert await keys(raw, bucket) == []


async def test_a_killed_upload_is_invisible_and_removed_by_the_cleanup(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio
        from realtimekit_async._dest import S3Settings
        from realtimekit_async._objstore import ObjectStore

        async def endless():
            for _ in range(400):
                yield bytes(1024 * 1024)
                await asyncio.sleep(0.01)

        async def main():
            settings = S3Settings(endpoint_url={moto_url!r}, **{CREDENTIALS!r})
            async with ObjectStore("s3://{bucket}/exports", settings, part_size={MIN_PART_SIZE}) as s:
                await s.put("killed.mp4", endless())

        asyncio.run(main())
        """
    )
    await kill_mid_upload(script, raw, bucket, within=30)
    assert await keys(raw, bucket) == []  # nothing visible
    assert await uploads(raw, bucket) == ["exports/killed.mp4"]

    async with store_on(moto_url, bucket, "exports") as store:
        assert [u.key for u in await store.list_incomplete_uploads()] == ["exports/killed.mp4"]
        aborted = await store.abort_stale_uploads(older_than=timedelta(0))
        assert [u.key for u in aborted] == ["exports/killed.mp4"]
        assert await store.list_incomplete_uploads() == []
    assert await uploads(raw, bucket) == []


async def test_cleanup_stays_under_the_prefix(moto_url: str, raw: S3Client, bucket: str) -> None:
    other = await raw.create_multipart_upload(Bucket=bucket, Key="exports-other/x.mp4")
    mine = await raw.create_multipart_upload(Bucket=bucket, Key="exports/x.mp4")
    async with store_on(moto_url, bucket, "exports") as store:
        aborted = await store.abort_stale_uploads(older_than=timedelta(0))
    assert [(u.key, u.upload_id) for u in aborted] == [("exports/x.mp4", mine["UploadId"])]
    left = await raw.list_multipart_uploads(Bucket=bucket)
    assert [u["UploadId"] for u in left["Uploads"]] == [other["UploadId"]]


# -- manifest segments -----------------------------------------------------------------------


async def test_concurrent_runs_each_keep_their_manifest_segment(
    moto_url: str, raw: S3Client, bucket: str
) -> None:
    async with (
        store_on(moto_url, bucket, "exports") as one,
        store_on(moto_url, bucket, "exports") as two,
    ):
        lines_one = b'{"recording_id": "a"}\n{"recording_id": "b"}\n'
        lines_two = b'{"recording_id": "c"}\n'
        written = await asyncio.gather(
            one.write_manifest_segment("run-1", lines_one),
            two.write_manifest_segment("run-2", lines_two),
        )
        assert list(written) == ["exports/manifest/run-1.jsonl", "exports/manifest/run-2.jsonl"]
        segments = await two.read_manifest_segments()
    assert [(s.key, s.data) for s in segments] == [
        ("exports/manifest/run-1.jsonl", lines_one),
        ("exports/manifest/run-2.jsonl", lines_two),
    ]
    assert await read(raw, bucket, "exports/manifest/run-1.jsonl") == lines_one


async def test_a_segment_is_never_overwritten(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    await store.write_manifest_segment("run-1", b"first\n")
    # Writing the same bytes again (a retry whose first attempt landed) succeeds.
    await store.write_manifest_segment("run-1", b"first\n")
    with pytest.raises(StorageError) as info:
        await store.write_manifest_segment("run-1", b"second\n")
    assert (info.value.status, info.value.code) == (412, "PreconditionFailed")
    assert info.value.key == "exports/manifest/run-1.jsonl"
    assert await read(raw, bucket, "exports/manifest/run-1.jsonl") == b"first\n"


async def test_segments_of_another_prefix_are_not_read(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    await raw.put_object(Bucket=bucket, Key="other/manifest/r.jsonl", Body=b"x\n")
    await raw.put_object(Bucket=bucket, Key="exports/manifest/notes.txt", Body=b"x\n")
    await store.write_manifest_segment("r", b"mine\n")
    assert [s.key for s in await store.read_manifest_segments()] == ["exports/manifest/r.jsonl"]


# -- names -----------------------------------------------------------------------------------


async def test_hostile_names_stay_under_the_prefix(
    store: ObjectStore, raw: S3Client, bucket: str
) -> None:
    names = ["a..b.mp4", "..hidden", "réunion 会议 🎥.mp4", "x" * 900, "dir/sub/f.mp4"]
    for name in names:
        await store.put(name, stream(name.encode()))
    stored = await keys(raw, bucket)
    assert stored == sorted(f"exports/{name}" for name in names)
    for name in names:
        assert await read(raw, bucket, f"exports/{name}") == name.encode()
    for bad in ("../escape.mp4", "a/../../escape.mp4", "/abs.mp4", "manifest/x.jsonl", "y" * 1100):
        with pytest.raises(ValidationError):
            await store.put(bad, stream(b"no"))
    assert await keys(raw, bucket) == stored  # nothing else was written


# -- faults ------------------------------------------------------------------------------------


async def test_transient_5xx_are_retried(proxied: MakeProxy, raw: S3Client, bucket: str) -> None:
    seen: set[str] = set()

    def first_attempt_of_each_request_fails(method: str, query: dict[str, str]) -> int | None:
        step = f"{method} {query.get('partNumber', '')} {'uploads' in query}"
        if step in seen:
            return None
        seen.add(step)
        return 503 if "uploads" in query else 500  # the start is throttled, parts break

    proxy = await proxied(first_attempt_of_each_request_fails)
    data = os.urandom(2 * MIN_PART_SIZE + 1)
    async with store_on(proxy.url, bucket) as store:
        put = await store.put("retried.mp4", stream(data))
    # start, three parts, complete and the seal's copy each failed once
    assert proxy.failed == 6
    assert put.sha256 == hashlib.sha256(data).hexdigest()
    assert await read(raw, bucket, "p/retried.mp4") == data
    assert await uploads(raw, bucket) == []


async def test_persistent_5xx_is_a_storage_error_and_the_upload_is_aborted(
    proxied: MakeProxy, raw: S3Client, bucket: str
) -> None:
    def parts_always_fail(method: str, query: dict[str, str]) -> int | None:
        return 500 if method == "PUT" and "partNumber" in query else None

    proxy = await proxied(parts_always_fail)
    async with store_on(proxy.url, bucket, max_attempts=2) as store:
        with pytest.raises(StorageError) as info:
            await store.put("doomed.mp4", stream(os.urandom(MIN_PART_SIZE + 1)))
    assert info.value.status == 500
    assert info.value.code == "InternalError"
    assert info.value.key == "p/doomed.mp4"
    assert "part" in str(info.value)
    assert await uploads(raw, bucket) == []  # the abort went through
    assert await keys(raw, bucket) == []


async def test_a_failed_abort_leaves_an_upload_that_the_cleanup_removes(
    proxied: MakeProxy, moto_url: str, raw: S3Client, bucket: str
) -> None:
    def aborts_fail(method: str, query: dict[str, str]) -> int | None:
        return 500 if method == "DELETE" and "uploadId" in query else None

    proxy = await proxied(aborts_fail)
    async with store_on(proxy.url, bucket, max_attempts=1) as store:
        with pytest.raises(CutError):
            await store.put("left.mp4", failing_after(MIN_PART_SIZE + MiB))
    assert await uploads(raw, bucket) == ["p/left.mp4"]
    assert await keys(raw, bucket) == []
    async with store_on(moto_url, bucket) as store:
        assert len(await store.abort_stale_uploads(older_than=timedelta(0))) == 1
    assert await uploads(raw, bucket) == []


async def failing_after(size: int) -> AsyncIterator[bytes]:
    yield os.urandom(size)
    raise CutError("cut")


async def test_parts_in_flight_are_bounded(proxied: MakeProxy, raw: S3Client, bucket: str) -> None:
    proxy = await proxied(lambda method, query: None)
    data = os.urandom(5 * MIN_PART_SIZE)
    async with store_on(proxy.url, bucket, max_concurrency=2) as store:
        await store.put("bounded.mp4", stream(data, chunk=MiB))
    assert proxy.max_parts_in_flight == 2
    assert await read(raw, bucket, "p/bounded.mp4") == data


async def test_a_sealed_copy_whose_checksum_disagrees_is_deleted(
    proxied: MakeProxy, raw: S3Client, bucket: str
) -> None:
    forged = b64_sha256(hashlib.sha256(b"something else").digest()).encode()

    def forge_copy_checksum(payload: bytes) -> bytes:
        if b"<CopyObjectResult" not in payload:
            return payload
        return re.sub(rb"<ChecksumSHA256>[^<]*<", b"<ChecksumSHA256>" + forged + b"<", payload)

    proxy = await proxied(lambda method, query: None, forge_copy_checksum)
    async with store_on(proxy.url, bucket) as store:
        with pytest.raises(StorageError) as info:
            await store.put("bad.mp4", stream(os.urandom(MIN_PART_SIZE + 1)))
    assert info.value.code == "ChecksumMismatch"
    assert await keys(raw, bucket) == []  # the object that disagreed is gone
    assert await uploads(raw, bucket) == []


async def test_a_missing_bucket_is_a_storage_error(moto_url: str) -> None:
    async with store_on(moto_url, "no-such-bucket-here") as store:
        with pytest.raises(StorageError) as info:
            await store.put("a.mp4", stream(b"abc"))
    assert (info.value.status, info.value.code) == (404, "NoSuchBucket")


async def test_an_unreachable_store_is_a_storage_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with store_on(url, "bkt", max_attempts=1) as store:
        with pytest.raises(StorageError) as info:
            await store.head("a.mp4")
    assert info.value.status is None
    assert info.value.key == "p/a.mp4"
    assert CREDENTIALS["secret_access_key"] not in str(info.value)


# -- configuration -------------------------------------------------------------------------------


def test_plain_http_non_loopback_endpoint_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    with pytest.raises(ValidationError, match="plain http"):
        ObjectStore("s3://bkt/p")


@pytest.mark.parametrize(
    ("dest", "kwargs", "problem"),
    [
        ("gs://bkt/p", {}, "not supported"),
        ("az://bkt/p", {}, "not supported"),
        ("/local/dir", {}, "local path"),
        ("s3://bkt/p", {"part_size": MiB}, "5 MiB"),
        ("s3://bkt/p", {"max_concurrency": 0}, "at least 1"),
        ("s3://bkt/p", {"max_attempts": 0}, "at least 1"),
    ],
)
def test_bad_configuration_is_refused_before_any_request(
    dest: str, kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        ObjectStore(dest, S3Settings(), **kwargs)


async def test_using_a_closed_store_says_so() -> None:
    store = ObjectStore("s3://bkt/p", S3Settings())
    with pytest.raises(RuntimeError, match="not open"):
        await store.head("a.mp4")


def test_the_core_install_never_imports_the_store_library() -> None:
    code = (
        "import sys, realtimekit_async, realtimekit_async.export, realtimekit_async._dest\n"
        "heavy = {'aiobotocore', 'botocore', 'obstore', 'boto3'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
