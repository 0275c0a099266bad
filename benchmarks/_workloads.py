"""One measurement in a fresh process: ``python -m benchmarks._workloads '<spec json>'``.

The harness (:mod:`benchmarks.run`) starts this once per client and repetition
and reads one JSON object from its last stdout line. CPU is user+sys of this
process (all threads) over the timed region, wall is ``perf_counter`` over the
same region, and ``rss_peak`` is the process's lifetime peak RSS in bytes.
Imports happen before the timed region; client construction and close are in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp

Spec = dict[str, Any]
Result = dict[str, Any]


# -- measuring ---------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss() -> int:
    """Lifetime peak RSS of this process, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss() -> int:
    """Current RSS in bytes (0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


class Meter:
    """Wall and CPU seconds over a ``with meter.measure():`` block."""

    wall = 0.0
    cpu = 0.0
    rss_before = 0

    @contextmanager
    def measure(self) -> Iterator[None]:
        self.rss_before = current_rss()
        cpu0, wall0 = _cpu(), time.perf_counter()
        yield
        self.wall = time.perf_counter() - wall0
        self.cpu = _cpu() - cpu0

    def result(self, **extra: Any) -> Result:
        return {
            "wall": self.wall,
            "cpu": self.cpu,
            "rss_peak": peak_rss(),
            "rss_before": self.rss_before,
            **extra,
        }


def _check_count(spec: Spec, count: int) -> None:
    expected = spec.get("expected")
    if expected is not None and count != expected:
        raise SystemExit(f"{spec['client']}: counted {count} items, expected {expected}")


# -- list all ----------------------------------------------------------------------


def _auth(spec: Spec) -> dict[str, str]:
    return {"Authorization": f"Bearer {spec['token']}", "Accept": "application/json"}


async def _raw_page(
    session: aiohttp.ClientSession, spec: Spec, page_no: int
) -> tuple[list[dict[str, Any]], int]:
    params = {"page_no": str(page_no), "per_page": str(spec["per_page"])}
    async with session.get(spec["recordings_url"], params=params) as resp:
        resp.raise_for_status()
        body = await resp.read()
    doc = json.loads(body)
    return doc["data"], doc["paging"]["total_count"]


async def list_floor(spec: Spec) -> int:
    """Raw aiohttp + stdlib json, one page after the other."""
    count = 0
    async with aiohttp.ClientSession(headers=_auth(spec)) as session:
        page_no = spec.get("start_page", 1)
        while True:
            data, total = await _raw_page(session, spec, page_no)
            for _item in data:  # plain dicts
                count += 1
            if not data or page_no * spec["per_page"] >= total:
                return count
            page_no += 1


async def list_floor_concurrent(spec: Spec) -> int:
    """Raw aiohttp: page 1 for the total, then the rest with ``concurrency`` in flight."""
    count = 0
    per_page = spec["per_page"]
    async with aiohttp.ClientSession(headers=_auth(spec)) as session:
        data, total = await _raw_page(session, spec, 1)
        count += len(data)
        pages = iter(range(2, -(-total // per_page) + 1))

        async def worker() -> None:
            nonlocal count
            for page_no in pages:  # one shared iterator: each page fetched once
                items, _ = await _raw_page(session, spec, page_no)
                for _item in items:
                    count += 1

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    return count


async def list_official(spec: Spec) -> int:
    """The official SDK: it does not auto-paginate, so the usual ``page_no`` loop."""
    from cloudflare import AsyncCloudflare

    count = 0
    async with AsyncCloudflare(api_token=spec["token"], base_url=spec["base_url"]) as cf:
        page_no = 1
        while True:
            page = await cf.realtime_kit.recordings.get_recordings(
                spec["app_id"],
                account_id=spec["account_id"],
                page_no=page_no,
                per_page=spec["per_page"],
            )
            for _recording in page.data:  # pydantic models
                count += 1
            if not page.data or page_no * spec["per_page"] >= page.paging.total_count:
                return count
            page_no += 1


def _sdk_client(spec: Spec) -> Any:
    """The SDK with its default settings (rate limits included); ``max_retries`` if given."""
    from realtimekit_async import RealtimeKit, RetryPolicy

    options: dict[str, Any] = {}
    if "max_retries" in spec:
        options["max_retries"] = RetryPolicy(max_retries=spec["max_retries"])
    return RealtimeKit(
        api_token=spec["token"],
        account_id=spec["account_id"],
        app_id=spec["app_id"],
        base_url=spec["base_url"],
        **options,
    )


async def list_sdk(spec: Spec) -> int:
    """This SDK's items walk (models, nothing collected); ``prefetch`` None = default."""
    count = 0
    options: dict[str, Any] = {"per_page": spec["per_page"], "page_no": spec.get("start_page", 1)}
    if spec.get("prefetch") is not None:
        options["prefetch"] = spec["prefetch"]
    async with _sdk_client(spec) as client:
        async for _recording in client.recordings.list(**options):
            count += 1
    return count


LISTERS: dict[str, Callable[[Spec], Awaitable[int]]] = {
    "floor": list_floor,
    "floor_concurrent": list_floor_concurrent,
    "official": list_official,
    "sdk_prefetch1": list_sdk,
    "sdk": list_sdk,
}


def _preload(client: str) -> None:
    """Import what a client needs before the timed region (imports are not its work)."""
    if client.startswith("sdk"):
        import realtimekit_async.export  # noqa: F401
    elif client.startswith("official"):
        import cloudflare  # noqa: F401


async def run_list(spec: Spec) -> Result:
    lister = LISTERS[spec["client"]]
    _preload(spec["client"])
    meter = Meter()
    with meter.measure():
        count = await lister(spec)
    _check_count(spec, count)
    return meter.result(count=count)


# -- per-call overhead -------------------------------------------------------------

Ops = dict[str, list[float]]


class _RawCalls:
    """start / stop / get with raw aiohttp, the same requests the SDK sends."""

    def __init__(self, spec: Spec) -> None:
        self.url = spec["recordings_url"]
        self.session = aiohttp.ClientSession(headers=_auth(spec))

    async def _call(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        data = None
        headers = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json"}
        async with self.session.request(method, url, data=data, headers=headers) as resp:
            resp.raise_for_status()
            payload = await resp.read()
        return json.loads(payload)["data"]

    async def start(self, meeting_id: str) -> str:
        data = await self._call("POST", self.url, {"meeting_id": meeting_id})
        return str(data["id"])

    async def stop(self, recording_id: str) -> None:
        await self._call("PUT", f"{self.url}/{recording_id}", {"action": "stop"})

    async def get(self, recording_id: str) -> None:
        await self._call("GET", f"{self.url}/{recording_id}", None)

    async def close(self) -> None:
        await self.session.close()


class _SdkCalls:
    def __init__(self, spec: Spec) -> None:
        self.client = _sdk_client(spec)

    async def start(self, meeting_id: str) -> str:
        recording = await self.client.recordings.start(meeting_id)
        return str(recording.id)

    async def stop(self, recording_id: str) -> None:
        await self.client.recordings.stop(recording_id)

    async def get(self, recording_id: str) -> None:
        await self.client.recordings.get(recording_id)

    async def close(self) -> None:
        await self.client.close()


async def run_percall(spec: Spec) -> Result:
    """``start``, ``stop``, ``get`` of a fresh recording, timed one call at a time."""
    calls: _RawCalls | _SdkCalls = _RawCalls(spec) if spec["client"] == "raw" else _SdkCalls(spec)
    ops: Ops = {"start": [], "stop": [], "get": []}
    warmup, iterations = spec["warmup"], spec["iterations"]
    meetings = [str(uuid.uuid4()) for _ in range(warmup + iterations)]
    clock = time.perf_counter
    meter = Meter()
    try:
        for meeting in meetings[:warmup]:  # connection set-up, first-call caches
            rid = await calls.start(meeting)
            await calls.stop(rid)
            await calls.get(rid)
        with meter.measure():
            for meeting in meetings[warmup:]:
                t0 = clock()
                rid = await calls.start(meeting)
                t1 = clock()
                await calls.stop(rid)
                t2 = clock()
                await calls.get(rid)
                t3 = clock()
                ops["start"].append(t1 - t0)
                ops["stop"].append(t2 - t1)
                ops["get"].append(t3 - t2)
    finally:
        await calls.close()
    medians = {f"{op}_us": statistics.median(times) * 1e6 for op, times in ops.items()}
    return meter.result(
        count=iterations, cpu_per_iteration_us=meter.cpu / iterations * 1e6, **medians
    )


# -- decode ------------------------------------------------------------------------


async def _fetch_page(spec: Spec) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=_auth(spec)) as session:
        params = {"page_no": str(spec.get("page_no", 1)), "per_page": str(spec["per_page"])}
        async with session.get(spec["recordings_url"], params=params) as resp:
            resp.raise_for_status()
            doc: dict[str, Any] = json.loads(await resp.read())
            return doc


def _decoder(client: str) -> Callable[[dict[str, Any]], Any]:
    if client == "sdk":
        from realtimekit_async._converter import converter
        from realtimekit_async._models import RecordingPage

        def ours(doc: dict[str, Any]) -> Any:
            return converter.structure(doc, RecordingPage)  # what _recordings._decode runs

        return ours
    from cloudflare._models import construct_type, validate_type
    from cloudflare.types.realtime_kit import RecordingGetRecordingsResponse

    if client == "official":

        def theirs(doc: dict[str, Any]) -> Any:
            # What BaseClient._process_response_data does by default
            # (_strict_response_validation=False) for every response.
            return construct_type(type_=RecordingGetRecordingsResponse, value=doc)

        return theirs

    def strict(doc: dict[str, Any]) -> Any:
        # Only with AsyncCloudflare(_strict_response_validation=True).
        return validate_type(type_=RecordingGetRecordingsResponse, value=doc)

    return strict


def run_decode(spec: Spec) -> Result:
    """Microseconds per recording to turn a decoded page (dict) into objects."""
    doc = asyncio.run(_fetch_page(spec))
    items = len(doc["data"])
    decode = _decoder(spec["client"])
    page = decode(doc)
    if len(page.data) != items:
        raise SystemExit(f"{spec['client']}: decoded {len(page.data)} of {items} items")
    decode(doc)  # warm caches
    batches, per_batch = spec["batches"], spec["per_batch"]
    samples: list[float] = []
    meter = Meter()
    with meter.measure():
        for _ in range(batches):
            t0 = time.perf_counter()
            for _ in range(per_batch):
                decode(doc)
            samples.append((time.perf_counter() - t0) / (per_batch * items))
    return meter.result(count=items, us_per_recording=statistics.median(samples) * 1e6)


# -- the webhook waiter ------------------------------------------------------------


def _status_updates(prefix: str, count: int) -> list[Any]:
    from realtimekit_async.webhooks import parse_event

    return [
        parse_event(
            b'{"event":"recording.statusUpdate","meeting":{"id":"m"},"recording":{"id":"'
            + f"{prefix}-{i}".encode()
            + b'","status":"UPLOADED"}}'
        )
        for i in range(count)
    ]


async def _run_waiter(spec: Spec) -> Result:
    from realtimekit_async import RealtimeKit, RecordingWaiter

    tracked, events = spec["tracked"], spec["events"]
    fill = _status_updates("fill", tracked)
    more = _status_updates("more", events) if spec["client"] == "sdk_full" else fill
    meter = Meter()
    async with (
        RealtimeKit(api_token="t", account_id="a", app_id="b", rate_limit=None) as client,
        RecordingWaiter(client, max_tracked=tracked) as waiter,
    ):
        if spec["client"] == "sdk_full":
            for event in fill:  # untimed: the waiter is full before the timed events
                waiter.feed(event)
        with meter.measure():
            for event in more:
                waiter.feed(event)
    return meter.result(count=len(more), us_per_event=meter.wall / len(more) * 1e6)


def run_waiter(spec: Spec) -> Result:
    """Microseconds per webhook event fed to a ``RecordingWaiter``: filling it, or full."""
    return asyncio.run(_run_waiter(spec))


# -- export ------------------------------------------------------------------------


async def _raw_copy(
    session: aiohttp.ClientSession, url: str, path: Path, chunk: int, durable: bool
) -> AsyncIterator[int]:
    """Stream one file to disk (blocking writes in the loop: the simplest floor).

    ``durable`` also hashes it with SHA-256 and fsyncs it before closing, the
    verification and durability ``export_recordings`` adds.
    """
    digest = hashlib.sha256()
    async with session.get(url) as resp:
        resp.raise_for_status()
        with path.open("wb") as out:
            async for block in resp.content.iter_chunked(chunk):
                out.write(block)
                if durable:
                    digest.update(block)
                yield len(block)
            if durable:
                out.flush()
                os.fsync(out.fileno())


async def export_raw(spec: Spec, dest: Path, urls: list[str]) -> int:
    """Raw aiohttp streaming copy of every file to disk, ``concurrency`` at a time."""
    durable = spec["client"] == "raw_durable"
    total = 0
    queue = iter(enumerate(urls))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal total
            for i, url in queue:
                path = dest / f"{i}.mp4"
                async for n in _raw_copy(session, url, path, spec["chunk"], durable):
                    total += n

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    return total


async def _download_urls(spec: Spec) -> list[str]:
    """Presigned URLs of the benchmark files, fetched before the timed region."""
    urls: list[str] = []
    async with aiohttp.ClientSession(headers=_auth(spec)) as session:
        for rid in spec["file_ids"]:
            async with session.get(f"{spec['recordings_url']}/{rid}") as resp:
                resp.raise_for_status()
                urls.append((await resp.json())["data"]["download_url"])
    return urls


_S3_PART: Final = 8 * 1024 * 1024


def _s3_client(spec: Spec) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3",
        endpoint_url=spec["s3_endpoint"],
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )


async def _raw_s3_copy(
    session: aiohttp.ClientSession, s3: Any, bucket: str, key: str, url: str, chunk: int
) -> int:
    """Stream one file into the store with aiobotocore: one PUT when it fits in a
    part, else a multipart upload of 8 MiB parts, one at a time (the floor)."""
    buffer = bytearray()
    parts: list[dict[str, Any]] = []
    upload_id: str | None = None
    total = 0
    async with session.get(url) as resp:
        resp.raise_for_status()
        async for block in resp.content.iter_chunked(chunk):
            buffer += block
            total += len(block)
            if len(buffer) >= _S3_PART:
                if upload_id is None:
                    started = await s3.create_multipart_upload(Bucket=bucket, Key=key)
                    upload_id = started["UploadId"]
                body, buffer = bytes(buffer[:_S3_PART]), buffer[_S3_PART:]
                n = len(parts) + 1
                answer = await s3.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body
                )
                parts.append({"PartNumber": n, "ETag": answer["ETag"]})
    if upload_id is None:
        await s3.put_object(Bucket=bucket, Key=key, Body=bytes(buffer))
        return total
    if buffer:
        n = len(parts) + 1
        answer = await s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=bytes(buffer)
        )
        parts.append({"PartNumber": n, "ETag": answer["ETag"]})
    await s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    return total


async def export_raw_s3(spec: Spec, urls: list[str]) -> int:
    """Raw streaming copy of every file into the bucket, ``concurrency`` at a time."""
    total = 0
    queue = iter(enumerate(urls))
    async with aiohttp.ClientSession() as session, _s3_client(spec) as s3:

        async def worker() -> None:
            nonlocal total
            for i, url in queue:
                key = f"raw/{i}.mp4"
                n = await _raw_s3_copy(session, s3, spec["bucket"], key, url, spec["chunk"])
                total += n  # after the await: `total += await ...` would lose updates

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    return total


async def _create_bucket(spec: Spec) -> None:
    async with _s3_client(spec) as s3:
        await s3.create_bucket(Bucket=spec["bucket"])


async def export_sdk(spec: Spec, dest: Path) -> int:
    """``export_recordings`` with its defaults (concurrency, chunking, hashing, fsync)."""
    from realtimekit_async.export import export_recordings

    target: str | Path = dest
    s3 = None
    if "s3_endpoint" in spec:
        from realtimekit_async._dest import S3Settings

        target = f"s3://{spec['bucket']}/sdk"
        s3 = S3Settings(
            endpoint_url=spec["s3_endpoint"],
            region="us-east-1",
            access_key_id="bench",
            secret_access_key="bench-secret",
        )
    async with _sdk_client(spec) as client:
        report = await export_recordings(client, target, s3=s3)
    if report.failed or len(report.exported) != len(spec["file_ids"]):
        raise SystemExit(f"export: {len(report.exported)} exported, failed: {report.failed}")
    return report.bytes


async def run_export(spec: Spec) -> Result:
    dest = Path(spec["dest"])
    raw = spec["client"].startswith("raw")
    urls = await _download_urls(spec) if raw else []
    _preload(spec["client"])
    to_s3 = "s3_endpoint" in spec
    if to_s3:
        await _create_bucket(spec)
    meter = Meter()
    with meter.measure():
        if raw and to_s3:
            written = await export_raw_s3(spec, urls)
        elif raw:
            written = await export_raw(spec, dest, urls)
        else:
            written = await export_sdk(spec, dest)
    expected = spec["expected_bytes"]
    if written != expected:
        raise SystemExit(f"{spec['client']}: wrote {written} bytes, expected {expected}")
    return meter.result(
        count=len(spec["file_ids"]),
        bytes=written,
        mib_per_s=written / (1 << 20) / meter.wall if meter.wall else 0.0,
    )


# -- entry point -------------------------------------------------------------------


def main() -> None:
    spec: Spec = json.loads(sys.argv[1])
    workload = spec["workload"]
    if workload == "list":
        result = asyncio.run(run_list(spec))
    elif workload == "percall":
        result = asyncio.run(run_percall(spec))
    elif workload == "decode":
        result = run_decode(spec)
    elif workload == "waiter":
        result = run_waiter(spec)
    elif workload == "export":
        Path(spec["dest"]).mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_export(spec))
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
