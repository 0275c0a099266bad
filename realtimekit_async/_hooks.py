"""Request, response and retry callbacks.

Each callback gets a small frozen event, plain or ``async``; it sees the
method, the path (never its query, which may be presigned), the route
template, the attempt number and, after an answer, its status and timing.
The token and the request's headers are never passed. A callback that raises
fails the call with its exception: hooks are for observing, not for ignoring.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs

from ._exceptions import ValidationError

__all__ = ["Hooks", "RequestEvent", "ResponseEvent", "RetryEvent", "run_hooks"]


@attrs.frozen
class RequestEvent:
    """An attempt is about to be sent; ``attempt`` counts from 0."""

    method: str
    path: str
    route: str
    attempt: int


@attrs.frozen
class ResponseEvent:
    """An attempt ended: with an HTTP ``status``, or with ``error`` (a short phrase) and no status.

    ``elapsed`` is the attempt's seconds, waiting for a rate-limit slot included.
    """

    method: str
    path: str
    route: str
    attempt: int
    status: int | None
    elapsed: float
    request_id: str | None = None
    error: str | None = None


@attrs.frozen
class RetryEvent:
    """Attempt ``attempt`` failed and the call will try again after ``delay`` seconds."""

    method: str
    path: str
    route: str
    attempt: int
    delay: float
    status: int | None = None
    error: str | None = None


def _callables(
    value: Callable[..., Any] | Iterable[Callable[..., Any]],
) -> tuple[Callable[..., Any], ...]:
    if callable(value):
        return (value,)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError("hooks", f"must be a callable or a sequence of them, got {value!r}")
    hooks = tuple(value)
    for hook in hooks:
        if not callable(hook):
            raise ValidationError("hooks", f"{hook!r} is not callable")
    return hooks


@attrs.frozen
class Hooks:
    """Callbacks run around every API attempt: give a callable or a sequence of them.

    ``on_request`` gets a :class:`RequestEvent` before each attempt (after the
    rate limiter lets it go), ``on_response`` a :class:`ResponseEvent` after it,
    ``on_retry`` a :class:`RetryEvent` before each backoff sleep.
    """

    on_request: tuple[Callable[[RequestEvent], Awaitable[None] | None], ...] = attrs.field(
        default=(), converter=_callables
    )
    on_response: tuple[Callable[[ResponseEvent], Awaitable[None] | None], ...] = attrs.field(
        default=(), converter=_callables
    )
    on_retry: tuple[Callable[[RetryEvent], Awaitable[None] | None], ...] = attrs.field(
        default=(), converter=_callables
    )


async def run_hooks(hooks: Iterable[Callable[[Any], Awaitable[None] | None]], event: Any) -> None:
    """Call each hook with ``event`` in order, awaiting those that return an awaitable."""
    for hook in hooks:
        result = hook(event)
        if inspect.isawaitable(result):
            await result
