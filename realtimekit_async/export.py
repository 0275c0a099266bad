"""Export recordings to a local directory: resumable, verified and crash-safe.

::

    from realtimekit_async.export import export_recordings

    async with RealtimeKit() as client:
        report = await export_recordings(client, "exports/", start_time=monday, end_time=tuesday)
        print(len(report.exported), "files,", report.bytes, "bytes")

Each file is streamed to ``<name>.part`` (hashed with SHA-256 on the way),
checked against ``Content-Length`` and the recording's ``file_size``, fsynced and
only then renamed into place, and recorded as one line of ``manifest.jsonl``.
Running the same export again skips what the manifest and the directory agree
is complete and resumes ``.part`` files with a ``Range`` request guarded by
``If-Range``. The decisions live in :mod:`realtimekit_async._export_plan`; this
module does the I/O.

Nothing inside ``dest`` is opened through a symbolic link, and no FIFO, device
or hard-linked file is written to; an export holds an OS lock on
``dest/.realtimekit-export.lock`` for its whole run, so two runs never share a
destination.

Listing and URL refreshes are API calls made through the client (sharing its
rate limiter and retries); downloads go straight to the presigned storage URLs
through the client's aiohttp session, without the API token, bounded by their
own ``concurrency``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import hashlib
import logging
import os
import random
import stat
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, Protocol, TypeVar, Unpack

import aiohttp
import attrs
from yarl import URL

from ._dest import (
    LocalDestination,
    S3Settings,
    Scheme,
    parse_destination,
    resolve_s3_settings,
)
from ._exceptions import (
    DestinationError,
    DestinationLockedError,
    DownloadError,
    ExportError,
    RealtimeKitError,
    StorageError,
    ValidationError,
)
from ._export_options import (
    DEFAULT_CONCURRENCY,
    ExportOptions,
    ExportSettings,
    ProgressCallback,
    resolve_export,
)
from ._export_plan import (
    CURSOR_NAME,
    DEFAULT_SYNC_LAG,
    LOCK_NAME,
    MANIFEST_NAME,
    PART_STATE_SUFFIX,
    PART_SUFFIX,
    Decision,
    ExpiredFile,
    ExportFailure,
    ExportProgress,
    ExportReport,
    FileKind,
    FileSpec,
    IgnoredRecording,
    Local,
    ManifestContents,
    ManifestEntry,
    PartState,
    RateGuard,
    Step,
    SyncReport,
    clock_offset,
    declared_size_problem,
    digest_decision,
    display_url,
    download_url_of,
    download_url_problem,
    encode_cursor,
    encode_entry,
    encode_part_state,
    entry_of,
    if_range,
    is_expired,
    local_decision,
    needs_refresh,
    new_part_state,
    next_cursor,
    on_body_end,
    on_error,
    on_response,
    parse_cursor,
    parse_manifest,
    parse_part_state,
    plan_recording,
    resume_offset,
    size_limit,
    sync_since,
)
from ._models import Recording, RecordingStatus
from ._public import publish
from ._sansio import Failure
from ._transport import TRANSPORT_ERRORS, classify
from ._validation import renamed

if TYPE_CHECKING:
    from ._client import RealtimeKit
    from ._otel import AttemptSpan

__all__ = [
    "MANIFEST_NAME",
    "S3Settings",
    "SyncReport",
    "ExpiredFile",
    "ExportFailure",
    "ExportOptions",
    "ExportProgress",
    "ExportSettings",
    "ExportReport",
    "FileKind",
    "IgnoredRecording",
    "ManifestEntry",
    "ProgressCallback",
    "export_one",
    "export_recordings",
    "read_manifest",
    "sync_recordings",
]

logger: Final = logging.getLogger("realtimekit_async.export")

#: Bytes handed to the sink (a writer thread, or an upload) at a time: the
#: download's chunks as aiohttp read them, batched without copying. With
#: aiohttp's bounded read buffer this is what keeps memory flat whatever the
#: file size.
CHUNK_SIZE: Final = 256 * 1024
_WRITE_BATCH: Final = 1024 * 1024
_HASH_BLOCK: Final = 1024 * 1024
#: Batches a download may run ahead of its writer thread (bounded memory: this
#: many batches of ``_WRITE_BATCH``, 4 MiB).
_WRITES_IN_FLIGHT: Final = 4
#: aiohttp's read buffer for a download (its default is 64 KiB): reading stops
#: less often to wait for the loop, and each wake-up takes more bytes.
_READ_BUFSIZE: Final = 1024 * 1024
#: How often (in bytes written) a ``.part``'s state file is brought up to date:
#: what a crash can cost is re-downloading at most this much.
_CHECKPOINT_BYTES: Final = 8 * 1024 * 1024
_T = TypeVar("_T")


async def export_recordings(
    client: RealtimeKit,
    dest: str | os.PathLike[str],
    *,
    status: RecordingStatus | str | Iterable[RecordingStatus | str] | None = (
        RecordingStatus.UPLOADED
    ),
    meeting_id: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    since: datetime | None = None,
    until: datetime | None = None,
    **options: Unpack[ExportOptions],
) -> ExportReport:
    """Download every matching recording's files into ``dest``; return what happened.

    ``dest`` is a local directory or an ``s3://bucket/prefix`` URL (AWS S3 or any
    S3-compatible store; needs the ``s3`` extra). For a bucket, the endpoint,
    region and credentials are ``s3`` when given, else the standard ``AWS_*``
    variables (then botocore's own chain); a plain-http endpoint is refused
    unless it is loopback or ``allow_insecure_endpoint``. ``gs://`` and ``az://``
    are refused (use those stores' S3-compatible endpoints). Files stream into
    the bucket without a temporary file, under the same relative names as a
    local export.

    ``status``, ``meeting_id``, ``start_time`` and ``end_time`` filter the
    listing as in ``client.recordings.list`` (``start_time``/``end_time`` bound
    the invoked time, so disjoint windows can be exported by separate workers,
    each into its own ``dest``; ``since``/``until`` are their deprecated names).
    ``status=None`` lists every recording; only UPLOADED ones with a download
    URL have files, the rest land in ``report.ignored``. The other keyword
    arguments are the :class:`ExportOptions`.

    At most ``concurrency`` files download at once. Transient failures
    (resets, timeouts, 408/429/5xx, bodies cut short, bodies slower than
    ``min_rate`` bytes a second over ``read_timeout`` seconds) are retried per
    ``max_retries`` (default: the client's policy), resuming where the file
    stopped. URL expiry is judged on the server's clock (from the API's
    ``Date`` header): a URL expiring within ``url_expiry_margin`` seconds is
    refreshed first, a 403 triggers one refresh, and a file whose URL is still
    expired after a refresh is reported in ``report.expired``. A body may not
    exceed the recording's ``file_size``, or for the audio file (which has
    none) its ``Content-Length`` and at most ``max_audio_size`` bytes. A file
    that keeps failing is reported in ``report.failed`` and the export goes on.

    Raises :class:`ValidationError` for bad arguments (or a session that would
    send an ``Authorization`` header to the storage host), :class:`StorageError`
    when the bucket cannot be opened or its manifest not written (a file whose
    upload fails lands in ``report.failed``),
    :class:`DestinationLockedError` when another export is running into
    ``dest``, :class:`DestinationError` (an :class:`ExportError`, with the path
    and the reason) when ``dest``, its lock or its manifest cannot be created
    or written (permissions, a full or read-only disk, a file where the
    directory should be), :class:`ExportError` when a link or special file sits
    at the manifest's or the lock's path, and the client's :class:`APIError`
    subclasses when the listing itself fails. Cancelling leaves only ``.part``
    files (and their ``.part.meta`` state) behind, never a partial final file.
    """
    start_time = renamed("since", since, "start_time", start_time, stacklevel=2)
    end_time = renamed("until", until, "end_time", end_time, stacklevel=2)
    export = _new_export(client, dest, options, concurrency=concurrency)
    listing = client.recordings.list(
        status=status,
        meeting_id=meeting_id,
        start_time=start_time,
        end_time=end_time,
        app_id=export.settings.app_id,
    )
    return await export.run(aiter(listing))


async def sync_recordings(
    client: RealtimeKit,
    dest: str | os.PathLike[str],
    *,
    lag: timedelta = DEFAULT_SYNC_LAG,
    concurrency: int = DEFAULT_CONCURRENCY,
    **options: Unpack[ExportOptions],
) -> SyncReport:
    """Export every UPLOADED recording not yet in ``dest``, listing only a trailing window.

    One run of a continuous sync (run it on a schedule, or ``realtimekit sync
    --every``). The window starts ``lag`` before the cursor saved in ``dest``
    by the last run without failures (``.realtimekit-sync.json`` in the
    directory, or under the prefix), and never more than the 7-day retention
    back; with no cursor it is the whole retention. The default lag, 25 hours,
    covers the longest recording (24 h) plus an hour to upload: a recording
    invoked before the cursor but still running then is listed once UPLOADED.

    The window is walked twice: the second walk exports whatever the first did
    not yield (offset paging can hide a recording while the list changes), so
    a recording UPLOADED in the window throughout the run is missed only if the
    list changes under it during both walks, and then the next run, whose
    window still covers it, exports it. Files already in ``dest`` are skipped
    (also those :func:`export_one` stored). The cursor moves to this run's
    start (server clock) only when nothing failed, so failures are retried.
    ``concurrency``, the :class:`ExportOptions` and the errors are those of
    :func:`export_recordings`; ``lag`` must be a ``timedelta`` >= 0.
    """
    if not isinstance(lag, timedelta) or lag < timedelta(0):
        raise ValidationError("lag", "must be a timedelta >= 0")
    export = _new_export(client, dest, options, concurrency=concurrency)
    app_id = export.settings.app_id
    if client.last_server_date is None:  # learn the server's clock: the window is on it
        await client.recordings.list(per_page=1, app_id=app_id)

    def walk(since: datetime) -> AsyncIterator[Recording]:
        listing = client.recordings.list(
            status=RecordingStatus.UPLOADED, start_time=since, app_id=app_id
        )
        return aiter(listing)

    return await export.sync(lag, walk)


async def export_one(
    client: RealtimeKit,
    recording: Recording | str,
    dest: str | os.PathLike[str],
    **options: Unpack[ExportOptions],
) -> ExportReport:
    """Export one recording's files into ``dest``: what a webhook handler (or a task
    queue) calls when a ``recording.statusUpdate`` says UPLOADED.

    ``recording`` is a :class:`Recording` or an id (then fetched with
    ``recordings.get``, for current download URLs). Idempotent with
    :func:`export_recordings` and :func:`sync_recordings`: the same names, the
    same manifest, so a file one of them exported is skipped by the others. A
    recording that is not UPLOADED (yet) lands in ``report.ignored``. A local
    ``dest`` admits one run at a time (:class:`DestinationLockedError`
    otherwise); a bucket admits concurrent runs. The :class:`ExportOptions`
    and the errors are those of :func:`export_recordings`.
    """
    export = _new_export(client, dest, options, concurrency=1)
    rec = (
        recording
        if isinstance(recording, Recording)
        else await client.recordings.get(recording, app_id=export.settings.app_id)
    )

    async def just(rec: Recording) -> AsyncIterator[Recording]:
        yield rec

    return await export.run(just(rec))


def _new_export(
    client: RealtimeKit,
    dest: str | os.PathLike[str],
    options: ExportOptions,
    *,
    concurrency: int,
) -> _Export:
    """An export run into ``dest``, every argument checked; nothing sent yet."""
    # stacklevel: a deprecation points at the caller of the public entry point.
    settings = resolve_export(options, client.options, concurrency=concurrency, stacklevel=3)
    session = client.session
    # Downloads never add the token themselves; a session carrying one by default
    # would still leak it to the storage host.
    if "Authorization" in session.headers or session.auth is not None:
        raise ValidationError(
            "session",
            "sends an Authorization header by default, which would reach the storage host",
        )
    target = _target_for(
        dest, options.get("s3"), allow_insecure_endpoint=settings.allow_insecure_endpoint
    )
    return _Export(client, target, settings, progress=_Progress(options.get("on_progress")))


def _target_for(
    dest: str | os.PathLike[str],
    s3: S3Settings | None = None,
    *,
    allow_insecure_endpoint: bool = False,
) -> _Target:
    """The :class:`_Target` that ``dest`` names; raises :class:`ValidationError` before
    any request for a bad destination or S3 setting."""
    where = parse_destination(dest)
    if isinstance(where, LocalDestination):
        return _LocalTarget(where.path)
    if where.scheme is not Scheme.S3:
        raise ValidationError(
            "dest",
            f"{where.scheme}:// is not supported (the store library is S3-only); use "
            "s3:// with the store's S3-compatible endpoint (GCS: "
            "https://storage.googleapis.com with HMAC keys)",
        )
    settings = _checked_s3_settings(s3, allow_insecure_endpoint)
    from ._export_store import ObjectTarget  # needs the s3 extra: imported only here

    return ObjectTarget(where, settings)


def _checked_s3_settings(s3: S3Settings | None, allow_insecure_endpoint: bool) -> S3Settings:
    if s3 is None:
        return resolve_s3_settings(os.environ, allow_insecure_endpoint=allow_insecure_endpoint)
    return resolve_s3_settings(
        {},
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key_id,
        secret_access_key=s3.secret_access_key,
        session_token=s3.session_token,
        allow_insecure_endpoint=allow_insecure_endpoint,
    )


async def read_manifest(
    dest: str | os.PathLike[str],
    s3: S3Settings | None = None,
    *,
    allow_insecure_endpoint: bool = False,
) -> tuple[ManifestEntry, ...]:
    """Every file an export into ``dest`` (a directory or ``s3://bucket/prefix``) recorded.

    One entry per ``(recording_id, kind)`` (the latest when several runs recorded
    one), sorted by path. ``s3`` and ``allow_insecure_endpoint`` are as for
    :func:`export_recordings`. Raises :class:`ValidationError` for a bad
    destination, :class:`StorageError` when the store fails,
    :class:`DestinationError` when the local manifest cannot be read.
    """
    where = parse_destination(dest)
    if isinstance(where, LocalDestination):
        with _disk_errors(where.path / MANIFEST_NAME):
            contents = await _blocking(_load_manifest, where.path / MANIFEST_NAME)
        entries = contents.entries
    else:
        target = _target_for(dest, s3, allow_insecure_endpoint=allow_insecure_endpoint)
        from ._export_store import ObjectTarget, read_store_manifest

        assert isinstance(target, ObjectTarget)
        entries = await read_store_manifest(target.store.dest, target.settings)
    return tuple(sorted(entries.values(), key=lambda e: (e.path, e.recording_id)))


# -- the destination seam --------------------------------------------------------------------


class _Sink(Protocol):
    """Where one file's bytes go while it downloads (a ``.part`` file, or an upload).

    ``size`` counts the bytes written, ``hexdigest`` is their SHA-256; ``state``
    and ``resumed`` are the download's resume bookkeeping (see :class:`PartState`).
    Nothing written becomes visible at the file's final place before ``finalize``.
    """

    state: PartState | None
    resumed: bool

    @property
    def size(self) -> int: ...

    async def digest(self) -> str:
        """The hex SHA-256 of every byte written (once they all are)."""

    async def open(self) -> None:
        """Get ready to take bytes, keeping earlier ones when they can be resumed."""

    async def write(self, chunks: Sequence[bytes]) -> None:
        """Append ``chunks``, in order."""

    async def restart(self) -> None:
        """Throw away every byte written so far."""

    async def finalize(self, entry: ManifestEntry) -> ManifestEntry:
        """Make the file visible at its place and record ``entry``; the entry recorded."""

    async def close(self) -> None:
        """Release what the sink holds; a file not finalized stays invisible."""


class _Target(Protocol):
    """An export's destination: a directory (:class:`_LocalTarget`) or an object store.

    The export loop is the same for both; only these steps differ.
    """

    #: The sync cursor's name in the destination (a shard keeps its own).
    cursor_name: str

    async def open(self) -> dict[tuple[str, FileKind], ManifestEntry]:
        """Claim the destination for this run; the manifest's entries by ``(id, kind)``."""

    async def close(self) -> None:
        """Make this run's manifest entries durable and release the destination."""

    async def existing(
        self, rec: Recording, spec: FileSpec, entry: ManifestEntry | None
    ) -> ManifestEntry | None:
        """The entry of ``spec``'s file when it is complete already (``entry`` is the
        manifest's), else ``None`` (download it)."""

    def sink(self, spec: FileSpec) -> _Sink:
        """A fresh sink for ``spec``'s file."""

    async def read_cursor(self) -> bytes | None:
        """The sync cursor's bytes, or ``None`` when there is none."""

    async def write_cursor(self, data: bytes) -> None:
        """Replace the sync cursor (atomically: a reader sees the old one or the new)."""


# -- files inside dest (blocking; run in a worker thread) -------------------------------------


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


_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
# O_NONBLOCK: opening a FIFO must fail or return at once, never wait for a peer.
_SAFE_FLAGS: Final = (
    _NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
# What opening a link with O_NOFOLLOW (ELOOP; EMLINK on FreeBSD) or a FIFO without
# a reader for writing (ENXIO) fails with.
_PLANTED_ERRNOS: Final = frozenset({errno.ELOOP, errno.EMLINK, errno.ENXIO})


def _planted(path: Path) -> ExportError:
    return ExportError(
        f"{path.name} in {path.parent} is a link or special file, not a plain file; "
        "refusing to open it (remove it to go on)"
    )


def _open_plain(path: Path, flags: int) -> int:
    """Open a plain file in ``dest`` without following a link or blocking on a FIFO.

    Raises :class:`ExportError` when a link, FIFO, device, directory or
    hard-linked file sits at ``path`` (checked before anything is truncated or
    written), and :class:`OSError` (``FileNotFoundError`` among them) otherwise.
    """
    if not _NOFOLLOW and path.is_symlink():  # Windows: no O_NOFOLLOW
        raise _planted(path)
    try:
        fd = os.open(path, flags | _SAFE_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno in _PLANTED_ERRNOS:
            raise _planted(path) from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise _planted(path)
    return fd


def _read_plain(path: Path) -> bytes | None:
    """A small plain file's bytes; None when it is missing or not a plain file."""
    try:
        fd = _open_plain(path, os.O_RDONLY)
    except (FileNotFoundError, ExportError):
        return None
    with os.fdopen(fd, "rb") as file:
        return file.read()


def _write_plain(path: Path, data: bytes) -> None:
    """Overwrite the small file at ``path`` with ``data`` in place.

    Never truncated to zero first: on ext4 a file cut to zero and written again
    is flushed to disk when closed (``auto_da_alloc``), which made each state
    checkpoint wait for the disk. A torn write is caught by the reader (a state
    whose SHA-256 does not match the ``.part`` restarts it).
    """
    fd = _open_plain(path, os.O_WRONLY | os.O_CREAT)
    try:
        view = memoryview(data)
        while view:
            view = view[os.pwrite(fd, view, len(data) - len(view)) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _replace_plain(path: Path, data: bytes) -> None:
    """Replace the small file at ``path`` with ``data`` atomically and durably."""
    staged = path.with_name(path.name + PART_SUFFIX)
    fd = _open_plain(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, path)
    _fsync_dir(path.parent)


async def _walk_twice(walk: Callable[[], AsyncIterator[Recording]]) -> AsyncIterator[Recording]:
    """Every recording of two walks of the same listing, each once: the second walk
    yields what the first one missed (offset paging can hide a row that moves)."""
    seen: set[str] = set()
    for _ in range(2):
        listing = walk()
        try:
            async for rec in listing:
                if rec.id not in seen:
                    seen.add(rec.id)
                    yield rec
        finally:
            close = getattr(listing, "aclose", None)
            if close is not None:
                await close()


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _plain_stat(path: Path) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of a plain file at ``path`` (not followed if a link), else None."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def _sha256_of(path: Path) -> str | None:
    """Hex SHA-256 of a plain file's content, or None when it cannot be read."""
    try:
        fd = _open_plain(path, os.O_RDONLY)
    except (OSError, ExportError):
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as file:
        while block := file.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


_FADVISE: Final = getattr(os, "posix_fadvise", None)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes at ``offset`` to disk now, without waiting.

    On Linux, ``POSIX_FADV_DONTNEED`` on dirty pages starts their writeback; the
    fsync before the rename then has little left to wait for, instead of a
    whole file's worth. Elsewhere (or on failure) this does nothing.
    """
    if _FADVISE is None or length <= 0:
        return
    with contextlib.suppress(OSError):
        _FADVISE(fd, offset, length, os.POSIX_FADV_DONTNEED)


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


_HELD_ERRNOS: Final = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.EDEADLK})


class _DestLock:
    """The OS lock an export holds on ``dest/.realtimekit-export.lock`` for its run.

    An OS lock (``flock``; ``msvcrt.locking`` on Windows) dies with its process,
    so a crashed run never leaves a stale lock behind.
    """

    def __init__(self, dest: Path) -> None:
        path = dest / LOCK_NAME
        self._fd = _open_plain(path, os.O_RDWR | os.O_CREAT)
        try:
            _lock(self._fd)
        except OSError as exc:
            os.close(self._fd)
            # Held elsewhere: EWOULDBLOCK/EAGAIN (flock), EACCES/EDEADLK (Windows);
            # anything else (say ENOLCK on a file system without locks) is itself.
            if exc.errno not in _HELD_ERRNOS:
                raise
            raise DestinationLockedError(
                f"another export is running into {dest} (it holds {LOCK_NAME}); "
                "wait for it to finish or export into another directory"
            ) from None

    def release(self) -> None:
        os.close(self._fd)  # closing releases the lock


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _load_manifest(path: Path) -> ManifestContents:
    try:
        fd = _open_plain(path, os.O_RDONLY)
    except FileNotFoundError:
        return ManifestContents({}, 0, torn=False, bad_lines=0)
    with os.fdopen(fd, "rb") as lines:
        return parse_manifest(lines)


class _ManifestWriter:
    """Appends entries to ``manifest.jsonl``, one write and one fsync per line.

    Appending only (never rewriting) keeps every completed line safe through a
    crash; a failed append (a full disk) is cut back to the last complete line,
    so the next entry never lands on a torn one.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._fd: int | None = None

    def open(self, complete_length: int) -> None:
        """Open for appending, first cutting off a torn last line past ``complete_length``."""
        fd = _open_plain(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._fd = fd
        if os.fstat(fd).st_size > complete_length:
            os.ftruncate(fd, complete_length)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def append(self, entry: ManifestEntry) -> None:
        """Append ``entry`` durably; raises :class:`OSError` with the manifest unchanged."""
        data = encode_entry(entry)
        with self._lock:
            assert self._fd is not None
            end = os.fstat(self._fd).st_size
            try:
                self._write(data)
                os.fsync(self._fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)
                raise

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _PartFile:
    """A ``.part`` file, the SHA-256 of what it holds, and its state file. Every method blocks.

    The state file (:class:`PartState`) records the answer's validators and the
    size and hash of what was written, brought up to date every
    ``_CHECKPOINT_BYTES`` and when the download stops; a resume trusts only the
    recorded bytes, and only when they still hash as recorded.
    """

    def __init__(self, dest: Path, spec: FileSpec) -> None:
        self.path = dest / (spec.name + PART_SUFFIX)
        self._state_path = dest / (spec.name + PART_STATE_SUFFIX)
        self._expected_size = spec.expected_size
        self.size = 0
        self.state: PartState | None = None
        #: Whether bytes from before this answer were kept (a resume).
        self.resumed = False
        self._saved = 0
        self._file: BinaryIO | None = None
        self._sha = hashlib.sha256()

    def open(self) -> None:
        """Open the ``.part`` (created if missing), resuming it if its state allows."""
        state = parse_part_state(_read_plain(self._state_path))
        self._file = os.fdopen(_open_plain(self.path, os.O_RDWR | os.O_CREAT), "r+b")
        offset = resume_offset(os.fstat(self._file.fileno()).st_size, state, self._expected_size)
        if state is not None and offset and self._rehash(offset) == state.sha256:
            self.size = self._saved = offset
            self.state = state
            self.resumed = True
            self._file.truncate(offset)
            self._file.seek(offset)
        else:
            self.restart()

    def _rehash(self, offset: int) -> str:
        assert self._file is not None
        kept = 0
        while kept < offset and (block := self._file.read(min(_HASH_BLOCK, offset - kept))):
            self._sha.update(block)
            kept += len(block)
        return self._sha.hexdigest()

    def restart(self) -> None:
        """Throw the content away: a fresh, empty ``.part`` with no state yet."""
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate(0)
        self._sha = hashlib.sha256()
        self.size = self._saved = 0
        self.state = None
        self.resumed = False

    def write(self, chunks: Sequence[bytes]) -> None:
        assert self._file is not None
        for chunk in chunks:  # each hashed while it is still in the CPU's cache
            self._sha.update(chunk)  # hashlib drops the GIL for large buffers
            self._file.write(chunk)
            self.size += len(chunk)
        if self.size - self._saved >= _CHECKPOINT_BYTES:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Record the current size and hash in the state file (after the bytes reach the OS)."""
        if self.state is None or self._file is None:
            return
        self._file.flush()
        _start_writeback(self._file.fileno(), self._saved, self.size - self._saved)
        self.state = attrs.evolve(self.state, size=self.size, sha256=self._sha.hexdigest())
        _write_plain(self._state_path, encode_part_state(self.state))
        self._saved = self.size

    def hexdigest(self) -> str:
        return self._sha.hexdigest()

    def finalize(
        self, final: Path, manifest: _ManifestWriter, entry: ManifestEntry
    ) -> ManifestEntry:
        """Flush, fsync, rename into place and record in the manifest, as one step.

        Running all of it in one thread call means a cancellation arriving
        meanwhile cannot separate the rename from its manifest line.
        """
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        entry = attrs.evolve(entry, mtime_ns=os.fstat(self._file.fileno()).st_mtime_ns)
        self._file.close()
        self._file = None
        os.replace(self.path, final)  # replaces a link at ``final``, never follows it
        _unlink(self._state_path)
        _fsync_dir(final.parent)
        manifest.append(entry)
        return entry

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError, ExportError):
                self.checkpoint()
            self._file.close()
            self._file = None


@contextlib.contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """Turn an :class:`OSError` from the destination's own files into a :class:`DestinationError`."""
    try:
        yield
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else str(path)
        raise DestinationError(where, exc.strerror or str(exc), errno=exc.errno) from exc


class _LocalTarget:
    """A directory as an export's destination: ``.part`` files renamed into place, the
    OS lock, and ``manifest.jsonl`` (see :class:`_Target`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._manifest = _ManifestWriter(path / MANIFEST_NAME)
        self._lock: _DestLock | None = None
        self.cursor_name = CURSOR_NAME

    async def open(self) -> dict[tuple[str, FileKind], ManifestEntry]:
        with _disk_errors(self.path):
            await _blocking(functools.partial(self.path.mkdir, parents=True, exist_ok=True))
            self._lock = await _blocking(_DestLock, self.path)
        try:
            with _disk_errors(self.path / MANIFEST_NAME):
                contents = await _blocking(_load_manifest, self.path / MANIFEST_NAME)
                await _blocking(self._manifest.open, contents.complete_length)
            if contents.torn:
                logger.warning(
                    "%s ends with a torn line (an append cut short); it is dropped and the "
                    "file it was about is checked again",
                    MANIFEST_NAME,
                )
            if contents.bad_lines:
                logger.warning("%s: skipped %d unreadable lines", MANIFEST_NAME, contents.bad_lines)
        except BaseException:
            await _blocking(self._lock.release)
            raise
        return contents.entries

    async def close(self) -> None:
        try:
            await _blocking(self._manifest.close)
        finally:
            if self._lock is not None:
                await _blocking(self._lock.release)

    async def existing(
        self, rec: Recording, spec: FileSpec, entry: ManifestEntry | None
    ) -> ManifestEntry | None:
        if entry is None:
            return None
        final = self.path / spec.name
        local = local_decision(
            entry, spec.name, await _blocking(_plain_stat, final), spec.expected_size
        )
        if local is Local.VERIFY:
            intact = await _blocking(_sha256_of, final) == entry.sha256
            if not intact:
                logger.warning(
                    "%s no longer matches its manifest SHA-256; fetching it again", spec.name
                )
            local = Local.SKIP if intact else Local.FETCH
        return entry if local is Local.SKIP else None

    async def read_cursor(self) -> bytes | None:
        with _disk_errors(self.path / self.cursor_name):
            return await _blocking(_read_plain, self.path / self.cursor_name)

    async def write_cursor(self, data: bytes) -> None:
        with _disk_errors(self.path / self.cursor_name):
            await _blocking(_replace_plain, self.path / self.cursor_name, data)

    def sink(self, spec: FileSpec) -> _Sink:
        return _LocalSink(_PartFile(self.path, spec), self.path / spec.name, self._manifest)


class _LocalSink:
    """A :class:`_PartFile` behind the :class:`_Sink` interface.

    Writes (and the hashing in them) run in the sink's own writer thread, up to
    ``_WRITES_IN_FLIGHT`` chunks behind the network, so the next chunk is read
    while earlier ones are hashed and written; one thread keeps them in order.
    Every other step first waits for the writes handed over, and a failed
    write fails every later step, so nothing is finalized past a lost chunk.
    """

    def __init__(self, part: _PartFile, final: Path, manifest: _ManifestWriter) -> None:
        self._part = part
        self._final = final
        self._manifest = manifest
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtk-export-write")
        self._pending: collections.deque[asyncio.Future[None]] = collections.deque()
        self._size = 0
        self._broken: BaseException | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def state(self) -> PartState | None:
        return self._part.state

    @state.setter
    def state(self, value: PartState | None) -> None:
        self._part.state = value

    @property
    def resumed(self) -> bool:
        return self._part.resumed

    @resumed.setter
    def resumed(self, value: bool) -> None:
        self._part.resumed = value

    async def _settle(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` writes are in flight; raise a write's failure."""
        while len(self._pending) > keep:
            future = self._pending[0]
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                # The thread cannot be interrupted: let it finish before anyone
                # else touches the file, then let the cancellation through.
                while self._pending:
                    with contextlib.suppress(BaseException):
                        await asyncio.wait([self._pending.popleft()])
                raise
            except BaseException as exc:
                self._broken = self._broken or exc
            self._pending.popleft()
        if self._broken is not None:
            raise self._broken

    async def digest(self) -> str:
        await self._settle()
        return self._part.hexdigest()

    async def open(self) -> None:
        await _blocking(self._part.open)
        self._size = self._part.size

    async def write(self, chunks: Sequence[bytes]) -> None:
        if self._broken is not None:
            raise self._broken
        loop = asyncio.get_running_loop()
        self._pending.append(loop.run_in_executor(self._writer, self._part.write, chunks))
        self._size += sum(map(len, chunks))
        if len(self._pending) > _WRITES_IN_FLIGHT:
            await self._settle(keep=_WRITES_IN_FLIGHT)

    async def restart(self) -> None:
        await self._settle()
        await _blocking(self._part.restart)
        self._size = 0

    async def finalize(self, entry: ManifestEntry) -> ManifestEntry:
        await self._settle()
        assert self._part.size == self._size
        return await _blocking(self._part.finalize, self._final, self._manifest, entry)

    async def close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                await self._settle()
            await _blocking(self._part.close)
        finally:
            self._writer.shutdown(wait=False)


# -- progress -----------------------------------------------------------------------------------


class _Progress:
    """Counts the files this run fetches and their bytes; reports each change."""

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

    def done(self, path: str) -> None:
        self._at.pop(path, None)
        self._size.pop(path, None)
        self.files_done += 1
        self._emit(path)

    def dropped(self, path: str, *, failed: bool) -> None:
        """A file given up on: its bytes will never arrive, so they leave the bar."""
        self.bytes_done -= self._at.pop(path, 0)
        self.bytes_total -= self._size.pop(path, 0)
        self.failed += failed
        self.files_done += 1
        self._emit(path)


# -- the export -----------------------------------------------------------------------------------


@attrs.frozen
class _Job:
    recording: Recording
    files: tuple[FileSpec, ...]
    #: Whether each file is complete already: checked ahead (a HEAD for a bucket)
    #: while earlier jobs download, so the check's round trip is off their path.
    complete: tuple[asyncio.Task[bool], ...]


class _ExpiredError(Exception):
    """The file's URL is still expired, by the server's clock, after a refresh."""

    def __init__(self, expiry: datetime | None) -> None:
        super().__init__("download URL expired")
        self.expiry = expiry


class _TooSlowError(Exception):
    """The body arrives slower than the minimum rate."""


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
        self, client: RealtimeKit, target: _Target, settings: ExportSettings, *, progress: _Progress
    ) -> None:
        self._client = client
        self._target = target
        self._session = client.session
        self._settings = settings
        self._progress = progress
        self._entries: dict[tuple[str, FileKind], ManifestEntry] = {}
        self._exported: list[ManifestEntry] = []
        self._skipped: list[ManifestEntry] = []
        self._failed: list[ExportFailure] = []
        self._expired: list[ExpiredFile] = []
        self._ignored: list[IgnoredRecording] = []
        self._received = 0
        self._checks: set[asyncio.Task[bool]] = set()

    @property
    def settings(self) -> ExportSettings:
        return self._settings

    def use_cursor(self, name: str) -> None:
        """Keep the sync cursor in ``name`` (a shard's own file) instead of the default."""
        self._target.cursor_name = name

    def _server_now(self) -> datetime:
        """Now on the API server's clock, as its latest answer's ``Date`` tells."""
        stamp = self._client.last_server_date
        offset = clock_offset(*stamp) if stamp is not None else timedelta(0)
        return datetime.now(UTC) + offset

    async def run(self, recordings: AsyncIterator[Recording]) -> ExportReport:
        self._entries = await self._target.open()
        try:
            await self._run(recordings)
        finally:
            await self._target.close()
        return self._report()

    async def sync(
        self, lag: timedelta, walk: Callable[[datetime], AsyncIterator[Recording]]
    ) -> SyncReport:
        """Export the window from the saved cursor (minus ``lag``), walked twice; save
        the new cursor."""
        self._entries = await self._target.open()
        try:
            previous = parse_cursor(await self._target.read_cursor())
            started = self._server_now()
            since = sync_since(previous, started, lag)
            await self._run(_walk_twice(functools.partial(walk, since)))
            report = self._report()
            cursor = next_cursor(previous, started, ok=report.ok)
            if cursor is not None and cursor != previous:
                await self._target.write_cursor(encode_cursor(cursor))
        finally:
            await self._target.close()
        return SyncReport(since=since, cursor=cursor, export=report)

    def _report(self) -> ExportReport:
        return ExportReport(
            exported=tuple(sorted(self._exported, key=lambda e: e.path)),
            skipped=tuple(sorted(self._skipped, key=lambda e: e.path)),
            failed=tuple(sorted(self._failed, key=lambda f: (f.recording_id, f.kind or ""))),
            ignored=tuple(sorted(self._ignored, key=lambda i: i.recording_id)),
            bytes=self._received,
            expired=tuple(sorted(self._expired, key=lambda x: (x.recording_id, x.kind))),
        )

    async def _run(self, recordings: AsyncIterator[Recording]) -> None:
        concurrency = self._settings.concurrency
        # Bounded, so a huge account is walked only as fast as files download.
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=2 * concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(recordings, queue))
                for _ in range(concurrency):
                    group.create_task(self._work(queue))
        except BaseExceptionGroup as errors:
            # A failed listing surfaces as its own APIError, not wrapped in a group.
            raise errors.exceptions[0] from None
        finally:  # checks of jobs a failed run never reached
            for check in self._checks:
                check.cancel()
            await asyncio.gather(*self._checks, return_exceptions=True)

    def _check_ahead(self, rec: Recording, spec: FileSpec) -> asyncio.Task[bool]:
        check = asyncio.ensure_future(self._already_exported(rec, spec))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)
        return check

    async def _produce(
        self, recordings: AsyncIterator[Recording], queue: asyncio.Queue[_Job | None]
    ) -> None:
        try:
            async for rec in recordings:
                files, reason = plan_recording(rec, include_audio=self._settings.include_audio)
                if reason is not None:
                    self._ignored.append(IgnoredRecording(rec.id, rec.status, reason))
                    continue
                complete = tuple(self._check_ahead(rec, spec) for spec in files)
                await queue.put(_Job(rec, files, complete))
        finally:
            # Stops the paginator's page prefetches now, not whenever it is collected.
            close = getattr(recordings, "aclose", None)
            if close is not None:
                await close()
        for _ in range(self._settings.concurrency):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue[_Job | None]) -> None:
        while (job := await queue.get()) is not None:
            await self._export_recording(job)

    def _fail(self, rec: Recording, spec: FileSpec, reason: str) -> None:
        self._failed.append(ExportFailure(rec.id, spec.kind, reason))
        self._progress.dropped(spec.name, failed=True)

    async def _export_recording(self, job: _Job) -> None:
        rec = job.recording
        todo = [spec for spec, done in zip(job.files, job.complete, strict=True) if not await done]
        if not todo:
            return
        source = _Source(self._client, rec, self._settings.app_id)
        if needs_refresh(rec.download_url_expiry, self._server_now(), self._settings.margin):
            try:
                await self._refresh(source)
            except _ExpiredError as exc:  # nothing to fetch: not counted in the progress
                self._expired += [ExpiredFile(rec.id, spec.kind, exc.expiry) for spec in todo]
                return
            except DownloadError as exc:
                self._progress.found(len(todo))
                for spec in todo:
                    self._fail(rec, spec, str(exc))
                return
        self._progress.found(len(todo))
        for spec in todo:
            try:
                entry = await self._download(source, spec)
            except StorageError as exc:
                # A concurrent run may have stored the same file meanwhile (and
                # aborted this upload as superseded): then it is done after all.
                if not await self._already_exported_quietly(rec, spec):
                    self._give_up(rec, spec, exc)
                else:
                    self._progress.done(spec.name)
            except (DownloadError, ExportError, OSError, _ExpiredError) as exc:
                # OSError here is the local disk: every network error became a Decision.
                self._give_up(rec, spec, exc)
            else:
                self._exported.append(entry)
                self._progress.done(spec.name)

    def _give_up(self, rec: Recording, spec: FileSpec, exc: Exception) -> None:
        if isinstance(exc, _ExpiredError):
            self._expired.append(ExpiredFile(rec.id, spec.kind, exc.expiry))
            self._progress.dropped(spec.name, failed=False)
        else:
            self._fail(rec, spec, str(exc))

    async def _already_exported(self, rec: Recording, spec: FileSpec) -> bool:
        """Whether the file is complete from an earlier run (then listed as skipped)."""
        entry = await self._target.existing(rec, spec, self._entries.get((rec.id, spec.kind)))
        if entry is not None:
            self._skipped.append(entry)
        return entry is not None

    async def _already_exported_quietly(self, rec: Recording, spec: FileSpec) -> bool:
        try:
            return await self._already_exported(rec, spec)
        except StorageError:
            return False

    async def _refresh(self, source: _Source) -> None:
        """New URLs for ``source``; raises :class:`_ExpiredError` if they are expired already."""
        try:
            await source.refresh()
        except RealtimeKitError as exc:
            raise DownloadError(f"refreshing the download URL failed: {exc}") from None
        expiry = source.current.download_url_expiry
        if is_expired(expiry, self._server_now()):
            raise _ExpiredError(expiry)

    def _url(self, source: _Source, spec: FileSpec) -> str:
        url = download_url_of(source.current, spec.kind)
        if not url:
            raise DownloadError(f"the recording no longer has a {spec.kind} download URL")
        problem = download_url_problem(
            url,
            base_url=self._client.options.base_url,
            allow_insecure=self._settings.allow_insecure_downloads,
        )
        if problem is not None:
            raise DownloadError(problem)
        return url

    async def _download(self, source: _Source, spec: FileSpec) -> ManifestEntry:
        """Fetch one file into place.

        Raises :class:`DownloadError` when it keeps failing, :class:`ExportError`
        for a planted ``.part``, :class:`_ExpiredError` and :class:`OSError` (the disk).
        """
        part = self._target.sink(spec)
        try:
            await part.open()
            if spec.expected_size is not None:
                self._progress.sized(spec.name, spec.expected_size)
            self._progress.moved(spec.name, part.size)
            await self._fetch_until_done(source, spec, part)
            digest = await part.digest()
            entry = entry_of(source.listed, spec, part.size, digest, datetime.now(UTC))
            return await part.finalize(entry)
        finally:
            await part.close()

    async def _fetch_until_done(self, source: _Source, spec: FileSpec, part: _Sink) -> None:
        attempt = 0
        refreshed = False
        while True:
            url = self._url(source, spec)
            decision = await self._fetch(url, spec, part, attempt=attempt, refreshed=refreshed)
            if decision.step is Step.DONE:
                decision = digest_decision(await part.digest(), part.state, resumed=part.resumed)
            if decision.step is Step.DONE:
                return
            if decision.step is Step.FAIL:
                if decision.discard:
                    await part.restart()
                raise DownloadError(f"{display_url(url)}: {decision.reason}")
            logger.debug("%s: %s -> %s", display_url(url), decision.reason, decision.step.value)
            if decision.step is Step.REFRESH:
                await self._refresh(source)
                refreshed = True
            elif decision.step is Step.RESTART:
                await part.restart()
                self._progress.moved(spec.name, 0)
            else:
                await asyncio.sleep(decision.delay)
                attempt += 1

    async def _request_headers(self, spec: FileSpec, part: _Sink) -> dict[str, str]:
        """Headers for the next GET; a ``.part`` that cannot be resumed safely is restarted."""
        # identity: byte ranges and sizes must refer to the stored bytes, not a re-encoding.
        headers = {"Accept-Encoding": "identity"}
        validator = if_range(part.state)
        if part.size and validator is None:
            await part.restart()
            self._progress.moved(spec.name, 0)
        if part.size and validator is not None:
            headers["Range"] = f"bytes={part.size}-"
            headers["If-Range"] = validator
            part.resumed = True
        return headers

    async def _fetch(
        self, url: str, spec: FileSpec, part: _Sink, *, attempt: int, refreshed: bool
    ) -> Decision:
        """One GET of ``url`` into ``part``, in a client span when tracing is on."""
        try:
            target = URL(url, encoded=True)
            target.host  # noqa: B018  # a URL aiohttp cannot use gets no span
        except ValueError:
            return await self._fetch_once(url, spec, part, attempt, refreshed, None)
        # The span drops the presigned query (see _otel); the route stays None: no ids in it.
        with self._client._tracing.attempt(
            method="GET", url=target, route=None, attempt=attempt
        ) as span:
            decision = await self._fetch_once(url, spec, part, attempt, refreshed, span)
            if decision.step is Step.RETRY:
                span.retrying(decision.delay)
            return decision

    async def _fetch_once(
        self,
        url: str,
        spec: FileSpec,
        part: _Sink,
        attempt: int,
        refreshed: bool,
        span: AttemptSpan | None,
    ) -> Decision:
        """One GET of ``url`` into ``part`` (resuming at its size); what to do next."""
        headers = await self._request_headers(spec, part)
        offset = part.size
        jitter = random.random()
        policy = self._settings.retry
        total: int | None = None
        try:
            async with self._session.get(
                url,
                headers=headers,
                timeout=self._settings.timeout,
                auto_decompress=False,
                read_bufsize=_READ_BUFSIZE,
            ) as response:
                if span is not None:
                    span.answered(response.status)
                decision = self._judge(response, offset, part.state, attempt, refreshed, jitter)
                if decision.step is not Step.WRITE:
                    return decision
                total = decision.total
                problem = declared_size_problem(total, spec.expected_size, self._max(spec))
                if problem is not None:
                    return Decision(Step.FAIL, reason=problem)
                if decision.start == 0:
                    if part.size:
                        await part.restart()
                        self._progress.moved(spec.name, 0)
                    # Saved with the first checkpoint; no file I/O before the body is read.
                    part.state = new_part_state(response.headers, total)
                if total is not None:
                    self._progress.sized(spec.name, total)
                limit = size_limit(total, spec.expected_size, self._max(spec))
                await self._stream(response, part, spec.name, limit=limit)
        except aiohttp.InvalidURL as exc:  # a ClientError and a ValueError: before both
            _failed(span, exc)
            return Decision(Step.FAIL, reason="download URL is not a valid URL")
        except (*TRANSPORT_ERRORS, _TooSlowError) as exc:
            _failed(span, exc)
            if isinstance(exc, _TooSlowError):
                failure, why = Failure.AFTER_SEND, str(exc)
            else:
                # Only kind and type: aiohttp's messages can quote the URL with its signature.
                classified = classify(exc, method="GET", path=display_url(url))
                failure, why = classified.failure, f"{classified.kind} ({type(exc).__name__})"
            return on_error(
                failure,
                f"download {why} at {part.size} bytes",
                attempt=attempt,
                policy=policy,
                jitter=jitter,
            )
        except ValueError as exc:  # e.g. a host aiohttp cannot encode: no retry can fix it
            _failed(span, exc)
            return Decision(Step.FAIL, reason="download URL is not a valid URL")
        return on_body_end(
            part.size,
            total,
            spec.expected_size,
            ceiling=self._max(spec),
            attempt=attempt,
            policy=policy,
            jitter=jitter,
        )

    def _max(self, spec: FileSpec) -> int:
        # Only a file without a documented size needs the configured ceiling.
        return (
            spec.expected_size if spec.expected_size is not None else self._settings.max_audio_size
        )

    def _judge(
        self,
        response: aiohttp.ClientResponse,
        offset: int,
        state: PartState | None,
        attempt: int,
        refreshed: bool,
        jitter: float,
    ) -> Decision:
        if response.history:  # redirected: the final hop must be acceptable too
            problem = download_url_problem(
                str(response.url),
                base_url=self._client.options.base_url,
                allow_insecure=self._settings.allow_insecure_downloads,
            )
            if problem is not None:
                return Decision(Step.FAIL, reason=f"redirected: {problem}")
        return on_response(
            response.status,
            response.headers,
            offset=offset,
            attempt=attempt,
            policy=self._settings.retry,
            refreshed=refreshed,
            state=state if offset else None,
            jitter=jitter,
        )

    async def _stream(
        self, response: aiohttp.ClientResponse, part: _Sink, path: str, *, limit: int
    ) -> None:
        """Copy the body into ``part`` in bounded batches; stop early past ``limit``.

        Raises :class:`_TooSlowError` when the body arrives slower than the minimum rate.
        """
        loop = asyncio.get_running_loop()
        settings = self._settings
        guard = RateGuard(settings.read_timeout, settings.min_rate, loop.time())
        batch: list[bytes] = []
        batched = 0
        try:
            # iter_chunks hands over aiohttp's buffers as they are: no join, no copy.
            async for chunk, _ in response.content.iter_chunks():
                self._received += len(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH or part.size + batched > limit:
                    await part.write(batch)
                    batch, batched = [], 0
                    self._progress.moved(path, part.size)
                    if part.size > limit:
                        return
                if guard.too_slow(loop.time(), len(chunk)):
                    raise _TooSlowError(f"slower than {settings.min_rate:g} bytes/s")
        except (TimeoutError, aiohttp.ClientError, _TooSlowError):
            if batch:  # keep what did arrive: the retry resumes after it
                await part.write(batch)
                self._progress.moved(path, part.size)
            raise
        if batch:
            await part.write(batch)
            self._progress.moved(path, part.size)


def _failed(span: AttemptSpan | None, exc: BaseException) -> None:
    """Mark a download attempt's span as failed with the error's type (never its text)."""
    if span is not None:
        span.failed(type(exc).__name__)


# Last: the names re-exported from private modules report this module (see _public).
publish(globals(), __all__, module=__name__)
