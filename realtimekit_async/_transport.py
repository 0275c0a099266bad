"""The HTTP seam: send one request, get an :class:`Answer` or a classified failure.

Everything above this module (retries, deadlines, hooks, decoding) works on
plain values: an answer is ``(status, headers, body)``, a failure is a
:class:`TransportFailure` saying whether the request may have reached the
server. :func:`classify` is the one mapping of aiohttp's exceptions to the
SDK's; the API client, the webhook key fetch and the export's downloads use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import aiohttp
import attrs
from aiohttp import hdrs
from yarl import URL

from ._exceptions import APIConnectionError, APIResponseTooLargeError, APITimeoutError
from ._sansio import Failure

__all__ = [
    "TRANSPORT_ERRORS",
    "Answer",
    "Classified",
    "Request",
    "TransportFailure",
    "classify",
    "read_body",
    "send",
]

_READ_CHUNK: Final = 64 * 1024

#: What aiohttp raises for a request that got no usable answer; give these to :func:`classify`.
TRANSPORT_ERRORS: Final = (TimeoutError, aiohttp.ClientError)


@attrs.frozen
class Request:
    """One API request, fully decided before any I/O.

    ``path`` is the URL's path without the query (safe to log), ``route`` its
    template with the ids left out (``/recordings/{recording_id}``), for span
    names and metrics.
    """

    method: str
    url: URL
    route: str
    headers: Mapping[str, str]
    query: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    idempotent: bool = True

    @property
    def path(self) -> str:
        return self.url.raw_path


@attrs.frozen
class Answer:
    """A complete HTTP answer: its status, headers and whole (inflated) body."""

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def request_id(self) -> str | None:
        """Cloudflare's ray id (``cf-ray``): quote it when asking Cloudflare about a request."""
        return self.headers.get("cf-ray")


@attrs.frozen
class Classified:
    """An aiohttp failure in the SDK's terms.

    ``failure`` says whether the request may have reached the server (what
    retry decisions need); ``kind`` is a short phrase for messages
    ("cannot connect", "timed out"); ``error`` is the exception to raise.
    """

    failure: Failure
    kind: str
    error: APIConnectionError


def classify(exc: BaseException, *, method: str, path: str, shown: str | None = None) -> Classified:
    """Map an exception from :data:`TRANSPORT_ERRORS` to a :class:`Classified` failure.

    ``path`` goes on the error, ``shown`` (default ``path``) into its message:
    pass a redacted URL there, never one with a presigned query. The message
    names aiohttp's exception type, never its text, which can quote the URL.
    """
    where = f"{method} {shown if shown is not None else path}"
    failure = Failure.AFTER_SEND
    cls: type[APIConnectionError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        failure, kind, cls = Failure.CONNECT, "timed out connecting", APITimeoutError
    elif isinstance(exc, aiohttp.ClientConnectorError):
        failure, kind, cls = Failure.CONNECT, "cannot connect", APIConnectionError
    elif isinstance(exc, TimeoutError):
        kind, cls = "timed out", APITimeoutError
    else:
        kind, cls = "connection failed", APIConnectionError
    if cls is APITimeoutError:
        detail = ""
    elif isinstance(exc, aiohttp.ClientConnectorError):
        # Its text names host and port, never the path or query; str(exc), not
        # exc.os_error: aiohttp 3.13's certificate error lacks it.
        detail = f": {exc}"
    else:
        detail = f": {type(exc).__name__}"
    error = cls(f"{where}: {kind}{detail}", method=method, path=path)
    return Classified(failure=failure, kind=kind, error=error)


class TransportFailure(Exception):  # noqa: N818  # internal signal, never seen by users
    """:func:`send` got no usable answer; ``classified`` says what happened."""

    def __init__(self, classified: Classified) -> None:
        super().__init__(str(classified.error))
        self.classified = classified


async def read_body(
    response: aiohttp.ClientResponse, limit: int, *, method: str, path: str
) -> bytes:
    """Read an answer's whole body, or raise :class:`APIResponseTooLargeError` past ``limit``.

    The body is read piece by piece as aiohttp inflates it, so what is counted
    is what would be held in memory: a small gzip bomb or an endless chunked
    body fails at ``limit`` bytes, whatever ``Content-Length`` claims.
    """

    def too_large() -> APIResponseTooLargeError:
        return APIResponseTooLargeError(
            f"{method} {path}: HTTP {response.status} answer is larger than {limit} bytes "
            "(raise max_response_size if this is expected)",
            status=response.status,
            limit=limit,
            method=method,
            path=path,
        )

    declared = response.content_length
    if declared is not None and declared > limit and hdrs.CONTENT_ENCODING not in response.headers:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def send(
    session: aiohttp.ClientSession,
    request: Request,
    *,
    timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109  # aiohttp's per-socket limits
    max_response_size: int,
) -> Answer:
    """Send ``request`` once and read its whole answer; redirects are not followed.

    Raises :class:`TransportFailure` when no complete answer arrived (a body
    cut short counts) and :class:`APIResponseTooLargeError` past ``max_response_size``.
    """
    try:
        async with session.request(
            request.method,
            request.url,
            params=request.query or None,
            data=request.body,
            headers=request.headers,
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            body = await read_body(
                response, max_response_size, method=request.method, path=request.path
            )
            return Answer(status=response.status, headers=response.headers, body=body)
    except TRANSPORT_ERRORS as exc:
        # Raised outside the handler's chain: aiohttp's exception can quote the URL.
        classified = classify(exc, method=request.method, path=request.path)
    raise TransportFailure(classified)
