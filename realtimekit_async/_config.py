"""Client settings: defaults, environment variables and their validation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

import aiohttp
import attrs
from yarl import URL

from ._exceptions import ValidationError
from ._policies import RetryPolicy
from ._sansio import DEFAULT_BASE_URL
from ._validation import check_int, check_non_empty, check_seconds

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "ClientOptions",
    "resolve_options",
    "merge_retry",
    "to_retry_policy",
    "to_timeout",
]

ENV_API_TOKEN: Final = "CLOUDFLARE_API_TOKEN"
ENV_ACCOUNT_ID: Final = "CLOUDFLARE_ACCOUNT_ID"
ENV_APP_ID: Final = "REALTIMEKIT_APP_ID"
ENV_BASE_URL: Final = "REALTIMEKIT_BASE_URL"

DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_MAX_CONCURRENCY: Final = 32
#: The most an API answer may hold, inflated: a page of 1,000 recordings is about 1.5 MB.
DEFAULT_MAX_RESPONSE_SIZE: Final = 8 << 20


@attrs.frozen
class ClientOptions:
    """Everything one request needs to know about the client; never shows the token."""

    api_token: str = attrs.field(repr=False)
    account_id: str
    app_id: str | None
    base_url: URL
    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy
    #: Bytes of an answer's body read at most (after inflation); see ``APIResponseTooLargeError``.
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE


def to_timeout(timeout: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """Turn seconds into a ``ClientTimeout`` (connecting gets at most 10 s of it)."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    seconds = check_seconds("timeout", timeout)
    return aiohttp.ClientTimeout(total=seconds, sock_connect=min(seconds, DEFAULT_CONNECT_TIMEOUT))


def to_retry_policy(value: int | RetryPolicy) -> RetryPolicy:
    """A retry count or a full policy, as a policy; raise :class:`ValidationError` if invalid."""
    if isinstance(value, RetryPolicy):
        return value
    return RetryPolicy(max_retries=check_int("max_retries", value, 0))


def merge_retry(current: RetryPolicy, value: int | RetryPolicy) -> RetryPolicy:
    """``current`` overridden by a per-call value: a count keeps its backoff, a policy
    replaces it; raise :class:`ValidationError` if invalid."""
    if isinstance(value, RetryPolicy):
        return value
    return attrs.evolve(current, max_retries=to_retry_policy(value).max_retries)


def _base_url(value: str | URL) -> URL:
    url = URL(
        _header_safe("base_url", value, ascii_only=False) if isinstance(value, str) else value
    )
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValidationError("base_url", f"must be an http(s) URL, got {str(value)!r}")
    if url.query_string or url.fragment:
        raise ValidationError("base_url", "must not carry a query or fragment")
    return url


def _header_safe(field: str, value: str, *, ascii_only: bool) -> str:
    """``value`` if it can go into a request line or header as it is: no whitespace or
    control characters (and, for a token, nothing but ASCII).

    CR or LF could add headers of their own: aiohttp refuses them with a raw
    ``ValueError`` at the first request, yarl silently drops them from a URL.
    The value is never echoed (it may be a credential).
    """
    if (ascii_only and not value.isascii()) or any(
        c.isspace() or not c.isprintable() for c in value
    ):
        kind = "visible ASCII" if ascii_only else "printable text"
        raise ValidationError(
            field, f"must be {kind} without spaces, tabs or line breaks (it is sent in a header)"
        )
    return value


def resolve_options(
    *,
    api_token: str | None,
    account_id: str | None,
    app_id: str | None,
    base_url: str | URL | None,
    timeout: float | aiohttp.ClientTimeout,
    max_retries: int | RetryPolicy,
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    env: Mapping[str, str] = os.environ,
) -> ClientOptions:
    """Merge arguments with the environment; raise :class:`ValidationError` if unusable."""
    token = api_token if api_token is not None else env.get(ENV_API_TOKEN)
    if not token:
        raise ValidationError("api_token", f"missing: pass api_token= or set {ENV_API_TOKEN}")
    account = account_id if account_id is not None else env.get(ENV_ACCOUNT_ID)
    if not account:
        raise ValidationError("account_id", f"missing: pass account_id= or set {ENV_ACCOUNT_ID}")
    app = app_id if app_id is not None else env.get(ENV_APP_ID) or None
    if app is not None:
        check_non_empty("app_id", app)
    return ClientOptions(
        api_token=_header_safe("api_token", token, ascii_only=True),
        account_id=account,
        app_id=app,
        base_url=_base_url(base_url or env.get(ENV_BASE_URL) or DEFAULT_BASE_URL),
        timeout=to_timeout(timeout),
        retry=to_retry_policy(max_retries),
        max_response_size=check_int("max_response_size", max_response_size, 1),
    )
