"""The benchmark harness: ``python -m benchmarks.run [--quick] [--reps N] [--only a,b]``.

Starts one emulator process at a time on 127.0.0.1 (:mod:`benchmarks._server`),
runs every measurement in a fresh client process (:mod:`benchmarks._workloads`),
repetitions interleaved across clients, and writes ``latest.md`` and
``latest.json`` (medians, ratios, targets) to ``benchmarks/results``.
``--quick`` uses tiny sizes and one repetition: it checks the harness runs,
its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1 << 20

#: What every workload compares; the first listed client of a workload is its floor.
CLIENT_LABELS = {
    "floor": "raw aiohttp + json, sequential (floor)",
    "floor_concurrent": "raw aiohttp + json, concurrent (concurrent floor)",
    "official": "official cloudflare SDK, page loop (peer)",
    "official_strict": "official SDK models, strict validation (info)",
    "sdk_prefetch1": "realtimekit_async, prefetch=1",
    "sdk": "realtimekit_async, default prefetch",
    "raw": "raw aiohttp (floor)",
}
_SDK = "realtimekit_async"

Run = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    recordings: int
    scale_recordings: int
    latency: float
    per_page: int
    percall_iterations: int
    percall_warmup: int
    decode_batches: int
    decode_per_batch: int
    export_files: int
    export_file_size: int
    big_file_size: int
    s3_files: int
    s3_file_size: int
    s3_big_size: int
    waiter_tracked: int
    waiter_events: int
    #: The rate-limit workloads: a budget of quota per window seconds, advertised in
    #: headers; pages one process walks, and pages each of four processes walks.
    rl_quota: int = 100
    rl_window: float = 5.0
    rl_pages_one: int = 350
    rl_pages_each: int = 90


FULL = Sizes(
    recordings=20_000,
    scale_recordings=100_000,
    latency=0.050,
    per_page=100,
    percall_iterations=300,
    percall_warmup=20,
    decode_batches=30,
    decode_per_batch=20,
    export_files=200,
    export_file_size=5 * MiB,
    big_file_size=1024 * MiB,
    s3_files=50,
    s3_file_size=5 * MiB,
    s3_big_size=256 * MiB,
    waiter_tracked=10_000,
    waiter_events=20_000,
)
QUICK = Sizes(
    recordings=300,
    scale_recordings=700,
    latency=0.005,
    per_page=100,
    percall_iterations=5,
    percall_warmup=2,
    decode_batches=2,
    decode_per_batch=2,
    export_files=3,
    export_file_size=256 * 1024,
    big_file_size=4 * MiB,
    s3_files=2,
    s3_file_size=256 * 1024,
    s3_big_size=9 * MiB,
    waiter_tracked=200,
    waiter_events=200,
    rl_quota=20,
    rl_window=1.0,
    rl_pages_one=50,
    rl_pages_each=15,
)


@dataclass
class Workload:
    key: str
    title: str
    clients: list[str]
    runs: dict[str, list[Run]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, client: str) -> str:
        return self.labels.get(client) or CLIENT_LABELS.get(client, client)


# -- processes ----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment for child processes, without credentials or endpoints to pick up."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDFLARE_", "REALTIMEKIT_")) and k != "PYTHONASYNCIODEBUG"
    }


@contextlib.contextmanager
def emulator(
    *,
    recordings: int = 0,
    latency: float = 0.0,
    files: int = 0,
    file_size: int = 1,
    rate_limit: str = "",
) -> Iterator[dict[str, Any]]:
    """Run one emulator process; yield what it announced; stop it afterwards.

    What it prints on the way out (its rate-limit windows) lands in the yielded
    dict's ``"after"`` once the block has ended.
    """
    argv = [
        sys.executable,
        "-m",
        "benchmarks._server",
        f"--recordings={recordings}",
        f"--latency={latency}",
        f"--files={files}",
        f"--file-size={file_size}",
        f"--rate-limit={rate_limit}",
    ]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"emulator did not start (exit code {proc.poll()})")
        info: dict[str, Any] = json.loads(line)
        yield info
    finally:
        try:
            rest = proc.communicate(timeout=15)[0]  # closes its stdin: the server exits on EOF
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=15)
            rest = ""
    lines = rest.strip().splitlines()
    info["after"] = json.loads(lines[-1]) if lines else {}


def measure(spec: dict[str, Any]) -> Run:
    """Run one measurement in a fresh process and return its result."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._workloads", json.dumps(spec)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{spec['workload']}/{spec['client']} failed ({done.returncode}): {done.stderr[-3000:]}"
        )
    result: Run = json.loads(lines[-1])
    return result


def measure_together(specs: Sequence[dict[str, Any]]) -> list[Run]:
    """Run several measurements at once, each in its own process; their results."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks._workloads", json.dumps(spec)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    results = []
    for spec, proc in zip(specs, procs, strict=True):
        out, err = proc.communicate(timeout=1800)
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"{spec['workload']} failed ({proc.returncode}): {err[-3000:]}")
        results.append(json.loads(lines[-1]))
    return results


def run_clients(
    workload: Workload, base: dict[str, Any], reps: int, per_client: dict[str, dict[str, Any]]
) -> None:
    """Measure every client ``reps`` times, interleaved (rep 1 of each, then rep 2...)."""
    for rep in range(reps):
        for client in workload.clients:
            spec = {**base, "client": client, **per_client.get(client, {})}
            started = time.perf_counter()
            run = measure(spec)
            workload.runs.setdefault(client, []).append(run)
            print(
                f"  {workload.key:<13} {client:<17} rep {rep + 1}/{reps}"
                f"  wall {run['wall']:8.3f}s  cpu {run['cpu']:7.3f}s"
                f"  rss {run['rss_peak'] / MiB:7.1f} MiB  ({time.perf_counter() - started:.1f}s)",
                flush=True,
            )


# -- the workloads ------------------------------------------------------------------------


def list_workloads(
    sizes: Sizes,
    reps: int,
    concurrency: int,
    latency: float,
    key: str,
    title: str,
) -> Workload:
    clients = ["floor", "floor_concurrent", "official", "sdk_prefetch1", "sdk"]
    workload = Workload(key, title, clients)
    with emulator(recordings=sizes.recordings, latency=latency) as info:
        base = {
            **info,
            "workload": "list",
            "per_page": sizes.per_page,
            "expected": sizes.recordings,
            "concurrency": concurrency,
        }
        workload.params = {
            "recordings": sizes.recordings,
            "per_page": sizes.per_page,
            "latency_s": latency,
            "concurrency": concurrency,
        }
        per_client: dict[str, dict[str, Any]] = {
            "sdk_prefetch1": {"prefetch": 1},
        }
        run_clients(workload, base, reps, per_client)
    return workload


def decode_workload(sizes: Sizes, reps: int) -> Workload:
    workload = Workload(
        "decode",
        "Decode: one page (dict) into objects, microseconds per recording",
        ["sdk", "official", "official_strict"],
        labels={
            "sdk": f"{_SDK}: converter.structure(page, RecordingPage)",
            "official": "official SDK: construct_type (what its client does)",
            "official_strict": "official SDK: validate_type (strict mode only; info)",
        },
    )
    # A page from the middle of the list: settled recordings, as most of a real list is
    # (the newest page of a seeded emulator is all still-running recordings).
    page_no = max(1, sizes.recordings // sizes.per_page // 2)
    with emulator(recordings=sizes.recordings) as info:
        base = {
            **info,
            "workload": "decode",
            "per_page": sizes.per_page,
            "page_no": page_no,
            "batches": sizes.decode_batches,
            "per_batch": sizes.decode_per_batch,
        }
        workload.params = {"recordings_per_page": sizes.per_page, "page_no": page_no}
        run_clients(workload, base, reps, {})
    return workload


def waiter_workload(sizes: Sizes, reps: int) -> Workload:
    workload = Workload(
        "waiter",
        f"RecordingWaiter.feed: microseconds per event, {sizes.waiter_tracked:,} tracked",
        ["sdk_filling", "sdk_full"],
        labels={
            "sdk_filling": f"filling: events for {sizes.waiter_tracked:,} new recordings",
            "sdk_full": f"full: {sizes.waiter_events:,} more new recordings, oldest forgotten",
        },
    )
    workload.params = {"tracked": sizes.waiter_tracked, "events": sizes.waiter_events}
    base = {"workload": "waiter", **workload.params}
    run_clients(workload, base, reps, {})
    return workload


def percall_workload(sizes: Sizes, reps: int) -> Workload:
    workload = Workload(
        "percall",
        "Per call: start, stop, get round trips (same session)",
        ["raw", "sdk"],
        labels={"raw": "raw aiohttp + json (floor)", "sdk": _SDK},
    )
    with emulator() as info:
        base = {
            **info,
            "workload": "percall",
            "iterations": sizes.percall_iterations,
            "warmup": sizes.percall_warmup,
        }
        workload.params = {"iterations": sizes.percall_iterations, "warmup": sizes.percall_warmup}
        run_clients(workload, base, reps, {})
    return workload


def scale_workload(sizes: Sizes, reps: int) -> Workload:
    """The floor and the SDK walking 100,000 and 20,000 recordings of one emulator.

    The small walk is the list's last pages (same emulator, runs interleaved with
    the large walk's, so both see the same machine); a one-page walk (the last
    page only) gives each client's fixed cost, so the marginal cost per
    recording can be told from the average.
    """
    workload = Workload("scale", "Scale: list-all items walk (nothing collected)", [])
    per_page = sizes.per_page
    last_page = -(-sizes.scale_recordings // per_page)
    small_pages = sizes.recordings // per_page
    sizes_by_name = {
        "fixed": sizes.scale_recordings - (last_page - 1) * per_page,
        "small": sizes.scale_recordings - (last_page - small_pages) * per_page,
        "large": sizes.scale_recordings,
    }
    starts = {"fixed": last_page, "small": last_page - small_pages + 1, "large": 1}
    workload.params = {**sizes_by_name, "per_page": per_page}
    workload.clients = [f"{who}_{size}" for who in ("floor", "sdk") for size in sizes_by_name]
    with emulator(recordings=sizes.scale_recordings) as info:
        base = {**info, "workload": "list", "per_page": per_page, "concurrency": 1}
        for rep in range(reps):
            for name in workload.clients:
                who, size = name.split("_")
                spec = {
                    **base,
                    "client": who,
                    "start_page": starts[size],
                    "expected": sizes_by_name[size],
                }
                run = measure(spec)
                workload.runs.setdefault(name, []).append(run)
                print(
                    f"  scale         {name:<17} rep {rep + 1}/{reps}"
                    f"  cpu {run['cpu']:7.3f}s  rss {run['rss_peak'] / MiB:7.1f} MiB",
                    flush=True,
                )
    for name in workload.clients:
        who, size = name.split("_")
        label = "raw floor" if who == "floor" else f"{_SDK} (default prefetch)"
        suffix = {"fixed": " (last page only)", "small": " (last pages)", "large": ""}[size]
        workload.labels[name] = f"{label} @ {sizes_by_name[size]:,}{suffix}"
    return workload


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port, in its own process.

    Not in this one: each measured run is a child process, and on Linux a
    child's peak RSS counts the parent's at fork, so objects moto holds here
    would show up in every export's RSS.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def export_workload(
    sizes: Sizes, reps: int, files: int, size: int, key: str, title: str, *, s3: bool = False
) -> Workload:
    clients = ["raw", "sdk"] if s3 else ["raw", "raw_durable", "sdk"]
    labels = {
        "raw": "raw aiohttp streaming copy (floor)",
        "raw_durable": "raw copy + SHA-256 + fsync per file, serially",
        "sdk": f"{_SDK} export_recordings",
    }
    if s3:
        labels["raw"] = "raw aiohttp -> aiobotocore streaming copy (floor)"
        labels["sdk"] = f"{_SDK} export_recordings into s3://"
    workload = Workload(key, title, clients, labels=labels)
    from realtimekit_async._export_options import DEFAULT_CONCURRENCY
    from realtimekit_async.export import CHUNK_SIZE

    with (
        emulator(files=files, file_size=size) as info,
        tempfile.TemporaryDirectory(prefix="rtk-bench-export-") as scratch,
        moto_server() if s3 else contextlib.nullcontext("") as store,
    ):
        workload.params = {
            "files": files,
            "file_size": size,
            "concurrency": DEFAULT_CONCURRENCY,
            "chunk": CHUNK_SIZE,
        }
        for rep in range(reps):
            for client in workload.clients:
                dest = Path(scratch) / f"{client}-{rep}"
                spec = {
                    **info,
                    "workload": "export",
                    "client": client,
                    "dest": str(dest),
                    "concurrency": DEFAULT_CONCURRENCY,
                    "chunk": CHUNK_SIZE,
                    "expected_bytes": files * size,
                }
                if s3:
                    spec["s3_endpoint"] = store
                    spec["bucket"] = f"bench-{client.replace('_', '-')}-{rep}"
                run = measure(spec)
                shutil.rmtree(dest, ignore_errors=True)
                workload.runs.setdefault(client, []).append(run)
                print(
                    f"  {key:<13} {client:<17} rep {rep + 1}/{reps}"
                    f"  wall {run['wall']:8.3f}s  {run['mib_per_s']:8.1f} MiB/s"
                    f"  rss {run['rss_peak'] / MiB:7.1f} MiB",
                    flush=True,
                )
    return workload


RL_PER_PAGE = 10


def ratelimit_workload(sizes: Sizes, processes: int, pages: int, key: str) -> Workload:
    """``processes`` SDK clients on one token walk every recording through a budget of
    ``rl_quota`` per ``rl_window`` seconds that only the headers tell them about.

    The rate is the emulator's own count: requests served in every window but the
    last, over the time from the first window's start to the last one's, so unused
    quota and idle gaps between windows both count against it.
    """
    quota, window = sizes.rl_quota, sizes.rl_window
    title = (
        f"Rate limits: {processes} process(es) walking the list through "
        f"{quota} requests per {window:g} s"
    )
    client = "sdk" if processes == 1 else f"sdk_x{processes}"
    label = f"{_SDK}, default settings, {processes} process(es) on one token"
    workload = Workload(key, title, [client], labels={client: label})
    recordings = pages * RL_PER_PAGE
    with emulator(recordings=recordings, rate_limit=f"{quota}/{window}") as info:
        spec = {
            **info,
            "workload": "list",
            "client": "sdk",
            "per_page": RL_PER_PAGE,
            "expected": recordings,  # every process lists every recording
            "max_retries": 8,
        }
        runs = measure_together([spec] * processes)
    windows = info["after"]["windows"]
    served = sum(w[1] for w in windows)
    refused = sum(w[2] for w in windows)
    span = windows[-1][0] - windows[0][0] if len(windows) > 1 else math.nan
    rate = sum(w[1] for w in windows[:-1]) / span
    workload.params = {
        "quota": quota,
        "window_s": window,
        "processes": processes,
        "recordings": recordings,
        "per_page": RL_PER_PAGE,
        "windows_start_served_refused": [[round(w[0], 3), w[1], w[2]] for w in windows],
    }
    workload.runs[client] = [
        {
            "wall": max(r["wall"] for r in runs),
            "cpu": sum(r["cpu"] for r in runs),
            "rss_peak": max(r["rss_peak"] for r in runs),
            "count": min(r["count"] for r in runs),
            "processes": processes,
            "windows": len(windows),
            "requests": served + refused,
            "refused": refused,
            "refused_pct": 100 * refused / (served + refused),
            "rate": rate,
            "ratio": rate / (quota / window),
        }
    ]
    run = workload.runs[client][0]
    print(
        f"  {key:<13} {client:<17} {run['requests']} requests, {refused} answered 429,"
        f" {run['rate']:.2f} req/s = {run['ratio']:.3f} of the budget",
        flush=True,
    )
    return workload


# -- summaries ------------------------------------------------------------------------------


Summary = Callable[[Sequence[Run]], dict[str, float]]
_HIGHER_IS_BETTER = frozenset({"mib_per_s", "count", "bytes"})


def medians(runs: Sequence[Run]) -> dict[str, float]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: statistics.median(float(r[k]) for r in runs) for k in keys}


def _rep(i: int, runs: Sequence[Run]) -> dict[str, float]:
    """Repetition ``i`` alone (for ratios within one repetition)."""
    return {k: float(v) for k, v in runs[i].items() if isinstance(v, int | float)}


def best(runs: Sequence[Run]) -> dict[str, float]:
    """Each metric's best run: on a shared machine, the least disturbed one."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: (max if k in _HIGHER_IS_BETTER else min)(float(r[k]) for r in runs) for k in keys}


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


@dataclass
class Target:
    name: str
    value: float
    limit: str
    ok: bool
    detail: str
    #: The median over repetitions of the ratio within each repetition (clients run
    #: back to back, so each ratio compares runs that saw the same machine).
    value_paired: float = math.nan
    #: The same ratio from each client's best run (less sensitive to a busy machine).
    value_best: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "value_paired": self.value_paired,
            "value_best": self.value_best,
            "limit": self.limit,
            "ok": self.ok,
            "verdict": verdict(self),
            "detail": self.detail,
        }


def meets(limit: str, value: float) -> bool:
    """Whether ``value`` meets a limit written as ``<= 1.6x``, ``>= 5x ...``, ``< 100``
    or ``within 15%``."""
    number = float(re.findall(r"[0-9.]+", limit)[0])
    if limit.startswith("within"):
        return abs(value - 1) <= number / 100
    if limit.startswith("<="):
        return value <= number
    if limit.startswith("<"):
        return value < number
    return value >= number


def verdict(target: Target) -> str:
    """PASS or FAIL when the ratio of medians and the paired ratio agree."""
    paired = meets(target.limit, target.value_paired)
    if target.ok == paired:
        return "PASS" if target.ok else "FAIL"
    return (
        "NOISY: medians "
        + ("pass" if target.ok else "fail")
        + ", paired "
        + ("pass" if paired else "fail")
    )


def evaluate(workloads: dict[str, Workload], summary: Summary = medians) -> list[Target]:
    """Every target's ratio from ``summary`` of each client's runs (medians by default)."""

    def med(key: str, client: str) -> dict[str, float]:
        return summary(workloads[key].runs[client])

    return _api_targets(workloads, med) + _io_targets(workloads, med)


def _api_targets(
    workloads: dict[str, Workload], med: Callable[[str, str], dict[str, float]]
) -> list[Target]:
    """The targets of the listing, decode, waiter and per-call workloads."""
    targets: list[Target] = []
    if "list_0ms" in workloads:
        sdk, floor, official = (med("list_0ms", c) for c in ("sdk", "floor", "official"))
        r = _ratio(sdk["cpu"], floor["cpu"])
        targets.append(Target("List all, CPU vs raw floor", r, "<= 1.6x", r <= 1.6, "sdk / floor"))
        r = _ratio(official["cpu"], sdk["cpu"])
        targets.append(
            Target("List all, CPU vs official SDK", r, ">= 5x less", r >= 5, "official / sdk")
        )
    if "list_50ms" in workloads:
        sdk, conc, official = (med("list_50ms", c) for c in ("sdk", "floor_concurrent", "official"))
        r = _ratio(sdk["wall"], conc["wall"])
        targets.append(
            Target("List all 50 ms, wall vs concurrent floor", r, "<= 1.2x", r <= 1.2, "sdk / conc")
        )
        r = _ratio(official["wall"], sdk["wall"])
        targets.append(
            Target(
                "List all 50 ms, wall vs official SDK", r, ">= 5x faster", r >= 5, "official / sdk"
            )
        )
    if "decode" in workloads:
        r = _ratio(
            med("decode", "official")["us_per_recording"], med("decode", "sdk")["us_per_recording"]
        )
        targets.append(
            Target("Decode vs official models", r, ">= 8x faster", r >= 8, "official / sdk")
        )
    if "waiter" in workloads:
        r = _ratio(
            med("waiter", "sdk_full")["us_per_event"], med("waiter", "sdk_filling")["us_per_event"]
        )
        targets.append(
            Target("Waiter feed when full vs filling", r, "<= 2x", r <= 2, "full / filling")
        )
    if "percall" in workloads:
        raw, sdk = med("percall", "raw"), med("percall", "sdk")
        for op in ("get", "start", "stop"):
            r = _ratio(sdk[f"{op}_us"], raw[f"{op}_us"])
            targets.append(
                Target(f"Per call `{op}`, wall vs raw", r, "<= 1.3x", r <= 1.3, "sdk / raw")
            )
    return targets


def _io_targets(
    workloads: dict[str, Workload], med: Callable[[str, str], dict[str, float]]
) -> list[Target]:
    """The targets of the export, rate-limit and scale workloads."""
    targets: list[Target] = []
    if "export_files" in workloads:
        raw, sdk = med("export_files", "raw"), med("export_files", "sdk")
        durable = med("export_files", "raw_durable")
        r = _ratio(sdk["mib_per_s"], durable["mib_per_s"])
        targets.append(
            Target(
                "Export files vs raw copy + SHA-256 + fsync, serially",
                r,
                ">= 1.2x",
                r >= 1.2,
                "sdk / raw_durable MiB/s",
            )
        )
        r = _ratio(sdk["mib_per_s"], raw["mib_per_s"])
        targets.append(
            Target("(info) Export files vs plain copy", r, ">= 0.9x", r >= 0.9, "sdk / raw MiB/s")
        )
    if "export_big" in workloads:
        raw, sdk = med("export_big", "raw"), med("export_big", "sdk")
        r = _ratio(sdk["mib_per_s"], raw["mib_per_s"])
        targets.append(
            Target("Export one big file vs plain copy", r, ">= 0.6x", r >= 0.6, "sdk / raw MiB/s")
        )
    for key in ("export_s3_files", "export_s3_big"):
        if key in workloads:
            raw, sdk = med(key, "raw"), med(key, "sdk")
            r = _ratio(sdk["mib_per_s"], raw["mib_per_s"])
            what = "files" if key.endswith("files") else "one big file"
            targets.append(
                Target(f"Export to S3, {what}, vs raw copy", r, ">= 0.9x", r >= 0.9, "sdk / raw")
            )
            rss = sdk["rss_peak"] / MiB
            targets.append(
                Target(
                    f"(info) Export to S3, {what}, peak RSS (MiB)", rss, "< 150", rss < 150, "sdk"
                )
            )
    if "export_big" in workloads:
        rss = med("export_big", "sdk")["rss_peak"] / MiB
        targets.append(
            Target("Export one big file, peak RSS (MiB)", rss, "< 100", rss < 100, "sdk")
        )
    if "ratelimit_one" in workloads:
        one = med("ratelimit_one", "sdk")
        r = one["ratio"]
        targets.append(
            Target("Rate limit, 1 process: rate vs budget", r, ">= 0.95", r >= 0.95, "rate / (Q/W)")
        )
        r = one["refused"]
        targets.append(Target("Rate limit, 1 process: 429 answers", r, "<= 0", r <= 0, "count"))
    if "ratelimit_four" in workloads:
        four = med("ratelimit_four", "sdk_x4")
        r = four["ratio"]
        targets.append(
            Target(
                "Rate limit, 4 processes: aggregate rate vs budget",
                r,
                ">= 0.85",
                r >= 0.85,
                "rate / (Q/W)",
            )
        )
        r = four["refused_pct"]
        targets.append(
            Target("Rate limit, 4 processes: % answered 429", r, "<= 1", r <= 1, "percent")
        )
    if "scale" in workloads:
        small, large = med("scale", "sdk_small"), med("scale", "sdk_large")
        n_small = workloads["scale"].params["small"]
        n_large = workloads["scale"].params["large"]
        r = _ratio(large["cpu"] / n_large, small["cpu"] / n_small)
        targets.append(
            Target(
                "Scale, CPU per recording large/small",
                r,
                "within 15%",
                abs(r - 1) <= 0.15,
                "sdk",
            )
        )
        fixed = med("scale", "sdk_fixed")["cpu"]
        n_fixed = workloads["scale"].params["fixed"]
        r = _ratio(
            (large["cpu"] - fixed) / (n_large - n_fixed),
            (small["cpu"] - fixed) / (n_small - n_fixed),
        )
        targets.append(
            Target(
                "(info) Scale, marginal CPU per recording large/small",
                r,
                "within 15%",
                abs(r - 1) <= 0.15,
                "sdk, one-page walk's CPU subtracted",
            )
        )
        r = _ratio(large["rss_peak"], small["rss_peak"])
        targets.append(
            Target("Scale, peak RSS growth large/small", r, "< 1.2x", r < 1.2, "sdk items walk")
        )
    return targets


# -- output ---------------------------------------------------------------------------------


def _row_cells(workload: Workload, client: str, m: dict[str, float]) -> list[str]:
    floor = medians(workload.runs[workload.clients[0]])
    label = workload.label(client)
    key = workload.key
    if key.startswith("list"):
        cells = [
            label,
            f"{m['wall']:.3f}",
            f"{m['cpu']:.3f}",
            f"{m['rss_peak'] / MiB:.1f}",
            f"{_ratio(m['wall'], floor['wall']):.2f}",
            f"{_ratio(m['cpu'], floor['cpu']):.2f}",
        ]
        conc = medians(workload.runs["floor_concurrent"])
        cells.append(f"{_ratio(m['wall'], conc['wall']):.2f}")
        return cells
    if key == "decode":
        return [
            label,
            f"{m['us_per_recording']:.2f}",
            f"{_ratio(m['us_per_recording'], floor['us_per_recording']):.2f}",
        ]
    if key == "waiter":
        return [
            label,
            f"{m['us_per_event']:.2f}",
            f"{_ratio(m['us_per_event'], floor['us_per_event']):.2f}",
        ]
    if key == "percall":
        return [
            label,
            *(f"{m[f'{op}_us']:.0f}" for op in ("get", "start", "stop")),
            *(f"{_ratio(m[f'{op}_us'], floor[f'{op}_us']):.2f}" for op in ("get", "start", "stop")),
            f"{m['cpu_per_iteration_us']:.0f}",
        ]
    if key.startswith("ratelimit"):
        return [
            label,
            f"{m['windows']:.0f}",
            f"{m['requests']:.0f}",
            f"{m['refused']:.0f}",
            f"{m['rate']:.2f}",
            f"{m['ratio']:.3f}",
            f"{m['wall']:.1f}",
        ]
    if key.startswith("export"):
        return [
            label,
            f"{m['wall']:.2f}",
            f"{m['mib_per_s']:.1f}",
            f"{m['cpu']:.2f}",
            f"{m['rss_peak'] / MiB:.1f}",
            f"{_ratio(m['mib_per_s'], floor['mib_per_s']):.2f}",
        ]
    # scale
    n = workload.params[client.rsplit("_", 1)[1]]
    return [
        label,
        f"{m['cpu']:.3f}",
        f"{m['cpu'] / n * 1e6:.2f}",
        f"{m['rss_peak'] / MiB:.1f}",
        f"{(m['rss_peak'] - m['rss_before']) / MiB:.1f}",
    ]


HEADERS = {
    "list": [
        "client",
        "wall s",
        "CPU s",
        "peak RSS MiB",
        "wall / floor",
        "CPU / floor",
        "wall / conc. floor",
    ],
    "decode": ["decoder", "us / recording", "÷ ours"],
    "waiter": ["waiter", "us / event", "÷ filling"],
    "percall": [
        "client",
        "get us",
        "start us",
        "stop us",
        "get / raw",
        "start / raw",
        "stop / raw",
        "CPU us / 3 calls",
    ],
    "export": ["client", "wall s", "MiB/s", "CPU s", "peak RSS MiB", "MiB/s / raw"],
    "ratelimit": [
        "clients",
        "windows",
        "requests",
        "429 answers",
        "req/s over complete windows",
        "÷ budget Q/W",
        "wall s",
    ],
    "scale": [
        "client @ recordings",
        "CPU s",
        "CPU us / recording",
        "peak RSS MiB",
        "RSS growth during walk MiB",
    ],
}


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(
    meta: dict[str, Any], workloads: dict[str, Workload], targets: list[Target]
) -> str:
    lines = [
        "# realtimekit_async benchmarks",
        "",
        f"{meta['date']} · Python {meta['python']} · {meta['machine']} · {meta['cpus']} CPUs · "
        f"{meta['reps']} repetition(s) (latency and export: {meta['reps_latency_export']}), medians"
        + (" · **quick mode: sizes are tiny, numbers mean nothing**" if meta["quick"] else ""),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "Every row is a fresh client process against one emulator process on 127.0.0.1; "
        "CPU is user+sys of the client over the timed region (client set-up, the work, "
        "close), peak RSS the client's lifetime maximum.",
        "",
    ]
    for workload in workloads.values():
        kind = next(k for k in HEADERS if workload.key.startswith(k))
        lines += [f"## {workload.title}", "", f"Parameters: `{json.dumps(workload.params)}`", ""]
        rows = [_row_cells(workload, c, medians(workload.runs[c])) for c in workload.clients]
        lines += [*_table(HEADERS[kind], rows), ""]
    lines += ["## Targets", ""]
    rows = [
        [
            t.name,
            f"{t.value:.2f}",
            t.limit,
            verdict(t),
            t.detail,
            f"{t.value_paired:.2f}",
            f"{t.value_best:.2f}",
        ]
        for t in targets
    ]
    headers = [
        "target",
        "measured (medians)",
        "limit",
        "result",
        "ratio",
        "paired",
        "best runs",
    ]
    lines += [*_table(headers, rows), ""]
    lines += [
        "*measured*: the ratio of the clients' medians. *paired*: the median over "
        "repetitions of the ratio within each repetition (clients run back to back, "
        "so each ratio compares runs that saw the same machine). The result is PASS or "
        "FAIL when both agree, NOISY when they do not. *best runs*: the ratio of each "
        "client's best run, for reference.",
        "",
    ]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    out = {}
    for name in (
        "realtimekit_async",
        "aiohttp",
        "cattrs",
        "attrs",
        "yarl",
        "cloudflare",
        "httpx",
        "pydantic",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


def _run_workloads(only: set[str], sizes: Sizes, reps: int, slow_reps: int) -> dict[str, Workload]:
    """Run the workloads named in ``only``; their results by workload key."""
    from realtimekit_async._recordings import DEFAULT_PREFETCH

    workloads: dict[str, Workload] = {}
    if "list" in only:
        print("list all, no added latency", flush=True)
        workloads["list_0ms"] = list_workloads(
            sizes,
            reps,
            DEFAULT_PREFETCH,
            0.0,
            "list_0ms",
            "List all, no added latency",
        )
    if "latency" in only:
        print(f"list all, {sizes.latency * 1000:.0f} ms per request", flush=True)
        workloads["list_50ms"] = list_workloads(
            sizes,
            slow_reps,
            DEFAULT_PREFETCH,
            sizes.latency,
            "list_50ms",
            f"List all, {sizes.latency * 1000:.0f} ms added latency per request",
        )
    if "decode" in only:
        print("decode", flush=True)
        workloads["decode"] = decode_workload(sizes, reps)
    if "waiter" in only:
        print("waiter", flush=True)
        workloads["waiter"] = waiter_workload(sizes, reps)
    if "percall" in only:
        print("per-call overhead", flush=True)
        workloads["percall"] = percall_workload(sizes, reps)
    if "scale" in only:
        print("scale", flush=True)
        workloads["scale"] = scale_workload(sizes, reps)
    if "export" in only:
        print("export", flush=True)
        workloads["export_files"] = export_workload(
            sizes,
            slow_reps,
            sizes.export_files,
            sizes.export_file_size,
            "export_files",
            f"Export: {sizes.export_files} files of {sizes.export_file_size / MiB:g} MiB",
        )
        workloads["export_big"] = export_workload(
            sizes,
            slow_reps,
            1,
            sizes.big_file_size,
            "export_big",
            f"Export: one file of {sizes.big_file_size / MiB:g} MiB",
        )
    if "s3" in only:
        print("export to S3 (moto)", flush=True)
        workloads["export_s3_files"] = export_workload(
            sizes,
            slow_reps,
            sizes.s3_files,
            sizes.s3_file_size,
            "export_s3_files",
            f"Export to S3 (moto): {sizes.s3_files} files of {sizes.s3_file_size / MiB:g} MiB",
            s3=True,
        )
        workloads["export_s3_big"] = export_workload(
            sizes,
            slow_reps,
            1,
            sizes.s3_big_size,
            "export_s3_big",
            f"Export to S3 (moto): one file of {sizes.s3_big_size / MiB:g} MiB",
            s3=True,
        )
    if "ratelimit" in only:
        print("rate limits", flush=True)
        workloads["ratelimit_one"] = ratelimit_workload(
            sizes, 1, sizes.rl_pages_one, "ratelimit_one"
        )
        workloads["ratelimit_four"] = ratelimit_workload(
            sizes, 4, sizes.rl_pages_each, "ratelimit_four"
        )
    return workloads


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions (default 7, quick 1); the latency and export workloads use at most 3",
    )
    parser.add_argument(
        "--only",
        default="list,latency,decode,waiter,percall,scale,export,s3,ratelimit",
        help=(
            "comma-separated subset of: "
            "list,latency,decode,waiter,percall,scale,export,s3,ratelimit"
        ),
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.{md,json} go")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    reps = args.reps or (1 if args.quick else 7)
    slow_reps = min(reps, 3)  # long, and low-noise: latency-bound or disk-bound
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    started = time.perf_counter()
    workloads = _run_workloads(only, sizes, reps, slow_reps)
    targets = evaluate(workloads)
    for target, from_best in zip(targets, evaluate(workloads, best), strict=True):
        target.value_best = from_best.value
    paired: dict[str, list[float]] = {}
    for key, workload in workloads.items():  # every target reads one workload
        rounds = min(len(runs) for runs in workload.runs.values())
        for i in range(rounds):
            for t in evaluate({key: workload}, functools.partial(_rep, i)):
                paired.setdefault(t.name, []).append(t.value)
    for target in targets:
        target.value_paired = statistics.median(paired[target.name])
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "reps": reps,
        "reps_latency_export": slow_reps,
        "sizes": sizes.__dict__,
        "versions": _versions(),
        "duration_s": round(time.perf_counter() - started, 1),
    }
    document = {
        "meta": meta,
        "workloads": {
            key: {
                "title": w.title,
                "params": w.params,
                "floor": w.clients[0],
                "clients": {
                    c: {
                        "label": w.label(c),
                        "median": medians(w.runs[c]),
                        "best": best(w.runs[c]),
                        "runs": w.runs[c],
                    }
                    for c in w.clients
                },
            }
            for key, w in workloads.items()
        },
        "targets": [t.as_dict() for t in targets],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    markdown = render_markdown(meta, workloads, targets)
    (args.out / "latest.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
