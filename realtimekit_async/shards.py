"""An export or sync as independent shards: on a Dask cluster, or one shard of N anywhere.

::

    from distributed import Client
    from realtimekit_async.shards import ShardJob, run_on_dask

    job = ShardJob(dest="s3://archive/recordings", app_ids=("app-a", "app-b"))
    async with Client("tcp://scheduler:8786", asynchronous=True) as dask:
        report = await run_on_dask(dask, job)

A :class:`ShardJob` is the job's settings, without secrets by default: each
worker builds its own :class:`RealtimeKit` from them and reads the API token
(``CLOUDFLARE_API_TOKEN``) and the store's credentials (``AWS_*``) from its own
environment. The shards come from :mod:`realtimekit_async._shard_plan`; each
runs the ordinary export (or sync, with a cursor of its own) into the shared
destination, which makes a shard idempotent: run again, it skips what is
there. A distributed run needs an object store (``s3://``): a local directory
would be each worker's own disk, and admits one run at a time.

The core SDK never imports ``distributed``; this module does not either (it
only calls the client it is given), so :func:`run_shard_of` works without it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._client import RealtimeKit
from ._config import DEFAULT_TIMEOUT, resolve_options
from ._dest import LocalDestination, S3Settings, Scheme, parse_destination
from ._exceptions import RealtimeKitError, ValidationError
from ._export_options import DEFAULT_CONCURRENCY, ExportOptions, resolve_export
from ._export_plan import DEFAULT_SYNC_LAG, ExportReport
from ._models import Recording, RecordingStatus
from ._policies import DEFAULT_RATE_LIMITS, RateLimits, RetryPolicy
from ._ratelimit import RateLimiter
from ._shard_plan import (
    Shard,
    default_split,
    divide_rate_limits,
    merge_reports,
    parse_shard_spec,
    plan_shards,
    shard_cursor_name,
)
from .export import _new_export

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "JobReport",
    "Shard",
    "ShardJob",
    "ShardOutcome",
    "plan_job",
    "run_on_dask",
    "run_shard_of",
    "run_shards",
]

#: Shards per app per worker slot of a Dask run: more shards than slots keeps every
#: worker busy to the end, and a shard lost with its worker costs less to redo.
SHARDS_PER_SLOT: Final = 2


def _statuses(
    value: RecordingStatus | str | Iterable[RecordingStatus | str] | None,
) -> tuple[RecordingStatus, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, str | RecordingStatus) else tuple(value)
    try:
        return tuple(RecordingStatus(s) for s in items)
    except ValueError:
        raise ValidationError("status", f"unknown status in {items!r}") from None


def _app_ids(value: str | Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


#: Export options a job sets for all its shards in other ways (or cannot send).
_NOT_SENT: Final = {
    "on_progress": "a callback would run on the worker",
    "app_id": "each shard has its app; give app_ids",
    "s3": "give the job's s3",
}


def _export_options(value: ExportOptions) -> ExportOptions:
    for name, why in _NOT_SENT.items():
        if name in value:
            raise ValidationError(name, f"not an option of a sharded job: {why}")
    return ExportOptions(**value)


@attrs.frozen
class ShardJob:
    """An export (or, with ``sync=True``, a sync) of several apps into one destination.

    Everything a worker needs to run any of the job's shards; it is pickled into
    every task. ``dest`` is an ``s3://bucket/prefix`` URL (or, for
    :func:`run_shard_of` and :func:`run_shards` only, a directory). ``status``,
    ``meeting_id``, ``start_time``, ``end_time`` and ``concurrency`` (downloads
    per shard) are as for :func:`export_recordings`, ``lag`` as for
    :func:`sync_recordings`, and ``options`` are their :class:`ExportOptions`
    (``include_audio``, ``url_expiry_margin``, ...) but ``on_progress`` (it
    would run on the worker), ``app_id`` (each shard's) and ``s3`` (this job's).
    ``account_id`` and ``base_url`` default to the worker's
    ``CLOUDFLARE_ACCOUNT_ID`` / ``REALTIMEKIT_BASE_URL``; ``max_retries`` is
    the workers' clients' (API calls, and downloads unless ``options`` say).
    ``rate_limit`` is the budget of all shards together, divided among those
    in flight. ``s3`` is the store's endpoint and region (credentials from the
    worker's ``AWS_*``).

    ``api_token`` and credentials in ``s3`` are secrets: :func:`run_on_dask`
    refuses to ship them to workers unless ``send_credentials`` (then use a
    cluster with TLS, ``tls://``). They are never shown in ``repr``.
    """

    dest: str = attrs.field(converter=os.fspath)
    app_ids: tuple[str, ...] = attrs.field(converter=_app_ids)
    sync: bool = False
    lag: timedelta = DEFAULT_SYNC_LAG
    status: tuple[RecordingStatus, ...] | None = attrs.field(
        default=(RecordingStatus.UPLOADED,), converter=_statuses
    )
    meeting_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    account_id: str | None = None
    base_url: str | None = None
    rate_limit: RateLimits | None = DEFAULT_RATE_LIMITS
    max_retries: int | RetryPolicy = 2
    options: ExportOptions = attrs.field(
        factory=ExportOptions, converter=_export_options, hash=False
    )
    s3: S3Settings | None = None
    api_token: str | None = attrs.field(default=None, repr=False)
    send_credentials: bool = False

    @property
    def has_secrets(self) -> bool:
        """True when the job itself carries a secret (the token or a store credential)."""
        s3 = self.s3
        store = s3 is not None and (s3.secret_access_key, s3.session_token) != (None, None)
        return self.api_token is not None or store


@attrs.frozen
class ShardOutcome:
    """One shard's result: its report, or ``error`` when the shard itself failed (its
    listing, or opening the destination); ``since``/``cursor`` for a sync shard."""

    shard: Shard
    report: ExportReport | None = None
    error: str | None = None
    since: datetime | None = None
    cursor: datetime | None = None


@attrs.frozen
class JobReport:
    """A job's result: every shard's report merged into ``export``, and each shard's outcome."""

    export: ExportReport
    shards: tuple[ShardOutcome, ...]

    @property
    def failed_shards(self) -> tuple[ShardOutcome, ...]:
        """The shards that did not run to the end (listing or destination failed)."""
        return tuple(s for s in self.shards if s.error is not None)

    @property
    def ok(self) -> bool:
        """True when every shard ran and no file failed (for a sync: caught up)."""
        return self.export.ok and not self.failed_shards


def plan_job(job: ShardJob, parts: int = 1) -> tuple[Shard, ...]:
    """The job's shards, about ``parts`` per app (time windows for a bounded export,
    id hash buckets otherwise). Raises :class:`ValidationError`."""
    bounded = not job.sync and job.start_time is not None and job.end_time is not None
    windows, buckets = default_split(parts, bounded=bounded)
    return plan_shards(
        job.app_ids,
        start_time=None if job.sync else job.start_time,
        end_time=None if job.sync else job.end_time,
        windows=windows,
        buckets=buckets,
    )


# -- one shard (runs on a worker) -------------------------------------------------------------


async def _kept(shard: Shard, listing: AsyncIterator[Recording]) -> AsyncIterator[Recording]:
    async for rec in listing:
        if shard.holds(rec.id, rec.invoked_time):
            yield rec


#: One limiter per thread and budget, kept across shards: the shards a worker thread
#: runs one after another spend one share of the budget, not a fresh share each.
_LIMITERS: dict[tuple[int, RateLimits], RateLimiter] = {}


def _client_for(job: ShardJob, shard: Shard) -> RealtimeKit:
    client = RealtimeKit(
        api_token=job.api_token,
        account_id=job.account_id,
        app_id=shard.app_id,
        base_url=job.base_url,
        max_retries=job.max_retries,
        rate_limit=job.rate_limit,
    )
    if job.rate_limit is not None:
        key = (threading.get_ident(), job.rate_limit)
        client._transport.limiter = _LIMITERS.setdefault(key, RateLimiter(job.rate_limit))
    return client


async def _run(job: ShardJob, shard: Shard, client: RealtimeKit) -> ShardOutcome:
    options: ExportOptions = {**job.options, "app_id": shard.app_id, "s3": job.s3}
    export = _new_export(client, job.dest, options, concurrency=job.concurrency)
    if not job.sync:
        listing = client.recordings.list(
            status=job.status,
            meeting_id=job.meeting_id,
            start_time=shard.start_time,
            end_time=shard.end_time,
        )
        return ShardOutcome(shard, report=await export.run(_kept(shard, aiter(listing))))
    export.use_cursor(shard_cursor_name(shard))
    if client.last_server_date is None:  # learn the server's clock: the window is on it
        await client.recordings.list(per_page=1)

    def walk(since: datetime) -> AsyncIterator[Recording]:
        listing = client.recordings.list(status=RecordingStatus.UPLOADED, start_time=since)
        return _kept(shard, aiter(listing))

    synced = await export.sync(job.lag, walk)
    return ShardOutcome(shard, report=synced.export, since=synced.since, cursor=synced.cursor)


async def run_shard(job: ShardJob, shard: Shard) -> ShardOutcome:
    """Run one shard in this process with a client of its own; a failure of the shard
    as a whole (the listing, the destination) is returned as ``error``, not raised."""
    try:
        async with _client_for(job, shard) as client:
            return await _run(job, shard, client)
    except (RealtimeKitError, OSError) as exc:
        return ShardOutcome(shard, error=f"{type(exc).__name__}: {exc}")


def _run_shard_task(job: ShardJob, shard: Shard) -> ShardOutcome:
    """The Dask task: one shard, in a fresh event loop on the worker's thread."""
    return asyncio.run(run_shard(job, shard))


# -- running a job ------------------------------------------------------------------------------


def _report(outcomes: Sequence[ShardOutcome]) -> JobReport:
    reports = [o.report for o in outcomes if o.report is not None]
    return JobReport(export=merge_reports(reports), shards=tuple(outcomes))


def _check_job(job: ShardJob, *, distributed: bool) -> None:
    """Raise :class:`ValidationError` before anything runs for what no shard could do."""
    # The options as a worker will resolve them (over a client's defaults): bad ones
    # fail here, once, rather than in every shard.
    neutral = resolve_options(
        api_token="-",
        account_id="-",
        app_id=None,
        base_url=None,
        timeout=DEFAULT_TIMEOUT,
        max_retries=job.max_retries,
        env={},
    )
    resolve_export(job.options, neutral, concurrency=job.concurrency)
    where = parse_destination(job.dest)
    if not isinstance(where, LocalDestination) and where.scheme is not Scheme.S3:
        raise ValidationError("dest", f"{where.scheme}:// is not supported; use s3://")
    if distributed and isinstance(where, LocalDestination):
        raise ValidationError(
            "dest",
            "a distributed run needs an object store (s3://bucket/prefix): a directory "
            "would be each worker's own disk, and admits one run at a time",
        )
    if distributed and job.has_secrets and not job.send_credentials:
        raise ValidationError(
            "send_credentials",
            "the job carries the API token or a store secret; let the workers read "
            "CLOUDFLARE_API_TOKEN and AWS_* from their environment, or pass "
            "send_credentials=True to ship them in the tasks",
        )
    if job.sync and (job.start_time is not None or job.end_time is not None):
        raise ValidationError("start_time", "a sync lists its own window; give no time range")


async def run_shards(job: ShardJob, shards: Iterable[Shard]) -> JobReport:
    """Run ``shards`` of ``job`` in this process, one after the other (the rate budget
    stays whole: one runs at a time). Raises :class:`ValidationError`."""
    _check_job(job, distributed=False)
    return _report([await run_shard(job, shard) for shard in shards])


async def run_shard_of(job: ShardJob, index: int, count: int) -> JobReport:
    """Run shard ``index`` of ``count`` (``--shard K/N``) in this process: every app's
    hash bucket ``index`` of ``count``, with ``1/count`` of the rate budget (all ``count``
    may run at once, from any scheduler). Raises :class:`ValidationError`."""
    _check_job(job, distributed=False)
    parse_shard_spec(f"{index}/{count}")  # 0 <= index < count
    plan = plan_shards(
        job.app_ids,
        start_time=None if job.sync else job.start_time,
        end_time=None if job.sync else job.end_time,
        buckets=count,
    )
    mine = [s for s in plan if s.bucket == index]
    share = attrs.evolve(job, rate_limit=divide_rate_limits(job.rate_limit, count))
    return _report([await run_shard(share, shard) for shard in mine])


async def _call(client: Client, method: str, *args: Any, **kwargs: Any) -> Any:
    """``client.method(...)``, awaited on an asynchronous client, in a thread otherwise."""
    call: Callable[..., Any] = getattr(client, method)
    if getattr(client, "asynchronous", False):
        return await call(*args, **kwargs)
    return await asyncio.to_thread(call, *args, **kwargs)


async def run_on_dask(
    client: Client, job: ShardJob, *, shards: Sequence[Shard] | None = None
) -> JobReport:
    """Run ``job``'s shards as tasks on the Dask cluster of ``client`` (asynchronous or
    not); gather their outcomes into one report.

    ``shards`` defaults to :func:`plan_job` with two shards per app per worker
    thread. The rate budget is divided among the shards that can run at once
    (``min(shards, worker threads)``). A task whose worker dies is rescheduled
    by Dask; the shard then skips what its first attempt stored. Raises
    :class:`ValidationError` for a local ``dest`` or secrets without
    ``send_credentials`` (before any task is sent).
    """
    _check_job(job, distributed=True)
    nthreads: dict[str, int] = await _call(client, "nthreads")
    slots = max(1, sum(nthreads.values()))
    plan = tuple(shards) if shards is not None else plan_job(job, SHARDS_PER_SLOT * slots)
    if not plan:
        return _report([])
    share = attrs.evolve(job, rate_limit=divide_rate_limits(job.rate_limit, min(len(plan), slots)))
    run = uuid.uuid4().hex[:12]
    futures = [
        client.submit(
            _run_shard_task, share, shard, key=f"realtimekit-{run}-{shard.name}", pure=False
        )
        for shard in plan
    ]
    outcomes: list[ShardOutcome] = await _call(client, "gather", futures)
    return _report(outcomes)
