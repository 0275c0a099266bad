"""The storage site: exact bytes, Range, expiry, signatures, recorded headers."""

from __future__ import annotations

import aiohttp
import pytest_asyncio
from yarl import URL

from realtimekit_async.emulator import Emulator, expected_file_bytes, iter_file_bytes
from realtimekit_async.emulator.pytest_plugin import EmulatorFactory

from ._support import control, get_recording, start

SIZE = 3 * 256 * 1024 + 123  # several chunks plus a ragged tail


@pytest_asyncio.fixture
async def uploaded(
    make_emu: EmulatorFactory, session: aiohttp.ClientSession
) -> tuple[Emulator, dict[str, object]]:
    """An emulator with one UPLOADED recording (with audio) of SIZE bytes."""
    emu = await make_emu()
    rec = await start(session, emu, "m", audio_config={"codec": "MP3"})
    emu.set_file_size(rec["id"], SIZE)
    emu.advance(12)
    await control(session, emu, rec["id"], "stop")
    emu.advance(3)
    return emu, await get_recording(session, emu, rec["id"])


async def test_download_is_byte_exact_and_unauthenticated(
    uploaded: tuple[Emulator, dict[str, object]], session: aiohttp.ClientSession
) -> None:
    emu, rec = uploaded
    assert rec["file_size"] == SIZE
    url = str(rec["download_url"])
    assert URL(url).origin() != URL(emu.base_url).origin()
    async with session.get(url, headers={"X-Probe": "1"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(SIZE)
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["Content-Type"] == "video/mp4"
        assert resp.headers["ETag"].startswith('"')
        body = await resp.read()
    assert body == expected_file_bytes(str(rec["id"]), "video", SIZE)
    assert len(emu.storage_requests) == 1
    seen = emu.storage_requests[0]
    assert seen.method == "GET"
    assert seen.path == f"/files/{rec['id']}/video"
    assert seen.headers["X-Probe"] == "1"
    assert "Authorization" not in seen.headers
    assert emu.stats.requests["download"] == 1


async def test_audio_file(
    uploaded: tuple[Emulator, dict[str, object]], session: aiohttp.ClientSession
) -> None:
    emu, rec = uploaded
    async with session.get(str(rec["audio_download_url"])) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "audio/mp4"
        body = await resp.read()
    assert len(body) == SIZE // 8
    assert body == expected_file_bytes(str(rec["id"]), "audio", SIZE // 8)
    assert emu.file_size(str(rec["id"]), "audio") == SIZE // 8


async def test_ranges(
    uploaded: tuple[Emulator, dict[str, object]], session: aiohttp.ClientSession
) -> None:
    _, rec = uploaded
    url, rid = str(rec["download_url"]), str(rec["id"])
    whole = expected_file_bytes(rid, "video", SIZE)
    cases = {
        "bytes=0-99": (0, 100),
        f"bytes={SIZE - 10}-": (SIZE - 10, SIZE),
        "bytes=-7": (SIZE - 7, SIZE),
        "bytes=1000-999999999": (1000, SIZE),
    }
    for header, (lo, hi) in cases.items():
        async with session.get(url, headers={"Range": header}) as resp:
            assert resp.status == 206, header
            assert resp.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{SIZE}"
            assert resp.headers["Content-Length"] == str(hi - lo)
            assert await resp.read() == whole[lo:hi]
    for header in (f"bytes={SIZE}-", "bytes=9-3", "lines=1-2"):
        async with session.get(url, headers={"Range": header}) as resp:
            assert resp.status == 416, header
            assert resp.headers["Content-Range"] == f"bytes */{SIZE}"
    async with session.get(url, headers={"Range": "bytes=0-1,4-5"}) as resp:
        assert resp.status == 200  # multi-range ignored, like S3
        assert len(await resp.read()) == SIZE


async def test_if_range_with_stale_etag_sends_whole_file(
    uploaded: tuple[Emulator, dict[str, object]], session: aiohttp.ClientSession
) -> None:
    _, rec = uploaded
    url = str(rec["download_url"])
    async with session.head(url) as resp:
        etag = resp.headers["ETag"]
        assert resp.headers["Content-Length"] == str(SIZE)
    async with session.get(url, headers={"Range": "bytes=10-", "If-Range": etag}) as resp:
        assert resp.status == 206
    async with session.get(url, headers={"Range": "bytes=10-", "If-Range": '"stale"'}) as resp:
        assert resp.status == 200


async def test_expiry_and_signature_are_enforced(
    uploaded: tuple[Emulator, dict[str, object]], session: aiohttp.ClientSession
) -> None:
    emu, rec = uploaded
    url = URL(str(rec["download_url"]))
    tampered = url.update_query({"X-Expires": str(int(url.query["X-Expires"]) + 3600)})
    async with session.get(tampered) as resp:
        assert resp.status == 403
        assert "SignatureDoesNotMatch" in await resp.text()
    async with session.get(url.with_query({})) as resp:
        assert resp.status == 403
    emu.advance(7 * 86400)  # exactly at expiry
    async with session.get(url) as resp:
        assert resp.status == 403
        assert "expired" in await resp.text()


async def test_files_of_active_or_unknown_recordings_are_404(
    emu: Emulator, session: aiohttp.ClientSession
) -> None:
    rec = await start(session, emu, "m")
    signer_url = emu._ctx.signer.url(rec["id"], "video", 4_000_000_000)
    async with session.get(signer_url) as resp:
        assert resp.status == 404
        assert "NoSuchKey" in await resp.text()
    async with session.get(emu.storage_url + "/nothing") as resp:
        assert resp.status == 404


async def test_gigabyte_file_is_cheap(
    uploaded: tuple[Emulator, dict[str, object]], session: aiohttp.ClientSession
) -> None:
    emu, rec = uploaded
    rid = str(rec["id"])
    emu.set_file_size(rid, 2**30)
    data = await get_recording(session, emu, rid)
    assert data["file_size"] == 2**30
    url = str(data["download_url"])
    async with session.get(url, headers={"Range": "bytes=-1024"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {2**30 - 1024}-{2**30 - 1}/{2**30}"
        tail = await resp.read()
    assert tail == b"".join(iter_file_bytes(rid, "video", 2**30 - 1024, 2**30))
    async with session.head(url) as resp:
        assert resp.headers["Content-Length"] == str(2**30)
