"""Deterministic fault schedule and an optional sliding-window rate limit."""

from __future__ import annotations

import collections
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Final

import attrs

__all__ = [
    "FAULT_KINDS",
    "FaultConfig",
    "FaultSchedule",
    "RateLimiter",
    "format_retry_after",
]

FAULT_KINDS: Final = ("429", "500", "502", "503", "html", "reset", "slow", "truncate")
_ROUTES: Final = ("api", "storage", "all")


def _check_kinds(_: object, __: object, kinds: tuple[str, ...]) -> None:
    if not kinds:
        raise ValueError("kinds must not be empty")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")


def _check_rate(_: object, __: object, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be within [0, 1]")


def _check_every(_: object, __: object, every: int | None) -> None:
    if every is not None and every < 1:
        raise ValueError("every must be >= 1")


def _check_routes(_: object, __: object, routes: str) -> None:
    if routes not in _ROUTES:
        raise ValueError(f"routes must be one of {', '.join(_ROUTES)}")


def _kinds_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _upper_methods(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(m.upper() for m in value)


@attrs.frozen
class FaultConfig:
    """Which requests fail and how; all choices are deterministic.

    A request eligible by ``routes`` (``api``: the API site, ``storage``: the
    download site, ``all``: both) and ``methods`` (None = any) is faulted when it
    is among the ``first`` eligible ones, when its eligible count is a multiple of
    ``every``, or when a draw from ``random.Random(seed)`` is below ``rate``, until
    ``max_faults`` are injected. Kinds are used round-robin in the given order.
    ``retry_after`` is the Retry-After value of a ``429``; ``slow_seconds`` is the
    real delay of ``slow``. Raises ValueError for out-of-range values.

    Every kind except ``truncate`` is injected *before* the handler runs, so the
    request has no effect. ``truncate`` runs the handler (a POST start really
    creates a recording) and then sends half the body under a larger
    Content-Length and drops the connection: the client sees an error for a
    request that succeeded, the hard case for retrying non-idempotent calls.
    """

    seed: int = 0
    rate: float = attrs.field(default=0.0, validator=_check_rate)
    every: int | None = attrs.field(default=None, validator=_check_every)
    kinds: tuple[str, ...] = attrs.field(
        default=("500",), converter=_kinds_tuple, validator=_check_kinds
    )
    retry_after: float = 1.0
    routes: str = attrs.field(default="api", validator=_check_routes)
    first: int = 0
    max_faults: int | None = None
    methods: tuple[str, ...] | None = attrs.field(default=None, converter=_upper_methods)
    slow_seconds: float = 0.5


class FaultSchedule:
    """Stateful walk through a :class:`FaultConfig`: which kind, if any, for each request."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.eligible = 0
        self.injected = 0

    def applies_to(self, site: str, method: str) -> bool:
        """Whether a request on ``site`` ("api" or "storage") is eligible at all."""
        cfg = self.config
        if cfg.routes != "all" and cfg.routes != site:
            return False
        return cfg.methods is None or method.upper() in cfg.methods

    def next_fault(self, site: str, method: str) -> str | None:
        """Advance the schedule for one request; returns the fault kind or None."""
        if not self.applies_to(site, method):
            return None
        cfg = self.config
        self.eligible += 1
        n = self.eligible
        hit = n <= cfg.first or (cfg.every is not None and n % cfg.every == 0)
        # Draw for every eligible request so the sequence does not depend on other modes.
        if cfg.rate > 0.0 and self._rng.random() < cfg.rate:
            hit = True
        if not hit or (cfg.max_faults is not None and self.injected >= cfg.max_faults):
            return None
        kind = cfg.kinds[self.injected % len(cfg.kinds)]
        self.injected += 1
        return kind


class RateLimiter:
    """Sliding-window limit of ``limit`` requests per ``per_seconds`` real seconds."""

    def __init__(
        self,
        limit: int,
        per_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or per_seconds <= 0:
            raise ValueError("rate_limit needs limit >= 1 and per_seconds > 0")
        self.limit = limit
        self.per_seconds = per_seconds
        self._monotonic = monotonic
        self._hits: collections.deque[float] = collections.deque()

    def acquire(self) -> float | None:
        """Count one request; None if allowed, else seconds until a slot frees."""
        now = self._monotonic()
        while self._hits and self._hits[0] <= now - self.per_seconds:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            return self._hits[0] + self.per_seconds - now
        self._hits.append(now)
        return None


def format_retry_after(seconds: float, *, round_up: bool = False) -> str:
    """Retry-After header text: whole seconds as an integer, else a decimal.

    With ``round_up`` the value is rounded up to whole seconds (RFC 9110 form).
    """
    if round_up:
        return str(max(1, math.ceil(seconds)))
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"
