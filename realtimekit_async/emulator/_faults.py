"""Deterministic fault schedule and the optional layered, per-token rate limit."""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

__all__ = [
    "CLOUDFLARE_GLOBAL_RATE_LIMIT",
    "CLOUDFLARE_RATE_LIMITS",
    "Decision",
    "FAULT_KINDS",
    "FaultConfig",
    "FaultSchedule",
    "RateLimitRule",
    "RateLimiter",
    "RuleState",
    "WindowRecord",
    "format_retry_after",
    "to_rules",
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


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"rate limit {attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class RateLimitRule:
    """One layer of the emulator's rate limit: ``limit`` requests per ``window`` real seconds.

    Windows are fixed and per token: one starts with the first request after the
    previous one ended. With ``block`` set, spending the window blocks the token
    for that many seconds instead (Cloudflare's global limit blocks for 5 minutes).
    ``name`` is the item's name in the ``Ratelimit`` headers.
    """

    limit: int = attrs.field()
    window: float = attrs.field(validator=_positive)
    name: str = attrs.field(default="default")
    block: float | None = attrs.field(default=None)

    @limit.validator
    def _check_limit(self, _attribute: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"rate limit limit must be an integer >= 1, got {value!r}")

    @name.validator
    def _check_name(self, _attribute: object, value: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise ValueError(f"rate limit name must be letters, digits, _ . -, got {value!r}")

    @block.validator
    def _check_block(self, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None:
            _positive(self, attribute, value)


#: Cloudflare's documented limits: Recordings 1,000 per 50 s, RealtimeKit 3,500 per 5 min.
CLOUDFLARE_RATE_LIMITS: Final = (
    RateLimitRule(1000, 50.0, "recordings"),
    RateLimitRule(3500, 300.0, "realtimekit"),
)
#: Cloudflare's global limit per user: 1,200 per 5 min, then every call blocked for 5 min.
CLOUDFLARE_GLOBAL_RATE_LIMIT: Final = RateLimitRule(1200, 300.0, "global", block=300.0)


def to_rules(
    value: RateLimitRule | Sequence[RateLimitRule] | tuple[int, float] | None,
) -> tuple[RateLimitRule, ...]:
    """The emulator's ``rate_limit=`` option as rules; ``(n, seconds)`` is one rule."""
    if value is None:
        return ()
    if isinstance(value, RateLimitRule):
        return (value,)
    items: tuple[object, ...] = tuple(value)
    if len(items) == 2 and not any(isinstance(i, RateLimitRule) for i in items):
        limit, window = items
        return (RateLimitRule(limit, window),)  # type: ignore[arg-type]
    rules = tuple(i for i in items if isinstance(i, RateLimitRule))
    if not rules or len(rules) != len(items):
        raise ValueError("rate_limit takes RateLimitRule(s) or a (limit, seconds) pair")
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"rate limit names must differ, got {names}")
    return rules


@attrs.frozen
class RuleState:
    """Where one token stands on one rule after a request: what the headers say."""

    rule: RateLimitRule
    remaining: int
    reset: float  # seconds until the window ends (or the block lifts)


@attrs.frozen
class Decision:
    """The verdict on one request: allowed, or refused with ``retry_after`` seconds."""

    states: tuple[RuleState, ...]
    retry_after: float | None = None

    @property
    def allowed(self) -> bool:
        return self.retry_after is None


@attrs.define
class WindowRecord:
    """One window of one rule for one token: when it started and what it saw."""

    start: float
    served: int = 0
    refused: int = 0


class RateLimiter:
    """Layered fixed-window rate limits per token (pure state; time from ``monotonic``).

    A request is allowed only if every rule has room, and then counts against
    every rule; a refused request counts against none.
    """

    def __init__(
        self,
        rules: Iterable[RateLimitRule],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = tuple(rules)
        self._monotonic = monotonic
        #: Every window per (token, rule name), oldest first (for benchmarks and tests).
        self.windows: dict[tuple[str, str], list[WindowRecord]] = {}
        self._blocked: dict[tuple[str, str], float] = {}

    def _window(self, key: tuple[str, str], rule: RateLimitRule, now: float) -> WindowRecord:
        history = self.windows.setdefault(key, [])
        blocked = self._blocked.get(key)
        if blocked is not None and now >= blocked:
            del self._blocked[key]
        if not history or (now >= history[-1].start + rule.window and key not in self._blocked):
            history.append(WindowRecord(now))
        return history[-1]

    def acquire(self, token: str) -> Decision:
        """Count one request by ``token`` if every rule has room; say where it stands."""
        now = self._monotonic()
        windows = [self._window((token, r.name), r, now) for r in self.rules]
        waits = []
        for rule, window in zip(self.rules, windows, strict=True):
            key = (token, rule.name)
            if key in self._blocked:
                waits.append(self._blocked[key] - now)
            elif window.served >= rule.limit:
                if rule.block is not None:
                    self._blocked[key] = now + rule.block
                    waits.append(rule.block)
                else:
                    waits.append(window.start + rule.window - now)
        if waits:
            for window in windows:
                window.refused += 1
        else:
            for window in windows:
                window.served += 1
        states = tuple(
            RuleState(
                rule,
                max(0, rule.limit - window.served),
                (
                    self._blocked[(token, rule.name)] - now
                    if (token, rule.name) in self._blocked
                    else window.start + rule.window - now
                ),
            )
            for rule, window in zip(self.rules, windows, strict=True)
        )
        return Decision(states, max(waits) if waits else None)


def format_retry_after(seconds: float, *, round_up: bool = False) -> str:
    """Retry-After header text: whole seconds as an integer, else a decimal.

    With ``round_up`` the value is rounded up to whole seconds (RFC 9110 form).
    """
    if round_up:
        return str(max(1, math.ceil(seconds)))
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"
