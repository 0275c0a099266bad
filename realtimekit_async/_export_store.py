"""An S3-compatible bucket as an export's destination (the :class:`Target` of ``s3://``).

Each file streams from its download into a (multipart) upload through
:class:`ObjectStore`: nothing is staged on disk, memory is bounded by a few
parts, and an upload that does not complete is aborted, so no partial object
ever becomes visible. The object carries its SHA-256 and size as metadata; a
rerun skips an object whose size and recorded SHA-256 are as expected, without
downloading it. Each run writes its manifest entries as new segments under
``prefix/manifest/`` (never rewriting one), so concurrent runs never lose each
other's entries. Imported only when a destination is an object store, since it
needs the ``s3`` extra.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Final

import attrs

from ._dest import ObjectDestination, S3Settings, StoredObject, same_checksum
from ._exceptions import StorageError
from ._export_plan import (
    CURSOR_NAME,
    FileKind,
    FileSpec,
    ManifestEntry,
    PartState,
    encode_entry,
    entry_of,
    parse_manifest,
)
from ._models import Recording
from ._objstore import ObjectStore

__all__ = ["DEFAULT_STALE_AFTER", "ObjectTarget", "read_store_manifest"]

logger: Final = logging.getLogger("realtimekit_async.export")

#: Incomplete uploads under the prefix started this long ago are a dead run's
#: leftovers and are aborted when a run starts (no single file uploads that long).
DEFAULT_STALE_AFTER: Final = timedelta(hours=6)
#: Entries per manifest segment: what a killed run can leave unrecorded (the next
#: run records the one-PUT files among them from their objects' metadata).
_SEGMENT_ENTRIES: Final = 64
#: Bytes of files per manifest segment, at most: a multipart object's SHA-256 is
#: only in the manifest, so a killed run's unrecorded ones are fetched again.
_SEGMENT_BYTES: Final = 1024**3
#: Batches (of about 1 MiB) waiting for the upload; with the parts in flight, this
#: bounds memory.
_QUEUE_CHUNKS: Final = 2


def _vouches(entry: ManifestEntry, spec: FileSpec, stored: StoredObject) -> bool:
    """Whether the manifest's ``entry`` describes ``stored``: same path and size, and the
    store's checksum it recorded is the object's (so the object was not replaced)."""
    same_file = (entry.path, entry.bytes) == (spec.name, stored.size)
    return same_file and same_checksum(entry.checksum, stored.checksum_sha256)


def new_run_id(now: datetime) -> str:
    """A run id that sorts by start time and never collides: ``20260102T030405123456Z-1a2b3c4d``."""
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


async def read_store_manifest(
    dest: ObjectDestination, settings: S3Settings
) -> dict[tuple[str, FileKind], ManifestEntry]:
    """Every manifest entry under ``dest``, by ``(recording_id, kind)``; a later segment wins.

    Raises :class:`StorageError`.
    """
    async with ObjectStore(dest, settings) as store:
        return await _entries_of(store)


async def _entries_of(store: ObjectStore) -> dict[tuple[str, FileKind], ManifestEntry]:
    segments = await store.read_manifest_segments()
    lines = [line for segment in segments for line in segment.data.splitlines(keepends=True)]
    contents = parse_manifest(lines)
    if contents.bad_lines or contents.torn:
        logger.warning("the manifest under %s has unreadable lines; skipped", store.dest)
    return contents.entries


class ObjectTarget:
    """An ``s3://bucket/prefix`` destination (see :class:`realtimekit_async.export._Target`)."""

    def __init__(
        self,
        dest: ObjectDestination,
        settings: S3Settings,
        *,
        stale_after: timedelta = DEFAULT_STALE_AFTER,
        part_size: int | None = None,
    ) -> None:
        self.settings = settings
        self.store = (
            # No seal: the server-side copy that would attach the SHA-256 to a
            # multipart object as metadata costs as much as the upload; the
            # manifest records it, with the store's checksum that ties it to the object.
            ObjectStore(dest, settings, seal=False)
            if part_size is None
            else ObjectStore(dest, settings, part_size=part_size, seal=False)
        )
        self._stale_after = stale_after
        self.cursor_name = CURSOR_NAME
        self._run_id = new_run_id(datetime.now(UTC))
        self._pending: list[ManifestEntry] = []
        self._segments = 0
        self._flushing = asyncio.Lock()

    async def open(self) -> dict[tuple[str, FileKind], ManifestEntry]:
        await self.store.open()
        try:
            aborted = await self.store.abort_stale_uploads(older_than=self._stale_after)
            if aborted:
                logger.info("aborted %d stale incomplete uploads", len(aborted))
            return await _entries_of(self.store)
        except BaseException:
            await self.store.close()
            raise

    async def close(self) -> None:
        try:
            await self._flush(force=True)
        finally:
            await self.store.close()

    async def record(self, entry: ManifestEntry) -> None:
        """Add ``entry`` to this run's manifest (written out every few entries)."""
        self._pending.append(entry)
        await self._flush(force=False)

    async def _flush(self, *, force: bool) -> None:
        async with self._flushing:
            due = (
                len(self._pending) >= _SEGMENT_ENTRIES
                or sum(e.bytes for e in self._pending) >= _SEGMENT_BYTES
            )
            if not self._pending or not (force or due):
                return
            entries, self._pending = self._pending, []
            self._segments += 1
            data = b"".join(encode_entry(e) for e in entries)
            try:
                await self.store.write_manifest_segment(
                    f"{self._run_id}-{self._segments:05d}", data
                )
            except BaseException:
                self._pending[:0] = entries  # kept for the final flush
                raise

    async def existing(
        self, rec: Recording, spec: FileSpec, entry: ManifestEntry | None
    ) -> ManifestEntry | None:
        stored = await self.store.head(spec.name)
        if stored is None:
            return None
        if spec.expected_size is not None and stored.size != spec.expected_size:
            return None
        sha = stored.sha256
        if sha is None and entry is not None and _vouches(entry, spec, stored):
            return entry  # a multipart object: its SHA-256 is the manifest's
        if sha is None:
            return None
        if entry is not None and (entry.path, entry.bytes, entry.sha256) == (
            spec.name,
            stored.size,
            sha,
        ):
            return entry
        # Complete and verified by a run that did not get to record it (killed, or a
        # concurrent run still going): record it now rather than fetch it again.
        found = attrs.evolve(
            entry_of(rec, spec, stored.size, sha, datetime.now(UTC)),
            checksum=stored.checksum_sha256,
        )
        await self.record(found)
        return found

    async def read_cursor(self) -> bytes | None:
        return await self.store.get(self.cursor_name)

    async def write_cursor(self, data: bytes) -> None:
        async def body() -> AsyncIterator[bytes]:
            yield data

        await self.store.put(self.cursor_name, body(), content_type="application/json")

    def sink(self, spec: FileSpec) -> ObjectSink:
        return ObjectSink(self, spec)


class ObjectSink:
    """One file streaming into its object (see :class:`realtimekit_async.export._Sink`).

    Bytes go through a bounded queue to :meth:`ObjectStore.put` running as a
    task. They are hashed once, here, in the sink's own thread (in order), so
    the loop goes on reading the download meanwhile. The stream ends only in
    :meth:`finalize`, after the download's size and digest were checked, and
    the store checks the byte count again before the object becomes visible,
    so a file that fails its checks is aborted, never stored.
    """

    def __init__(self, target: ObjectTarget, spec: FileSpec) -> None:
        self._target = target
        self._spec = spec
        self.size = 0
        self.state: PartState | None = None
        self.resumed = False
        self._sha = hashlib.sha256()
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtk-export-hash")
        # The latest update handed to the hasher: one thread, so all before it are done too.
        self._hashed: asyncio.Future[None] | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._task: asyncio.Task[StoredObject] | None = None

    async def digest(self) -> str:
        if self._hashed is not None:
            await asyncio.shield(self._hashed)
        return self._sha.hexdigest()

    async def open(self) -> None:
        """Nothing to resume across runs: an interrupted upload is aborted, not continued."""

    def _start(self) -> asyncio.Task[StoredObject]:
        if self._task is None:
            content_type = mimetypes.guess_type(self._spec.name)[0] or "application/octet-stream"
            self._task = asyncio.create_task(
                self._target.store.put(
                    self._spec.name,
                    self._chunks(),
                    size_hint=self._spec.expected_size,
                    content_type=content_type,
                    finish=self._finish,
                )
            )
        return self._task

    def _finish(self, stored: int) -> str:
        """The stream's SHA-256, once the store took every byte; raises (aborting the
        upload) if it took another count than was written."""
        if stored != self.size:
            raise StorageError(
                f"uploading {self._spec.name}: the store took {stored} bytes, "
                f"the download had {self.size}",
                code="SizeMismatch",
            )
        return self._sha.hexdigest()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def _send(self, item: bytes | None) -> None:
        """Queue ``item`` for the upload; raises the upload's error if it fails meanwhile."""
        task = self._start()
        if not task.done():
            try:
                self._queue.put_nowait(item)  # the common case: no future, no wait
                return
            except asyncio.QueueFull:
                pass
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            task.result()  # raises the upload's StorageError
            raise StorageError(f"uploading {self._spec.name}: the upload stopped early")

    async def write(self, chunks: Sequence[bytes]) -> None:
        chunk = b"".join(chunks)
        loop = asyncio.get_running_loop()
        self._hashed = loop.run_in_executor(self._hasher, self._sha.update, chunk)
        self.size += len(chunk)
        await self._send(chunk)

    async def restart(self) -> None:
        await self.digest()  # the hasher is done with the old hash
        self._hashed = None
        await self._cancel()
        self._queue = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._sha = hashlib.sha256()
        self.size = 0
        self.state = None
        self.resumed = False

    async def finalize(self, entry: ManifestEntry) -> ManifestEntry:
        await self.digest()  # every byte hashed before the store asks for the digest
        await self._send(None)
        assert self._task is not None
        stored = await self._task
        self._task = None
        entry = attrs.evolve(entry, checksum=stored.checksum_sha256)
        if self.size > self._target.store.part_size:  # only a multipart upload can linger
            await self._abort_superseded(stored.key)
        await self._target.record(entry)
        return entry

    async def _abort_superseded(self, key: str) -> None:
        # A killed run's upload of this very key is moot now that the object is
        # complete; removing it here keeps the prefix free of leftovers without
        # waiting for them to be stale.
        try:
            uploads = await self._target.store.list_incomplete_uploads()
            for upload in uploads:
                if upload.key == key:
                    await self._target.store.abort_upload(upload)
        except StorageError as exc:
            logger.warning("could not clean up earlier uploads of %s: %s", key, exc)

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()  # the store aborts the multipart upload
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the file is being given up or restarted anyway

    async def close(self) -> None:
        try:
            await self._cancel()
        finally:
            self._hasher.shutdown(wait=False)
