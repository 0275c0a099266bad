"""Export recordings to a local directory: resumable, verified and crash-safe.

::

    from realtimekit_async.export import export_recordings

    async with RealtimeKit() as client:
        report = await export_recordings(client, "exports/", since=monday, until=tuesday)
        print(len(report.exported), "files,", report.bytes, "bytes")

Each file is streamed to ``<name>.part`` (hashed with SHA-256 on the way),
checked against ``Content-Length`` and the recording's ``file_size``, fsynced and
only then renamed into place, and recorded as one line of ``manifest.jsonl``.
Running the same export again skips what the manifest and the directory agree
is complete and resumes ``.part`` files with a ``Range`` request. The
decisions live in :mod:`realtimekit_async._export_plan`; this module does the I/O.

Listing and URL refreshes are API calls made through the client (sharing its
rate limiter and retries); downloads go straight to the presigned storage URLs
through the client's aiohttp session, without the API token, bounded by their
own ``concurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import random
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, TypeVar

import aiohttp
import attrs

from ._exceptions import DownloadError, RealtimeKitError, ValidationError
from ._export_plan import (
    MANIFEST_NAME,
    PART_SUFFIX,
    Decision,
    ExportFailure,
    ExportProgress,
    ExportReport,
    FileKind,
    FileSpec,
    IgnoredRecording,
    ManifestEntry,
    Step,
    declared_size_problem,
    display_url,
    download_url_of,
    encode_entry,
    insecure_download_reason,
    is_expired,
    needs_refresh,
    needs_separator,
    on_body_end,
    on_error,
    on_response,
    parse_manifest,
    plan_recording,
    resume_offset,
    should_skip,
)
from ._models import Recording, RecordingStatus, check_int, check_seconds
from ._sansio import Failure, RetryPolicy

if TYPE_CHECKING:
    from ._client import RealtimeKit

__all__ = [
    "MANIFEST_NAME",
    "ExportFailure",
    "ExportProgress",
    "ExportReport",
    "FileKind",
    "IgnoredRecording",
    "ManifestEntry",
    "export_recordings",
]

logger: Final = logging.getLogger("realtimekit_async.export")

#: Bytes handed to the file-writing thread at a time; with aiohttp's bounded read
#: buffer this is what keeps memory flat whatever the file size.
CHUNK_SIZE: Final = 256 * 1024
_HASH_BLOCK: Final = 1024 * 1024
DEFAULT_CONCURRENCY: Final = 4
DEFAULT_URL_EXPIRY_MARGIN: Final = 300.0
DEFAULT_READ_TIMEOUT: Final = 60.0

ProgressCallback = Callable[[ExportProgress], None]
_T = TypeVar("_T")


async def export_recordings(
    client: RealtimeKit,
    dest: str | os.PathLike[str],
    *,
    status: RecordingStatus | str | Iterable[RecordingStatus | str] | None = (
        RecordingStatus.UPLOADED
    ),
    meeting_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_audio: bool = True,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: ProgressCallback | None = None,
    allow_insecure_downloads: bool = False,
    retry: RetryPolicy | None = None,
    url_expiry_margin: float = DEFAULT_URL_EXPIRY_MARGIN,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    app_id: str | None = None,
) -> ExportReport:
    """Download every matching recording's files into ``dest``; return what happened.

    ``status``, ``meeting_id``, ``since`` and ``until`` filter the listing
    (``since``/``until`` bound the invoked time, so disjoint windows can be
    exported by separate workers). ``status=None`` lists every recording; only
    UPLOADED ones with a download URL have files, the rest land in
    ``report.ignored``, as do recordings whose URL has expired for good (the
    files are kept only as long as the URLs). The audio file is fetched too when
    the recording has one and ``include_audio`` is true.

    At most ``concurrency`` files download at once. Transient failures
    (resets, timeouts, 408/429/5xx, bodies cut short) are retried per ``retry``
    (default: the client's policy), resuming where the file stopped; a URL
    expiring within ``url_expiry_margin`` seconds is refreshed first, and a 403
    triggers one refresh. A file that keeps failing is reported in
    ``report.failed`` and the export goes on. Plain-http download URLs are
    refused unless ``allow_insecure_downloads`` or the client talks plain http
    to a loopback host (a local emulator). ``on_progress`` is called with an
    :class:`ExportProgress` as work advances (on the event loop; keep it quick).

    Raises :class:`ValidationError` for bad arguments (or a session that would
    send an ``Authorization`` header to the storage host), the client's
    :class:`APIError` subclasses when the listing itself fails, and
    :class:`OSError` when ``dest`` or its manifest cannot be written.
    Cancelling leaves only ``.part`` files behind, never a partial final file.
    """
    check_int("concurrency", concurrency, 1)
    if not url_expiry_margin >= 0:
        raise ValidationError("url_expiry_margin", "must be a number of seconds >= 0")
    check_seconds("read_timeout", read_timeout)
    session = client.session
    # Downloads never add the token themselves; a session carrying one by default
    # would still leak it to the storage host.
    if "Authorization" in session.headers or session.auth is not None:
        raise ValidationError(
            "session",
            "sends an Authorization header by default, which would reach the storage host",
        )
    listing = client.recordings.list(
        status=status, meeting_id=meeting_id, start_time=since, end_time=until, app_id=app_id
    )
    connect = client.options.timeout.sock_connect
    export = _Export(
        client,
        Path(dest),
        session=session,
        include_audio=include_audio,
        concurrency=concurrency,
        progress=_Progress(on_progress),
        policy=retry if retry is not None else client.options.retry,
        allow_insecure=allow_insecure_downloads,
        margin=timedelta(seconds=url_expiry_margin),
        # No total: a large file may take long; a stalled read is what must end it.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read_timeout),
        app_id=app_id,
    )
    return await export.run(aiter(listing))


# -- blocking helpers (run in a worker thread) ------------------------------------------------


async def _blocking(fn: Callable[..., _T], *args: object) -> _T:
    """Run blocking file I/O in the loop's executor.

    If the caller is cancelled meanwhile, this still waits for the thread (which
    cannot be interrupted) before re-raising, so cleanup code never touches a
    file another thread is writing.
    """
    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what matters now
        raise


def _size_of(path: Path) -> int | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _local_sizes(final: Path, part: Path) -> tuple[int | None, int | None]:
    return _size_of(final), _size_of(part)


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable on POSIX; Windows cannot open directories (and NTFS
    # journals the rename itself).
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_manifest(path: Path) -> dict[tuple[str, FileKind], ManifestEntry]:
    try:
        with path.open("rb") as lines:
            return parse_manifest(lines)
    except FileNotFoundError:
        return {}


class _ManifestWriter:
    """Appends entries to ``manifest.jsonl``, one write and one fsync per line.

    Appending only (never rewriting) keeps every completed line safe through a
    crash, and lets workers exporting disjoint windows share a directory.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def open(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self._path, flags, 0o644)
        self._fd = fd
        size = os.fstat(fd).st_size
        if size:
            with self._path.open("rb") as tail:
                tail.seek(size - 1)
                if needs_separator(tail.read(1)):  # a line torn by a crash: end it
                    self._write(b"\n")

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def append(self, entry: ManifestEntry) -> None:
        data = encode_entry(entry)
        with self._lock:
            self._write(data)
            assert self._fd is not None
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _PartFile:
    """A ``.part`` file and the SHA-256 of what it holds. Every method blocks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._file: BinaryIO | None = None
        self._sha = hashlib.sha256()

    def open(self, offset: int) -> None:
        """Open for writing after the first ``offset`` bytes (rehashed); 0 starts afresh."""
        if offset <= 0:
            self._file = self.path.open("wb")
            return
        file = self.path.open("r+b")
        self._file = file
        kept = 0
        while kept < offset:
            block = file.read(min(_HASH_BLOCK, offset - kept))
            if not block:
                break
            self._sha.update(block)
            kept += len(block)
        file.truncate(kept)
        file.seek(kept)
        self.size = kept

    def restart(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate(0)
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray) -> None:
        assert self._file is not None
        self._file.write(data)
        self._sha.update(data)  # hashlib drops the GIL for large buffers
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def finalize(self, final: Path, manifest: _ManifestWriter, entry: ManifestEntry) -> None:
        """Flush, fsync, rename into place and record in the manifest, as one step.

        Running all of it in one thread call means a cancellation arriving
        meanwhile cannot separate the rename from its manifest line.
        """
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self.path, final)
        _fsync_dir(final.parent)
        manifest.append(entry)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# -- progress -----------------------------------------------------------------------------------


class _Progress:
    """Counts files and bytes and reports each change to the user's callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self.files_done = 0
        self.files_total = 0
        self.failed = 0
        self.bytes_done = 0
        self.bytes_total = 0
        self._at: dict[str, int] = {}
        self._size: dict[str, int] = {}

    def _emit(self, path: str | None) -> None:
        if self._callback is not None:
            self._callback(
                ExportProgress(
                    files_done=self.files_done,
                    files_total=self.files_total,
                    bytes_done=self.bytes_done,
                    bytes_total=self.bytes_total,
                    failed=self.failed,
                    path=path,
                )
            )

    def found(self, files: int) -> None:
        self.files_total += files
        self._emit(None)

    def sized(self, path: str, size: int) -> None:
        self.bytes_total += size - self._size.get(path, 0)
        self._size[path] = size

    def moved(self, path: str, position: int) -> None:
        self.bytes_done += position - self._at.get(path, 0)
        self._at[path] = position
        self._emit(path)

    def finished(self, path: str, *, ok: bool) -> None:
        at, size = self._at.pop(path, 0), self._size.pop(path, 0)
        if not ok:  # a failed file's bytes will never arrive: take them out of the bar
            self.failed += 1
            self.bytes_done -= at
            self.bytes_total -= size
        self.files_done += 1
        self._emit(path)


# -- the export -----------------------------------------------------------------------------------


@attrs.frozen
class _Job:
    recording: Recording
    files: tuple[FileSpec, ...]


class _Source:
    """A recording's current download URLs, refreshed through the API when needed."""

    def __init__(self, client: RealtimeKit, recording: Recording, app_id: str | None) -> None:
        self._client = client
        self._app_id = app_id
        self.listed = recording
        self.current = recording

    async def refresh(self) -> None:
        """Fetch the recording again (fresh presigned URLs); raises the client's errors."""
        logger.debug("refreshing download URLs of %s", self.listed.id)
        self.current = await self._client.recordings.get(self.listed.id, app_id=self._app_id)


class _Export:
    """One export run: a producer walking the listing and ``concurrency`` download workers."""

    def __init__(
        self,
        client: RealtimeKit,
        dest: Path,
        *,
        session: aiohttp.ClientSession,
        include_audio: bool,
        concurrency: int,
        progress: _Progress,
        policy: RetryPolicy,
        allow_insecure: bool,
        margin: timedelta,
        timeout: aiohttp.ClientTimeout,
        app_id: str | None,
    ) -> None:
        self._client = client
        self._dest = dest
        self._session = session
        self._include_audio = include_audio
        self._concurrency = concurrency
        self._progress = progress
        self._policy = policy
        self._allow_insecure = allow_insecure
        self._margin = margin
        self._timeout = timeout
        self._app_id = app_id
        self._entries: dict[tuple[str, FileKind], ManifestEntry] = {}
        self._manifest = _ManifestWriter(dest / MANIFEST_NAME)
        self._exported: list[ManifestEntry] = []
        self._skipped: list[ManifestEntry] = []
        self._failed: list[ExportFailure] = []
        self._ignored: list[IgnoredRecording] = []
        self._received = 0

    async def run(self, recordings: AsyncIterator[Recording]) -> ExportReport:
        await _blocking(functools.partial(self._dest.mkdir, parents=True, exist_ok=True))
        self._entries = await _blocking(_load_manifest, self._dest / MANIFEST_NAME)
        await _blocking(self._manifest.open)
        try:
            # Bounded, so a huge account is walked only as fast as files download.
            queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=2 * self._concurrency)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._produce(recordings, queue))
                    for _ in range(self._concurrency):
                        group.create_task(self._work(queue))
            except BaseExceptionGroup as errors:
                # A failed listing surfaces as its own APIError, not wrapped in a group.
                raise errors.exceptions[0] from None
        finally:
            await _blocking(self._manifest.close)
        return ExportReport(
            exported=tuple(sorted(self._exported, key=lambda e: e.path)),
            skipped=tuple(sorted(self._skipped, key=lambda e: e.path)),
            failed=tuple(sorted(self._failed, key=lambda f: (f.recording_id, f.kind or ""))),
            ignored=tuple(sorted(self._ignored, key=lambda i: i.recording_id)),
            bytes=self._received,
        )

    async def _produce(
        self, recordings: AsyncIterator[Recording], queue: asyncio.Queue[_Job | None]
    ) -> None:
        try:
            async for rec in recordings:
                files, reason = plan_recording(rec, include_audio=self._include_audio)
                if reason is not None:
                    self._ignored.append(IgnoredRecording(rec.id, rec.status, reason))
                    continue
                self._progress.found(len(files))
                await queue.put(_Job(rec, files))
        finally:
            # Stops the paginator's page prefetches now, not whenever it is collected.
            close = getattr(recordings, "aclose", None)
            if close is not None:
                await close()
        for _ in range(self._concurrency):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue[_Job | None]) -> None:
        while (job := await queue.get()) is not None:
            await self._export_recording(job)

    def _fail(self, rec: Recording, spec: FileSpec, reason: str) -> None:
        self._failed.append(ExportFailure(rec.id, spec.kind, reason))
        self._progress.finished(spec.name, ok=False)

    async def _export_recording(self, job: _Job) -> None:
        rec = job.recording
        todo: list[tuple[FileSpec, int]] = []
        for spec in job.files:
            final = self._dest / spec.name
            final_size, part_size = await _blocking(
                _local_sizes, final, final.with_name(spec.name + PART_SUFFIX)
            )
            entry = self._entries.get((rec.id, spec.kind))
            if entry is not None and should_skip(entry, spec.name, final_size, spec.expected_size):
                self._skipped.append(entry)
                self._progress.finished(spec.name, ok=True)
                continue
            todo.append((spec, resume_offset(part_size, spec.expected_size)))
        if not todo:
            return
        source = _Source(self._client, rec, self._app_id)
        if needs_refresh(rec.download_url_expiry, datetime.now(UTC), self._margin):
            try:
                await source.refresh()
            except RealtimeKitError as exc:
                for spec, _offset in todo:
                    self._fail(rec, spec, f"refreshing the download URL failed: {exc}")
                return
            expiry = source.current.download_url_expiry
            if is_expired(expiry, datetime.now(UTC)):
                assert expiry is not None
                reason = f"download URL expired at {expiry.isoformat()} and was not renewed"
                self._ignored.append(IgnoredRecording(rec.id, rec.status, reason))
                for spec, _offset in todo:
                    self._progress.finished(spec.name, ok=True)
                return
        for spec, offset in todo:
            try:
                entry = await self._download(source, spec, offset)
            except (DownloadError, OSError) as exc:
                # OSError here is the local disk: every network error became a Decision.
                self._fail(rec, spec, str(exc))
            else:
                self._exported.append(entry)
                self._progress.finished(spec.name, ok=True)

    async def _download(self, source: _Source, spec: FileSpec, offset: int) -> ManifestEntry:
        """Fetch one file into place; raises :class:`DownloadError` when it keeps failing."""
        final = self._dest / spec.name
        part = _PartFile(final.with_name(spec.name + PART_SUFFIX))
        try:
            await _blocking(part.open, offset)
            if spec.expected_size is not None:
                self._progress.sized(spec.name, spec.expected_size)
            self._progress.moved(spec.name, part.size)
            attempt = 0
            refreshed = False
            while True:
                url = download_url_of(source.current, spec.kind)
                if not url:
                    raise DownloadError(f"the recording no longer has a {spec.kind} download URL")
                refusal = insecure_download_reason(
                    url, base_url=self._client.options.base_url, allow_insecure=self._allow_insecure
                )
                if refusal is not None:
                    raise DownloadError(refusal)
                decision = await self._fetch(url, spec, part, attempt=attempt, refreshed=refreshed)
                if decision.step is Step.DONE:
                    break
                if decision.step is Step.FAIL:
                    raise DownloadError(f"{display_url(url)}: {decision.reason}")
                logger.debug("%s: %s -> %s", display_url(url), decision.reason, decision.step.value)
                if decision.step is Step.REFRESH:
                    try:
                        await source.refresh()
                    except RealtimeKitError as exc:
                        raise DownloadError(f"refreshing the download URL failed: {exc}") from None
                    refreshed = True
                elif decision.step is Step.RESTART:
                    await _blocking(part.restart)
                    self._progress.moved(spec.name, 0)
                else:
                    await asyncio.sleep(decision.delay)
                    attempt += 1
            listed = source.listed
            entry = ManifestEntry(
                recording_id=listed.id,
                meeting_id=listed.meeting.id if listed.meeting else None,
                status=listed.status,
                kind=spec.kind,
                path=spec.name,
                bytes=part.size,
                sha256=part.hexdigest(),
                exported_at=datetime.now(UTC),
            )
            await _blocking(part.finalize, final, self._manifest, entry)
            return entry
        finally:
            await _blocking(part.close)

    async def _fetch(
        self, url: str, spec: FileSpec, part: _PartFile, *, attempt: int, refreshed: bool
    ) -> Decision:
        """One GET of ``url`` into ``part`` (resuming at its size); what to do next."""
        offset = part.size
        # identity: byte ranges and sizes must refer to the stored bytes, not a re-encoding.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        jitter = random.random()
        total: int | None = None
        try:
            async with self._session.get(url, headers=headers, timeout=self._timeout) as response:
                if response.history:  # redirected: the final hop must be acceptable too
                    refusal = insecure_download_reason(
                        str(response.url),
                        base_url=self._client.options.base_url,
                        allow_insecure=self._allow_insecure,
                    )
                    if refusal is not None:
                        return Decision(Step.FAIL, reason=f"redirected: {refusal}")
                decision = on_response(
                    response.status,
                    response.headers,
                    offset=offset,
                    attempt=attempt,
                    policy=self._policy,
                    refreshed=refreshed,
                    jitter=jitter,
                )
                if decision.step is not Step.WRITE:
                    return decision
                if decision.start == 0 and offset:  # the server ignored Range
                    await _blocking(part.restart)
                    self._progress.moved(spec.name, 0)
                total = decision.total
                problem = declared_size_problem(total, spec.expected_size)
                if problem is not None:
                    return Decision(Step.FAIL, reason=problem)
                if total is not None:
                    self._progress.sized(spec.name, total)
                await self._stream(response, part, spec.name, limit=total or spec.expected_size)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            return on_error(
                Failure.CONNECT,
                f"cannot connect ({type(exc).__name__})",
                attempt=attempt,
                policy=self._policy,
                jitter=jitter,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            # Only the type: aiohttp's messages can quote the URL with its signature.
            return on_error(
                Failure.AFTER_SEND,
                f"download interrupted ({type(exc).__name__}) at {part.size} bytes",
                attempt=attempt,
                policy=self._policy,
                jitter=jitter,
            )
        return on_body_end(
            part.size,
            total,
            spec.expected_size,
            attempt=attempt,
            policy=self._policy,
            jitter=jitter,
        )

    async def _stream(
        self, response: aiohttp.ClientResponse, part: _PartFile, path: str, *, limit: int | None
    ) -> None:
        """Copy the body into ``part`` in bounded chunks; stop early past ``limit``."""
        pending = bytearray()
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                self._received += len(chunk)
                pending += chunk
                if len(pending) >= CHUNK_SIZE:
                    data, pending = pending, bytearray()
                    await _blocking(part.write, data)
                    self._progress.moved(path, part.size)
                    if limit is not None and part.size > limit:
                        return
        except (TimeoutError, aiohttp.ClientError):
            if pending:  # keep what did arrive: the retry resumes after it
                await _blocking(part.write, pending)
                self._progress.moved(path, part.size)
            raise
        if pending:
            await _blocking(part.write, pending)
            self._progress.moved(path, part.size)
