"""The sans-I/O core: what to send and what an answer means.

Pure functions only, no sockets and no event loop: URL and query building,
envelope decoding and error mapping, retry and backoff decisions, paging
arithmetic. The aiohttp layer in ``_client`` calls them; tests call them directly.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote

import orjson
from yarl import URL

from ._converter import format_datetime
from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._models import ListRecordingsParams
from ._policies import RetryPolicy

DEFAULT_BASE_URL: Final = "https://api.cloudflare.com/client/v4"

# -- URLs and queries ------------------------------------------------------------------


def recordings_url(base_url: URL, account_id: str, app_id: str, *segments: str) -> URL:
    """Build ``{base}/accounts/{account_id}/realtime/kit/{app_id}/recordings/{segments}``.

    Every id is percent-encoded as one segment (``/`` included), so an id such
    as ``../x`` or ``a/b`` can never change which path is requested.
    """
    parts = ["accounts", account_id, "realtime", "kit", app_id, "recordings", *segments]
    tail = "/".join(quote(p, safe="") for p in parts)
    return base_url.with_path(f"{base_url.raw_path.rstrip('/')}/{tail}", encoded=True)


def list_query(params: ListRecordingsParams) -> list[tuple[str, str]]:
    """Query pairs for the list endpoint; ``status`` repeats its key per value."""
    query: list[tuple[str, str]] = []
    if params.meeting_id is not None:
        query.append(("meeting_id", params.meeting_id))
    query.extend(("status", str(s)) for s in params.status)
    if params.search is not None:
        query.append(("search", params.search))
    if params.start_time is not None:
        query.append(("start_time", format_datetime(params.start_time)))
    if params.end_time is not None:
        query.append(("end_time", format_datetime(params.end_time)))
    if params.expired is not None:
        query.append(("expired", "true" if params.expired else "false"))
    if params.sort_by is not None:
        query.append(("sort_by", str(params.sort_by)))
    if params.sort_order is not None:
        query.append(("sort_order", str(params.sort_order)))
    query.append(("page_no", str(params.page_no)))
    query.append(("per_page", str(params.per_page)))
    return query


def encode_json(data: Any) -> bytes:
    """Serialise unstructured data as compact UTF-8 JSON."""
    return orjson.dumps(data)


def decode_json(data: bytes | str) -> Any:
    """Parse JSON; raises ``ValueError`` (``orjson.JSONDecodeError``) when it is not."""
    return orjson.loads(data)


#: What :func:`try_decode_json` returns for text that is not JSON.
NOT_JSON: Final = object()


def try_decode_json(data: bytes | str) -> Any:
    """Parse JSON, or return :data:`NOT_JSON`.

    For errors raised about an untrusted body: the decode error holds the whole
    document, so it must not become their chained context.
    """
    try:
        return orjson.loads(data)
    except ValueError:
        return NOT_JSON


# -- answers ---------------------------------------------------------------------------

_STATUS_ERRORS: Final[Mapping[int, type[APIStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _error_details(body: bytes) -> tuple[int | None, str | None]:
    """Pull (code, message) out of either documented error shape, if present."""
    doc = try_decode_json(body)
    if not isinstance(doc, dict):
        return None, None
    error = doc.get("error")  # RealtimeKit: {"error": {"code", "message"}}
    if isinstance(error, dict):
        return _as_int(error.get("code")), _as_str(error.get("message"))
    if isinstance(error, str):
        return None, error
    errors = doc.get("errors")  # Cloudflare v4: {"errors": [{"code", "message"}]}
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        messages = [str(e.get("message")) for e in errors if isinstance(e, dict)]
        return _as_int(errors[0].get("code")), "; ".join(messages)
    return None, None


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


# A URL's query, also with JSON-escaped slashes: a presigned URL's query is a credential.
_URL_QUERY: Final = re.compile(r"""(https?:(?:\\?/){2}[^\s?#"'<>]*)\?[^\s"'<>]*""", re.IGNORECASE)
# Signature parameters quoted outside a whole URL (a query string on its own, say).
_SIGNATURE_PARAM: Final = re.compile(
    r"""\b((?:x-amz-|x-goog-)?(?:signature|credential|security-token)|x-signature|sig)=[^\s&"'<>]+""",
    re.IGNORECASE,
)
# An Authorization value echoed back: whatever follows the scheme is the credential.
_BEARER: Final = re.compile(r"""\b(bearer)\s+[^\s"'<>,;]+""", re.IGNORECASE)
REDACTED: Final = "[redacted]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with no credential left: each of ``secrets`` (the API token), bearer
    values, every URL's query (host and path kept) and signature parameters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _URL_QUERY.sub(r"\1?…", text)
    return _SIGNATURE_PARAM.sub(r"\1=…", text)


def redact_body(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """:func:`redact` over raw bytes; bytes that are not UTF-8 pass through unchanged."""
    text = body.decode("utf-8", "surrogateescape")
    return redact(text, secrets).encode("utf-8", "surrogateescape")


def _snippet(body: bytes) -> str:
    """A short, single-line excerpt of a non-JSON body (an HTML error page, say).

    ``body`` is already redacted: a presigned URL or an echoed token in a
    garbled answer cannot end up in an exception message or a log.
    """
    return " ".join(body[:200].decode("utf-8", "replace").split()) or "empty body"


def status_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    now: datetime | None = None,
    secrets: Iterable[str] = (),
) -> APIStatusError:
    """Map an error answer (any of the three body shapes) to its typed exception.

    The message and the ``body`` kept on it are redacted (see :func:`redact`),
    ``secrets`` included: a server may echo the request's headers back.
    """
    body = redact_body(body, secrets)
    code, message = _error_details(body)
    if message is None:
        message = f"unexpected answer: {_snippet(body)}"
    cls = _STATUS_ERRORS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    return cls(
        message,
        status=status,
        code=code,
        request_id=headers.get("cf-ray"),
        body=body,
        retry_after=server_delay(headers, now=now),
        method=method,
        path=path,
    )


def unwrap(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """Return the decoded success envelope, or raise the error the answer stands for.

    Raises :class:`APIStatusError` (a subclass by status) for error statuses and
    for ``success: false`` on a 2xx, and :class:`APIResponseValidationError` for
    a 2xx body that is not a JSON object (redacted as :func:`status_error` is). An
    empty 2xx body is an empty envelope.
    """
    if not 200 <= status < 300:
        raise status_error(status, headers, body, method=method, path=path, secrets=secrets)
    if not body.strip():
        return {}  # no body (the legacy track start documents none); callers judge it
    doc = try_decode_json(body)
    if not isinstance(doc, dict):
        body = redact_body(body, secrets)
        problem = f"not JSON: {_snippet(body)}" if doc is NOT_JSON else "not a JSON object"
        raise APIResponseValidationError(
            f"{method} {path}: HTTP {status} body is {problem}",
            status=status,
            body=body,
            method=method,
            path=path,
        )
    if doc.get("success") is False:
        raise status_error(status, headers, body, method=method, path=path, secrets=secrets)
    return doc


# -- retries ---------------------------------------------------------------------------


class Failure(enum.Enum):
    """How a request failed without an HTTP answer."""

    #: The connection was never made (refused, DNS, connect timeout): nothing was sent.
    CONNECT = "connect"
    #: The request may have reached the server (reset, read timeout, truncated body).
    AFTER_SEND = "after_send"


RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


def server_delay(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``None`` when neither header holds a usable value (garbage, negative, not
    finite, a date no calendar can hold): the caller then uses its own backoff.
    Never raises, whatever the header says.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        value = _seconds_value(raw_ms)
        if value is not None:
            return value / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    value = _seconds_value(raw)
    return value if value is not None else _date_delay(raw, now or datetime.now(UTC))


def _seconds_value(raw: str) -> float | None:
    """A finite, non-negative number, or ``None``."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _date_delay(raw: str, now: datetime) -> float | None:
    """Seconds from ``now`` until the HTTP date ``raw`` (0 if past), or ``None`` if unusable."""
    try:
        when = parsedate_to_datetime(raw)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        # A year past 9999 overflows in parsing; a zone offset at either end of
        # the calendar overflows in the subtraction.
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    idempotent: bool,
    status: int | None = None,
    failure: Failure | None = None,
    headers: Mapping[str, str] | None = None,
    jitter: float = 0.0,
    now: datetime | None = None,
) -> float | None:
    """Seconds to wait before retry number ``attempt + 1``, or ``None`` for "do not retry".

    A non-idempotent request (starting a recording) is retried only when it
    provably was not processed: the connection was never made, or the answer
    was 429. ``jitter`` is a number in ``[0, 1)`` (random in production).
    """
    if attempt >= policy.max_retries:
        return None
    if failure is Failure.CONNECT or status == 429:
        pass
    elif failure is Failure.AFTER_SEND or status in RETRYABLE_STATUSES:
        if not idempotent:
            return None
    else:
        return None
    given = server_delay(headers or {}, now=now)
    if given is not None:
        return given if given <= policy.max_server_delay else None
    backoff = min(policy.initial_delay * 2.0**attempt, policy.max_delay)
    return backoff * (1 - 0.25 * jitter)


def possibly_processed(*, status: int | None = None, failure: Failure | None = None) -> bool:
    """Whether a failed attempt may still have been carried out by the server."""
    if failure is not None:
        return failure is Failure.AFTER_SEND
    return status is not None and status != 429 and status in RETRYABLE_STATUSES


# -- paging ----------------------------------------------------------------------------


def page_count(total_count: int, per_page: int) -> int:
    """Number of pages needed for ``total_count`` items at ``per_page`` a page."""
    return max(0, -(-total_count // per_page))


def last_page(
    page_no: int, count: int, page_size: int, total: int | None, end_offset: int | None
) -> int:
    """The last page number worth asking for, judged from the answer for ``page_no``.

    ``count`` is ``len(data)`` and ``page_size`` the server's page size as seen in
    its answers (never more than it sends: servers cap ``per_page`` silently). With
    a total, the larger of two readings wins, since asking one page too many only
    costs an empty answer while one too few loses recordings: the pages the total
    needs at ``page_size``, and this page plus what ``end_offset`` leaves. Without
    a total, one more page while pages come back full.
    """
    if total is None:
        return page_no + 1 if count >= page_size else page_no
    last = page_count(total, page_size)
    if end_offset is not None:
        last = max(last, page_no + page_count(total - end_offset, page_size))
    return last


#: The most pages one walk reads (100 a page: a million recordings), however it goes.
MAX_WALK_PAGES: Final = 10_000


def walk_budget(pages_expected: int | None, max_pages: int = MAX_WALK_PAGES) -> int:
    """How many pages one walk may read, from what the first answer made it expect.

    A list that changes while it is walked needs more than it first said (repair
    passes re-read pages too), so the walk gets eight times the expected pages
    plus 32; one that never gives a total gets ``max_pages``, which also caps
    every walk. A server that keeps inventing pages past it gets a
    :class:`PaginationError`, not an endless walk.
    """
    if pages_expected is None:
        return max_pages
    return min(max_pages, 8 * pages_expected + 32)
