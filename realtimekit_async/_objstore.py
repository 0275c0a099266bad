"""The async adapter between an export and an S3-compatible object store.

Thin by design: ``_dest`` decides keys, part sizes, metadata and which
uploads are stale; this module sends the requests with aiobotocore (from the
optional ``s3`` extra, imported only here) and turns every library exception
into :class:`StorageError`. Exceptions raised by the caller's byte iterator
pass through unchanged, after the upload they fed has been aborted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, NoReturn, Self

import aiohttp
import attrs

from ._closing import AsyncCloseable
from ._dest import (
    MAX_PARTS,
    MAX_SINGLE_COPY,
    IncompleteUpload,
    ObjectDestination,
    S3Settings,
    Scheme,
    StoredObject,
    b64_sha256,
    manifest_key,
    manifest_prefix,
    object_key,
    object_metadata,
    parse_destination,
    part_size_for,
    resolve_s3_settings,
    stale_uploads,
    stored_sha256,
)
from ._exceptions import StorageError, ValidationError

try:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession, get_session
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "exporting to an object store needs the s3 extra: pip install 'realtimekit_async[s3]'"
    ) from exc

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = ["DEFAULT_PART_SIZE", "ManifestSegment", "ObjectStore"]

#: Part size of multipart uploads; memory is bounded by ``max_concurrency + 2`` parts.
DEFAULT_PART_SIZE: Final = 8 * 1024 * 1024
_SHA256: Final = "SHA256"
# What the store library raises: botocore's errors, and aiohttp's or a timeout
# that slip through aiobotocore unwrapped.
_LIBRARY_ERRORS: Final = (ClientError, BotoCoreError, aiohttp.ClientError, TimeoutError)


@attrs.frozen
class ManifestSegment:
    """One run's manifest segment as stored: its key and its bytes (JSON lines)."""

    key: str
    data: bytes


class _Parts:
    """Cuts an async byte stream into parts of ``part_size`` (the last one shorter),
    counting every byte on the way, and hashing them unless the caller does.

    The chunks are kept as they come and joined once per part, so what stays
    allocated between parts is the part itself and a chunk's worth at most.
    """

    def __init__(self, chunks: AsyncIterable[bytes], part_size: int, *, hashing: bool) -> None:
        self._chunks: AsyncIterator[bytes] = aiter(chunks)
        self._part_size = part_size
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._ended = False
        self.sha256 = hashlib.sha256() if hashing else None
        self.size = 0

    @property
    def fits_one(self) -> bool:
        """True when what is left of the stream (once :meth:`fill` ed) is one part at most."""
        return self._ended and self._buffered <= self._part_size

    async def fill(self) -> None:
        """Read until a whole part is buffered or the stream has ended."""
        while not self._ended and self._buffered < self._part_size:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                break
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            if self.sha256 is not None:
                self.sha256.update(chunk)
            self.size += len(chunk)

    async def next(self) -> bytes | None:
        """The next part, or ``None`` after the last one."""
        await self.fill()
        if not self._buffered:
            return None
        chunks, self._buffer = self._buffer, []
        extra = self._buffered - self._part_size
        if extra > 0:  # the last chunk straddles the part's end
            last = chunks.pop()
            chunks.append(last[: len(last) - extra])
            self._buffer.append(last[len(last) - extra :])
        self._buffered = max(extra, 0)
        return b"".join(chunks)


#: Called once a stream has ended, before its object is made visible, with the
#: number of bytes the store took; returns their hex SHA-256 (hashed by the
#: caller) or raises to abort the upload.
Finish = Callable[[int], str]


def _sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def composite_sha256(part_checksums: list[str]) -> str:
    """S3's checksum of a multipart object from its parts' base64 SHA-256 checksums (in
    part order): the SHA-256 of their digests, base64, suffixed ``-<part count>``."""
    digests = b"".join(base64.b64decode(c) for c in part_checksums)
    return f"{b64_sha256(hashlib.sha256(digests).digest())}-{len(part_checksums)}"


def _raise_storage_error(exc: Exception, what: str, key: str) -> NoReturn:
    """Raise the :class:`StorageError` for a library exception met while doing ``what``."""
    status: int | None = None
    code: str | None = None
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or None
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"HTTP {status} {code or ''}: {error.get('Message') or ''}".strip(" :")
    else:
        detail = f"{type(exc).__name__}: {exc}"
    raise StorageError(
        f"{what} {key or '(bucket)'}: {detail}", key=key, status=status, code=code
    ) from exc


@contextlib.contextmanager
def _mapped(what: str, key: str = "") -> Iterator[None]:
    """Turn the store library's exceptions inside the block into :class:`StorageError`."""
    try:
        yield
    except _LIBRARY_ERRORS as exc:
        _raise_storage_error(exc, what, key)


_session: AioSession | None = None


def _shared_session() -> AioSession:
    """One botocore session per process: each loads the S3 service model (~0.5 s) once."""
    global _session
    if _session is None:
        _session = get_session()
    return _session


def _harvest(
    done: set[asyncio.Task[CompletedPartTypeDef]], into: list[CompletedPartTypeDef]
) -> None:
    """Add finished part uploads to ``into``; raise the first failure (every one is retrieved)."""
    failures = [exc for exc in (task.exception() for task in done) if exc is not None]
    if failures:
        raise failures[0]
    into.extend(task.result() for task in done)


class ObjectStore(AsyncCloseable):
    """An S3-compatible bucket and prefix, as an export destination.

    ``async with ObjectStore("s3://bucket/prefix") as store:`` opens one client
    (aiobotocore, on aiohttp) with settings from ``settings`` or the standard
    ``AWS_*`` variables. Uploads stream: parts of ``part_size`` bytes, at most
    ``max_concurrency`` in flight. botocore retries 5xx, throttling and
    connection failures up to ``max_attempts`` attempts per request. Every
    store failure raises :class:`StorageError`; bad arguments raise
    :class:`ValidationError` before any request.
    """

    def __init__(
        self,
        dest: ObjectDestination | str,
        settings: S3Settings | None = None,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = 2,
        max_attempts: int = 5,
        seal: bool = True,
    ) -> None:
        if isinstance(dest, str):
            parsed = parse_destination(dest)
            if not isinstance(parsed, ObjectDestination):
                raise ValidationError("dest", "is a local path, not an object-store URL")
            dest = parsed
        if dest.scheme is not Scheme.S3:
            raise ValidationError(
                "dest",
                f"{dest.scheme}:// is not supported; use s3:// (for Google Cloud Storage, its "
                "S3-compatible endpoint https://storage.googleapis.com with HMAC keys)",
            )
        part_size_for(part_size, None)
        if max_concurrency < 1:
            raise ValidationError("max_concurrency", "must be at least 1")
        if max_attempts < 1:
            raise ValidationError("max_attempts", "must be at least 1")
        self.dest = dest
        self._settings = settings if settings is not None else resolve_s3_settings(os.environ)
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._max_attempts = max_attempts
        self._seal = seal
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def open(self) -> None:
        """Create the store client (``async with`` does this)."""
        if self._client is not None:
            return
        s = self._settings
        config = AioConfig(retries={"max_attempts": self._max_attempts, "mode": "standard"})
        with _mapped("connecting to"):
            self._client = await self._stack.enter_async_context(
                _shared_session().create_client(
                    "s3",
                    endpoint_url=s.endpoint_url,
                    region_name=s.region,
                    aws_access_key_id=s.access_key_id,
                    aws_secret_access_key=s.secret_access_key,
                    aws_session_token=s.session_token,
                    config=config,
                )
            )

    async def close(self) -> None:
        """Close the client and its connections."""
        self._client = None
        await self._stack.aclose()

    @property
    def _s3(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("ObjectStore is not open: use `async with ObjectStore(...)`")
        return self._client

    @property
    def part_size(self) -> int:
        """Bytes per part of a multipart upload; a stream up to this size is one PUT."""
        return self._part_size

    @property
    def _bucket(self) -> str:
        return self.dest.bucket

    # -- objects --------------------------------------------------------------------

    async def put(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        *,
        size_hint: int | None = None,
        content_type: str = "application/octet-stream",
        finish: Finish | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` into the object for ``name`` (a path relative to the prefix).

        A stream that fits in one part is sent with one PUT carrying its SHA-256
        as ``x-amz-checksum-sha256`` (verified by the store) and as metadata; a
        longer one as a multipart upload with per-part SHA-256 checksums (so the
        store keeps its SHA-256 of the parts' SHA-256s), aborted on any failure
        (or cancellation), so no partial object ever becomes visible. With
        ``seal`` a multipart object up to 5 GiB is then copied onto itself to
        attach the metadata, and the store's SHA-256 of the copy must match the
        stream's. ``finish`` (when given) is called after the last byte and
        before the object becomes visible, with the byte count: it returns the
        stream's hex SHA-256 (then this does not hash the stream itself) or
        raises to abort. Raises :class:`StorageError`; an exception from
        ``chunks`` or ``finish`` propagates as is.
        """
        key = object_key(self.dest, name)
        parts = _Parts(chunks, part_size_for(self._part_size, size_hint), hashing=finish is None)

        def sha256_hex() -> str:
            if finish is not None:
                return finish(parts.size)
            assert parts.sha256 is not None
            return parts.sha256.hexdigest()

        await parts.fill()
        if parts.fits_one:
            body = await parts.next() or b""
            return await self._put_single(key, body, sha256_hex(), content_type)
        return await self._put_multipart(key, parts, sha256_hex, content_type)

    async def _put_single(
        self, key: str, body: bytes, sha_hex: str, content_type: str
    ) -> StoredObject:
        checksum = b64_sha256(bytes.fromhex(sha_hex))
        with _mapped("uploading", key):
            answer = await self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ChecksumAlgorithm=_SHA256,
                ChecksumSHA256=checksum,
                Metadata=object_metadata(sha_hex, len(body)),
            )
        return StoredObject(key, len(body), sha_hex, checksum, answer.get("ETag"))

    async def _put_multipart(
        self,
        key: str,
        parts: _Parts,
        sha256_hex: Callable[[], str],
        content_type: str,
    ) -> StoredObject:
        with _mapped("starting upload of", key):
            started = await self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType=content_type, ChecksumAlgorithm=_SHA256
            )
        upload_id = started["UploadId"]
        try:
            completed = await self._upload_parts(key, upload_id, parts)
            sha_hex = sha256_hex()  # may raise: then the upload is aborted, never completed
            with _mapped("completing upload of", key):
                done = await self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": completed},
                )
        except BaseException:
            await self._abort_quietly(key, upload_id)
            raise
        checksum = done.get("ChecksumSHA256") or composite_sha256(
            [p["ChecksumSHA256"] for p in completed]
        )
        stored = StoredObject(key, parts.size, None, checksum, done.get("ETag"))
        if not self._seal or parts.size > MAX_SINGLE_COPY:
            return stored
        return await self._seal_object(stored, sha_hex, content_type)

    async def _upload_parts(
        self, key: str, upload_id: str, parts: _Parts
    ) -> list[CompletedPartTypeDef]:
        """Upload every part, at most ``max_concurrency`` at a time; the parts in
        ``PartNumber`` order. The next part is read while earlier ones upload,
        once a slot is free: a part is never held waiting for one, which would
        add a part to the memory peak."""
        pending: set[asyncio.Task[CompletedPartTypeDef]] = set()
        completed: list[CompletedPartTypeDef] = []
        try:
            number = 0
            part = await parts.next()
            while part is not None:
                number += 1
                if number > MAX_PARTS:
                    raise StorageError(
                        f"uploading {key}: more than {MAX_PARTS} parts; pass size_hint",
                        key=key,
                    )
                pending.add(asyncio.create_task(self._upload_part(key, upload_id, number, part)))
                part = None  # the task holds it now
                while len(pending) >= self._max_concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    _harvest(done, completed)
                part = await parts.next()
            if pending:
                done, pending = await asyncio.wait(pending)
                _harvest(done, completed)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return sorted(completed, key=lambda p: p.get("PartNumber", 0))

    async def _upload_part(
        self, key: str, upload_id: str, number: int, body: bytes
    ) -> CompletedPartTypeDef:
        # In a worker thread (hashlib lets go of the GIL): the loop keeps reading
        # the download meanwhile.
        digest = await asyncio.to_thread(_sha256_digest, body)
        checksum = b64_sha256(digest)
        with _mapped(f"uploading part {number} of", key):
            answer = await self._s3.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm=_SHA256,
                ChecksumSHA256=checksum,
            )
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

    async def _seal_object(
        self, stored: StoredObject, sha_hex: str, content_type: str
    ) -> StoredObject:
        """Copy a completed multipart object onto itself with its metadata; the store
        recomputes a whole-object SHA-256, which must be the stream's."""
        key = stored.key
        want = b64_sha256(bytes.fromhex(sha_hex))
        with _mapped("attaching metadata to", key):
            answer = await self._s3.copy_object(
                Bucket=self._bucket,
                Key=key,
                CopySource={"Bucket": self._bucket, "Key": key},
                CopySourceIfMatch=stored.etag or "*",
                MetadataDirective="REPLACE",
                Metadata=object_metadata(sha_hex, stored.size),
                ContentType=content_type,
                ChecksumAlgorithm=_SHA256,
            )
        result = answer.get("CopyObjectResult", {})
        got = result.get("ChecksumSHA256")
        if got is not None and got != want:
            with _mapped("deleting corrupt", key):
                await self._s3.delete_object(Bucket=self._bucket, Key=key)
            raise StorageError(
                f"uploading {key}: the store holds SHA-256 {got}, the stream had {want}",
                key=key,
                code="ChecksumMismatch",
            )
        return StoredObject(key, stored.size, sha_hex, got or want, result.get("ETag"))

    async def _abort_quietly(self, key: str, upload_id: str) -> None:
        # The upload is failing already; an abort that fails too leaves a stale
        # upload that abort_stale_uploads() removes, so its error is not the news.
        with contextlib.suppress(*_LIBRARY_ERRORS):
            await self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    async def head(self, name: str) -> StoredObject | None:
        """The object stored for ``name`` (size, recorded SHA-256, store checksum), or
        ``None`` if there is none. Raises :class:`StorageError`."""
        key = object_key(self.dest, name)
        try:
            with _mapped("inspecting", key):
                answer = await self._s3.head_object(
                    Bucket=self._bucket, Key=key, ChecksumMode="ENABLED"
                )
        except StorageError as exc:
            if exc.status == 404:
                return None
            raise
        size = answer["ContentLength"]
        return StoredObject(
            key,
            size,
            stored_sha256(answer.get("Metadata", {}), size),
            answer.get("ChecksumSHA256") or None,
            answer.get("ETag"),
        )

    async def get(self, name: str) -> bytes | None:
        """The bytes of the (small) object for ``name``, or ``None`` if there is none.
        Raises :class:`StorageError`."""
        try:
            return await self._read(object_key(self.dest, name))
        except StorageError as exc:
            if exc.status == 404:
                return None
            raise

    # -- incomplete uploads -------------------------------------------------------------

    async def list_incomplete_uploads(self) -> list[IncompleteUpload]:
        """Every multipart upload under the prefix that was neither completed nor aborted."""
        prefix = f"{self.dest.prefix}/" if self.dest.prefix else ""
        found: list[IncompleteUpload] = []
        with _mapped("listing incomplete uploads under", prefix):
            pages = self._s3.get_paginator("list_multipart_uploads")
            async for page in pages.paginate(Bucket=self._bucket, Prefix=prefix):
                found.extend(
                    IncompleteUpload(u["Key"], u["UploadId"], u["Initiated"])
                    for u in page.get("Uploads", [])
                )
        return found

    async def abort_stale_uploads(
        self, *, older_than: timedelta, now: datetime | None = None
    ) -> list[IncompleteUpload]:
        """Abort the incomplete uploads under the prefix started ``older_than`` ago or
        more (so a concurrent run's upload in progress survives); the ones aborted."""
        uploads = await self.list_incomplete_uploads()
        stale = stale_uploads(uploads, now=now or datetime.now(UTC), older_than=older_than)
        for upload in stale:
            await self.abort_upload(upload)
        return stale

    async def abort_upload(self, upload: IncompleteUpload) -> None:
        """Abort ``upload`` (one already gone is fine). Raises :class:`StorageError`."""
        try:
            with _mapped("aborting upload of", upload.key):
                await self._s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=upload.key, UploadId=upload.upload_id
                )
        except StorageError as exc:
            if exc.status != 404:  # already gone: what we wanted
                raise

    # -- manifest segments ----------------------------------------------------------------

    async def write_manifest_segment(self, segment: str, data: bytes) -> str:
        """Create the manifest segment ``segment`` (a run id) holding ``data``; its key.

        The PUT is conditional (``If-None-Match: *``), so two runs never overwrite
        each other's segment; an existing segment with other bytes raises
        :class:`StorageError` with ``code="PreconditionFailed"`` (a retried PUT
        whose first attempt landed finds its own bytes and succeeds).
        """
        key = manifest_key(self.dest, segment)
        try:
            with _mapped("writing manifest segment", key):
                await self._s3.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=data,
                    IfNoneMatch="*",
                    ContentType="application/jsonl",
                    ChecksumAlgorithm=_SHA256,
                    ChecksumSHA256=b64_sha256(hashlib.sha256(data).digest()),
                )
        except StorageError as exc:
            if exc.status != 412 or await self._read(key) != data:
                raise
        return key

    async def read_manifest_segments(self) -> list[ManifestSegment]:
        """Every manifest segment under the prefix, in key order."""
        prefix = manifest_prefix(self.dest)
        keys: list[str] = []
        with _mapped("listing manifest segments under", prefix):
            pages = self._s3.get_paginator("list_objects_v2")
            async for page in pages.paginate(Bucket=self._bucket, Prefix=prefix):
                keys.extend(
                    o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl")
                )
        return [ManifestSegment(key, await self._read(key)) for key in sorted(keys)]

    async def _read(self, key: str) -> bytes:
        with _mapped("reading", key):
            answer = await self._s3.get_object(Bucket=self._bucket, Key=key)
            async with answer["Body"] as body:
                return await body.read()
