"""export_recordings against a hostile API and storage host written for these tests.

A small aiohttp server on 127.0.0.1, independent of the emulator, serves the
listing, ``recordings.get`` and file routes whose handlers each test picks: an
endless body, a gzip bomb, a drip, a lying ``Content-Range``, a server clock days
ahead, malformed URLs.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web

from realtimekit_async import RealtimeKit, RetryPolicy
from realtimekit_async._export_plan import (
    PART_STATE_SUFFIX,
    PART_SUFFIX,
    PartState,
    encode_part_state,
    file_name,
)
from realtimekit_async.export import CHUNK_SIZE, FileKind, export_recordings

from ._support import recording_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NO_RETRY = RetryPolicy(max_retries=0)
FAST = RetryPolicy(max_retries=3, initial_delay=0.001, max_delay=0.01)
REC = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
MiB = 1024 * 1024


@attrs.define
class Hostile:
    """What the server serves: recordings (by id), file handlers (by name), its clock."""

    port: int = 0
    recordings: dict[str, dict[str, Any]] = attrs.Factory(dict)
    files: dict[str, Handler] = attrs.Factory(dict)
    ahead: timedelta = timedelta(0)
    refreshes: list[str] = attrs.Factory(list)
    downloads: list[web.Request] = attrs.Factory(list)
    on_refresh: Callable[[dict[str, Any]], None] | None = None

    def url(self, name: str, signature: str = "SECRET") -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}?X-Signature={signature}"

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def add(
        self, rid: str = REC, *, video: int | None = 10, audio: bool = False, **doc: Any
    ) -> None:
        fields: dict[str, Any] = {
            "id": rid,
            "status": "UPLOADED",
            "download_url": self.url(f"{rid}-video"),
            "file_size": video,
            "download_url_expiry": (self.now() + timedelta(days=1)).isoformat(),
        }
        if audio:
            fields["audio_download_url"] = self.url(f"{rid}-audio")
        fields.update(doc)
        self.recordings[rid] = recording_json(**fields)


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    state = Hostile()
    prefix = "/client/v4/accounts/acc/realtime/kit/app/recordings"

    async def listing(request: web.Request) -> web.Response:
        docs = list(state.recordings.values())
        paging = {"total_count": len(docs), "start_offset": 1, "end_offset": len(docs)}
        return web.json_response({"success": True, "data": docs, "paging": paging})

    async def get(request: web.Request) -> web.Response:
        doc = state.recordings[request.match_info["rid"]]
        state.refreshes.append(doc["id"])
        if state.on_refresh is not None:
            state.on_refresh(doc)
        return web.json_response({"success": True, "data": doc})

    async def file(request: web.Request) -> web.StreamResponse:
        state.downloads.append(request)
        return await state.files[request.match_info["name"]](request)

    @web.middleware
    async def clock(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        response.headers["Date"] = format_datetime(state.now(), usegmt=True)
        return response

    app = web.Application(middlewares=[clock])
    app.router.add_get(prefix, listing)
    app.router.add_get(prefix + "/{rid}", get)
    app.router.add_get("/files/{name}", file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(hostile: Hostile) -> AsyncIterator[RealtimeKit]:
    async with RealtimeKit(
        api_token="t",
        account_id="acc",
        app_id="app",
        base_url=f"http://127.0.0.1:{hostile.port}/client/v4",
        rate_limit=None,
        max_retries=FAST,
    ) as rtk:
        yield rtk


def body(data: bytes, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, headers=headers)

    return handler


def name_of(kind: FileKind, rid: str = REC) -> str:
    return file_name(rid, "meeting.mp4", kind)


# -- size bounds -------------------------------------------------------------------------------


async def test_endless_audio_body_stops_at_the_ceiling(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked, no Content-Length
        await response.prepare(request)
        block = b"\xab" * 65536
        while True:
            await response.write(block)

    hostile.add(video=5, audio=True)
    hostile.files[f"{REC}-video"] = body(b"video")
    hostile.files[f"{REC}-audio"] = endless
    report = await export_recordings(client, tmp_path, max_audio_size=MiB, max_retries=NO_RETRY)

    (failure,) = report.failed
    assert failure.kind is FileKind.AUDIO
    assert f"more than {MiB} bytes" in failure.reason
    assert [e.kind for e in report.exported] == [FileKind.VIDEO]
    assert not (tmp_path / name_of(FileKind.AUDIO)).exists()
    assert report.bytes <= 5 + MiB + CHUNK_SIZE  # read no further than the ceiling
    part = tmp_path / (name_of(FileKind.AUDIO) + PART_SUFFIX)
    assert part.stat().st_size == 0  # not the file: not kept for a resume


async def test_announced_size_past_the_ceiling_is_refused_before_the_body(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=5, audio=True)
    hostile.files[f"{REC}-video"] = body(b"video")
    hostile.files[f"{REC}-audio"] = body(b"x" * 2000)
    report = await export_recordings(client, tmp_path, max_audio_size=1000, max_retries=NO_RETRY)
    (failure,) = report.failed
    assert "announces 2000 bytes, more than the limit of 1000" in failure.reason
    assert report.bytes == 5


async def test_gzip_body_is_refused_never_inflated(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    bomb = gzip.compress(bytes(64 * MiB))  # 64 KiB on the wire
    hostile.add(video=5, audio=True)
    hostile.files[f"{REC}-video"] = body(b"video")
    hostile.files[f"{REC}-audio"] = body(bomb, **{"Content-Encoding": "gzip"})
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)

    (failure,) = report.failed
    assert "Content-Encoding 'gzip'" in failure.reason
    assert all(r.headers["Accept-Encoding"] == "identity" for r in hostile.downloads)
    assert report.bytes == 5  # the bomb's body was not even read
    part = tmp_path / (name_of(FileKind.AUDIO) + PART_SUFFIX)
    assert part.stat().st_size == 0


async def test_dripping_body_fails_after_the_read_timeout_window(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b"x")
            await asyncio.sleep(0.05)  # 20 bytes a second, never idle long enough to time out
        return response

    hostile.add(video=1000)
    hostile.files[f"{REC}-video"] = drip
    began = time.monotonic()
    report = await export_recordings(
        client, tmp_path, read_timeout=0.5, min_rate=100, max_retries=NO_RETRY
    )
    elapsed = time.monotonic() - began

    (failure,) = report.failed
    assert "slower than 100 bytes/s" in failure.reason
    assert elapsed < 5  # the drip would take 50 s
    assert report.exported == ()


# -- resume ----------------------------------------------------------------------------------------

FILE = bytes(range(256)) * 40  # 10240 bytes


def plant(
    dest: Path,
    data: bytes,
    *,
    etag: str | None,
    hashed: bytes | None = None,
    digest: str | None = None,
) -> None:
    name = name_of(FileKind.VIDEO)
    (dest / (name + PART_SUFFIX)).write_bytes(data)
    prefix = hashlib.sha256(data if hashed is None else hashed).hexdigest()
    state = PartState(etag, None, len(FILE), len(data), prefix, digest=digest)
    (dest / (name + PART_STATE_SUFFIX)).write_bytes(encode_part_state(state))


def ranged(*, content_range: Callable[[int], str], etag: str = '"v1"') -> Handler:
    """Answers a Range request with 206 and the given Content-Range (and the true tail)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Range")
        if header is None:
            return web.Response(body=FILE, headers={"ETag": etag})
        start = int(header.removeprefix("bytes=").rstrip("-"))
        headers = {"ETag": etag, "Content-Range": content_range(start)}
        return web.Response(status=206, body=FILE[start:], headers=headers)

    return handler


@pytest.mark.parametrize(
    ("content_range", "etag"),
    [
        (lambda start: f"bytes 0-{len(FILE) - 1}/{len(FILE)}", '"v1"'),  # not where we asked
        (lambda start: f"bytes {start}-{len(FILE) - 1}/*", '"v1"'),  # no total to check
        (lambda start: f"bytes {start}-{len(FILE) + 9}/{len(FILE) + 10}", '"v1"'),  # grew
        (lambda start: f"bytes {start}-{len(FILE) - 1}/{len(FILE)}", '"v2"'),  # other version
    ],
)
async def test_partial_answer_that_does_not_line_up_restarts_from_zero(
    hostile: Hostile,
    client: RealtimeKit,
    tmp_path: Path,
    content_range: Callable[[int], str],
    etag: str,
) -> None:
    hostile.add(video=len(FILE))
    hostile.files[f"{REC}-video"] = ranged(content_range=content_range, etag=etag)
    plant(tmp_path, FILE[:4000], etag='"v1"')
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)

    assert [r.headers.get("Range") for r in hostile.downloads] == ["bytes=4000-", None]
    assert hostile.downloads[0].headers["If-Range"] == '"v1"'
    (entry,) = report.exported
    assert entry.sha256 == hashlib.sha256(FILE).hexdigest()
    assert (tmp_path / entry.path).read_bytes() == FILE


async def test_resume_continues_an_intact_part(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=len(FILE))
    good = ranged(content_range=lambda start: f"bytes {start}-{len(FILE) - 1}/{len(FILE)}")
    hostile.files[f"{REC}-video"] = good
    plant(tmp_path, FILE[:4000], etag='"v1"')
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)
    assert [r.headers.get("Range") for r in hostile.downloads] == ["bytes=4000-"]
    assert report.bytes == len(FILE) - 4000
    assert (tmp_path / report.exported[0].path).read_bytes() == FILE


async def test_part_whose_bytes_do_not_match_its_state_is_not_resumed(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=len(FILE))
    hostile.files[f"{REC}-video"] = ranged(
        content_range=lambda start: f"bytes {start}-{len(FILE) - 1}/{len(FILE)}"
    )
    plant(tmp_path, b"\0" * 4000, etag='"v1"', hashed=FILE[:4000])  # planted over
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)
    assert [r.headers.get("Range") for r in hostile.downloads] == [None]
    assert (tmp_path / report.exported[0].path).read_bytes() == FILE


FILE_DIGEST = "sha-256=:" + base64.b64encode(hashlib.sha256(FILE).digest()).decode() + ":"


async def test_consistently_forged_part_is_caught_by_the_servers_digest(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    # The .part and its state agree with each other (someone rewrote both), so only
    # the digest the server announces can tell the result is not the file.
    async def with_digest(request: web.Request) -> web.StreamResponse:
        response = await ranged(
            content_range=lambda start: f"bytes {start}-{len(FILE) - 1}/{len(FILE)}"
        )(request)
        response.headers["Repr-Digest"] = FILE_DIGEST
        return response

    hostile.add(video=len(FILE))
    hostile.files[f"{REC}-video"] = with_digest
    plant(tmp_path, b"\0" * 4000, etag='"v1"', digest=hashlib.sha256(FILE).hexdigest())
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)

    assert [r.headers.get("Range") for r in hostile.downloads] == ["bytes=4000-", None]
    (entry,) = report.exported
    assert (tmp_path / entry.path).read_bytes() == FILE


async def test_body_not_matching_the_servers_digest_fails(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=len(FILE))
    hostile.files[f"{REC}-video"] = body(bytes(len(FILE)), **{"Repr-Digest": FILE_DIGEST})
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)
    (failure,) = report.failed
    assert "does not match the digest" in failure.reason
    assert not (tmp_path / name_of(FileKind.VIDEO)).exists()
    # The wrong bytes are not kept for a rerun to resume from.
    assert (tmp_path / (name_of(FileKind.VIDEO) + PART_SUFFIX)).stat().st_size == 0


def cut_short(headers: dict[str, str]) -> Handler:
    """The first answer stops halfway and drops the connection; later ones serve properly."""
    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        start = int(request.headers.get("Range", "bytes=0-").removeprefix("bytes=").rstrip("-"))
        status = 206 if start else 200
        extra = {"Content-Range": f"bytes {start}-{len(FILE) - 1}/{len(FILE)}"} if start else {}
        response = web.StreamResponse(status=status, headers={**headers, **extra})
        response.content_length = len(FILE) - start
        await response.prepare(request)
        if calls == 1:
            await response.write(FILE[: len(FILE) // 2])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write(FILE[start:])
        return response

    return handler


@pytest.mark.parametrize(
    ("validators", "if_range"),
    [
        ({"ETag": '"v1"'}, '"v1"'),
        ({"ETag": 'W/"weak"', "Last-Modified": "Sat, 01 Mar 2025 12:00:00 GMT"}, None),
        ({}, None),
    ],
)
async def test_retry_resumes_only_with_a_validator_for_if_range(
    hostile: Hostile,
    client: RealtimeKit,
    tmp_path: Path,
    validators: dict[str, str],
    if_range: str | None,
) -> None:
    if "Last-Modified" in validators:
        if_range = validators["Last-Modified"]
    hostile.add(video=len(FILE))
    hostile.files[f"{REC}-video"] = cut_short(validators)
    report = await export_recordings(client, tmp_path, max_retries=FAST)

    first, second = hostile.downloads
    assert "Range" not in first.headers
    if if_range is None:  # nothing to prove the file did not change: start again
        assert "Range" not in second.headers
    else:
        assert second.headers["Range"].startswith("bytes=")
        assert second.headers["If-Range"] == if_range
    assert (tmp_path / report.exported[0].path).read_bytes() == FILE


# -- URLs ------------------------------------------------------------------------------------------


async def test_malformed_download_urls_fail_alone(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    bad = {
        "00000000-0000-4000-8000-000000000001": "https://xn--/x",
        "00000000-0000-4000-8000-000000000002": "https://" + "a" * 300 + ".example/x",
    }
    for rid, url in bad.items():
        hostile.add(rid, download_url=url)
    hostile.add(video=5)
    hostile.files[f"{REC}-video"] = body(b"video")
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)

    assert {f.recording_id for f in report.failed} == set(bad)
    assert all("not a valid URL" in f.reason for f in report.failed)
    assert [e.recording_id for e in report.exported] == [REC]


# -- expiry on the server's clock ------------------------------------------------------------------


async def test_url_expired_by_the_servers_clock_is_refreshed_then_reported_expired(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=5)  # expires in a day by our clock
    hostile.ahead = timedelta(days=2)  # ...and a day ago by the server's
    hostile.files[f"{REC}-video"] = body(b"video")
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)

    assert hostile.refreshes == [REC]
    assert hostile.downloads == []
    assert report.failed == ()
    (expired,) = report.expired
    assert (expired.recording_id, expired.kind) == (REC, FileKind.VIDEO)
    assert expired.expiry is not None
    # The client keeps the latest answer's Date, which is what the judgement used.
    stamp = client.last_server_date
    assert stamp is not None
    date, received = stamp
    assert date is not None
    assert abs(parsedate_to_datetime(date) - received - timedelta(days=2)) < timedelta(seconds=5)


async def test_url_renewed_by_the_refresh_is_used(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=5)
    hostile.ahead = timedelta(days=2)

    def renew(doc: dict[str, Any]) -> None:
        doc["download_url_expiry"] = (hostile.now() + timedelta(hours=1)).isoformat()
        doc["download_url"] = hostile.url(f"{REC}-video", signature="FRESH")

    hostile.on_refresh = renew
    hostile.files[f"{REC}-video"] = body(b"video")
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)
    assert hostile.refreshes == [REC]
    assert [r.query["X-Signature"] for r in hostile.downloads] == ["FRESH"]
    assert len(report.exported) == 1


async def test_403_refreshes_once_then_fails_without_leaking_the_signature(
    hostile: Hostile, client: RealtimeKit, tmp_path: Path
) -> None:
    hostile.add(video=5)

    async def forbidden(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")

    hostile.files[f"{REC}-video"] = forbidden
    report = await export_recordings(client, tmp_path, max_retries=NO_RETRY)
    assert hostile.refreshes == [REC]
    assert len(hostile.downloads) == 2
    (failure,) = report.failed
    assert "403" in failure.reason
    assert "SECRET" not in failure.reason
    assert report.expired == ()
