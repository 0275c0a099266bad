"""The emulator process the harness starts: one per workload group, on 127.0.0.1.

Prints one JSON line (URLs, credentials, ids of the downloadable files it made)
once it is ready, then serves until SIGTERM/SIGINT or until its stdin closes
(so it never outlives the harness that started it), and prints a last JSON
line with the rate-limit windows it kept (``--rate-limit``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import stat
import sys
import uuid
from typing import Any

import aiohttp

from realtimekit_async.emulator import Emulator, RateLimitRule


async def _make_files(emu: Emulator, count: int, size: int, seed: int) -> list[str]:
    """Start, run and stop ``count`` recordings so each has a fresh ``size``-byte file."""
    rng = random.Random(f"bench-files:{seed}")
    headers = {"Authorization": f"Bearer {emu.token}"}
    ids: list[str] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(count):
            meeting = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            async with session.post(emu.recordings_url, json={"meeting_id": meeting}) as resp:
                resp.raise_for_status()
                ids.append((await resp.json())["data"]["id"])
        emu.advance(30)  # INVOKED -> RECORDING, and long enough not to end ERRORED
        for rid in ids:
            async with session.put(f"{emu.recordings_url}/{rid}", json={"action": "stop"}) as resp:
                resp.raise_for_status()
        for rid in ids:
            emu.set_file_size(rid, size)
        emu.advance(60)  # UPLOADING -> UPLOADED with fresh presigned URLs
    for rid in ids:
        if emu.file_size(rid) != size:
            raise RuntimeError(f"recording {rid} has no {size}-byte file")
    return ids


async def _serve(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {
        "recordings": args.recordings,
        "seed": args.seed,
        "speed": 0,  # a frozen clock: nothing changes under a walk, URLs never expire
        "latency": args.latency,
        "max_per_page": 100,
    }
    if args.rate_limit:
        quota, window = args.rate_limit.split("/")
        options["rate_limit"] = RateLimitRule(int(quota), float(window))
    async with Emulator(**options) as emu:
        # Making the files is not measured: no latency, no rate limit until they exist.
        ctx = emu._ctx
        limiter, ctx.rate_limiter, ctx.latency = ctx.rate_limiter, None, 0.0
        file_ids = await _make_files(emu, args.files, args.file_size, args.seed)
        ctx.rate_limiter, ctx.latency = limiter, args.latency
        info = {
            "base_url": emu.base_url,
            "recordings_url": emu.recordings_url,
            "token": emu.token,
            "account_id": emu.account_id,
            "app_id": emu.app_id,
            "recordings": len(emu.store.recordings),
            "file_ids": file_ids,
        }
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def on_stdin() -> None:
            if not os.read(sys.stdin.fileno(), 4096):  # EOF: the harness is gone
                loop.remove_reader(sys.stdin.fileno())
                stop.set()

        if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
            loop.add_reader(sys.stdin.fileno(), on_stdin)
        await stop.wait()
        # What the rate limit saw, for the harness: every window's start, served, refused.
        windows = emu.rate_limit_windows().get("default", [])
        after = {"windows": [[w.start, w.served, w.refused] for w in windows]}
        sys.stdout.write(json.dumps(after) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recordings", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--files", type=int, default=0, help="fresh downloadable recordings")
    parser.add_argument("--file-size", type=int, default=1, help="bytes per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-limit", default="", help="Q/W: Q requests per W s per token")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
