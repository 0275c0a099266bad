"""Client policies: how often to retry (:class:`RetryPolicy`) and how fast to go
(:class:`RateLimit`, :class:`RateLimits`).

Small frozen settings, validated on construction; the code that applies them
is elsewhere (``_sansio.retry_delay``, ``_ratelimit.RateLimiter``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

from ._exceptions import ValidationError
from ._validation import attribute, check_int, check_non_negative, check_seconds

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "GLOBAL_RATE_LIMITS",
    "RateLimit",
    "RateLimits",
    "RetryPolicy",
    "to_rate_limits",
]

# -- retries ---------------------------------------------------------------------------


def _count(field: str, value: object) -> int:
    return check_int(field, value, 0)


@attrs.frozen
class RetryPolicy:
    """How often and how long to retry.

    Backoff is ``min(initial_delay * 2**attempt, max_delay)`` with up to 25 %
    jitter taken off; a server-given delay (``retry-after-ms``, ``Retry-After``
    seconds or HTTP date) is honoured when it is at most ``max_server_delay``.
    """

    max_retries: int = attrs.field(default=2, validator=attribute(_count))
    initial_delay: float = attrs.field(default=0.5, validator=attribute(check_non_negative))
    max_delay: float = attrs.field(default=8.0, validator=attribute(check_non_negative))
    max_server_delay: float = attrs.field(default=60.0, validator=attribute(check_non_negative))


# -- rate limits -----------------------------------------------------------------------


@attrs.frozen
class RateLimit:
    """One layer: at most ``max_requests`` API calls in any ``period`` seconds."""

    max_requests: int = attrs.field()
    period: float = attrs.field()

    @max_requests.validator
    def _check_requests(self, _attribute: object, value: int) -> None:
        check_int("rate_limit.max_requests", value, 1)

    @period.validator
    def _check_period(self, _attribute: object, value: float) -> None:
        check_seconds("rate_limit.period", value)


#: Cloudflare's documented limit for the Recordings APIs.
RECORDINGS_LIMIT: Final = RateLimit(1000, 50.0)
#: Cloudflare's documented limit for all RealtimeKit APIs together.
REALTIMEKIT_LIMIT: Final = RateLimit(3500, 300.0)
#: Cloudflare's global API limit per user; exceeding it blocks every call for 5 minutes.
GLOBAL_LIMIT: Final = RateLimit(1200, 300.0)


def _layers(value: RateLimit | Iterable[RateLimit]) -> tuple[RateLimit, ...]:
    layers = (value,) if isinstance(value, RateLimit) else tuple(value)
    for layer in layers:
        if not isinstance(layer, RateLimit):
            raise ValidationError("rate_limit.layers", f"must hold RateLimit, got {layer!r}")
    return layers


@attrs.frozen
class RateLimits:
    """Every rate limit a client keeps to, shared by the client and its copies.

    ``layers`` are enforced all at once (none means only the server's headers
    count); ``adaptive`` paces requests by the budget the server's answers state.
    """

    layers: tuple[RateLimit, ...] = attrs.field(
        default=(RECORDINGS_LIMIT, REALTIMEKIT_LIMIT), converter=_layers
    )
    adaptive: bool = True


#: The documented Recordings (1,000 per 50 s) and RealtimeKit (3,500 per 5 min) limits.
DEFAULT_RATE_LIMITS: Final = RateLimits()
#: The defaults plus Cloudflare's global 1,200 per 5 min, for a token nothing else uses.
GLOBAL_RATE_LIMITS: Final = RateLimits((RECORDINGS_LIMIT, REALTIMEKIT_LIMIT, GLOBAL_LIMIT))


def to_rate_limits(value: RateLimits | RateLimit | None) -> RateLimits | None:
    """A client's ``rate_limit=`` argument as :class:`RateLimits` (``None``: no limiting)."""
    if value is None or isinstance(value, RateLimits):
        return value
    if isinstance(value, RateLimit):
        return RateLimits((value,))
    raise ValidationError("rate_limit", f"must be RateLimits, RateLimit or None, got {value!r}")
