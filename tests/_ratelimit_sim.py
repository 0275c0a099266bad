"""A discrete-event simulation of processes sharing one server budget (no network).

Each simulated process runs the real :class:`RateLimiter` with ``concurrency``
requests in flight; the server keeps a fixed window of ``quota`` requests per
``window`` seconds (starting with the first request after the last one ended,
as the emulator does) and answers with ``Ratelimit`` headers in whole seconds,
rounded up, and 429 + ``Retry-After`` when the window is spent.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import attrs

from realtimekit_async._ratelimit import RateLimiter, RateLimits


@attrs.define
class SimResult:
    served: int = 0
    refused: int = 0
    windows: list[tuple[float, int]] = attrs.field(factory=list)  # (start, served)
    per_process: list[int] = attrs.field(factory=list)

    def rate_over_complete_windows(self) -> float:
        """Served per second from the first window's start to the last window's start."""
        if len(self.windows) < 2:
            return math.nan
        span = self.windows[-1][0] - self.windows[0][0]
        return sum(n for _, n in self.windows[:-1]) / span


def simulate(
    *,
    processes: int,
    requests_each: int,
    quota: int,
    window: float,
    rtt: float = 0.004,
    concurrency: int = 8,
    limits: RateLimits | None = None,
    jitter: Callable[[int], float] = lambda i: 0.0,
) -> SimResult:
    """Run every process until it has ``requests_each`` answered 2xx; return the counts."""
    result = SimResult(per_process=[0] * processes)
    limiters = [RateLimiter(limits or RateLimits(())) for _ in range(processes)]
    start, count = -math.inf, 0
    events: list[tuple[float, int, str, int, int]] = []
    order = itertools.count()
    queued = [0] * processes  # requests waiting at the process's gate
    waking = [False] * processes  # the head of the queue sleeps until an event
    to_issue = [requests_each] * processes
    answers: dict[tuple[int, int], tuple[int, dict[str, str]]] = {}

    def push(at: float, kind: str, p: int, ticket: int = 0) -> None:
        heapq.heappush(events, (at, next(order), kind, p, ticket))

    def gate(p: int, now: float) -> None:
        """Let queued requests through while the limiter says no wait (like pace())."""
        while queued[p] and not waking[p]:
            delay, _ = limiters[p].delay(now)
            if delay > 0:
                waking[p] = True
                push(now + delay + jitter(p), "wake", p)
                return
            queued[p] -= 1
            push(now, "send", p, limiters[p].record(now))

    for p in range(processes):
        queued[p] = min(concurrency, requests_each)
        to_issue[p] -= queued[p]
        gate(p, 0.0)
    while events:
        now, _, kind, p, ticket = heapq.heappop(events)
        if kind == "wake":
            waking[p] = False
            gate(p, now)
        elif kind == "send":
            at = now + rtt / 2
            if at >= start + window:
                start, count = at, 0
                result.windows.append((at, 0))
            status = 200 if count < quota else 429
            if status == 200:
                count += 1
                result.windows[-1] = (start, result.windows[-1][1] + 1)
            left = start + window - at
            headers = {
                "Ratelimit": f'"default";r={quota - count};t={math.ceil(round(left, 6))}',
                "Ratelimit-Policy": f'"default";q={quota};w={math.ceil(window)}',
            }
            if status == 429:
                headers["Retry-After"] = str(max(1, math.ceil(left)))
            answers[(p, ticket)] = (status, headers)
            push(now + rtt, "answer", p, ticket)
        else:
            status, headers = answers.pop((p, ticket))
            limiters[p].observe(ticket, status, headers, b"", now=now, max_wait=60.0)
            if status == 200:
                result.served += 1
                result.per_process[p] += 1
                if to_issue[p]:
                    to_issue[p] -= 1
                    queued[p] += 1
            else:
                result.refused += 1
                queued[p] += 1  # retried
            gate(p, now)
    return result
