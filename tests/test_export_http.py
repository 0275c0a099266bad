"""export_recordings against a mocked API and storage host (aiointercept).

For the cases the emulator cannot produce: a production (https) base URL with a
plain-http download URL, a storage host that ignores ``Range``, and a file
whose announced size disagrees with the recording's ``file_size``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from realtimekit_async import RealtimeKit
from realtimekit_async._export_plan import (
    PART_STATE_SUFFIX,
    PART_SUFFIX,
    PartState,
    encode_part_state,
    file_name,
)
from realtimekit_async.export import FileKind, export_recordings

from ._support import RECORDINGS, ok, recording_json, sent

REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
LISTING = re.compile(re.escape(RECORDINGS) + r"\?.*")
SECURE = "https://storage.example/files/r1/video?X-Expires=9&X-Signature=SECRET"
INSECURE = "http://storage.example/files/r1/video?X-Expires=9&X-Signature=SECRET"
NAME = file_name(REC_ID, "meeting.mp4", FileKind.VIDEO)


def list_one(api: Any, url: str, size: int) -> None:
    doc = recording_json(id=REC_ID, status="UPLOADED", download_url=url, file_size=size)
    api.get(LISTING, payload=ok([doc], paging={"total_count": 1}))


def storage_requests(api: Any) -> list[Any]:
    return [r for r in sent(api) if r.url.host == "storage.example"]


async def test_plain_http_download_is_refused(
    api: Any, client: RealtimeKit, tmp_path: Path
) -> None:
    list_one(api, INSECURE, 5)
    report = await export_recordings(client, tmp_path)
    (failure,) = report.failed
    assert "plain-http" in failure.reason
    assert "allow_insecure_downloads" in failure.reason
    assert "storage.example/files/r1/video" in failure.reason
    assert "SECRET" not in failure.reason
    assert storage_requests(api) == []
    assert report.exported == ()


async def test_plain_http_download_when_allowed_never_sends_the_token(
    api: Any, client: RealtimeKit, tmp_path: Path
) -> None:
    list_one(api, INSECURE, 5)
    api.get(re.compile(r"http://storage\.example/.*"), body=b"hello")
    report = await export_recordings(client, tmp_path, allow_insecure_downloads=True)
    (entry,) = report.exported
    assert entry.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert (tmp_path / NAME).read_bytes() == b"hello"
    (download,) = storage_requests(api)
    assert "Authorization" not in download.headers
    assert download.headers["Accept-Encoding"] == "identity"
    listing = [r for r in sent(api) if r.url.host == "api.cloudflare.com"]
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in listing)


async def test_server_ignoring_range_restarts_the_file(
    api: Any, client: RealtimeKit, tmp_path: Path
) -> None:
    body = b"hello world"
    list_one(api, SECURE, len(body))
    api.get(re.compile(r"https://storage\.example/.*"), body=body)  # 200, whole file
    (tmp_path / (NAME + PART_SUFFIX)).write_bytes(b"XYZ")  # not a prefix of the file
    state = PartState('"v1"', None, len(body), 3, hashlib.sha256(b"XYZ").hexdigest())
    (tmp_path / (NAME + PART_STATE_SUFFIX)).write_bytes(encode_part_state(state))
    report = await export_recordings(client, tmp_path)
    (download,) = storage_requests(api)
    assert download.headers["Range"] == "bytes=3-"
    assert download.headers["If-Range"] == '"v1"'
    assert (tmp_path / NAME).read_bytes() == body
    assert report.exported[0].sha256 == hashlib.sha256(body).hexdigest()


async def test_size_disagreeing_with_file_size_fails(
    api: Any, client: RealtimeKit, tmp_path: Path
) -> None:
    list_one(api, SECURE, 10)
    api.get(re.compile(r"https://storage\.example/.*"), body=b"hello")
    report = await export_recordings(client, tmp_path)
    (failure,) = report.failed
    assert "file_size is 10" in failure.reason
    assert not (tmp_path / NAME).exists()
    assert len(storage_requests(api)) == 1  # not something a retry can fix
