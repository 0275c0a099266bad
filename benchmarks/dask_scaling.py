"""Sharded export throughput on Dask: ``python -m benchmarks.dask_scaling`` (``make bench-dask``).

An emulator (its own process, every request delayed by ``--latency`` so the job
is I/O-bound, its rate limit set to the job's budget) and moto's S3 server (its
own process) on 127.0.0.1; a ``distributed.LocalCluster`` of 1, 2 and 4 worker
processes (one thread each) in turn. Each repetition exports the same
recordings into a fresh bucket with :func:`run_on_dask`, the same shards for
every cluster size; repetitions interleave the sizes. Reports files per second,
the scaling efficiency (``rate(n) / (n * rate(1))``, medians) and what the
emulator counted against the budget: the most requests it served in one of its
windows, and how many it refused (429). Writes ``benchmarks/results/dask.{md,json}``.
``--quick`` checks the harness runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiobotocore.session
import attrs
import distributed

from benchmarks.run import emulator, moto_server
from realtimekit_async import RateLimit, RateLimits
from realtimekit_async._dest import S3Settings
from realtimekit_async.shards import ShardJob, _run_shard_task, plan_job, run_on_dask

RESULTS = Path(__file__).resolve().parent / "results"
WORKERS = (1, 2, 4)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
REGION = "us-east-1"
#: The job's budget, enforced by the emulator too: requests per window of seconds.
BUDGET = (20, 1.0)
TARGET_EFFICIENCY = 0.70
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


async def _bucket(moto: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:12]}"
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "s3",
        endpoint_url=moto,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ) as s3:
        await s3.create_bucket(Bucket=name)
    return name


async def _warm(client: Any, job: ShardJob) -> None:
    """Run an empty shard (a window with no recordings) on every worker: imports, the
    store's client and model loaded, as on a worker that has run before."""
    empty = attrs.evolve(job, start_time=EPOCH, end_time=EPOCH)
    (shard,) = plan_job(empty, 1)
    futures = [
        client.submit(_run_shard_task, empty, shard, workers=[address], pure=False)
        for address in await client.nthreads()
    ]
    for outcome in await client.gather(futures):
        if outcome.error is not None:
            raise RuntimeError(f"warming up failed: {outcome.error}")


async def _measure(
    n_workers: int, job: ShardJob, moto: str, shards: int, env: dict[str, str]
) -> dict[str, float]:
    async with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            asynchronous=True,
            env=env,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster, asynchronous=True) as client,  # type: ignore[no-untyped-call]
    ):
        await client.wait_for_workers(n_workers)
        job = attrs.evolve(job, dest=f"s3://{await _bucket(moto)}/bench")
        await _warm(client, job)
        plan = plan_job(job, shards or 2 * n_workers)
        began = time.perf_counter()
        report = await run_on_dask(client, job, shards=plan)
        seconds = time.perf_counter() - began
    if not report.ok:
        raise RuntimeError(f"the export failed: {report.failed_shards or report.export.failed}")
    files = len(report.export.exported)
    return {"workers": n_workers, "seconds": seconds, "files": files, "rate": files / seconds}


def _summary(runs: list[dict[str, float]]) -> dict[int, dict[str, float]]:
    by: dict[int, dict[str, float]] = {}
    for n in WORKERS:
        rates = [r["rate"] for r in runs if r["workers"] == n]
        by[n] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    return by


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Sharded export on Dask (`make bench-dask`)",
        "",
        f"{doc['files']} files of {doc['file_size']} bytes, {doc['latency']} s added to every "
        f"request, {doc['shards']} shards, {doc['concurrency']} downloads per shard, "
        f"{doc['reps']} repetitions; budget {BUDGET[0]} requests / {BUDGET[1]} s.",
        "",
        "| workers | files/s (median) | min .. max | efficiency |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for n, s in doc["summary"].items():
        lines.append(
            f"| {n} | {s['median']:.1f} | {s['min']:.1f} .. {s['max']:.1f} | "
            f"{doc['efficiency'][n]:.0%} |"
        )
    lines += [
        "",
        f"Emulator: at most {doc['max_served']} requests served in one window of "
        f"{BUDGET[1]} s (budget {BUDGET[0]}); {doc['refused']} refused (429).",
        f"Target: efficiency at 4 workers >= {TARGET_EFFICIENCY:.0%}: "
        f"{'met' if doc['met'] else 'NOT met'}.",
    ]
    return "\n".join(lines) + "\n"


async def _main(args: argparse.Namespace) -> int:
    files, size, reps = (8, 1024, 1) if args.quick else (args.files, args.file_size, args.reps)
    runs: list[dict[str, float]] = []
    budget = f"{BUDGET[0]}/{BUDGET[1]}"
    with (
        moto_server() as moto,
        emulator(files=files, file_size=size, latency=args.latency, rate_limit=budget) as info,
    ):
        env = {
            **CREDENTIALS,
            "AWS_REGION": REGION,
            "CLOUDFLARE_API_TOKEN": info["token"],
            "CLOUDFLARE_ACCOUNT_ID": info["account_id"],
        }
        job = ShardJob(
            dest="s3://placeholder/bench",
            app_ids=(info["app_id"],),
            base_url=info["base_url"],
            s3=S3Settings(endpoint_url=moto),
            concurrency=args.concurrency,
            rate_limit=RateLimits((RateLimit(*BUDGET),)),
        )
        for rep in range(reps):
            for n in WORKERS:
                run = await _measure(n, job, moto, args.shards, env)
                print(f"rep {rep + 1}: {n} workers {run['rate']:.1f} files/s", file=sys.stderr)
                if run["files"] != files:
                    raise RuntimeError(f"exported {run['files']} files, not {files}")
                runs.append(run)
    windows = info["after"].get("windows", [])
    summary = _summary(runs)
    base = summary[1]["median"]
    efficiency = {n: summary[n]["median"] / (n * base) for n in WORKERS}
    doc = {
        "files": files,
        "file_size": size,
        "latency": args.latency,
        "shards": args.shards,
        "concurrency": args.concurrency,
        "reps": reps,
        "runs": runs,
        "summary": summary,
        "efficiency": efficiency,
        "max_served": max((w[1] for w in windows), default=0),
        "refused": sum(w[2] for w in windows),
        "budget": list(BUDGET),
        "cpus": os.cpu_count(),
    }
    doc["met"] = efficiency[4] >= TARGET_EFFICIENCY and doc["refused"] == 0
    text = _markdown(doc)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "dask.json").write_text(json.dumps(doc, indent=2) + "\n")
        (RESULTS / "dask.md").write_text(text)
    return 0 if doc["met"] or args.quick else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--files", type=int, default=64, help="recordings to export")
    parser.add_argument("--file-size", type=int, default=64 * 1024, help="bytes per file")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds added per request")
    parser.add_argument(
        "--shards",
        type=int,
        default=16,
        help="shards of the job (0: two per worker, as run_on_dask plans)",
    )
    parser.add_argument("--concurrency", type=int, default=2, help="downloads per shard")
    parser.add_argument("--reps", type=int, default=3, help="repetitions")
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
