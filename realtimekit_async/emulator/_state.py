"""In-memory state of the emulated Recordings API: models, lifecycle, listing.

Requests arrive already validated (``_parsing``); answers are rendered elsewhere
(``_serialize``, ``_app``). Everything here is plain synchronous logic driven by
an :class:`EmulatedClock`, so it can be unit-tested without a server. Times are
integer epoch milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._clock import EmulatedClock
from ._parsing import MAX_MAX_SECONDS, ListQuery, StartRequest
from ._util import EmulatorHTTPError, new_uuid

__all__ = [
    "ACTIONS",
    "ACTIVE_STATUSES",
    "LifecycleConfig",
    "Meeting",
    "PageWindow",
    "Recording",
    "RecordingStore",
    "audio_file_size",
    "check_action",
    "compute_file_size",
    "page_window",
]

ACTIVE_STATUSES: Final = frozenset({"INVOKED", "RECORDING", "PAUSED"})
ACTIONS: Final = ("pause", "resume", "stop")

_ALLOWED_FROM: Final[Mapping[str, frozenset[str]]] = {
    "pause": frozenset({"RECORDING"}),
    "resume": frozenset({"PAUSED"}),
    "stop": frozenset({"INVOKED", "RECORDING", "PAUSED"}),
}


@attrs.frozen
class LifecycleConfig:
    """Timing and sizing knobs of the emulated lifecycle (durations in emulated seconds)."""

    start_delay: float = 2.0
    upload_delay: float = 3.0
    min_duration: float = 5.0
    url_ttl: float = 7 * 86400.0
    bytes_per_second: int = 8192
    auto_stop_reason: str = "ALL_PEERS_LEFT"
    default_per_page: int = 20
    max_per_page: int = 100
    auto_create_meetings: bool = True


@attrs.define(eq=False)
class Meeting:
    """A meeting that recordings belong to (only what the recordings API exposes)."""

    id: str
    title: str
    created_ms: int
    updated_ms: int
    status: str = "ACTIVE"
    live_stream_on_start: bool = False
    persist_chat: bool = False
    record_on_start: bool = False
    session_keep_alive_time_in_secs: int = 60
    summarize_on_end: bool = False
    live_session_id: str | None = None
    session_started_ms: int | None = None
    session_ended_ms: int | None = None
    search_text: str = ""

    def __attrs_post_init__(self) -> None:
        self.search_text = f"{self.id}\n{self.title}".lower()


@attrs.define(eq=False)
class Recording:
    """One recording and its lifecycle bookkeeping."""

    id: str
    meeting_id: str
    status: str
    invoked_ms: int
    output_file_name: str
    max_seconds: int = MAX_MAX_SECONDS
    kind: str = "composite"
    has_audio: bool = False
    bucket_enabled: bool = True
    storage_config: dict[str, Any] | None = None
    start_reason: dict[str, Any] | None = None
    stop_reason: dict[str, Any] | None = None
    started_ms: int | None = None
    stopped_ms: int | None = None
    session_id: str | None = None
    file_size: int | None = None
    file_size_override: int | None = None
    expiry_ms: int | None = None
    duration_s: int = 0
    recorded_ms: int = 0
    segment_start_ms: int | None = None
    layers: dict[str, Any] | None = None
    user_ids: tuple[str, ...] = ()
    config: dict[str, Any] = attrs.field(factory=dict)
    gen: int = 0
    seq: int = 0


@attrs.frozen
class PageWindow:
    """Slice bounds and the 1-based inclusive ``paging`` offsets of one page.

    Invariant: ``end_offset - start_offset + 1`` equals the number of items, so an
    empty page (past the end, or no matches) has ``end_offset == start_offset - 1``.
    """

    start_index: int
    stop_index: int
    start_offset: int
    end_offset: int
    total_count: int


def page_window(total: int, page_no: int, per_page: int) -> PageWindow:
    """Compute the slice and offsets for ``page_no`` (1-based). Raises ValueError if < 1."""
    if page_no < 1 or per_page < 1 or total < 0:
        raise ValueError("page_no and per_page must be >= 1 and total >= 0")
    start = (page_no - 1) * per_page
    count = max(0, min(total, start + per_page) - start)
    return PageWindow(start, start + count, start + 1, start + count, total)


def check_action(status: str, action: object) -> str:
    """Validate a PUT action against the current status; returns the action.

    Raises EmulatorHTTPError(400) naming either the invalid action or the invalid transition.
    """
    if not isinstance(action, str) or action not in _ALLOWED_FROM:
        raise EmulatorHTTPError(
            400, f"invalid action {action!r}: expected one of pause, resume, stop"
        )
    if status not in _ALLOWED_FROM[action]:
        allowed = ", ".join(sorted(_ALLOWED_FROM[action]))
        raise EmulatorHTTPError(
            400,
            f"invalid transition: cannot {action} a recording in status {status} "
            f"(allowed from {allowed})",
        )
    return action


def compute_file_size(recording_id: str, duration_s: int, bytes_per_second: int) -> int:
    """Deterministic video file size for a recording of ``duration_s`` seconds."""
    bps = max(1, bytes_per_second)
    return max(1, duration_s * bps + zlib.crc32(recording_id.encode()) % bps)


def audio_file_size(video_size: int) -> int:
    """Size of the separate audio file: an eighth of the video file, at least 1 byte."""
    return max(1, video_size // 8)


Listener = Callable[[Recording, Meeting], None]


@attrs.define
class _CacheEntry:
    version: int
    valid_until_ms: float
    items: list[Recording]


class RecordingStore:
    """All recordings and meetings, with lazy, time-ordered lifecycle transitions.

    Due transitions sit in a heap; :meth:`run_due` applies every one whose time has
    come, each stamped at its own due time (not "now"), so lazy evaluation yields
    the same timestamps as a real-time worker would. Any mutation bumps
    ``version``, which invalidates the per-query list cache.
    """

    def __init__(
        self,
        clock: EmulatedClock,
        config: LifecycleConfig,
        *,
        ids_rng: random.Random,
        caller: Mapping[str, Any],
        cache_size: int = 64,
    ) -> None:
        self.clock = clock
        self.config = config
        self.recordings: dict[str, Recording] = {}
        self.meetings: dict[str, Meeting] = {}
        self.version = 0
        self._ids_rng = ids_rng
        self._caller = dict(caller)
        self._heap: list[tuple[int, int, str, int]] = []
        self._seq = itertools.count()
        self._by_meeting: dict[str, list[Recording]] = {}
        self._active: dict[str, set[str]] = {}
        self._listeners: list[Listener] = []
        self._cache: OrderedDict[tuple[Any, ...], _CacheEntry] = OrderedDict()
        self._cache_size = cache_size

    # -- wiring -------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(recording, meeting)`` after every status change."""
        self._listeners.append(listener)

    def new_id(self) -> str:
        """Next id from the seeded id stream."""
        return new_uuid(self._ids_rng)

    def add_meeting(self, meeting: Meeting) -> Meeting:
        """Register a meeting (replacing one with the same id)."""
        self.meetings[meeting.id] = meeting
        self._by_meeting.setdefault(meeting.id, [])
        self.version += 1
        return meeting

    def load(self, meetings: Sequence[Meeting], recordings: Sequence[Recording]) -> None:
        """Bulk-insert seeded data without notifying listeners."""
        for meeting in meetings:
            self.meetings[meeting.id] = meeting
            self._by_meeting.setdefault(meeting.id, [])
        for rec in recordings:
            self._insert(rec)
        self.version += 1

    def _insert(self, rec: Recording) -> None:
        rec.seq = len(self.recordings)
        self.recordings[rec.id] = rec
        self._by_meeting.setdefault(rec.meeting_id, []).append(rec)
        if rec.status in ACTIVE_STATUSES:
            self._active.setdefault(rec.meeting_id, set()).add(rec.id)
        self._schedule(rec)

    # -- lifecycle engine ---------------------------------------------------------

    def _schedule(self, rec: Recording) -> None:
        cfg = self.config
        due: int | None = None
        if rec.status == "INVOKED":
            due = rec.invoked_ms + round(cfg.start_delay * 1000)
        elif rec.status == "RECORDING" and rec.segment_start_ms is not None:
            due = rec.segment_start_ms + rec.max_seconds * 1000 - rec.recorded_ms
        elif rec.status == "UPLOADING" and rec.stopped_ms is not None:
            due = rec.stopped_ms + round(cfg.upload_delay * 1000)
        if due is not None:
            heapq.heappush(self._heap, (due, next(self._seq), rec.id, rec.gen))

    def next_due_ms(self) -> int | None:
        """Emulated time of the earliest pending transition (may be stale), or None."""
        return self._heap[0][0] if self._heap else None

    def run_due(self, now_ms: int | None = None) -> int:
        """Apply every transition due at or before now; returns how many were applied."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        applied = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, rid, gen = heapq.heappop(self._heap)
            rec = self.recordings.get(rid)
            if rec is None or rec.gen != gen:
                continue
            if rec.status == "INVOKED":
                self._begin(rec, due)
            elif rec.status == "RECORDING":
                self._stop(rec, due, {"reason": self.config.auto_stop_reason})
            elif rec.status == "UPLOADING":
                self._finish_upload(rec, due)
            applied += 1
        return applied

    def _set_status(self, rec: Recording, status: str, at_ms: int) -> None:
        was_active = rec.status in ACTIVE_STATUSES
        rec.status = status
        rec.gen += 1
        self.version += 1
        meeting = self.meetings[rec.meeting_id]
        meeting.updated_ms = max(meeting.updated_ms, at_ms)
        active = self._active.setdefault(rec.meeting_id, set())
        if status in ACTIVE_STATUSES:
            active.add(rec.id)
        elif was_active:
            active.discard(rec.id)
            if not active and meeting.live_session_id is not None:
                meeting.live_session_id = None
                meeting.session_ended_ms = at_ms
        self._schedule(rec)
        for listener in self._listeners:
            listener(rec, meeting)

    def _begin(self, rec: Recording, at_ms: int) -> None:
        meeting = self.meetings[rec.meeting_id]
        if meeting.live_session_id is None:
            meeting.live_session_id = self.new_id()
            meeting.session_started_ms = at_ms
            meeting.session_ended_ms = None
        rec.session_id = meeting.live_session_id
        rec.started_ms = at_ms
        rec.segment_start_ms = at_ms
        self._set_status(rec, "RECORDING", at_ms)

    def _stop(self, rec: Recording, at_ms: int, reason: dict[str, Any]) -> None:
        if rec.status == "RECORDING" and rec.segment_start_ms is not None:
            rec.recorded_ms += at_ms - rec.segment_start_ms
        rec.segment_start_ms = None
        rec.stopped_ms = at_ms
        rec.duration_s = rec.recorded_ms // 1000
        rec.stop_reason = reason
        too_short = rec.recorded_ms < self.config.min_duration * 1000
        self._set_status(rec, "ERRORED" if too_short else "UPLOADING", at_ms)

    def _finish_upload(self, rec: Recording, at_ms: int) -> None:
        rec.file_size = rec.file_size_override or compute_file_size(
            rec.id, rec.duration_s, self.config.bytes_per_second
        )
        if rec.bucket_enabled:
            # Whole seconds, so the signed X-Expires and the JSON expiry agree exactly.
            rec.expiry_ms = (at_ms + round(self.config.url_ttl * 1000)) // 1000 * 1000
        self._set_status(rec, "UPLOADED", at_ms)

    # -- API operations -----------------------------------------------------------

    def get(self, recording_id: str) -> Recording:
        """The recording with this id. Raises EmulatorHTTPError(404)."""
        rec = self.recordings.get(recording_id)
        if rec is None:
            raise EmulatorHTTPError(404, f"recording {recording_id} not found")
        return rec

    def get_active(self, meeting_id: str) -> Recording:
        """The most recently started active recording of a meeting. Raises EmulatorHTTPError(404)."""
        ids = self._active.get(meeting_id)
        if not ids:
            raise EmulatorHTTPError(404, f"no active recording found for meeting {meeting_id}")
        return max((self.recordings[i] for i in ids), key=lambda r: (r.invoked_ms, r.seq))

    def ensure_meeting(self, meeting_id: str, now_ms: int) -> Meeting:
        """The meeting, auto-created when allowed. Raises EmulatorHTTPError(404/400)."""
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            if not self.config.auto_create_meetings:
                raise EmulatorHTTPError(404, f"meeting {meeting_id} not found")
            meeting = self.add_meeting(
                Meeting(meeting_id, f"Meeting {meeting_id[:8]}", now_ms, now_ms)
            )
        if meeting.status != "ACTIVE":
            raise EmulatorHTTPError(
                400, f"meeting {meeting_id} is {meeting.status}; cannot record it"
            )
        return meeting

    def start(self, req: StartRequest) -> Recording:
        """Create an INVOKED recording. Raises EmulatorHTTPError(409) when one is already active."""
        now = self.clock.now_ms()
        self.run_due(now)
        self.ensure_meeting(req.meeting_id, now)
        if not req.allow_multiple:
            for rid in self._active.get(req.meeting_id, ()):
                if self.recordings[rid].kind == req.kind:
                    raise EmulatorHTTPError(
                        409, f"meeting {req.meeting_id} already has an active recording {rid}"
                    )
        rid = self.new_id()
        prefix = req.file_name_prefix or "recording"
        config = dict(req.config)
        config["max_seconds"] = req.max_seconds
        if req.file_name_prefix is not None:
            config["file_name_prefix"] = req.file_name_prefix
        rec = Recording(
            id=rid,
            meeting_id=req.meeting_id,
            status="INVOKED",
            invoked_ms=now,
            output_file_name=f"{prefix}_{req.meeting_id}_{now}.mp4",
            max_seconds=req.max_seconds,
            kind=req.kind,
            has_audio=req.has_audio,
            bucket_enabled=req.bucket_enabled,
            storage_config=req.storage_config,
            start_reason={"caller": dict(self._caller), "reason": "API_CALL"},
            layers=req.layers,
            user_ids=req.user_ids,
            config=config,
        )
        self._insert(rec)
        self.version += 1
        for listener in self._listeners:
            listener(rec, self.meetings[rec.meeting_id])
        return rec

    def control(self, recording_id: str, action: object) -> Recording:
        """Apply pause/resume/stop. Raises EmulatorHTTPError(404) or EmulatorHTTPError(400)."""
        now = self.clock.now_ms()
        self.run_due(now)
        rec = self.get(recording_id)
        act = check_action(rec.status, action)
        if act == "pause":
            if rec.segment_start_ms is not None:
                rec.recorded_ms += now - rec.segment_start_ms
            rec.segment_start_ms = None
            self._set_status(rec, "PAUSED", now)
        elif act == "resume":
            rec.segment_start_ms = now
            self._set_status(rec, "RECORDING", now)
        else:
            self._stop(rec, now, {"caller": dict(self._caller), "reason": "API_CALL"})
        return rec

    def set_file_size(self, recording_id: str, size: int) -> None:
        """Override the video file size (now if uploaded, else at upload). Raises KeyError."""
        if size < 1:
            raise ValueError("size must be >= 1")
        rec = self.recordings[recording_id]
        rec.file_size_override = size
        if rec.file_size is not None:
            rec.file_size = size
        self.version += 1

    # -- listing ------------------------------------------------------------------

    def query(self, query: ListQuery, now_ms: int | None = None) -> list[Recording]:
        """The full sorted, filtered result list (cached per filter key and version)."""
        now = self.clock.now_ms() if now_ms is None else now_ms
        key = query.filter_key()
        entry = self._cache.get(key)
        if entry is not None and entry.version == self.version and now < entry.valid_until_ms:
            self._cache.move_to_end(key)
            return entry.items
        items, valid_until = self._compute(query, now)
        self._cache[key] = _CacheEntry(self.version, valid_until, items)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return items

    def _compute(self, q: ListQuery, now: int) -> tuple[list[Recording], float]:
        pool: Iterable[Recording]
        if q.meeting_id is not None:
            pool = self._by_meeting.get(q.meeting_id, [])
        else:
            pool = self.recordings.values()
        if q.search:
            needle = q.search
            matching = {m.id for m in self.meetings.values() if needle in m.search_text}
            pool = [r for r in pool if r.meeting_id in matching]
        if q.statuses:
            pool = [r for r in pool if r.status in q.statuses]
        if q.start_ms is not None:
            start = q.start_ms
            pool = [r for r in pool if r.invoked_ms >= start]
        if q.end_ms is not None:
            end = q.end_ms
            pool = [r for r in pool if r.invoked_ms <= end]
        valid_until: float = float("inf")
        if q.expired is not None:
            # The answer flips when the next still-valid URL expires; cache until then.
            with_expiry = [r for r in pool if r.expiry_ms is not None]
            upcoming = [
                r.expiry_ms for r in with_expiry if r.expiry_ms is not None and r.expiry_ms > now
            ]
            if upcoming:
                valid_until = min(upcoming)
            want = q.expired
            pool = [
                r for r in with_expiry if (r.expiry_ms is not None and r.expiry_ms <= now) == want
            ]
        result = sorted(pool, key=lambda r: (r.invoked_ms, r.id), reverse=q.descending)
        return result, valid_until

    def list_page(self, query: ListQuery) -> tuple[list[Recording], PageWindow]:
        """One page of results and its paging window, after applying due transitions."""
        now = self.clock.now_ms()
        self.run_due(now)
        items = self.query(query, now)
        window = page_window(len(items), query.page_no, query.per_page)
        return items[window.start_index : window.stop_index], window
