"""The pure decisions behind webhook delivery handling, shared by every web framework.

No sockets, no event loop: what to answer before reading a delivery, when its
body has grown too large, what a failed verification means, what a delivery
is de-duplicated on, and what a callback's outcome answers. The framework-free
receiver in ``webhooks`` sequences these decisions; the aiohttp handler and the
ASGI app only translate requests and answers. The tests call them directly.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final, Protocol, runtime_checkable

import attrs

from ._exceptions import APIError, RealtimeKitError, WebhookVerificationError
from ._validation import check_int, check_seconds

__all__ = [
    "ACCEPTED",
    "BAD_SIGNATURE",
    "BUSY",
    "CANNOT_DEDUPLICATE",
    "CANNOT_VERIFY",
    "DUPLICATE",
    "MISSING_SIGNATURE",
    "NOT_AN_EVENT",
    "NOT_JSON",
    "OK",
    "REDELIVER",
    "TOO_LARGE",
    "BodyLimit",
    "DeduplicationStore",
    "Deduplicator",
    "DeliveryHeaders",
    "RetryDelivery",
    "WebhookAnswer",
    "WebhookPayloadError",
    "callback_answer",
    "delivery_headers",
    "delivery_keys",
    "rejection",
    "screen",
]


class WebhookPayloadError(RealtimeKitError, ValueError):
    """A correctly signed delivery whose body is not a JSON event of the documented shape."""


class RetryDelivery(Exception):  # noqa: N818  # named for what it asks, like StopIteration
    """Raise it from an event callback to have RealtimeKit deliver the event again.

    The receiver then answers 503 and forgets the delivery, so the redelivery
    is dispatched. Only honoured while the receiver is still waiting on the
    callback (see :func:`~realtimekit_async.webhooks.webhook_handler`'s
    ``respond_within``).
    """


@attrs.frozen
class WebhookAnswer:
    """The HTTP answer to one delivery: a status and a short plain-text body."""

    status: int
    text: str


BUSY: Final = WebhookAnswer(503, "too many callbacks running")
MISSING_SIGNATURE: Final = WebhookAnswer(401, "missing rtk-signature header")
NOT_JSON: Final = WebhookAnswer(400, "expected a JSON body")
TOO_LARGE: Final = WebhookAnswer(413, "body too large")
BAD_SIGNATURE: Final = WebhookAnswer(401, "invalid signature")
NOT_AN_EVENT: Final = WebhookAnswer(400, "not a webhook event")
CANNOT_VERIFY: Final = WebhookAnswer(503, "cannot verify now")
CANNOT_DEDUPLICATE: Final = WebhookAnswer(503, "cannot check for duplicates now")
DUPLICATE: Final = WebhookAnswer(200, "duplicate")
OK: Final = WebhookAnswer(200, "ok")
ACCEPTED: Final = WebhookAnswer(202, "accepted")
REDELIVER: Final = WebhookAnswer(503, "redelivery requested")

# Current header names first; the Dyte-era names are what older senders use.
_SIGNATURE_HEADERS: Final = ("rtk-signature", "dyte-signature")
_DELIVERY_ID_HEADERS: Final = ("rtk-uuid", "dyte-uuid")
_WEBHOOK_ID_HEADERS: Final = ("rtk-webhook-id", "dyte-webhook-id")


@attrs.frozen
class DeliveryHeaders:
    """The headers a delivery is identified and signed by (``None`` when absent)."""

    signature: str | None
    delivery_id: str | None
    webhook_id: str | None


def delivery_headers(headers: Mapping[str, str]) -> DeliveryHeaders:
    """Pick the ``rtk-*`` headers, falling back to the legacy ``dyte-*`` ones; any case."""
    lowered = {k.lower(): v for k, v in headers.items()}

    def first(names: tuple[str, ...]) -> str | None:
        return next((lowered[n] for n in names if lowered.get(n)), None)

    return DeliveryHeaders(
        signature=first(_SIGNATURE_HEADERS),
        delivery_id=first(_DELIVERY_ID_HEADERS),
        webhook_id=first(_WEBHOOK_ID_HEADERS),
    )


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def screen(
    headers: Mapping[str, str], *, pending: int, max_pending: int, max_body_size: int
) -> WebhookAnswer | None:
    """The answer a delivery gets before its body is read, or ``None`` to read it.

    ``pending`` is how many callbacks are running: at ``max_pending`` nothing is
    read or remembered (503: the sender retries when there is room). Then a
    missing signature is 401, a non-JSON ``Content-Type`` 400 and a declared
    ``Content-Length`` over ``max_body_size`` 413.
    """
    if pending >= max_pending:
        return BUSY
    if delivery_headers(headers).signature is None:
        return MISSING_SIGNATURE
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type")
    if content_type is not None and not _is_json(content_type):
        return NOT_JSON
    declared = lowered.get("content-length", "").strip()
    # Only ASCII digits: "²".isdigit() is true, and a bad length is the streaming limit's to catch.
    if declared.isascii() and declared.isdigit() and int(declared) > max_body_size:
        return TOO_LARGE
    return None


class BodyLimit:
    """Collects a body chunk by chunk and says as soon as it exceeds ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []

    def feed(self, chunk: bytes) -> bool:
        """Keep ``chunk``; ``False`` once the body is over the limit (stop reading then)."""
        self._size += len(chunk)
        if self._size > self._limit:
            self._chunks.clear()
            return False
        self._chunks.append(chunk)
        return True

    @property
    def body(self) -> bytes:
        """The bytes fed so far."""
        return b"".join(self._chunks)


def rejection(exc: WebhookVerificationError | WebhookPayloadError | APIError) -> WebhookAnswer:
    """The answer for a delivery the verifier refused or could not check.

    A bad signature is the sender's (or a forger's) fault: 401, not retried. A
    body that is not an event: 400. A key that cannot be fetched is this side's
    problem: 503, so RealtimeKit delivers again later.
    """
    if isinstance(exc, WebhookVerificationError):
        return BAD_SIGNATURE
    if isinstance(exc, WebhookPayloadError):
        return NOT_AN_EVENT
    return CANNOT_VERIFY


def callback_answer(*, done: bool, error: BaseException | None) -> WebhookAnswer:
    """The answer once the callback returned, raised ``error``, or is still running.

    :class:`RetryDelivery` asks for a redelivery (503; forget the delivery's
    keys). Any other error is acknowledged: a redelivery would fail the same
    way. A callback still running is acknowledged with 202 and keeps running.
    """
    if not done:
        return ACCEPTED
    if isinstance(error, RetryDelivery):
        return REDELIVER
    return OK


def delivery_keys(delivery_id: str | None, body: bytes) -> tuple[str, ...]:
    """What a delivery is de-duplicated on: a digest of its signed body, then its ``rtk-uuid``.

    Neither the uuid nor any timestamp is signed, so a captured delivery can be
    replayed with a fresh uuid: only the body identifies it. The digest comes
    first so that a replay stops there and stores nothing. The prefixes keep a
    forged uuid from ever matching a body digest.
    """
    digest = "body:" + hashlib.sha256(body).hexdigest()
    return (digest,) if delivery_id is None else (digest, "uuid:" + delivery_id)


@runtime_checkable
class DeduplicationStore(Protocol):
    """Where the keys of handled deliveries are remembered, for a TTL the store decides.

    Share one between replicas (Redis, a database) so a redelivery reaching
    another replica is still a duplicate; :class:`Deduplicator` is the
    in-memory default. Both methods may raise: the delivery is then answered
    503 and RealtimeKit delivers it again later.
    """

    async def add_if_new(self, key: str) -> bool:
        """Remember ``key``; ``True`` unless it was already remembered (atomically)."""
        ...

    async def forget(self, key: str) -> None:
        """Drop ``key``, so its next delivery counts as new (the callback asked for one)."""
        ...


class Deduplicator:
    """The in-memory :class:`DeduplicationStore`: keys kept ``ttl`` seconds, at most ``max_entries``.

    Memory stays bounded: the oldest keys are dropped first when full (a very
    late redelivery of one of them would then be dispatched again); the
    receiver stores two keys per delivery (see :func:`delivery_keys`), and a
    duplicate stores none. ``clock`` is injectable for tests. Not thread-safe;
    use it from one event loop, in one process.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_int("max_entries", max_entries, 1)
        self._ttl = check_seconds("ttl", ttl)
        self._max = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()

    async def add_if_new(self, key: str) -> bool:
        """Remember ``key`` for the TTL; ``True`` unless it was remembered and not expired."""
        now = self._clock()
        self._purge(now)
        if key in self._expiry:
            return False
        # Insertion order is expiry order (one TTL for all), which _purge relies on.
        self._expiry[key] = now + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    async def forget(self, key: str) -> None:
        """Drop ``key`` so its next delivery counts as new."""
        self._expiry.pop(key, None)

    def __contains__(self, key: object) -> bool:
        expires = self._expiry.get(key) if isinstance(key, str) else None
        return expires is not None and expires > self._clock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._expiry:
            oldest = next(iter(self._expiry.values()))
            if oldest > now:
                return
            self._expiry.popitem(last=False)
