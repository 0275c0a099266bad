"""The options the export entry points share, checked and resolved before any I/O.

:class:`ExportOptions` is the one list of keyword arguments that
:func:`~realtimekit_async.export.export_recordings`,
:func:`~realtimekit_async.export.sync_recordings` and
:func:`~realtimekit_async.export.export_one` take besides their own;
:func:`resolve_export` turns them into an :class:`ExportSettings`, a frozen,
picklable value without secrets or callbacks (what a worker process needs to
run the same export).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Final, TypedDict

import aiohttp
import attrs

from ._config import ClientOptions, merge_retry
from ._dest import S3Settings
from ._exceptions import ValidationError
from ._export_plan import ExportProgress
from ._policies import RetryPolicy
from ._validation import check_int, check_non_negative, check_seconds, renamed

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ExportOptions",
    "ExportSettings",
    "ProgressCallback",
    "resolve_export",
]

DEFAULT_CONCURRENCY: Final = 4
DEFAULT_URL_EXPIRY_MARGIN: Final = 300.0
DEFAULT_READ_TIMEOUT: Final = 60.0
#: The most bytes accepted for a file without a documented size (the audio file).
DEFAULT_MAX_AUDIO_SIZE: Final = 8 * 1024**3
#: The slowest body accepted, in bytes per second, measured over ``read_timeout``.
DEFAULT_MIN_RATE: Final = 1024.0

ProgressCallback = Callable[[ExportProgress], None]


class ExportOptions(TypedDict, total=False):
    """Keyword arguments every export entry point takes (all optional).

    - ``include_audio`` (default ``True``): fetch the audio file too when the
      recording has one.
    - ``on_progress``: called with an :class:`ExportProgress` as work advances
      (on the event loop; keep it quick).
    - ``max_retries``: how often a failing download is retried; a count keeps
      the client's backoff, a :class:`RetryPolicy` replaces it (default: the
      client's policy), as for every API method.
    - ``allow_insecure_downloads`` (default ``False``): accept plain-http
      download URLs (always accepted when the client talks plain http to a
      loopback host, a local emulator).
    - ``url_expiry_margin`` (seconds, default 300): a URL expiring within it
      is refreshed first.
    - ``read_timeout`` (seconds, default 60) and ``min_rate`` (bytes a second,
      default 1024): a body slower than ``min_rate`` over ``read_timeout`` is
      cut and retried.
    - ``max_audio_size`` (bytes, default 8 GiB): the most a file without a
      documented size (the audio file) may hold.
    - ``app_id``: the RealtimeKit app (default: the client's).
    - ``s3`` and ``allow_insecure_endpoint``: how to reach a bucket ``dest``
      (default: the standard ``AWS_*`` variables; a plain-http endpoint only
      on loopback or with ``allow_insecure_endpoint``).
    - ``retry``: deprecated name of ``max_retries``.
    """

    include_audio: bool
    on_progress: ProgressCallback | None
    max_retries: int | RetryPolicy | None
    allow_insecure_downloads: bool
    url_expiry_margin: float
    read_timeout: float
    max_audio_size: int
    min_rate: float
    app_id: str | None
    s3: S3Settings | None
    allow_insecure_endpoint: bool
    retry: RetryPolicy | None


@attrs.frozen
class ExportSettings:
    """One export's resolved settings: checked, picklable, without secrets or callbacks.

    ``connect_timeout`` is the client's (``None``: no limit); a download has
    no total timeout, only ``read_timeout`` and ``min_rate``.
    """

    retry: RetryPolicy
    connect_timeout: float | None
    include_audio: bool = True
    concurrency: int = DEFAULT_CONCURRENCY
    allow_insecure_downloads: bool = False
    url_expiry_margin: float = DEFAULT_URL_EXPIRY_MARGIN
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_audio_size: int = DEFAULT_MAX_AUDIO_SIZE
    min_rate: float = DEFAULT_MIN_RATE
    app_id: str | None = None
    allow_insecure_endpoint: bool = False

    @property
    def margin(self) -> timedelta:
        return timedelta(seconds=self.url_expiry_margin)

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        # No total: a large file may take long; a stalled or dripping body is what must end it.
        return aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
        )


def resolve_export(
    options: ExportOptions, client: ClientOptions, *, concurrency: int = 1, stacklevel: int = 2
) -> ExportSettings:
    """Check ``options`` and merge them over ``client``'s; raise :class:`ValidationError`.

    A deprecated name (``retry``) is accepted with a :class:`DeprecationWarning`
    naming the new one (``stacklevel`` as for :func:`warnings.warn`, counted from
    this function's caller); giving both is a :class:`ValidationError`.
    """
    unknown = set(options) - set(ExportOptions.__annotations__)
    if unknown:
        raise ValidationError(sorted(unknown)[0], "not an export option")
    retries = renamed(
        "retry",
        options.get("retry"),
        "max_retries",
        options.get("max_retries"),
        stacklevel=stacklevel + 1,
    )
    return ExportSettings(
        retry=client.retry if retries is None else merge_retry(client.retry, retries),
        connect_timeout=client.timeout.sock_connect,
        include_audio=bool(options.get("include_audio", True)),
        concurrency=check_int("concurrency", concurrency, 1),
        allow_insecure_downloads=bool(options.get("allow_insecure_downloads", False)),
        url_expiry_margin=check_non_negative(
            "url_expiry_margin", options.get("url_expiry_margin", DEFAULT_URL_EXPIRY_MARGIN)
        ),
        read_timeout=check_seconds(
            "read_timeout", options.get("read_timeout", DEFAULT_READ_TIMEOUT)
        ),
        max_audio_size=check_int(
            "max_audio_size", options.get("max_audio_size", DEFAULT_MAX_AUDIO_SIZE), 1
        ),
        min_rate=check_non_negative(
            "min_rate", options.get("min_rate", DEFAULT_MIN_RATE), "bytes per second"
        ),
        app_id=options.get("app_id"),
        allow_insecure_endpoint=bool(options.get("allow_insecure_endpoint", False)),
    )
