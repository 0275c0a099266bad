"""The pure decisions behind :mod:`realtimekit_async.export`.

No sockets, no files, no event loop: file naming and sanitising, which
recordings are exportable, whether a presigned URL must be refreshed, what a
storage answer means for a (possibly resumed) download, whether a finished body
is complete, and reading and writing manifest lines. The I/O layer in
``export`` executes these decisions; the tests call them directly.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import attrs
from yarl import URL

from ._converter import converter
from ._models import Recording, RecordingStatus
from ._sansio import Failure, RetryPolicy, decode_json, encode_json, retry_delay

__all__ = [
    "MANIFEST_NAME",
    "MAX_NAME_LENGTH",
    "PART_SUFFIX",
    "Decision",
    "ExportFailure",
    "ExportProgress",
    "ExportReport",
    "FileKind",
    "FileSpec",
    "IgnoredRecording",
    "ManifestEntry",
    "Step",
    "declared_size_problem",
    "display_url",
    "download_url_of",
    "encode_entry",
    "file_name",
    "insecure_download_reason",
    "is_expired",
    "needs_refresh",
    "needs_separator",
    "on_body_end",
    "on_error",
    "on_response",
    "parse_content_range",
    "parse_manifest",
    "plan_recording",
    "resume_offset",
    "safe_id",
    "should_skip",
]

#: The manifest's file name inside the destination directory.
MANIFEST_NAME: Final = "manifest.jsonl"
#: Suffix of a file still being downloaded; only complete files lose it.
PART_SUFFIX: Final = ".part"

# Final names stay well under the usual 255-byte limit, leaving room for ".part".
MAX_NAME_LENGTH: Final = 180
_MAX_ID_LENGTH: Final = 64
_ID_HASH_LENGTH: Final = 16
_FALLBACK_STEM: Final = "recording"
_AUDIO_MARK: Final = ".audio"

# Ids the API really sends (UUIDs) pass unchanged; anything else is cleaned and
# tagged with a hash of the raw id, so two different ids never map to one name
# (not even on a case-insensitive file system, hence lower case only).
_CLEAN_ID: Final = re.compile(r"[a-z0-9-]{1,64}")
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
    describe the file as written; ``exported_at`` is when it was completed.
    """

    recording_id: str
    meeting_id: str | None
    status: RecordingStatus
    kind: FileKind
    path: str
    bytes: int
    sha256: str
    exported_at: datetime


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
class ExportProgress:
    """A progress event for a progress bar.

    ``files_total`` and ``bytes_total`` count what is known so far and grow while
    the listing is walked; ``files_done`` counts exported, skipped and failed
    files; ``bytes_done`` counts bytes in place for files handled by this run.
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
    failing; ``ignored``: listed recordings with nothing downloadable;
    ``bytes``: bytes received over the network by this run.
    """

    exported: tuple[ManifestEntry, ...]
    skipped: tuple[ManifestEntry, ...]
    failed: tuple[ExportFailure, ...]
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

    Any other id is cleaned down to ``[a-z0-9-]`` and suffixed with a hash of
    the raw id, so distinct ids always give distinct prefixes; the result never
    contains ``_`` or ``.``, which is what keeps ``{id}_{name}`` unambiguous.
    """
    if _CLEAN_ID.fullmatch(recording_id):
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
    device name, at most :data:`MAX_NAME_LENGTH` characters, and distinct for
    distinct recording ids.
    """
    prefix = safe_id(recording_id)
    cleaned = _clean_component(output_file_name or "")
    extension = ""
    match = _EXTENSION.search(cleaned, max(0, len(cleaned) - 11))
    if match is not None and match.end() == len(cleaned) and match.start() > 0:
        extension = match.group()
        cleaned = cleaned[: match.start()]
    if kind is FileKind.AUDIO:
        extension = _AUDIO_MARK + extension
    room = MAX_NAME_LENGTH - len(prefix) - 1 - len(extension)
    stem = cleaned[:room].rstrip("._- ") or _FALLBACK_STEM
    return f"{prefix}_{stem}{extension}"


def display_url(url: str) -> str:
    """Host and path of a URL, for messages: a presigned query string is a credential."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "<invalid URL>"
    return f"{parsed.host or ''}{parsed.path}"


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


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_download_reason(url: str, *, base_url: URL, allow_insecure: bool) -> str | None:
    """Why a download URL must not be fetched, or ``None`` when it may be.

    ``https`` is always fine; plain ``http`` only when the user allowed it or the
    client's own API is plain http on a loopback host (a local emulator). Any
    other scheme is refused.
    """
    try:
        scheme = URL(url).scheme
    except (TypeError, ValueError):
        return "download URL is not a valid URL"
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


def should_skip(
    entry: ManifestEntry | None, name: str, final_size: int | None, expected_size: int | None
) -> bool:
    """Whether a file is already exported: listed in the manifest under this name, and
    present with the listed size (and the documented size, when there is one)."""
    if entry is None or entry.path != name or final_size is None:
        return False
    if final_size != entry.bytes:
        return False
    return expected_size is None or expected_size == entry.bytes


def resume_offset(part_size: int | None, expected_size: int | None) -> int:
    """Where a download resumes: the ``.part`` size, or 0 if it cannot be a prefix."""
    if not part_size or part_size < 0:
        return 0
    if expected_size is not None and part_size > expected_size:
        return 0
    return part_size


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
    jitter: float = 0.0,
    now: datetime | None = None,
) -> Decision:
    """What a storage answer to a GET (with ``Range: bytes={offset}-`` when ``offset``) means.

    200 writes from zero (a server that ignored ``Range`` restarts the file);
    206 appends when its ``Content-Range`` starts at ``offset``; 416 restarts;
    403 asks for one URL refresh (``refreshed`` says it already happened); 408,
    429 and 5xx are retried as ``policy`` allows (honouring ``Retry-After``).
    ``headers`` must be case-insensitive, as aiohttp's are.
    """
    if status == 200:
        return Decision(Step.WRITE, start=0, total=_content_length(headers))
    if status == 206:
        parsed = parse_content_range(headers.get("Content-Range"))
        if parsed is None or parsed[0] != offset:
            if offset:
                return Decision(Step.RESTART, reason="partial answer does not continue the file")
            return Decision(Step.FAIL, reason="unrequested partial answer")
        _first, last, total = parsed
        return Decision(Step.WRITE, start=offset, total=total if total is not None else last + 1)
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


def on_error(
    failure: Failure, reason: str, *, attempt: int, policy: RetryPolicy, jitter: float = 0.0
) -> Decision:
    """What a download that failed without a usable answer (reset, timeout, cut short) means."""
    return _retry_or_fail(policy, attempt, reason, failure=failure, jitter=jitter)


def declared_size_problem(total: int | None, expected_size: int | None) -> str | None:
    """Why an answer's announced size cannot be the recording's file, if it cannot."""
    if total is not None and expected_size is not None and total != expected_size:
        return f"storage announces {total} bytes but the recording's file_size is {expected_size}"
    return None


def on_body_end(
    written: int,
    total: int | None,
    expected_size: int | None,
    *,
    attempt: int,
    policy: RetryPolicy,
    jitter: float = 0.0,
) -> Decision:
    """Whether a body that ended normally completed the file.

    Short of the announced (or documented) size is a truncation, retried (and
    resumed); more than that, or a size that disagrees with ``file_size``, fails.
    """
    want = total if total is not None else expected_size
    if want is not None and written < want:
        return on_error(
            Failure.AFTER_SEND,
            f"body ended at {written} of {want} bytes",
            attempt=attempt,
            policy=policy,
            jitter=jitter,
        )
    if want is not None and written > want:
        return Decision(Step.FAIL, reason=f"received {written} bytes, more than {want}")
    if expected_size is not None and written != expected_size:
        return Decision(
            Step.FAIL, reason=f"received {written} bytes but file_size is {expected_size}"
        )
    return Decision(Step.DONE)


# -- the manifest ---------------------------------------------------------------------------


def encode_entry(entry: ManifestEntry) -> bytes:
    """One manifest line (JSON, newline-terminated) for ``entry``."""
    doc = converter.unstructure(entry)
    return encode_json(doc) + b"\n"


def parse_manifest(lines: Iterable[bytes]) -> dict[tuple[str, FileKind], ManifestEntry]:
    """The manifest's entries by ``(recording_id, kind)``; a later line wins.

    Lines that are not a complete entry (a line torn by a crash, garbage) are
    skipped: at worst that file is downloaded again.
    """
    entries: dict[tuple[str, FileKind], ManifestEntry] = {}
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            entry = converter.structure(decode_json(line), ManifestEntry)
        except Exception:  # cattrs and json raise many types; all mean "not an entry"
            continue
        if entry.kind not in (FileKind.VIDEO, FileKind.AUDIO):
            continue
        entries[(entry.recording_id, entry.kind)] = entry
    return entries


def needs_separator(last_byte: bytes) -> bool:
    """Whether the manifest ends mid-line (a torn write) and needs a newline before appending."""
    return last_byte not in (b"", b"\n")
