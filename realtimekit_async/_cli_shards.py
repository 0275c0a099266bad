"""The command line's sharded runs: ``export|sync --dask ADDRESS``, ``--shard K/N`` and
several ``--app-id``.

Kept apart from ``_cli`` so the plain commands stay as they are; ``distributed``
is imported only when ``--dask`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, TextIO

from ._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_APP_ID, ENV_BASE_URL
from ._converter import converter
from ._dest import S3Settings
from ._exceptions import ValidationError
from ._sansio import encode_json
from ._shard_plan import parse_shard_spec
from .shards import JobReport, ShardJob, run_on_dask, run_shard_of, run_shards

if TYPE_CHECKING:
    from .shards import Shard

__all__ = ["add_shard_arguments", "run_sharded", "wants_shards"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1


def _shard_spec(text: str) -> tuple[int, int]:
    try:
        return parse_shard_spec(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dask``, ``--dask-send-credentials`` and ``--shard`` on ``export``/``sync``."""
    group = parser.add_argument_group(
        "scale-out (an s3:// --dest; --app-id may be repeated: several apps are one job)"
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the job's shards on this Dask scheduler (tcp://host:8786; needs the dask "
        "extra); workers read CLOUDFLARE_API_TOKEN and AWS_* from their own environment (default: run here)",
    )
    where.add_argument(
        "--shard",
        type=_shard_spec,
        metavar="K/N",
        help="run only shard K of N (0 <= K < N, e.g. a Kubernetes indexed Job's "
        "$JOB_COMPLETION_INDEX), with 1/N of the rate budget (default: every shard)",
    )
    group.add_argument(
        "--dask-send-credentials",
        action="store_true",
        help="ship the API token and AWS secrets to the workers in the tasks (use tls://)",
    )


def wants_shards(args: argparse.Namespace) -> bool:
    """True when the command is a sharded run (``--dask``, ``--shard`` or several apps)."""
    return bool(args.dask or args.shard or len(args.app_ids) > 1)


def _pick(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if value := env.get(name, "").strip():
            return value
    return None


def _s3(env: Mapping[str, str], *, secrets: bool) -> S3Settings | None:
    """The store's endpoint and region from this machine's ``AWS_*``, with the
    credentials only when ``secrets``; ``None`` when nothing is set."""
    settings = S3Settings(
        endpoint_url=_pick(env, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        region=_pick(env, "AWS_REGION", "AWS_DEFAULT_REGION"),
        access_key_id=_pick(env, "AWS_ACCESS_KEY_ID") if secrets else None,
        secret_access_key=_pick(env, "AWS_SECRET_ACCESS_KEY") if secrets else None,
        session_token=_pick(env, "AWS_SESSION_TOKEN") if secrets else None,
    )
    return None if settings == S3Settings() else settings


def job_from_args(
    args: argparse.Namespace, *, sync: bool, env: Mapping[str, str] = os.environ
) -> ShardJob:
    """The :class:`ShardJob` a command line describes.

    A ``--dask`` run takes no secret from this machine unless
    ``--dask-send-credentials`` (a token given with ``--api-token`` is then
    refused by :func:`run_on_dask`); a run in this process takes them as the
    plain commands do. Raises :class:`ValidationError`.
    """
    if args.emulator:
        raise ValidationError("emulator", "--emulator runs in this process only; not sharded")
    apps = args.app_ids or ([env[ENV_APP_ID]] if env.get(ENV_APP_ID) else [])
    local = args.dask is None
    ship = local or args.dask_send_credentials
    options: dict[str, object] = {}
    if sync:
        options["lag"] = args.lag
    else:
        options.update(meeting_id=args.meeting_id, start_time=args.since, end_time=args.until)
        if args.status:
            options["status"] = tuple(args.status)
    return ShardJob(
        dest=args.dest,
        app_ids=tuple(apps),
        sync=sync,
        options={"include_audio": not args.no_audio},
        concurrency=args.concurrency,
        account_id=args.account_id or env.get(ENV_ACCOUNT_ID) or None,
        base_url=args.base_url or env.get(ENV_BASE_URL) or None,
        api_token=args.api_token or (env.get(ENV_API_TOKEN) if ship else None) or None,
        s3=_s3(env, secrets=ship),
        send_credentials=args.dask_send_credentials,
        **options,  # type: ignore[arg-type]
    )


async def _on_dask(address: str, job: ShardJob) -> JobReport:
    try:
        from distributed import Client
    except ImportError:
        raise ValidationError(
            "dask", "needs the dask extra: pip install 'realtimekit_async[dask]'"
        ) from None
    async with Client(address, asynchronous=True) as client:  # type: ignore[no-untyped-call]
        return await run_on_dask(client, job)


async def _run_once(args: argparse.Namespace, job: ShardJob) -> JobReport:
    if args.dask is not None:
        return await _on_dask(args.dask, job)
    if args.shard is not None:
        return await run_shard_of(job, *args.shard)
    from .shards import plan_job

    return await run_shards(job, plan_job(job))


def _describe(shard: Shard) -> str:
    return f"{shard.app_id} {shard.name}"


def _print(report: JobReport, args: argparse.Namespace, out: TextIO) -> None:
    from ._cli import export_summary, table

    if args.json:
        print(encode_json(converter.unstructure(report)).decode(), file=out)
        return
    print(export_summary(report.export), file=out)
    print(f"{len(report.shards)} shards", file=out)
    if report.failed_shards:
        rows = [(_describe(s.shard), s.error or "") for s in report.failed_shards]
        print("\n" + table(("SHARD", "ERROR"), rows), file=out)


async def run_sharded(
    args: argparse.Namespace, out: TextIO, stop: asyncio.Event | None = None
) -> int:
    """Run an ``export`` (``stop`` is None) or a ``sync`` (repeated per ``--every``
    until ``stop`` is set) as shards; the exit code."""
    job = job_from_args(args, sync=stop is not None)
    while True:
        running = asyncio.ensure_future(_run_once(args, job))
        stopping = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Future())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not running.done():  # stopped: what the shards stored stays; a rerun skips it
            running.cancel()
            await asyncio.wait([running])
            return EXIT_OK
        report = running.result()
        _print(report, args, out)
        code = EXIT_OK if report.ok else EXIT_FAILURE
        if stop is None or args.every is None:
            return code
        try:
            await asyncio.wait_for(stop.wait(), args.every.total_seconds())
        except TimeoutError:
            continue
        return EXIT_OK
