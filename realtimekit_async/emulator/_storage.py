"""The storage site: deterministic file bytes, Range serving, presigned-URL checks."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from email.utils import format_datetime
from typing import Final

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._context import CTX_KEY, TRUNCATE, EmulatorContext
from ._http import abort, fault_middleware, prepare_headers, storage_middleware, xml_error
from ._state import audio_file_size
from ._util import ms_to_datetime

__all__ = [
    "FILE_KINDS",
    "RangeNotSatisfiableError",
    "build_storage_app",
    "expected_file_bytes",
    "expected_file_sha256",
    "iter_file_bytes",
    "parse_range",
]

FILE_KINDS: Final = ("video", "audio")
_CHUNK: Final = 256 * 1024
_RANGE_RE: Final = re.compile(r"^(\d*)-(\d*)$")


def _file_key(recording_id: str, kind: str) -> bytes:
    return hashlib.sha256(f"rtk-emulator-file:{recording_id}:{kind}".encode()).digest()[:16]


def iter_file_bytes(
    recording_id: str, kind: str, start: int, stop: int, chunk_size: int = _CHUNK
) -> Iterator[bytes]:
    """Yield bytes ``[start, stop)`` of a recording's file in chunks.

    The content is an AES-128-CTR keystream keyed by (recording id, kind): fast,
    deterministic, and seekable, so any range costs only its own length. Raises
    ValueError for a negative or reversed range.
    """
    if start < 0 or stop < start:
        raise ValueError("invalid byte range")
    chunk_size = max(16, chunk_size - chunk_size % 16)
    block, skip = divmod(start, 16)
    encryptor = Cipher(
        algorithms.AES(_file_key(recording_id, kind)), modes.CTR(block.to_bytes(16, "big"))
    ).encryptor()
    zeros = memoryview(bytes(chunk_size))
    pos = start - skip
    while pos < stop:
        n = min(chunk_size, stop - pos)
        data = encryptor.update(zeros[:n])
        if skip:
            data, skip = data[skip:], 0
        yield data
        pos += n


def expected_file_bytes(recording_id: str, kind: str, size: int) -> bytes:
    """The exact bytes the storage site serves for a file of ``size`` bytes."""
    return b"".join(iter_file_bytes(recording_id, kind, 0, size))


def expected_file_sha256(recording_id: str, kind: str, size: int) -> str:
    """Hex SHA-256 of the served file, computed in chunks (fine for GiB sizes)."""
    digest = hashlib.sha256()
    for chunk in iter_file_bytes(recording_id, kind, 0, size):
        digest.update(chunk)
    return digest.hexdigest()


class RangeNotSatisfiableError(ValueError):
    """The Range header is malformed or starts beyond the end of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range against ``size``; returns ``(start, stop)``.

    None means "serve the whole file" (no header, or a multi-range request, which
    this host ignores as S3 does). Raises RangeNotSatisfiableError otherwise.
    """
    if header is None:
        return None
    text = header.strip()
    if not text.lower().startswith("bytes="):
        raise RangeNotSatisfiableError(f"unsupported range unit in {header!r}")
    spec = text[6:].strip()
    if "," in spec:
        return None
    match = _RANGE_RE.match(spec)
    if match is None or (not match[1] and not match[2]):
        raise RangeNotSatisfiableError(f"malformed range {header!r}")
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0:
            raise RangeNotSatisfiableError("empty suffix range")
        return max(0, size - suffix), size
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiableError(f"range {header!r} not satisfiable for size {size}")
    return first, min(last, size - 1) + 1


def file_size_for(ctx: EmulatorContext, recording_id: str, kind: str) -> int | None:
    """Size of a downloadable file, or None when that file does not exist (yet)."""
    rec = ctx.store.recordings.get(recording_id)
    if rec is None or rec.status != "UPLOADED" or rec.file_size is None:
        return None
    if rec.expiry_ms is None:
        return None
    if kind == "audio":
        return audio_file_size(rec.file_size) if rec.has_audio else None
    return rec.file_size


def _refusal(ctx: EmulatorContext, request: web.Request) -> web.Response | None:
    """The error a download request gets (bad key, signature or expiry), if any."""
    rid = request.match_info["recording_id"]
    kind = request.match_info["kind"]
    expires = request.query.get("X-Expires", "")
    if kind not in FILE_KINDS:
        return xml_error(404, "NoSuchKey", "The specified key does not exist.")
    if not ctx.signer.verify(rid, kind, expires, request.query.get("X-Signature", "")):
        return xml_error(403, "SignatureDoesNotMatch", "The request signature is invalid.")
    if ctx.clock.now_ms() >= int(expires) * 1000:
        return xml_error(403, "AccessDenied", "Request has expired.")
    return None


async def _download(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX_KEY]
    rid = request.match_info["recording_id"]
    kind = request.match_info["kind"]
    refusal = _refusal(ctx, request)
    if refusal is not None:
        return refusal
    size = file_size_for(ctx, rid, kind)
    if size is None:
        return xml_error(404, "NoSuchKey", "The specified key does not exist.")
    rec = ctx.store.recordings[rid]
    etag = '"' + hashlib.sha256(f"{rid}:{kind}:{size}".encode()).hexdigest()[:32] + '"'
    range_header = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != etag:
        range_header = None
    try:
        window = parse_range(range_header, size)
    except RangeNotSatisfiableError:
        bad = xml_error(416, "InvalidRange", "The requested range is not satisfiable.")
        bad.headers["Content-Range"] = f"bytes */{size}"
        return bad
    start, stop = window if window is not None else (0, size)
    headers = {
        "Content-Type": "video/mp4" if kind == "video" else "audio/mp4",
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": format_datetime(ms_to_datetime(rec.stopped_ms or 0), usegmt=True),
    }
    status = 200
    if window is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = stop - start
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    truncate = TRUNCATE.get()
    # A truncated download sends half the promised bytes, then drops the connection.
    end = start + (stop - start) // 2 if truncate else stop
    for chunk in iter_file_bytes(rid, kind, start, end):
        await resp.write(chunk)
    if truncate:
        await asyncio.sleep(0)
        abort(request)
        return resp
    await resp.write_eof()
    return resp


def build_storage_app(ctx: EmulatorContext) -> web.Application:
    """The download site standing in for the presigned storage host."""
    app = web.Application(middlewares=[storage_middleware, fault_middleware("storage")])
    app[CTX_KEY] = ctx
    app.router.add_get("/files/{recording_id}/{kind}", _download, name="download")
    app.on_response_prepare.append(prepare_headers)
    return app
