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
from collections.abc import Callable, Iterator

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
    sim = _Simulation(
        processes=processes,
        requests_each=requests_each,
        quota=quota,
        window=window,
        rtt=rtt,
        limiters=[RateLimiter(limits or RateLimits(())) for _ in range(processes)],
        jitter=jitter,
    )
    return sim.run(concurrency)


@attrs.define
class _Simulation:
    """The simulation's state: the event queue, each process's gate, the server's window."""

    processes: int
    requests_each: int
    quota: int
    window: float
    rtt: float
    limiters: list[RateLimiter]
    jitter: Callable[[int], float]
    result: SimResult = attrs.field(init=False)
    start: float = -math.inf  # the server's current window
    count: int = 0  # served in it
    events: list[tuple[float, int, str, int, int]] = attrs.field(factory=list)
    order: Iterator[int] = attrs.field(factory=itertools.count)
    queued: list[int] = attrs.field(init=False)  # requests waiting at the process's gate
    waking: list[bool] = attrs.field(init=False)  # the head of the queue sleeps until an event
    to_issue: list[int] = attrs.field(init=False)
    answers: dict[tuple[int, int], tuple[int, dict[str, str]]] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.result = SimResult(per_process=[0] * self.processes)
        self.queued = [0] * self.processes
        self.waking = [False] * self.processes
        self.to_issue = [self.requests_each] * self.processes

    def run(self, concurrency: int) -> SimResult:
        for p in range(self.processes):
            self.queued[p] = min(concurrency, self.requests_each)
            self.to_issue[p] -= self.queued[p]
            self.gate(p, 0.0)
        while self.events:
            now, _, kind, p, ticket = heapq.heappop(self.events)
            if kind == "wake":
                self.waking[p] = False
                self.gate(p, now)
            elif kind == "send":
                self.send(now, p, ticket)
            else:
                self.answer(now, p, ticket)
        return self.result

    def push(self, at: float, kind: str, p: int, ticket: int = 0) -> None:
        heapq.heappush(self.events, (at, next(self.order), kind, p, ticket))

    def gate(self, p: int, now: float) -> None:
        """Let queued requests through while the limiter says no wait (like pace())."""
        while self.queued[p] and not self.waking[p]:
            delay, _ = self.limiters[p].delay(now)
            if delay > 0:
                self.waking[p] = True
                self.push(now + delay + self.jitter(p), "wake", p)
                return
            self.queued[p] -= 1
            self.push(now, "send", p, self.limiters[p].record(now))

    def send(self, now: float, p: int, ticket: int) -> None:
        """The server counts the request in its window and answers after the round trip."""
        at = now + self.rtt / 2
        if at >= self.start + self.window:
            self.start, self.count = at, 0
            self.result.windows.append((at, 0))
        status = 200 if self.count < self.quota else 429
        if status == 200:
            self.count += 1
            self.result.windows[-1] = (self.start, self.result.windows[-1][1] + 1)
        left = self.start + self.window - at
        headers = {
            "Ratelimit": f'"default";r={self.quota - self.count};t={math.ceil(round(left, 6))}',
            "Ratelimit-Policy": f'"default";q={self.quota};w={math.ceil(self.window)}',
        }
        if status == 429:
            headers["Retry-After"] = str(max(1, math.ceil(left)))
        self.answers[(p, ticket)] = (status, headers)
        self.push(now + self.rtt, "answer", p, ticket)

    def answer(self, now: float, p: int, ticket: int) -> None:
        """The process reads the answer: a 2xx counts, a 429 goes back into the queue."""
        status, headers = self.answers.pop((p, ticket))
        self.limiters[p].observe(ticket, status, headers, b"", now=now, max_wait=60.0)
        if status == 200:
            self.result.served += 1
            self.result.per_process[p] += 1
            if self.to_issue[p]:
                self.to_issue[p] -= 1
                self.queued[p] += 1
        else:
            self.result.refused += 1
            self.queued[p] += 1  # retried
        self.gate(p, now)
