"""The pure decisions behind :mod:`realtimekit_async.export`.

No sockets, no files, no event loop: file naming and sanitising, which
recordings are exportable, whether a presigned URL must be refreshed, what a
storage answer means for a (possibly resumed) download, whether a finished body
is complete, and reading and writing manifest lines. The I/O layer in
``export`` executes these decisions; the tests call them directly.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final

import attrs
from yarl import URL

from ._converter import converter
from ._models import Recording, RecordingStatus
from ._policies import RetryPolicy
from ._sansio import Failure, decode_json, encode_json, retry_delay

__all__ = [
    "CURSOR_NAME",
    "DEFAULT_SYNC_LAG",
    "RETENTION",
    "SyncReport",
    "encode_cursor",
    "entry_of",
    "next_cursor",
    "parse_cursor",
    "sync_since",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "MAX_NAME_LENGTH",
    "PART_STATE_SUFFIX",
    "PART_SUFFIX",
    "Decision",
    "ExpiredFile",
    "ExportFailure",
    "ExportProgress",
    "ExportReport",
    "FileKind",
    "FileSpec",
    "IgnoredRecording",
    "Local",
    "ManifestContents",
    "ManifestEntry",
    "PartState",
    "RateGuard",
    "Step",
    "clock_offset",
    "declared_size_problem",
    "display_url",
    "download_url_of",
    "digest_decision",
    "download_url_problem",
    "encode_entry",
    "encode_part_state",
    "file_name",
    "if_range",
    "is_expired",
    "local_decision",
    "needs_refresh",
    "new_part_state",
    "on_body_end",
    "on_error",
    "on_response",
    "parse_content_range",
    "parse_manifest",
    "parse_part_state",
    "partial_problem",
    "plan_recording",
    "resume_offset",
    "safe_id",
    "server_sha256",
    "size_limit",
]

#: The manifest's file name inside the destination directory.
MANIFEST_NAME: Final = "manifest.jsonl"
#: Suffix of a file still being downloaded; only complete files lose it.
PART_SUFFIX: Final = ".part"
#: Suffix of the small file beside a ``.part`` that says what it holds (see :class:`PartState`).
PART_STATE_SUFFIX: Final = ".part.meta"
#: The lock file an export holds in its destination, so two runs never share it.
LOCK_NAME: Final = ".realtimekit-export.lock"

# Final names stay well under the usual 255-byte limit, leaving room for ".part".
MAX_NAME_LENGTH: Final = 180
_MAX_ID_LENGTH: Final = 64
_ID_HASH_LENGTH: Final = 16
_FALLBACK_STEM: Final = "recording"
_AUDIO_MARK: Final = ".audio"
# A file name never ends in one of these, so no final name is another file's
# ".part" or ".part.meta" (compared case-insensitively, as some file systems do).
_RESERVED_EXTENSIONS: Final = frozenset({".part", ".meta"})

# Ids the API really sends (UUIDs) pass unchanged; anything else is cleaned and
# tagged with a hash of the raw id, so two different ids never map to one name
# (not even on a case-insensitive file system, hence lower case only).
_CLEAN_ID: Final = re.compile(r"[a-z0-9-]{1,64}")
# What every cleaned-and-hashed id ends with; an id that already looks like that
# is hashed too, so a raw id can never equal another id's hashed form.
_HASHED_FORM: Final = re.compile(r".*-[0-9a-f]{16}")
_NOT_ID_CHAR: Final = re.compile(r"[^a-z0-9-]+")
# Portable file-name characters; everything else (separators, NUL and other
# control characters, spaces, quotes, non-ASCII) becomes "_".
_NOT_NAME_CHAR: Final = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS: Final = re.compile(r"\.{2,}")
_EXTENSION: Final = re.compile(r"\.[A-Za-z0-9]{1,10}")
# Device names Windows reserves whatever the extension ("CON.mp4" is the console).
_WINDOWS_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{n}" for n in range(10)}
    | {f"LPT{n}" for n in range(10)}
)


class FileKind(StrEnum):
    """Which of a recording's files: the composite video, or the separate audio."""

    VIDEO = "video"
    AUDIO = "audio"


# -- data: manifest lines, progress events, the report --------------------------------


@attrs.frozen
class ManifestEntry:
    """One exported file, as one line of ``manifest.jsonl``.

    ``path`` is relative to the destination directory; ``bytes`` and ``sha256``
    describe the file as written; ``exported_at`` is when it was completed;
    ``mtime_ns`` is the file's modification time then (absent in older manifests),
    which lets a rerun tell cheaply that the file was not touched since.
    ``checksum`` is an object store's own checksum of the object (S3's base64
    ``x-amz-checksum-sha256``; for a multipart object, the SHA-256 of its parts'
    SHA-256s, suffixed ``-N``): it lets a rerun tell that the object is still the
    one recorded. ``None`` for local files.
    """

    recording_id: str
    meeting_id: str | None
    status: RecordingStatus
    kind: FileKind
    path: str
    bytes: int
    sha256: str
    exported_at: datetime
    mtime_ns: int | None = None
    checksum: str | None = None


@attrs.frozen
class ManifestContents:
    """What ``manifest.jsonl`` holds.

    ``entries`` by ``(recording_id, kind)``; ``complete_length`` is the length in
    bytes of its complete lines; ``torn`` says the last line was cut short (an
    append interrupted by a crash), and ``bad_lines`` counts lines that were skipped.
    """

    entries: dict[tuple[str, FileKind], ManifestEntry]
    complete_length: int
    torn: bool
    bad_lines: int


@attrs.frozen
class ExportFailure:
    """A file (or, with ``kind=None``, a whole recording) that could not be exported."""

    recording_id: str
    kind: FileKind | None
    reason: str


@attrs.frozen
class IgnoredRecording:
    """A listed recording with nothing to download: no file yet, no URL, or expired."""

    recording_id: str
    status: RecordingStatus
    reason: str


@attrs.frozen
class ExpiredFile:
    """A file whose download URL was still expired, by the server's clock, after a refresh.

    ``expiry`` is the URL's documented expiry when the API gave one. RealtimeKit
    keeps files only as long as their URLs, so this is not a failure a rerun fixes.
    """

    recording_id: str
    kind: FileKind
    expiry: datetime | None


@attrs.frozen
class ExportProgress:
    """A progress event for a progress bar.

    ``files_total`` and ``bytes_total`` count the files this run fetches (not the
    ones already complete) and grow while the listing is walked; ``files_done``
    counts those finished (exported, failed or found expired); ``bytes_done``
    counts bytes in place for them.
    ``path`` names the file (relative to the destination) the event is about.
    """

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    failed: int
    path: str | None


@attrs.frozen
class ExportReport:
    """What an export did.

    ``exported``: files downloaded by this run; ``skipped``: files already
    complete from an earlier run (per the manifest); ``failed``: files that kept
    failing; ``expired``: files whose URL was expired for good (still expired
    after a refresh, judged on the server's clock); ``ignored``: listed
    recordings with nothing downloadable; ``bytes``: bytes received over the
    network by this run.
    """

    exported: tuple[ManifestEntry, ...]
    skipped: tuple[ManifestEntry, ...]
    failed: tuple[ExportFailure, ...]
    expired: tuple[ExpiredFile, ...]
    ignored: tuple[IgnoredRecording, ...]
    bytes: int

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


# -- names -----------------------------------------------------------------------------


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_ID_HASH_LENGTH]


def safe_id(recording_id: str) -> str:
    """The recording id as a file-name prefix: unchanged if it is a plain lower-case id.

    Any other id (and any id ending like a hashed one, ``-`` and 16 hex digits)
    is cleaned down to ``[a-z0-9-]`` and suffixed with a hash of the raw id, so
    distinct ids always give distinct prefixes (the two sets cannot meet); the
    result never contains ``_`` or ``.``, which keeps ``{id}_{name}`` unambiguous.
    """
    if _CLEAN_ID.fullmatch(recording_id) and not _HASHED_FORM.fullmatch(recording_id):
        return recording_id
    cleaned = _NOT_ID_CHAR.sub("-", recording_id.lower()).strip("-")[:40].rstrip("-")
    return f"{cleaned or 'id'}-{_short_hash(recording_id)}"


def _clean_component(text: str) -> str:
    """A server-sent name reduced to portable characters, no leading/trailing dots."""
    text = _NOT_NAME_CHAR.sub("_", text)
    text = _DOTS.sub(".", text)
    text = text.strip("._- ")
    if text.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text


def file_name(recording_id: str, output_file_name: str | None, kind: FileKind) -> str:
    """The file name (no directory part) a recording's file is saved under.

    ``{id}_{cleaned output_file_name}``, with ``.audio`` before the extension for
    the audio file. Whatever the server sends, the result is one portable path
    component: no separators, no ``..``, no control characters, not a Windows
    device name, at most :data:`MAX_NAME_LENGTH` characters. It is unique by
    construction, even ignoring case: the text before the first ``_`` is the
    (injective) :func:`safe_id`; only the audio file's stem ends in ``.audio``;
    no name ends in ``.part`` or ``.meta``, so none is another's ``.part`` or
    :data:`PART_STATE_SUFFIX` file, and none is the manifest or the lock file.
    """
    prefix = safe_id(recording_id)
    stem, extension = _split_extension(_clean_component(output_file_name or ""))
    if extension.lower() in _RESERVED_EXTENSIONS:
        stem, extension = f"{stem}_{extension[1:]}", ""
    if kind is FileKind.AUDIO:
        extension = _AUDIO_MARK + extension
    room = MAX_NAME_LENGTH - len(prefix) - 1 - len(extension)
    stem = _unmarked(stem[:room].rstrip("._- ") or _FALLBACK_STEM, bare=not extension)
    return f"{prefix}_{stem}{extension}"


def _split_extension(cleaned: str) -> tuple[str, str]:
    stem, dot, extension = cleaned.rpartition(".")
    if stem and dot and _EXTENSION.fullmatch(dot + extension):
        return stem, dot + extension
    return cleaned, ""


def _unmarked(stem: str, *, bare: bool) -> str:
    """``stem`` without a last ``.audio`` (the audio file's mark) or, when nothing
    follows it, a reserved extension: its dot becomes ``_``."""
    head, dot, tail = stem.rpartition(".")
    marks = {_AUDIO_MARK} | (_RESERVED_EXTENSIONS if bare else set())
    if dot and f".{tail.lower()}" in marks:
        return f"{head}_{tail}"
    return stem


def display_url(url: str) -> str:
    """Host and path of a URL, for messages: a presigned query string is a credential."""
    try:
        parsed = URL(url)
        return f"{parsed.host or ''}{parsed.path}"
    except (TypeError, ValueError):  # UnicodeError too: an undecodable IDNA host
        return "<invalid URL>"


# -- which recordings, which files ---------------------------------------------------


@attrs.frozen
class FileSpec:
    """One file to export: its kind, its name in the destination, its size if documented."""

    kind: FileKind
    name: str
    expected_size: int | None


def plan_recording(
    rec: Recording, *, include_audio: bool
) -> tuple[tuple[FileSpec, ...], str | None]:
    """The files of a listed recording, or ``((), reason)`` when it has none to export.

    Only UPLOADED recordings with a ``download_url`` are exportable. The video's
    size is the recording's ``file_size``; the audio file has no documented size.
    """
    if rec.status != RecordingStatus.UPLOADED:
        return (), f"status {rec.status}: no file to download yet"
    if not rec.download_url:
        return (), "no download URL (RealtimeKit bucket disabled for this recording?)"
    specs = [
        FileSpec(
            FileKind.VIDEO, file_name(rec.id, rec.output_file_name, FileKind.VIDEO), rec.file_size
        )
    ]
    if include_audio and rec.audio_download_url:
        specs.append(
            FileSpec(FileKind.AUDIO, file_name(rec.id, rec.output_file_name, FileKind.AUDIO), None)
        )
    return tuple(specs), None


def download_url_of(rec: Recording, kind: FileKind) -> str | None:
    """The recording's presigned URL for ``kind``."""
    return rec.download_url if kind is FileKind.VIDEO else rec.audio_download_url


def needs_refresh(expiry: datetime | None, now: datetime, margin: timedelta) -> bool:
    """Whether a URL expiring at ``expiry`` should be replaced before use.

    An unknown expiry is used as is (a 403 still triggers a refresh).
    """
    return expiry is not None and expiry - now <= margin


def is_expired(expiry: datetime | None, now: datetime) -> bool:
    """Whether the URL's documented expiry has passed."""
    return expiry is not None and expiry <= now


def clock_offset(date: str | None, received_at: datetime) -> timedelta:
    """How far the server's clock is ahead of ours, from an answer's ``Date`` header.

    URL expiries are the server's times, so they are judged on its clock: local
    skew (or an emulator running fast) then cannot make a dead URL look valid.
    A missing or unusable header gives zero (the local clock).
    """
    if not date:
        return timedelta(0)
    try:
        server = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return timedelta(0)
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    return server - received_at


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def download_url_problem(url: str, *, base_url: URL, allow_insecure: bool) -> str | None:
    """Why a download URL must not be fetched, or ``None`` when it may be.

    It must parse, with a host that encodes (IDNA labels of 1 to 63 characters);
    ``https`` is always fine; plain ``http`` only when the user allowed it or the
    client's own API is plain http on a loopback host (a local emulator). Any
    other scheme is refused.
    """
    try:
        parsed = URL(url)
        scheme, host = parsed.scheme, parsed.raw_host
        _ = parsed.host, str(parsed)
        if host:
            host.encode("idna")
    except (TypeError, ValueError):  # UnicodeError is a ValueError
        return f"download URL is not a valid URL: {display_url(url)}"
    if scheme in ("http", "https") and not host:
        return f"download URL has no host: {display_url(url)}"
    if scheme == "https":
        return None
    if scheme == "http":
        local = base_url.scheme == "http" and _is_loopback(base_url.host)
        if allow_insecure or local:
            return None
        return (
            f"refusing plain-http download {display_url(url)} (the signed URL would travel "
            "unencrypted); pass allow_insecure_downloads=True to allow it"
        )
    return f"refusing download URL with scheme {scheme!r}: {display_url(url)}"


# -- local state: skip, resume ----------------------------------------------------------


class Local(enum.Enum):
    """What a file already in the destination means for this run."""

    #: Download it.
    FETCH = "fetch"
    #: Complete and untouched since it was exported: skip it.
    SKIP = "skip"
    #: Right name and size but modified since (or of unknown age): skip it only if
    #: its SHA-256 still matches the manifest's.
    VERIFY = "verify"


def local_decision(
    entry: ManifestEntry | None,
    name: str,
    final: tuple[int, int] | None,
    expected_size: int | None,
) -> Local:
    """Whether a file is already exported.

    ``final`` is ``(size, mtime_ns)`` of a regular file (never a link) at
    ``name``. The file must be listed in the manifest under this name with its
    size (and the documented size, when there is one); when its modification
    time is also the recorded one it is trusted as is, otherwise it is rehashed.
    """
    if entry is None or entry.path != name or final is None:
        return Local.FETCH
    size, mtime_ns = final
    if size != entry.bytes or (expected_size is not None and expected_size != entry.bytes):
        return Local.FETCH
    return Local.SKIP if entry.mtime_ns == mtime_ns else Local.VERIFY


@attrs.frozen
class PartState:
    """What a ``.part`` file holds, kept beside it in ``<name>.part.meta``.

    ``etag``/``last_modified`` are the validators of the answer the ``.part`` was
    started from (sent as ``If-Range`` on resume), ``total`` the file size it
    announced, and ``size``/``sha256`` describe the first ``size`` bytes as they
    were written. A ``.part`` is resumed only when its first ``size`` bytes still
    hash to ``sha256``: a planted or damaged ``.part`` is restarted, never trusted.
    ``digest`` is the whole file's SHA-256 (hex) when the server announced one.
    """

    etag: str | None
    last_modified: str | None
    total: int | None
    size: int
    sha256: str
    digest: str | None = None


def new_part_state(headers: Mapping[str, str], total: int | None) -> PartState:
    """The state of a ``.part`` just started from a 200 answer with these headers."""
    etag = headers.get("ETag")
    strong = etag if etag and not etag.startswith("W/") else None  # If-Range needs strong
    empty = hashlib.sha256().hexdigest()
    return PartState(
        strong, headers.get("Last-Modified"), total, 0, empty, digest=server_sha256(headers)
    )


_REPR_DIGEST: Final = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):", re.IGNORECASE)


def _hex_of_base64(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def server_sha256(headers: Mapping[str, str]) -> str | None:
    """The whole file's SHA-256 (hex) as the server announces it, if it does.

    Read from ``Repr-Digest: sha-256=:…:`` (RFC 9530) or S3's
    ``x-amz-checksum-sha256`` (a full-object checksum; a multipart one, ``…-N``,
    is not the file's hash and is ignored).
    """
    match = _REPR_DIGEST.search(headers.get("Repr-Digest", ""))
    if match is not None:
        return _hex_of_base64(match[1])
    amz = headers.get("x-amz-checksum-sha256")
    if amz and headers.get("x-amz-checksum-type", "FULL_OBJECT").upper() == "FULL_OBJECT":
        return _hex_of_base64(amz.strip())
    return None


def digest_decision(sha256: str, state: PartState | None, *, resumed: bool) -> Decision:
    """Whether a complete body's SHA-256 is the one the server announced.

    A mismatch after a resume means the kept bytes were not the file's: start
    over. A mismatch on a fresh download fails the file. No digest: done (the
    sizes, ``Content-Range`` and ``If-Range`` checks are all there is).
    """
    digest = state.digest if state is not None else None
    if digest is None or digest == sha256:
        return Decision(Step.DONE)
    reason = "the file's SHA-256 does not match the digest the server announced"
    if resumed:
        return Decision(Step.RESTART, reason=reason)
    return Decision(Step.FAIL, reason=reason, discard=True)


def if_range(state: PartState | None) -> str | None:
    """The ``If-Range`` value that makes a resume safe, or None when there is none."""
    if state is None:
        return None
    return state.etag or state.last_modified


def encode_part_state(state: PartState) -> bytes:
    """The bytes of a ``.part.meta`` file."""
    return encode_json(converter.unstructure(state))


def parse_part_state(data: bytes | None) -> PartState | None:
    """A ``.part.meta`` file's state, or None when missing or unreadable (restart then)."""
    if not data:
        return None
    try:
        return converter.structure(decode_json(data), PartState)
    except Exception:  # cattrs and json raise many types; all mean "no usable state"
        return None


def resume_offset(part_size: int | None, state: PartState | None, expected_size: int | None) -> int:
    """Where a download resumes: the verified size recorded for the ``.part``, or 0.

    Zero (a fresh start) unless the ``.part`` has a recorded state with a
    validator, holds at least the recorded bytes, and the recorded sizes agree
    with the documented one. Bytes past the recorded size are not trusted.
    """
    if not part_size or state is None or if_range(state) is None:
        return 0
    if not 0 < state.size <= part_size:
        return 0
    if expected_size is not None and (
        state.size > expected_size or state.total not in (None, expected_size)
    ):
        return 0
    return state.size


# -- answers from the storage host --------------------------------------------------------


class Step(enum.Enum):
    """What the download loop does next."""

    #: Stream the body into the part file, starting at ``Decision.start``.
    WRITE = "write"
    #: The body was complete and verified.
    DONE = "done"
    #: Throw the part file away and ask again without ``Range``.
    RESTART = "restart"
    #: Fetch a fresh presigned URL (``recordings.get``), then ask again.
    REFRESH = "refresh"
    #: Wait ``Decision.delay`` seconds, then ask again from the current part size.
    RETRY = "retry"
    #: Give up on this file with ``Decision.reason``.
    FAIL = "fail"


@attrs.frozen
class Decision:
    """One step of the download loop; see :class:`Step` for the fields each uses."""

    step: Step
    start: int = 0
    total: int | None = None
    delay: float = 0.0
    reason: str = ""
    #: With FAIL: the ``.part`` holds bytes that are not the file; empty it, so a
    #: rerun starts afresh instead of resuming them.
    discard: bool = False


_CONTENT_RANGE: Final = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total)`` from a ``Content-Range`` header (total None for ``*``)."""
    if value is None:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    if last < first:
        return None
    return first, last, None if match[3] == "*" else int(match[3])


def _content_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("Content-Length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


def _retry_or_fail(
    policy: RetryPolicy,
    attempt: int,
    reason: str,
    *,
    status: int | None = None,
    failure: Failure | None = None,
    headers: Mapping[str, str] | None = None,
    jitter: float = 0.0,
    now: datetime | None = None,
) -> Decision:
    delay = retry_delay(
        policy,
        attempt,
        idempotent=True,
        status=status,
        failure=failure,
        headers=headers,
        jitter=jitter,
        now=now,
    )
    if delay is None:
        tries = attempt + 1
        return Decision(Step.FAIL, reason=f"{reason} (after {tries} attempt{'s' * (tries > 1)})")
    return Decision(Step.RETRY, delay=delay, reason=reason)


def on_response(
    status: int,
    headers: Mapping[str, str],
    *,
    offset: int,
    attempt: int,
    policy: RetryPolicy,
    refreshed: bool,
    state: PartState | None = None,
    jitter: float = 0.0,
    now: datetime | None = None,
) -> Decision:
    """What a storage answer to a GET (with ``Range: bytes={offset}-`` when ``offset``) means.

    A 2xx with a ``Content-Encoding`` other than identity fails (it was not
    asked for, and sizes and ranges would not refer to the stored bytes). 200
    writes from zero (a server that ignored ``Range``, or whose ``If-Range``
    validator no longer matched, restarts the file); 206 appends only when it
    continues the ``.part`` exactly (see :func:`partial_problem`), else
    restarts; 416 restarts; 403 asks for one URL refresh (``refreshed`` says it
    already happened); 408, 429 and 5xx are retried as ``policy`` allows
    (honouring ``Retry-After``). ``headers`` must be case-insensitive, as
    aiohttp's are; ``state`` is the resumed ``.part``'s.
    """
    if status in (200, 206):
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            return Decision(
                Step.FAIL, reason=f"storage sent Content-Encoding {encoding!r} for identity"
            )
    if status == 200:
        return Decision(Step.WRITE, start=0, total=_content_length(headers))
    if status == 206:
        if not offset:
            return Decision(Step.FAIL, reason="unrequested partial answer")
        problem = partial_problem(headers, offset, state)
        if problem is not None:
            return Decision(Step.RESTART, reason=problem)
        return Decision(Step.WRITE, start=offset, total=_range_total(headers))
    if status == 416 and offset:
        return Decision(Step.RESTART, reason="resume offset not satisfiable")
    if status == 403:
        if refreshed:
            return Decision(
                Step.FAIL, reason="HTTP 403 (URL expired or not valid), also after refreshing it"
            )
        return Decision(Step.REFRESH, reason="HTTP 403")
    return _retry_or_fail(
        policy, attempt, f"HTTP {status}", status=status, headers=headers, jitter=jitter, now=now
    )


def _range_total(headers: Mapping[str, str]) -> int | None:
    parsed = parse_content_range(headers.get("Content-Range"))
    return parsed[2] if parsed is not None else None


def partial_problem(headers: Mapping[str, str], offset: int, state: PartState | None) -> str | None:
    """Why a 206 answer to ``Range: bytes={offset}-`` does not continue the ``.part``.

    Its ``Content-Range`` must be exactly ``bytes {offset}-{total-1}/{total}``
    with a known total, agree with ``Content-Length``, and the total and
    ``ETag`` must be those recorded when the ``.part`` was started.
    """
    value = headers.get("Content-Range")
    parsed = parse_content_range(value)
    if parsed is None:
        return "partial answer without a usable Content-Range"
    first, last, total = parsed
    if first != offset or total is None or last != total - 1:
        return f"Content-Range {value!r} does not continue the file from byte {offset}"
    length = _content_length(headers)
    if length is not None and length != last - first + 1:
        return f"Content-Length {length} disagrees with Content-Range {value!r}"
    if state is not None and state.total is not None and total != state.total:
        return f"the file is now {total} bytes, {state.total} when the .part was started"
    etag = headers.get("ETag")
    if state is not None and state.etag and etag and etag != state.etag:
        return "the file's ETag changed since the .part was started"
    return None


def on_error(
    failure: Failure, reason: str, *, attempt: int, policy: RetryPolicy, jitter: float = 0.0
) -> Decision:
    """What a download that failed without a usable answer (reset, timeout, cut short) means."""
    return _retry_or_fail(policy, attempt, reason, failure=failure, jitter=jitter)


def size_limit(total: int | None, expected_size: int | None, ceiling: int) -> int:
    """The most bytes a file may have: its documented size, else the announced one
    (at most ``ceiling``, checked by :func:`declared_size_problem`), else ``ceiling``."""
    if expected_size is not None:
        return expected_size
    return total if total is not None else ceiling


def declared_size_problem(total: int | None, expected_size: int | None, ceiling: int) -> str | None:
    """Why an answer's announced size cannot be the recording's file, if it cannot."""
    if total is not None and expected_size is not None and total != expected_size:
        return f"storage announces {total} bytes but the recording's file_size is {expected_size}"
    if total is not None and expected_size is None and total > ceiling:
        return f"storage announces {total} bytes, more than the limit of {ceiling}"
    return None


def on_body_end(
    written: int,
    total: int | None,
    expected_size: int | None,
    *,
    ceiling: int,
    attempt: int,
    policy: RetryPolicy,
    jitter: float = 0.0,
) -> Decision:
    """Whether a body that ended (or was stopped past its :func:`size_limit`) completed the file.

    Short of the announced (or documented) size is a truncation, retried (and
    resumed); more than the limit, or a size that disagrees with ``file_size``, fails.
    """
    limit = size_limit(total, expected_size, ceiling)
    if written > limit:
        return Decision(Step.FAIL, reason=f"received more than {limit} bytes", discard=True)
    want = total if total is not None else expected_size
    if want is not None and written < want:
        return on_error(
            Failure.AFTER_SEND,
            f"body ended at {written} of {want} bytes",
            attempt=attempt,
            policy=policy,
            jitter=jitter,
        )
    if expected_size is not None and written != expected_size:
        return Decision(
            Step.FAIL,
            reason=f"received {written} bytes but file_size is {expected_size}",
            discard=True,
        )
    return Decision(Step.DONE)


# -- the manifest ---------------------------------------------------------------------------


def entry_of(
    rec: Recording, spec: FileSpec, size: int, sha256: str, exported_at: datetime
) -> ManifestEntry:
    """The manifest entry of ``spec``'s file of ``rec``, exported with ``size`` bytes
    hashing to ``sha256``."""
    return ManifestEntry(
        recording_id=rec.id,
        meeting_id=rec.meeting.id if rec.meeting else None,
        status=rec.status,
        kind=spec.kind,
        path=spec.name,
        bytes=size,
        sha256=sha256,
        exported_at=exported_at,
    )


def encode_entry(entry: ManifestEntry) -> bytes:
    """One manifest line (JSON, newline-terminated) for ``entry``."""
    doc = converter.unstructure(entry)
    return encode_json(doc) + b"\n"


def _entry_of(line: bytes) -> ManifestEntry | None:
    try:
        entry = converter.structure(decode_json(line), ManifestEntry)
    except Exception:  # cattrs and json raise many types; all mean "not an entry"
        return None
    return entry if entry.kind in (FileKind.VIDEO, FileKind.AUDIO) else None


def parse_manifest(lines: Iterable[bytes]) -> ManifestContents:
    """The manifest's entries by ``(recording_id, kind)``; a later line wins.

    ``lines`` keep their newline (as a binary file yields them). A last line
    without one is torn (an append cut short by a crash or a full disk) and is
    skipped and reported; other lines that are not an entry are skipped and
    counted. At worst, a skipped file is checked or downloaded again.
    """
    entries: dict[tuple[str, FileKind], ManifestEntry] = {}
    complete = bad = 0
    torn = False
    for raw in lines:
        if not raw.endswith(b"\n"):
            torn = True
            break
        complete += len(raw)
        if not raw.strip():
            continue
        entry = _entry_of(raw)
        if entry is None:
            bad += 1
            continue
        entries[(entry.recording_id, entry.kind)] = entry
    return ManifestContents(entries, complete, torn, bad)


@attrs.define
class RateGuard:
    """Ends a body that arrives slower than ``min_rate`` bytes a second.

    The rate is measured over windows of ``window`` seconds from ``started``; a
    body dripping a byte a second is stopped at the end of its first window.
    (A body that stops entirely is the read timeout's job.)
    """

    window: float
    min_rate: float
    started: float
    received: int = 0

    def too_slow(self, now: float, received: int) -> bool:
        """Count ``received`` more bytes at time ``now``; whether the body is too slow."""
        self.received += received
        elapsed = now - self.started
        if elapsed < self.window:
            return False
        if self.received < self.min_rate * elapsed:
            return True
        self.started, self.received = now, 0
        return False


# -- continuous sync ---------------------------------------------------------------------------

#: How long RealtimeKit keeps a recording's files: nothing older can be exported.
RETENTION: Final = timedelta(days=7)
#: How far before the cursor a sync lists by default: the longest recording
#: (``max_seconds`` is at most 86,400) plus an hour for it to upload. A recording
#: invoked before the cursor but still running or uploading then is UPLOADED (and
#: listed) by a later run within this lag.
DEFAULT_SYNC_LAG: Final = timedelta(hours=25)
#: The sync cursor's name in the destination (a file, or an object under the prefix).
CURSOR_NAME: Final = ".realtimekit-sync.json"


def sync_since(cursor: datetime | None, now: datetime, lag: timedelta) -> datetime:
    """The invoked time a sync run lists from: ``lag`` before the cursor, but never
    before the retention window (nor before it on a first run, without a cursor)."""
    oldest = now - RETENTION
    return oldest if cursor is None else max(cursor - lag, oldest)


def next_cursor(previous: datetime | None, started: datetime, *, ok: bool) -> datetime | None:
    """The cursor after a run that started (on the server's clock) at ``started``.

    It moves only after a run with no failure (so failed files are listed again)
    and never backwards (a slower concurrent run cannot undo a faster one).
    """
    if not ok:
        return previous
    return started if previous is None else max(previous, started)


def encode_cursor(cursor: datetime) -> bytes:
    """The cursor file's bytes."""
    return encode_json({"cursor": cursor.isoformat()}) + b"\n"


def parse_cursor(data: bytes | None) -> datetime | None:
    """The cursor a cursor file records; ``None`` when missing or unreadable (a full
    retention walk then, which is slow but loses nothing)."""
    if data is None:
        return None
    try:
        doc = decode_json(data)
        value = datetime.fromisoformat(doc["cursor"])
    except Exception:  # any malformed content means "no cursor"
        return None
    return value if value.tzinfo is not None else None


@attrs.frozen
class SyncReport:
    """What one sync run did: the export of the window, and the window itself.

    ``since`` is the invoked time listed from; ``cursor`` is the cursor saved for
    the next run (unchanged when something failed). ``caught_up`` says every
    UPLOADED recording of the window is in the destination.
    """

    since: datetime
    cursor: datetime | None
    export: ExportReport

    @property
    def caught_up(self) -> bool:
        """True when nothing failed."""
        return self.export.ok
