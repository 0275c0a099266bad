"""Every exception the SDK raises, under one base class.

Hierarchy::

    RealtimeKitError
    ├── ValidationError (also a ValueError): bad input, raised before any request
    ├── APIError: something went wrong talking to the API
    │   ├── APIConnectionError: no usable answer (refused, reset, DNS, TLS)
    │   │   └── APITimeoutError
    │   ├── APIResponseValidationError: a 2xx answer that is not the documented shape
    │   │   └── APIResponseTooLargeError: an answer longer than the client reads
    │   ├── PaginationError: a list walk did not end within its bound
    │   └── APIStatusError: the API answered with an error
    │       ├── BadRequestError (400)
    │       ├── AuthenticationError (401)
    │       ├── PermissionDeniedError (403)
    │       ├── NotFoundError (404)
    │       ├── ConflictError (409)
    │       ├── UnprocessableEntityError (422)
    │       ├── RateLimitError (429)
    │       └── InternalServerError (5xx)
    ├── RecordingFailedError: a waited-for recording ended ERRORED, or moved past
    │   every status that was waited for
    ├── WebhookVerificationError: a webhook delivery failed its signature check
    ├── DownloadError: a recording file could not be fetched or verified
    ├── ExportError: an export's destination cannot be used safely (a link or
    │   special file planted where it writes)
    │   ├── DestinationError: the destination cannot be created or written (the disk)
    │   └── DestinationLockedError: another export is running into that destination
    └── StorageError: an object store refused, failed or could not be reached

Messages never contain the API token or a presigned URL's query string.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Recording
    from ._webhook_models import WebhookRecording

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseTooLargeError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DestinationLockedError",
    "DownloadError",
    "ExportError",
    "InternalServerError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RealtimeKitError",
    "RecordingFailedError",
    "StorageError",
    "UnprocessableEntityError",
    "ValidationError",
    "WebhookVerificationError",
]


class RealtimeKitError(Exception):
    """Base class of every error this SDK raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from args and attributes without calling __init__, whose
        # keyword-only arguments are not in args: an error survives pickling
        # (multiprocessing, distributed workers) whatever its signature.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[RealtimeKitError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class ValidationError(RealtimeKitError, ValueError):
    """An argument is invalid; raised before anything is sent.

    ``field`` names the offending argument (dotted for nested ones).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class APIError(RealtimeKitError):
    """Base class of errors raised while talking to the API.

    ``method`` and ``path`` name the request (the path never carries a query).
    ``possibly_applied`` is true when an earlier attempt of the same request was
    retried after a timeout, reset or 5xx, so the server may have carried it out
    even though this attempt failed.
    """

    possibly_applied: bool = False

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class APIConnectionError(APIError):
    """The request got no usable answer: refused, reset, DNS or TLS failure."""


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class APIResponseValidationError(APIError):
    """A successful answer whose body is not the documented shape."""

    def __init__(
        self, message: str, *, status: int, body: bytes, method: str = "", path: str = ""
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status = status
        self.body = body


class APIResponseTooLargeError(APIResponseValidationError):
    """An answer whose body (counted after gzip/deflate inflation) exceeds ``limit`` bytes.

    Raised whatever the status, as soon as the bound is crossed: nothing more is
    read, and the request is not retried. ``body`` is empty; ``possibly_applied``
    is true for a 2xx, which the server did carry out.
    """

    def __init__(
        self, message: str, *, status: int, limit: int, method: str = "", path: str = ""
    ) -> None:
        super().__init__(message, status=status, body=b"", method=method, path=path)
        self.limit = limit


class PaginationError(APIError):
    """A list walk kept getting new pages past its bound (see :mod:`realtimekit_async._pagination`).

    ``pages`` is how many pages the walk read; everything read was yielded.
    """

    def __init__(self, message: str, *, pages: int, method: str = "", path: str = "") -> None:
        super().__init__(message, method=method, path=path)
        self.pages = pages


class APIStatusError(APIError):
    """The API answered with an error.

    Carries the HTTP ``status_code`` (also as ``status``), the API's own error ``code`` and ``message``
    (from either the RealtimeKit ``error`` or the Cloudflare v4 ``errors[]``
    shape), the ``request_id`` (the ``cf-ray`` header) and the raw ``body``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        request_id: str | None = None,
        body: bytes = b"",
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        """The HTTP status: the same as :attr:`status_code`."""
        return self.status_code

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        code = f" (code {self.code})" if self.code is not None else ""
        ray = f" [cf-ray {self.request_id}]" if self.request_id else ""
        return f"{where}HTTP {self.status_code}{code}: {self.message}{ray}"


class BadRequestError(APIStatusError):
    """HTTP 400: the API rejected the request's parameters or body."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API token is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the token lacks the Realtime permission for this resource."""


class NotFoundError(APIStatusError):
    """HTTP 404: no such recording, meeting, app or active recording."""


class ConflictError(APIStatusError):
    """HTTP 409: e.g. the meeting already has an active recording."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: the request was well-formed but cannot be carried out."""


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests; ``retry_after`` holds the server's wait, if any."""


class InternalServerError(APIStatusError):
    """HTTP 5xx: the API or a proxy in front of it failed."""


class RecordingFailedError(RealtimeKitError):
    """A waited-for recording ended ERRORED (or moved past every wanted status).

    ``recording`` holds its last known state: the API's :class:`Recording`, or
    the webhook's :class:`~realtimekit_async.webhooks.WebhookRecording` when an
    event told.
    """

    recording: Recording | WebhookRecording

    def __init__(self, message: str, recording: Recording | WebhookRecording) -> None:
        super().__init__(message)
        self.recording = recording


class WebhookVerificationError(RealtimeKitError):
    """A webhook delivery has a missing, malformed or wrong signature."""


class DownloadError(RealtimeKitError):
    """A recording file could not be downloaded or failed verification."""


class ExportError(RealtimeKitError):
    """An export's destination cannot be used safely.

    Raised (and, for one file, reported in ``report.failed``) when a symbolic
    link, FIFO, device or hard-linked file sits where the export would write.
    """


class DestinationError(ExportError):
    """An export's destination (the directory, its lock, manifest or sync cursor)
    cannot be created, read or written: permissions, a full or read-only disk, a file
    where a directory should be. ``path`` names what failed, ``reason`` says why
    (the OS's words) and ``errno`` is its error number (``None`` if unknown).
    """

    def __init__(self, path: str, reason: str, *, errno: int | None = None) -> None:
        super().__init__(f"export destination {path} cannot be used: {reason}")
        self.path = path
        self.reason = reason
        self.errno = errno


class DestinationLockedError(ExportError):
    """Another export holds the destination's lock; wait for it or use another ``dest``."""


class StorageError(RealtimeKitError):
    """An object-store request failed: refused, a server error after retries, or unreachable.

    ``key`` names the object (``""`` for bucket-wide calls), ``status`` the HTTP
    status (``None`` when no answer came) and ``code`` the store's error code
    (e.g. ``NoSuchBucket``, ``PreconditionFailed``).
    """

    def __init__(
        self, message: str, *, key: str = "", status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.status = status
        self.code = code
