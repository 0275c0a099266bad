"""Rate limits, sans I/O: the configured layers, the server's headers, and pacing.

Pure code, no sockets and no event loop; every time is a number the caller
passes in (the client uses ``loop.time()``). Before each attempt
the client asks :meth:`RateLimiter.delay` (sleeping and asking again until it
is zero, one request at a time) and then calls :meth:`RateLimiter.record`; it
feeds each answer to :meth:`RateLimiter.observe`, and fails fast while
:meth:`RateLimiter.blocked` says so.

Two sources of limits combine:

* **Layers** (:class:`RateLimit`): counts per window this process keeps to on
  its own, each an exact sliding window (a request is sent only when the
  window ending at its send time holds fewer than ``max_requests`` sends).
* **The server's budget**, read from every answer's ``Ratelimit`` /
  ``Ratelimit-Policy`` (IETF draft, structured fields), ``X-RateLimit-*`` and,
  on 429, ``Retry-After``. It counts what every process on the token spent.
  When the remaining quota falls below half of it, the requests left are spread
  over the time left in the window, so processes sharing a token slow down as
  the quota drains and converge without talking to each other.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs
from http_sfv.item import Item
from http_sfv.list import List

from ._policies import (
    DEFAULT_RATE_LIMITS,
    GLOBAL_RATE_LIMITS,
    RateLimit,
    RateLimits,
    to_rate_limits,
)
from ._sansio import server_delay

T = TypeVar("T")

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "GLOBAL_RATE_LIMITS",
    "Block",
    "Quota",
    "RateBudget",
    "RateLimit",
    "RateLimiter",
    "RateLimits",
    "parse_rate_headers",
    "to_rate_limits",
]


# -- reading the headers ---------------------------------------------------------------


@attrs.frozen
class Quota:
    """One limit as an answer stated it; any part the answer left out is ``None``."""

    name: str
    remaining: int | None = None
    reset: float | None = None  # seconds until the window resets
    limit: int | None = None
    window: float | None = None


def _values(headers: Mapping[str, str], name: str) -> str | None:
    """Every value of header ``name`` joined by commas (as RFC 9110 allows), or None."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        found = list(getall(name, ()))
    else:
        found = [v for k, v in headers.items() if k.lower() == name]
    return ", ".join(found) if found else None


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        # http_sfv parses decimals as decimal.Decimal
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _positive_count(value: object) -> int | None:
    return _count(value) or None


def _positive_seconds(value: object) -> float | None:
    return _seconds(value) or None


def _param(params: Mapping[str, object], key: str, check: Callable[[object], T | None]) -> T | None:
    """``params[key]`` through ``check``; None when absent, ValueError when malformed."""
    if key not in params:
        return None
    value = check(params[key])
    if value is None:
        raise ValueError(key)
    return value


def _structured(raw: str | None) -> dict[str, dict[str, Any]]:
    """Items of a structured List header as ``{name: params}``; malformed: empty."""
    if raw is None:
        return {}
    parsed = List()
    try:
        parsed.parse(raw.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return {}
    items: dict[str, dict[str, Any]] = {}
    for item in parsed:
        if isinstance(item, Item) and isinstance(item.value, str):
            items.setdefault(str(item.value), dict(item.params))
    return items


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = _values(headers, name)
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def _reset_header(headers: Mapping[str, str], now: datetime | None) -> float | None:
    """``X-RateLimit-Reset``: seconds, a Unix time, or an HTTP date (as Retry-After)."""
    raw = _values(headers, "x-ratelimit-reset")
    if raw is None:
        return None
    delay = server_delay({"retry-after": raw}, now=now)
    if delay is not None and delay > 1e9:  # a Unix time, not a delay
        delay = max(0.0, delay - (now or datetime.now(UTC)).timestamp())
    return delay


def parse_rate_headers(
    headers: Mapping[str, str], *, now: datetime | None = None
) -> tuple[Quota, ...]:
    """Every limit an answer's headers state, one :class:`Quota` per named item.

    Reads ``Ratelimit`` (``r`` remaining, ``t`` seconds to reset) joined by name
    with ``Ratelimit-Policy`` (``q`` quota per ``w`` seconds), and the older
    ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` as a quota named
    ``x-ratelimit``. Whatever is malformed is left out; this never raises.
    """
    current = _structured(_values(headers, "ratelimit"))
    policies = _structured(_values(headers, "ratelimit-policy"))
    quotas = []
    for name in [*current, *(n for n in policies if n not in current)]:
        state, policy = current.get(name, {}), policies.get(name, {})
        try:
            quota = Quota(
                name,
                remaining=_param(state, "r", _count),
                reset=_param(state, "t", _seconds),
                limit=_param(policy, "q", _positive_count),
                window=_param(policy, "w", _positive_seconds),
            )
        except ValueError:  # one bad part spoils the item
            continue
        if quota != Quota(name):
            quotas.append(quota)
    legacy = Quota(
        "x-ratelimit",
        remaining=_int_header(headers, "x-ratelimit-remaining"),
        reset=_reset_header(headers, now),
        limit=_int_header(headers, "x-ratelimit-limit") or None,
    )
    if legacy != Quota("x-ratelimit"):
        quotas.append(legacy)
    return tuple(quotas)


# -- the state machine -----------------------------------------------------------------

#: Pacing starts when the remaining quota falls to this share of the quota.
PACE_BELOW: Final = 0.5
#: Without a stated quota, pacing starts at this many remaining requests.
PACE_BELOW_UNKNOWN: Final = 20
#: Left unspent per window once other processes are seen spending the same quota.
SHARED_MARGIN: Final = 0.03
#: Fewer missing requests than this may be this process's own, counted out of order.
SHARED_EVIDENCE: Final = 2.5
#: Requests remembered as in flight (more have failed without an answer).
IN_FLIGHT_KEPT: Final = 256
#: How long a window is taken to last when an answer gives a remaining count only.
UNKNOWN_RESET: Final = 60.0


@attrs.frozen
class RateBudget:
    """The tightest budget this client knows of: requests ``remaining`` out of
    ``limit`` until the window resets in ``reset`` seconds (``None``: not known),
    and whether calls fail fast because of a long 429 (``blocked``).
    """

    remaining: int | None
    limit: int | None
    reset: float | None
    source: str
    blocked: bool = False


@attrs.frozen
class Block:
    """A 429 whose wait exceeded the caller's retry cap: calls fail fast until ``until``."""

    until: float
    headers: Mapping[str, str]
    body: bytes


class _Layer:
    """An exact sliding window over reserved send times (kept sorted)."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.sends: collections.deque[float] = collections.deque(maxlen=limit.max_requests)

    def earliest(self, at: float) -> float:
        if len(self.sends) < self.limit.max_requests:
            return at
        return max(at, self.sends[0] + self.limit.period)

    def remaining(self, at: float) -> tuple[int, float]:
        recent = [t for t in self.sends if t > at - self.limit.period]
        reset = recent[0] + self.limit.period - at if recent else 0.0
        return self.limit.max_requests - len(recent), max(0.0, reset)


@attrs.define
class _Track:
    """What this process believes of one server quota."""

    remaining: float
    reset_at: float
    limit: int | None
    window: float | None
    ticket: int  # the newest request whose answer this is from
    shared: bool = False  # another process was seen spending it
    observed: bool = True  # reset_at came from an answer in this window, not a guess

    def roll(self, at: float, sent: int) -> bool:
        """Move past windows that have reset by ``at``, ``sent`` requests having gone
        before; False when nothing is known any more."""
        if at < self.reset_at:
            return True
        if self.limit is None or self.window is None:
            return False
        # Answers to the requests sent so far tell of the window that ended: ignored.
        self.ticket = sent
        # The next window starts at the earliest here, so its reset is a guess until
        # an answer from it comes.
        periods = math.floor((at - self.reset_at) / self.window) + 1
        self.reset_at += periods * self.window
        self.remaining = self.limit
        self.observed = False
        return True

    def ready(self, at: float, previous: float) -> float:
        """The earliest time at or after ``at`` the next request may go by this quota,
        the one before having gone at ``previous``."""
        margin = max(1, math.ceil(SHARED_MARGIN * (self.limit or 0))) if self.shared else 0
        spare = self.remaining - margin
        if spare < 1:
            return max(at, self.reset_at)
        pace_below = PACE_BELOW * self.limit if self.limit else PACE_BELOW_UNKNOWN
        if self.remaining > pace_below and not self.shared:
            return at
        # Spread what is left evenly over the time left; several processes doing the
        # same drain the quota as (time left)^n, reaching zero only at the reset.
        return max(at, previous + (self.reset_at - previous) / (spare + 1))


class RateLimiter:
    """The rate-limit state of one client (shared by its ``with_options`` copies).

    Pure: the caller passes ``now`` (monotonic seconds) to every method.
    """

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._layers = [_Layer(limit) for limit in limits.layers]
        self._tracks: dict[str, _Track] = {}
        self._tickets = 0
        self._in_flight: dict[int, float] = {}  # ticket -> when sent, until answered
        self._last = -math.inf  # when the latest request was sent
        self._pause_until = -math.inf  # a short 429's Retry-After
        self._block: Block | None = None

    def delay(self, now: float) -> tuple[float, str]:
        """How long the next request must wait from ``now``, and why (``""``: no wait).

        Only the state at ``now`` counts: a caller that waited asks again, with
        whatever answers came in meanwhile, and sends after :meth:`record`.
        """
        at, reason = now, ""
        if self._pause_until > at:
            at, reason = self._pause_until, "Retry-After of an earlier 429"
        for layer in self._layers:
            ready = layer.earliest(at)
            if ready > at:
                at = ready
                reason = f"client limit {layer.limit.max_requests}/{layer.limit.period:g}s"
        if self.limits.adaptive:
            for name, track in list(self._tracks.items()):
                if not track.roll(now, self._tickets):
                    del self._tracks[name]
                    continue
                ready = track.ready(at, self._last if self._last > -math.inf else now)
                if ready > at:
                    at = ready
                    reason = f"server quota {name!r}: {max(0.0, track.remaining):.0f} left"
        return at - now, reason

    def record(self, now: float) -> int:
        """Count a request sent at ``now``; return its ticket for :meth:`observe`."""
        for layer in self._layers:
            layer.sends.append(now)
        for name, track in list(self._tracks.items()):
            if track.roll(now, self._tickets):
                track.remaining -= 1
            else:
                del self._tracks[name]
        self._last = now
        self._tickets += 1
        self._in_flight[self._tickets] = now
        if len(self._in_flight) > IN_FLIGHT_KEPT:  # requests that failed without an answer
            for ticket in sorted(self._in_flight)[: len(self._in_flight) - IN_FLIGHT_KEPT]:
                del self._in_flight[ticket]
        return self._tickets

    def observe(
        self,
        ticket: int,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: float,
        max_wait: float,
        wall: datetime | None = None,
    ) -> None:
        """Learn from the answer to request ``ticket`` (never raises for bad headers).

        A 429 pauses every request for its ``Retry-After``; when that is longer
        than ``max_wait`` (the caller's retry cap) it starts a block instead.
        ``wall`` is the current time for HTTP dates (default: the real one).
        """
        if status == 429:
            wait = server_delay(headers, now=wall)
            if wait is not None and wait > max_wait:
                self._block = Block(now + wait, headers, body)
            elif wait is not None:
                self._pause_until = max(self._pause_until, now + wait)
        if not self.limits.adaptive:
            return
        self._in_flight.pop(ticket, None)
        # The server may not have counted any request still in flight (requests on
        # different connections arrive in any order), so none of them is left out.
        others = len(self._in_flight)
        for quota in parse_rate_headers(headers, now=wall):
            if quota.remaining is None:
                continue
            track = self._tracks.get(quota.name)
            if track is not None and not track.roll(now, self._tickets):
                track = None
            if track is not None and ticket <= track.ticket:
                continue  # overtaken by a newer answer, or from a window that ended
            reset_at = now + (
                quota.reset if quota.reset is not None else quota.window or UNKNOWN_RESET
            )
            shared = False
            if track is not None:
                # Alone, the server can only have counted fewer requests than this
                # process sent, so less left than believed means others spend it too.
                shared = track.shared or quota.remaining < track.remaining - SHARED_EVIDENCE
                # Reset times come in whole seconds, rounded up: within one window the
                # earliest of them is the closest to the truth.
                if track.observed and abs(reset_at - track.reset_at) < 1.5:
                    reset_at = min(reset_at, track.reset_at)
            self._tracks[quota.name] = _Track(
                remaining=float(quota.remaining - others),
                reset_at=reset_at,
                limit=quota.limit,
                window=quota.window,
                ticket=ticket,
                shared=shared,
            )

    def blocked(self, now: float) -> Block | None:
        """The long block in force at ``now``, if any."""
        if self._block is not None and now >= self._block.until:
            self._block = None
        return self._block

    def budget(self, now: float) -> RateBudget:
        """The tightest budget known at ``now`` (the server's, else the client's layers)."""
        block = self.blocked(now)
        best: RateBudget | None = None
        for name, track in self._tracks.items():
            if now >= track.reset_at:
                continue
            candidate = RateBudget(
                max(0, math.floor(track.remaining)), track.limit, track.reset_at - now, name
            )
            if best is None or (candidate.remaining or 0) < (best.remaining or 0):
                best = candidate
        if best is None:
            for layer in self._layers:
                remaining, reset = layer.remaining(now)
                candidate = RateBudget(remaining, layer.limit.max_requests, reset, "client")
                if best is None or remaining < (best.remaining or 0):
                    best = candidate
        if best is None:
            best = RateBudget(None, None, None, "none")
        if block is not None:
            best = attrs.evolve(best, remaining=0, reset=block.until - now, blocked=True)
        return best
