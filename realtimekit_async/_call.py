"""Per-call options: what every API method accepts besides its own arguments.

Pure: the options are checked and merged here, before anything is sent, so a
bad one is a :class:`ValidationError` and never a half-sent request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import aiohttp
import attrs
import orjson

from ._config import ClientOptions, merge_retry, to_timeout
from ._exceptions import ValidationError
from ._policies import RetryPolicy

__all__ = ["CallSettings", "RequestOptions", "merge_body", "merge_query", "resolve_call"]

#: Headers the SDK owns: credentials are set on the client, never per call.
_RESERVED_HEADERS = frozenset({"authorization", "host", "content-length", "transfer-encoding"})


class RequestOptions(TypedDict, total=False):
    """Keyword arguments every API method takes (all optional).

    ``timeout`` is the deadline for the whole call, every retry and backoff
    included; ``max_retries`` a count or a :class:`RetryPolicy`. The ``extra_*``
    options are sent as given, merged last, and not checked against the API:
    ``extra_headers`` are added to the request's headers (``Authorization``,
    ``Host`` and the framing headers are refused), ``extra_query`` pairs replace
    query keys of the same name, ``extra_body`` keys replace top-level keys of
    the JSON body (only on calls that send one).
    """

    timeout: float | aiohttp.ClientTimeout
    max_retries: int | RetryPolicy
    extra_headers: Mapping[str, str]
    extra_query: Mapping[str, str] | Sequence[tuple[str, str]]
    extra_body: Mapping[str, Any]


@attrs.frozen
class CallSettings:
    """One call's resolved settings: the client's, overridden by its :class:`RequestOptions`."""

    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    extra_query: tuple[tuple[str, str], ...] = ()
    extra_body: Mapping[str, Any] | None = None


def resolve_call(client: ClientOptions, options: RequestOptions) -> CallSettings:
    """Check ``options`` and merge them over ``client``'s; raise :class:`ValidationError`."""
    unknown = set(options) - set(RequestOptions.__annotations__)
    if unknown:
        raise ValidationError(sorted(unknown)[0], "not a per-call option")
    timeout = options.get("timeout")
    retries = options.get("max_retries")
    body = options.get("extra_body")
    if body is not None:
        if not isinstance(body, Mapping):
            raise ValidationError("extra_body", "must be a mapping of JSON keys to values")
        try:
            orjson.dumps(dict(body))
        except TypeError as exc:
            raise ValidationError("extra_body", f"cannot be sent as JSON: {exc}") from None
    return CallSettings(
        timeout=client.timeout if timeout is None else to_timeout(timeout),
        retry=client.retry if retries is None else merge_retry(client.retry, retries),
        extra_headers=_headers(options.get("extra_headers") or {}),
        extra_query=_query(options.get("extra_query") or ()),
        extra_body=body,
    )


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise ValidationError("extra_headers", "must be a mapping of header names to values")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not name.isascii() or not name.isprintable():
            raise ValidationError("extra_headers", f"invalid header name {name!r}")
        if " " in name or ":" in name:
            raise ValidationError("extra_headers", f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValidationError(
                "extra_headers", f"{name} is set by the client (pass api_token= for credentials)"
            )
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            # The value is not echoed: it may be a credential.
            raise ValidationError("extra_headers", f"{name}: must be a string without line breaks")
        checked[name] = value
    return checked


def _query(query: Mapping[str, str] | Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    for pair in pairs:
        if (
            not isinstance(pair, tuple)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise ValidationError("extra_query", f"must be str keys and values, got {pair!r}")
    return tuple(pairs)


def merge_query(
    query: Sequence[tuple[str, str]], extra: Sequence[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """``query`` with ``extra`` merged last: a key in ``extra`` replaces that key's pairs."""
    replaced = {key for key, _ in extra}
    return (*((k, v) for k, v in query if k not in replaced), *extra)


def merge_body(body: Any, extra: Mapping[str, Any] | None, *, method: str) -> Any:
    """The unstructured JSON ``body`` with ``extra``'s top-level keys merged last."""
    if extra is None:
        return body
    if body is None:
        raise ValidationError("extra_body", f"this {method} call sends no body")
    return {**body, **extra}
