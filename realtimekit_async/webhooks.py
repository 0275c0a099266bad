"""Receiving RealtimeKit webhooks: signature checks, typed events, de-duplication, an aiohttp handler.

RealtimeKit signs the raw body of every delivery with RSA-SHA256 (PKCS#1 v1.5)
and sends the base64 signature in ``rtk-signature`` (``dyte-signature`` from
older senders). Nothing is parsed before its signature checks out. Delivery is
at-least-once and unordered; ``rtk-uuid`` names the event, but it is not
signed, so the handler's :class:`Deduplicator` keys on it and on a digest of
the signed body (a replay with a fresh uuid is still a duplicate).

Typical use with aiohttp.web::

    verifier = WebhookVerifier(client=client)  # fetches and caches the public key
    handler = webhook_handler(verifier, on_event, waiter=waiter)
    handler.setup(app, "/webhooks")
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import aiohttp
import attrs
from aiohttp import hdrs, web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from yarl import URL

from ._closing import AsyncCloseable
from ._config import DEFAULT_MAX_RESPONSE_SIZE
from ._converter import converter
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    RealtimeKitError,
    ValidationError,
    WebhookVerificationError,
)
from ._models import check_int, check_seconds
from ._sansio import NOT_JSON, redact, try_decode_json, unwrap
from ._transport import TRANSPORT_ERRORS, Classified, classify, read_body
from ._waiter import RecordingSnapshot, RecordingWaiter
from ._webhook_models import (
    RECORDING_STATUS_UPDATE,
    DownloadUrl,
    GenericEvent,
    RecordingStatusUpdate,
    TrackDownload,
    TrackFile,
    WebhookEvent,
    WebhookMeeting,
    WebhookOrganizer,
    WebhookRecording,
)

if TYPE_CHECKING:
    from ._client import RealtimeKit

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_PENDING",
    "PUBLIC_KEY_URL",
    "RECORDING_STATUS_UPDATE",
    "Deduplicator",
    "DeliveryHeaders",
    "DownloadUrl",
    "EventCallback",
    "GenericEvent",
    "RecordingSnapshot",
    "RecordingStatusUpdate",
    "RetryDelivery",
    "TrackDownload",
    "TrackFile",
    "WebhookEvent",
    "WebhookHandler",
    "WebhookMeeting",
    "WebhookOrganizer",
    "WebhookPayloadError",
    "WebhookRecording",
    "WebhookVerificationError",
    "WebhookVerifier",
    "delivery_headers",
    "delivery_keys",
    "load_public_key",
    "parse_event",
    "verify_signature",
    "webhook_handler",
]

logger: Final = logging.getLogger("realtimekit_async.webhooks")

PUBLIC_KEY_URL: Final = "https://api.realtime.cloudflare.com/.well-known/webhooks.json"
DEFAULT_MAX_BODY_SIZE: Final = 1 << 20
DEFAULT_MAX_PENDING: Final = 1000
# How long close() waits for cancelled callbacks before leaving them behind.
_CANCEL_GRACE: Final = 1.0

# Current header names first; the Dyte-era names are what older senders use.
_SIGNATURE_HEADERS: Final = ("rtk-signature", "dyte-signature")
_DELIVERY_ID_HEADERS: Final = ("rtk-uuid", "dyte-uuid")
_WEBHOOK_ID_HEADERS: Final = ("rtk-webhook-id", "dyte-webhook-id")


class WebhookPayloadError(RealtimeKitError, ValueError):
    """A correctly signed delivery whose body is not a JSON event of the documented shape."""


class RetryDelivery(Exception):  # noqa: N818  # named for what it asks, like StopIteration
    """Raise it from an event callback to have RealtimeKit deliver the event again.

    The handler then answers 503 and forgets the delivery id, so the
    redelivery is dispatched. Only honoured while the handler is still waiting
    on the callback (see :func:`webhook_handler`'s ``respond_within``).
    """


# -- pure pieces ----------------------------------------------------------------------


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """Load an RSA public key from PEM text, also when its newlines are literal ``\\n``.

    Raises :class:`ValidationError` when the text is not a PEM RSA public key.
    """
    text = pem.replace("\\r", "").replace("\\n", "\n").strip()
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ValidationError("public_key", f"not a PEM public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValidationError("public_key", f"must be an RSA key, got {type(key).__name__}")
    return key


def verify_signature(public_key: rsa.RSAPublicKey | str, body: bytes, signature_b64: str) -> bool:
    """Whether ``signature_b64`` is a valid RSA-SHA256 (PKCS#1 v1.5) signature of ``body``.

    ``body`` must be the raw bytes as received: re-serialised JSON will not match.
    A malformed signature is simply ``False``. ``public_key`` may be PEM text.
    """
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


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


def parse_event(
    body: bytes, *, delivery_id: str | None = None, webhook_id: str | None = None
) -> WebhookEvent:
    """Decode a body whose signature has already been checked into a typed event.

    ``recording.statusUpdate`` becomes :class:`RecordingStatusUpdate`; every
    other event type a :class:`GenericEvent` with the payload as sent. Unknown
    fields are ignored. Raises :class:`WebhookPayloadError`. Prefer
    :meth:`WebhookVerifier.parse`, which checks the signature first.
    """
    doc = try_decode_json(body)
    if doc is NOT_JSON:
        raise WebhookPayloadError("webhook body is not JSON")
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str):
        raise WebhookPayloadError("webhook body is not an object with an 'event' string")
    if doc["event"] != RECORDING_STATUS_UPDATE:
        return GenericEvent(
            event=doc["event"], payload=doc, delivery_id=delivery_id, webhook_id=webhook_id
        )
    try:
        event = converter.structure(doc, RecordingStatusUpdate)
    except Exception as exc:  # cattrs raises many types; all mean "not the documented shape"
        problem = redact(repr(exc))
    else:
        return attrs.evolve(event, delivery_id=delivery_id, webhook_id=webhook_id)
    # Raised outside the handler, so no chained cause or context carries a presigned URL.
    raise WebhookPayloadError(f"unexpected {RECORDING_STATUS_UPDATE} shape: {problem}")


def delivery_keys(delivery_id: str | None, body: bytes) -> tuple[str, ...]:
    """What a delivery is de-duplicated on: its ``rtk-uuid`` and a digest of its signed body.

    Neither the uuid nor any timestamp is signed, so a captured delivery can be
    replayed with a fresh uuid: only the body identifies it. The prefixes keep
    a forged uuid from ever matching a body digest.
    """
    digest = "body:" + hashlib.sha256(body).hexdigest()
    return (digest,) if delivery_id is None else ("uuid:" + delivery_id, digest)


class Deduplicator:
    """Remembers delivery keys for ``ttl`` seconds, at most ``max_entries`` of them.

    Memory stays bounded: the oldest keys are dropped first when full (a very
    late redelivery of one of them would then be dispatched again); the handler
    stores two keys per delivery (see :func:`delivery_keys`). ``clock`` is
    injectable for tests. Not thread-safe; use it from one event loop.
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

    def first_time(self, *keys: str) -> bool:
        """``True`` unless one of ``keys`` was seen within the TTL; then remember them all.

        A duplicate stores nothing, so replays cannot push genuine keys out.
        """
        now = self._clock()
        self._purge(now)
        if any(self._expiry.get(key, now) > now for key in keys):
            return False
        for key in keys:
            # Re-inserting keeps the dict ordered by expiry, which _purge relies on.
            self._expiry.pop(key, None)
            self._expiry[key] = now + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    def forget(self, *keys: str) -> None:
        """Drop ``keys`` so their next delivery counts as new (after a failed dispatch)."""
        for key in keys:
            self._expiry.pop(key, None)

    def __contains__(self, delivery_id: object) -> bool:
        expires = self._expiry.get(delivery_id) if isinstance(delivery_id, str) else None
        return expires is not None and expires > self._clock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._expiry:
            oldest = next(iter(self._expiry.values()))
            if oldest > now:
                return
            self._expiry.popitem(last=False)


# -- the verifier ---------------------------------------------------------------------


class WebhookVerifier(AsyncCloseable):
    """Checks delivery signatures against RealtimeKit's public key.

    Give it the key (PEM text or a loaded key) or let it fetch
    ``key_url`` (``{"data": {"publicKey": ...}}``) on first use, through the
    client's session when given ``client=``, else ``session=`` or a session of
    its own (closed by :meth:`close`). A fetched key is cached; when a
    signature does not match, the key is fetched again once in case it was
    rotated.

    Forged deliveries cannot hammer the key URL, nor a slow one hold up
    deliveries: every caller shares the one fetch in flight, each fetch gives up
    after ``timeout`` seconds, and after a refetch (whatever it brought) or a
    failed fetch no other is made for ``refetch_cooldown`` seconds; meanwhile a
    failure is raised again at once (so the handler answers 503 and the sender
    retries later).
    """

    def __init__(
        self,
        public_key: str | rsa.RSAPublicKey | None = None,
        *,
        client: RealtimeKit | None = None,
        session: aiohttp.ClientSession | None = None,
        key_url: str | URL = PUBLIC_KEY_URL,
        timeout: float = 5.0,
        refetch_cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client is not None and session is not None:
            raise ValidationError("session", "pass client= or session=, not both")
        self._static = public_key is not None
        self._key: rsa.RSAPublicKey | None = (
            load_public_key(public_key) if isinstance(public_key, str) else public_key
        )
        self._client = client
        self._session = session
        self._own_session: aiohttp.ClientSession | None = None
        self._key_url = URL(key_url)
        self._max_answer = (
            client.options.max_response_size if client is not None else DEFAULT_MAX_RESPONSE_SIZE
        )
        self._timeout = aiohttp.ClientTimeout(total=check_seconds("timeout", timeout))
        if isinstance(refetch_cooldown, bool) or not refetch_cooldown >= 0:
            raise ValidationError("refetch_cooldown", "must be a number of seconds >= 0")
        self._cooldown = float(refetch_cooldown)
        self._clock = clock
        self._quiet_until = float("-inf")
        self._failure: str | None = None  # why the last fetch failed, during its cooldown
        self._inflight: asyncio.Task[rsa.RSAPublicKey] | None = None
        self.fetch_count = 0  #: how often the key was fetched (for monitoring)

    async def close(self) -> None:
        """Stop a fetch in flight; close the session the verifier created. Safe to call twice."""
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.wait({self._inflight})
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    async def public_key(self) -> rsa.RSAPublicKey:
        """The key in use, fetched on first call; raises :class:`APIError` if it cannot be."""
        if self._key is not None:
            return self._key
        return await self._refresh(None)

    async def verify(self, body: bytes, headers: Mapping[str, str]) -> DeliveryHeaders:
        """Check the delivery's signature over the raw ``body``; return its headers.

        Raises :class:`WebhookVerificationError` when the signature is missing or
        wrong (after one key refetch), or :class:`APIError` when the key cannot
        be fetched (a problem on this side: answer 5xx so it is redelivered).
        """
        info = delivery_headers(headers)
        if info.signature is None:
            raise WebhookVerificationError("missing rtk-signature header")
        key = await self.public_key()
        if verify_signature(key, body, info.signature):
            return info
        if not self._static:
            fresh = await self._refresh(key)
            if fresh is not key and verify_signature(fresh, body, info.signature):
                return info
        raise WebhookVerificationError("webhook signature does not match the public key")

    async def parse(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify, then decode the delivery into a typed event carrying its delivery id.

        Raises :class:`WebhookVerificationError`, :class:`WebhookPayloadError`
        or :class:`APIError` (key fetch).
        """
        info = await self.verify(body, headers)
        return parse_event(body, delivery_id=info.delivery_id, webhook_id=info.webhook_id)

    async def _refresh(self, stale: rsa.RSAPublicKey | None) -> rsa.RSAPublicKey:
        """A key newer than ``stale``, fetched unless another caller already did or may not.

        Raises :class:`APIError` when the fetch fails, and again at once while
        its cooldown lasts.
        """
        current = self._key
        if current is not None and (current is not stale or self._static):
            return current
        if self._clock() < self._quiet_until:
            if self._failure is not None:
                wait = self._quiet_until - self._clock()
                raise APIConnectionError(
                    f"{self._failure} (the key URL is not tried again for {wait:.1f}s)",
                    method="GET",
                    path=self._key_url.path,
                )
            if current is not None:
                return current
        if self._inflight is None:
            task = asyncio.create_task(self._fetch_and_keep(refetch=current is not None))
            task.add_done_callback(_retrieve)  # also when every caller gave up waiting
            self._inflight = task
        # shield: one caller cancelled (its delivery dropped) must not cancel the others' fetch.
        return await asyncio.shield(self._inflight)

    async def _fetch_and_keep(self, *, refetch: bool) -> rsa.RSAPublicKey:
        try:
            key = await self._fetch()
        except APIError as exc:
            self._failure = str(exc)
            self._quiet_until = self._clock() + self._cooldown
            raise
        finally:
            self._inflight = None
        self._failure = None
        if refetch:
            # Changed or not: a key that differs on every fetch must not buy a fetch per forgery.
            self._quiet_until = self._clock() + self._cooldown
        self._key = key
        return key

    def _http(self) -> aiohttp.ClientSession:
        if self._client is not None:
            return self._client.session
        if self._session is not None:
            return self._session
        if self._own_session is None:
            self._own_session = aiohttp.ClientSession()
        return self._own_session

    async def _fetch(self) -> rsa.RSAPublicKey:
        url = self._key_url
        where = {"method": "GET", "path": url.path}
        shown = redact(str(url))  # a key URL could carry a credential in its query
        self.fetch_count += 1
        try:
            async with self._http().get(
                url, timeout=self._timeout, headers={"Accept": "application/json"}
            ) as response:
                body = await read_body(response, self._max_answer, **where)
                status, headers = response.status, response.headers
        except TRANSPORT_ERRORS as exc:
            failure: Classified | None = classify(exc, shown=shown, **where)
        else:
            failure = None
        if failure is not None:  # raised here: aiohttp's exception must not be its context
            raise failure.error
        doc = unwrap(status, headers, body, **where)
        data = doc.get("data")
        pem = data.get("publicKey") if isinstance(data, dict) else None
        if not isinstance(pem, str):
            raise APIResponseValidationError(
                f"GET {shown}: no data.publicKey in the answer", status=status, body=body, **where
            )
        try:
            return load_public_key(pem)
        except ValidationError as exc:
            raise APIResponseValidationError(
                f"GET {shown}: {exc}", status=status, body=body, **where
            ) from None


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


# -- the aiohttp handler --------------------------------------------------------------

#: Called with each new verified event; may be a plain function or a coroutine function.
EventCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[object] | object]


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def _read_limited(request: web.BaseRequest, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it proves longer than ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class WebhookHandler:
    """Handles webhook deliveries in aiohttp.web; build it with :func:`webhook_handler`.

    Route ``POST`` requests to :meth:`handle`, or let :meth:`setup` do that and
    also close it on app shutdown (without that, call :meth:`close` yourself).

    Answers: 401 missing or bad signature, 413 body too large, 400 not a JSON
    event, 503 when the public key cannot be fetched, the callback raised
    :class:`RetryDelivery` in time or too many callbacks are running, 200 when
    handled (or a duplicate: same ``rtk-uuid`` or same signed body), 202 when
    the callback is still running in the background.
    """

    def __init__(
        self,
        verifier: WebhookVerifier,
        on_event: EventCallback | None,
        *,
        waiter: RecordingWaiter | None,
        deduplicator: Deduplicator,
        max_body_size: int,
        max_pending: int,
        respond_within: float,
        shutdown_timeout: float,
    ) -> None:
        self._verifier = verifier
        self._on_event = on_event
        self._waiter = waiter
        self._dedup = deduplicator
        self._max_body_size = max_body_size
        self._max_pending = max_pending
        self._respond_within = respond_within
        self._shutdown_timeout = shutdown_timeout
        self._tasks: set[asyncio.Future[Any]] = set()
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def pending(self) -> int:
        """How many callbacks are still running."""
        return len(self._tasks)

    def setup(self, app: web.Application, path: str = "/webhooks") -> None:
        """Route ``POST path`` to :meth:`handle` and finish callbacks when ``app`` shuts down."""
        app.router.add_post(path, self.handle)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.close()

    async def close(self) -> None:
        """Give running callbacks ``shutdown_timeout`` seconds to finish, then cancel the rest.

        Returns within ``shutdown_timeout`` plus one second: a callback that
        swallows its cancellation is logged and left behind, not waited for.
        """
        tasks = set(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self._shutdown_timeout)
        for task in late:
            task.cancel()
        if late:
            _, stuck = await asyncio.wait(late, timeout=_CANCEL_GRACE)
            if stuck:
                logger.error("%d webhook callback(s) ignored cancellation; not waiting", len(stuck))

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp.web handler (for routing by hand; :meth:`setup` does it for you)."""
        if len(self._tasks) >= self._max_pending:
            # Nothing is read or remembered: the sender retries, by then there is room.
            return web.Response(status=503, text="too many callbacks running")
        if delivery_headers(request.headers).signature is None:
            return web.Response(status=401, text="missing rtk-signature header")
        if hdrs.CONTENT_TYPE in request.headers and not _is_json(request.content_type):
            return web.Response(status=400, text="expected a JSON body")
        body = await _read_limited(request, self._max_body_size)
        if body is None:
            return web.Response(status=413, text="body too large")
        try:
            event = await self._verifier.parse(body, request.headers)
        except WebhookVerificationError as exc:
            logger.warning("rejected webhook delivery: %s", exc)
            return web.Response(status=401, text="invalid signature")
        except WebhookPayloadError as exc:
            logger.warning("unreadable webhook delivery: %s", exc)
            return web.Response(status=400, text="not a webhook event")
        except APIError as exc:
            # Our side cannot check it right now; a 5xx makes the sender try again.
            logger.error("cannot verify webhook delivery: %s", exc)
            return web.Response(status=503, text="cannot verify now")
        keys = delivery_keys(event.delivery_id, body)
        if not self._dedup.first_time(*keys):
            return web.Response(status=200, text="duplicate")
        if self._waiter is not None:
            self._waiter.feed(event)
        return await self._dispatch(event, keys)

    async def _dispatch(self, event: WebhookEvent, keys: tuple[str, ...]) -> web.Response:
        if self._on_event is None:
            return web.Response(status=200, text="ok")
        try:
            result = self._on_event(event)
        except RetryDelivery:
            return self._redeliver(keys)
        except Exception:
            logger.exception("webhook callback failed for %s", event.event)
            return web.Response(status=200, text="ok")
        if not inspect.isawaitable(result):
            return web.Response(status=200, text="ok")
        task = asyncio.ensure_future(result)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        try:
            await asyncio.wait({task}, timeout=self._respond_within)
        finally:
            if not task.done():
                # Answer now; the callback keeps running, tracked until shutdown.
                self._background.add(task)
        if not task.done():
            return web.Response(status=202, text="accepted")
        if not task.cancelled() and isinstance(task.exception(), RetryDelivery):
            return self._redeliver(keys)
        return web.Response(status=200, text="ok")

    def _redeliver(self, keys: tuple[str, ...]) -> web.Response:
        self._dedup.forget(*keys)
        return web.Response(status=503, text="redelivery requested")

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        background = task in self._background
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved
        if exc is None:
            return
        if isinstance(exc, RetryDelivery):
            if background:
                logger.warning("RetryDelivery raised after the delivery was acknowledged")
            return
        logger.error("webhook callback failed", exc_info=exc)


def webhook_handler(
    verifier: WebhookVerifier,
    on_event: EventCallback | None = None,
    *,
    waiter: RecordingWaiter | None = None,
    deduplicator: Deduplicator | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_pending: int = DEFAULT_MAX_PENDING,
    respond_within: float = 2.0,
    shutdown_timeout: float = 5.0,
) -> WebhookHandler:
    """A webhook handler for aiohttp.web that verifies, de-duplicates and dispatches deliveries.

    Each new verified event is fed to ``waiter`` (if any), then passed to
    ``on_event``. A coroutine callback runs in a task the handler tracks: the
    answer waits for it at most ``respond_within`` seconds (so a quick callback
    can still raise :class:`RetryDelivery` and get a 503), after which the
    delivery is acknowledged with 202 and the task carries on until
    :meth:`WebhookHandler.close` (wired to app shutdown by
    :meth:`WebhookHandler.setup`), which waits up to ``shutdown_timeout``
    seconds for it before cancelling it. While ``max_pending`` callbacks are
    running, new deliveries are answered 503 unread, so the sender retries
    later. A plain function runs inline and must be quick. Other exceptions from the callback are logged and acknowledged:
    a redelivery would fail the same way.
    """
    check_int("max_body_size", max_body_size, 1)
    check_int("max_pending", max_pending, 1)
    for name, value in (("respond_within", respond_within), ("shutdown_timeout", shutdown_timeout)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValidationError(name, f"must be a number of seconds >= 0, got {value!r}")
    return WebhookHandler(
        verifier,
        on_event,
        waiter=waiter,
        deduplicator=deduplicator if deduplicator is not None else Deduplicator(),
        max_body_size=max_body_size,
        max_pending=max_pending,
        respond_within=float(respond_within),
        shutdown_timeout=float(shutdown_timeout),
    )
