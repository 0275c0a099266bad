"""Raw responses: ``client.recordings.with_raw_response.get(...)`` and friends.

Each method of :class:`~realtimekit_async.Recordings` has a twin on
``with_raw_response`` that takes the same arguments and returns an
:class:`APIResponse`: the HTTP status, the headers (``cf-ray``, rate-limit
headers), the body and the parsed object, which :meth:`APIResponse.parse`
returns. The twins are generated from the methods themselves (as Stainless
SDKs do), so they can never drift from them.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

import attrs

if TYPE_CHECKING:
    from ._models import RecordingPage
    from ._pagination import RecordingPaginator

__all__ = [
    "APIResponse",
    "capture_response",
    "capturing",
    "raw_response_wrapper",
    "record_response",
]

_T = TypeVar("_T")
_R = TypeVar("_R")
_P = ParamSpec("_P")


@attrs.frozen
class APIResponse(Generic[_T]):
    """One API call's final HTTP answer and what it was parsed into.

    ``headers`` are case-insensitive; ``request_id`` is Cloudflare's ``cf-ray``
    (quote it to Cloudflare support). ``retries_taken`` counts the attempts
    before this answer; ``elapsed`` is the whole call's seconds, backoffs
    included. ``content`` is the body as received, not redacted.
    """

    method: str
    path: str
    status_code: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    content: bytes = attrs.field(repr=False)
    retries_taken: int
    elapsed: float
    _parsed: _T = attrs.field(repr=False, alias="parsed")

    @property
    def request_id(self) -> str | None:
        return self.headers.get("cf-ray")

    def parse(self) -> _T:
        """The object the plain method returns (a :class:`Recording`, a page, ...)."""
        return self._parsed


# The raw responses of the calls made in this context, when a raw twin is running.
_captured: contextvars.ContextVar[list[APIResponse[Any]] | None] = contextvars.ContextVar(
    "realtimekit_async_raw_response", default=None
)


def capturing() -> bool:
    """Whether a raw twin runs in this context (only then is an :class:`APIResponse` built)."""
    return _captured.get() is not None


def record_response(response: APIResponse[Any]) -> None:
    """Hand ``response`` to the raw twin running in this context, if any."""
    box = _captured.get()
    if box is not None:
        box.append(response)


@contextmanager
def capture_response() -> Iterator[list[APIResponse[Any]]]:
    """Collect the responses of the calls made inside the block (the last one is the answer)."""
    box: list[APIResponse[Any]] = []
    token = _captured.set(box)
    try:
        yield box
    finally:
        _captured.reset(token)


def raw_response_wrapper(
    method: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Awaitable[APIResponse[_R]]]:
    """The raw twin of an API method: same arguments, returns the call's :class:`APIResponse`.

    A method that makes more than one request (a stop that is reconciled by a
    get) answers with the last one, whose parsed object is the method's result.
    """

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> APIResponse[_R]:
        with capture_response() as box:
            result = await method(*args, **kwargs)
        return attrs.evolve(box[-1], parsed=result)

    return wrapper


def raw_page_wrapper(
    method: Callable[_P, RecordingPaginator],
) -> Callable[_P, Awaitable[APIResponse[RecordingPage]]]:
    """The raw twin of ``list``: one page (``page_no``) as an :class:`APIResponse`."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> APIResponse[RecordingPage]:
        paginator = method(*args, **kwargs)
        with capture_response() as box:
            page = await paginator
        return attrs.evolve(box[-1], parsed=page)

    return wrapper
