"""Shard planning, sans I/O: an export or sync job split into independent shards.

A job names one or more apps and, for an export, an optional invoked-time range.
:func:`plan_shards` cuts it into shards, each one app x one time window x one
hash bucket of recording ids; a shard shares nothing with the others but the
destination's layout (file names and manifest), so shards can run anywhere, in
any order, at once, or again. :meth:`Shard.holds` decides membership exactly
(half-open windows, a stable hash of the id), so no recording belongs to two
shards, whatever the server's own bounds include. The rest is arithmetic the
runners need: the rate budget divided among the shards in flight, ``K/N``
parsing, and the shard reports merged into one.

Pure code: no sockets, no clock, no event loop (the model is ``_export_plan``).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

import attrs

from ._exceptions import ValidationError
from ._export_plan import CURSOR_NAME, ExportReport, FileKind, ManifestEntry
from ._policies import RateLimit, RateLimits
from ._validation import check_int, check_non_empty

__all__ = [
    "MAX_SHARDS",
    "SHARE_GUARD",
    "Shard",
    "default_split",
    "divide_rate_limits",
    "merge_reports",
    "parse_shard_spec",
    "plan_shards",
    "recording_bucket",
    "shard_cursor_name",
]

#: The most shards one job may have (each is a task with a listing of its own).
MAX_SHARDS: Final = 100_000
#: How much longer a divided share's windows are than the budget's (see divide_rate_limits).
SHARE_GUARD: Final = 0.05
_SHARD_SPEC: Final = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")


def recording_bucket(recording_id: str, buckets: int) -> int:
    """The hash bucket (``0 .. buckets-1``) of ``recording_id``: the same in every process
    and Python version (SHA-256, not ``hash()``)."""
    digest = hashlib.sha256(recording_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % buckets


@attrs.frozen
class Shard:
    """One independent piece of a job: ``app_id``'s recordings invoked in
    ``[start_time, end_time)`` (``end_time`` included when ``closed``) whose id
    hashes to ``bucket`` of ``buckets``. ``None`` bounds are open."""

    app_id: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    closed: bool = True
    window: int = 0
    windows: int = 1
    bucket: int = 0
    buckets: int = 1

    @property
    def name(self) -> str:
        """A stable name, unique within a job: the Dask task key and the cursor's name."""
        app = hashlib.sha256(self.app_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        return f"{app}-w{self.window}of{self.windows}-h{self.bucket}of{self.buckets}"

    def holds(self, recording_id: str, invoked_time: datetime | None) -> bool:
        """True when the recording belongs to this shard (of this shard's app).

        A recording without an invoked time belongs to the first window.
        """
        if self.buckets > 1 and recording_bucket(recording_id, self.buckets) != self.bucket:
            return False
        if invoked_time is None:
            return self.window == 0
        if self.start_time is not None and invoked_time < self.start_time:
            return False
        if self.end_time is None:
            return True
        return invoked_time < self.end_time or (self.closed and invoked_time == self.end_time)


def _app_ids(app_ids: Iterable[str]) -> tuple[str, ...]:
    if isinstance(app_ids, str):
        app_ids = (app_ids,)
    unique = tuple(dict.fromkeys(check_non_empty("app_id", a) for a in app_ids))
    if not unique:
        raise ValidationError("app_id", "a job needs at least one app id")
    return unique


def _windows(
    start_time: datetime | None, end_time: datetime | None, windows: int
) -> list[tuple[datetime | None, datetime | None]]:
    """``windows`` equal, adjacent slices of ``[start_time, end_time]``."""
    if windows == 1:
        return [(start_time, end_time)]
    if start_time is None or end_time is None:
        raise ValidationError("windows", "more than one time window needs both a start and an end")
    span = end_time - start_time
    if span <= timedelta(0):
        raise ValidationError("windows", "more than one time window needs start_time < end_time")
    step = span / windows
    if step < timedelta(microseconds=1):
        raise ValidationError("windows", "too many time windows for so short a range")
    cuts = [start_time + step * i for i in range(windows)] + [end_time]
    return list(itertools.pairwise(cuts))


def plan_shards(
    app_ids: Iterable[str],
    *,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    windows: int = 1,
    buckets: int = 1,
) -> tuple[Shard, ...]:
    """Every shard of a job: each app (repeats dropped) x ``windows`` equal time windows
    of ``[start_time, end_time]`` x ``buckets`` hash buckets, in a stable order.

    Together the shards hold every recording of the job exactly once. Raises
    :class:`ValidationError` for no app id, ``start_time > end_time``, several
    windows without both bounds, or more than :data:`MAX_SHARDS` shards.
    """
    apps = _app_ids(app_ids)
    check_int("windows", windows, 1)
    check_int("buckets", buckets, 1)
    if start_time is not None and end_time is not None and start_time > end_time:
        raise ValidationError("start_time", "must not be after end_time")
    if len(apps) * windows * buckets > MAX_SHARDS:
        raise ValidationError("shards", f"a job has at most {MAX_SHARDS} shards")
    slices = _windows(start_time, end_time, windows)
    return tuple(
        Shard(
            app_id=app,
            start_time=start,
            end_time=end,
            closed=index == windows - 1,
            window=index,
            windows=windows,
            bucket=bucket,
            buckets=buckets,
        )
        for app in apps
        for index, (start, end) in enumerate(slices)
        for bucket in range(buckets)
    )


def default_split(parts: int, *, bounded: bool) -> tuple[int, int]:
    """``(windows, buckets)`` for about ``parts`` shards per app.

    A bounded time range is cut into windows (each shard then lists only its
    own window); otherwise ids are hashed into buckets (each shard lists the
    whole range and keeps its bucket).
    """
    check_int("parts", parts, 1)
    return (parts, 1) if bounded else (1, parts)


def parse_shard_spec(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``, ``0 <= K < N`` (K as a Kubernetes indexed Job's
    ``JOB_COMPLETION_INDEX``); raises :class:`ValidationError` otherwise."""
    match = _SHARD_SPEC.fullmatch(text)
    if match is None:
        raise ValidationError("shard", f"must be K/N with 0 <= K < N, got {text!r}")
    k, n = int(match[1]), int(match[2])
    if not 0 <= k < n:
        raise ValidationError("shard", f"must be K/N with 0 <= K < N, got {text!r}")
    return k, n


def shard_cursor_name(shard: Shard) -> str:
    """Where a shard's sync keeps its cursor: its own file, so a shard that failed
    never has its cursor moved by one that did not."""
    stem = CURSOR_NAME.removesuffix(".json")
    return f"{stem}.{shard.name}.json"


def _divided(layer: RateLimit, parts: int) -> RateLimit:
    return RateLimit(max(1, layer.max_requests // parts), layer.period * (1 + SHARE_GUARD))


def divide_rate_limits(limits: RateLimits | None, parts: int) -> RateLimits | None:
    """Each of ``parts`` clients' share of ``limits``: every layer's count divided
    (rounded down, at least one) over a window :data:`SHARE_GUARD` longer, so all
    together stay within the budget while ``parts`` run at once.

    The longer window is for the server, which counts a request when it
    arrives: a share renewed the instant its window ends would otherwise land
    a request in the server's window still filled by the other clients (each
    sees only its own spending). Header-adaptive pacing is kept as it is.
    """
    check_int("parts", parts, 1)
    if limits is None or parts == 1:
        return limits
    return RateLimits(tuple(_divided(layer, parts) for layer in limits.layers), limits.adaptive)


def _key(entry: ManifestEntry) -> tuple[str, FileKind]:
    return (entry.recording_id, entry.kind)


def merge_reports(reports: Sequence[ExportReport]) -> ExportReport:
    """One report for a job from its shards' reports.

    A file is listed once: as exported when any shard (or a rerun of one)
    downloaded it, else as skipped; failures of a file another attempt
    exported or skipped are dropped (a retried shard succeeded).
    """
    exported = {_key(e): e for r in reports for e in r.exported}
    skipped = {_key(e): e for r in reports for e in r.skipped if _key(e) not in exported}
    done = exported.keys() | skipped.keys()
    failed = {
        (f.recording_id, f.kind): f
        for r in reports
        for f in r.failed
        if (f.recording_id, f.kind) not in done
    }
    expired = {(x.recording_id, x.kind): x for r in reports for x in r.expired}
    ignored = {i.recording_id: i for r in reports for i in r.ignored}
    return ExportReport(
        exported=tuple(sorted(exported.values(), key=lambda e: e.path)),
        skipped=tuple(sorted(skipped.values(), key=lambda e: e.path)),
        failed=tuple(sorted(failed.values(), key=lambda f: (f.recording_id, f.kind or ""))),
        expired=tuple(sorted(expired.values(), key=lambda x: (x.recording_id, x.kind))),
        ignored=tuple(sorted(ignored.values(), key=lambda i: i.recording_id)),
        bytes=sum(r.bytes for r in reports),
    )
