"""Receiving RealtimeKit webhooks: signature checks, typed events, de-duplication, handlers.

RealtimeKit signs the raw body of every delivery with RSA-SHA256 (PKCS#1 v1.5)
and sends the base64 signature in ``rtk-signature`` (``dyte-signature`` from
older senders). Nothing is parsed before its signature checks out. Delivery is
at-least-once and unordered; ``rtk-uuid`` names the event, but it is not
signed, so the handler's :class:`DeduplicationStore` (in memory by default)
keys on it and on a digest of the signed body (a replay with a fresh uuid is
still a duplicate).

Typical use with aiohttp.web::

    verifier = WebhookVerifier(client=client)  # fetches and caches the public key
    handler = webhook_handler(verifier, on_event, waiter=waiter)
    handler.setup(app, "/webhooks")

or in any ASGI server (uvicorn, ...) or framework (Starlette, FastAPI, ...)::

    hooks = WebhookASGIApp(handler)  # an ASGI app; closes the handler on lifespan shutdown
    app.add_route("/webhooks", hooks, methods=["POST"])
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import aiohttp
import attrs
from aiohttp import web
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
    ValidationError,
    WebhookVerificationError,
)
from ._public import publish
from ._sansio import NOT_JSON, redact, try_decode_json, unwrap
from ._transport import TRANSPORT_ERRORS, Classified, classify, read_body
from ._validation import check_int, check_non_negative, check_seconds
from ._webhook_asgi import WebhookASGIApp
from ._webhook_core import (
    CANNOT_DEDUPLICATE,
    DUPLICATE,
    OK,
    REDELIVER,
    TOO_LARGE,
    BodyLimit,
    DeduplicationStore,
    Deduplicator,
    DeliveryHeaders,
    RetryDelivery,
    WebhookAnswer,
    WebhookPayloadError,
    callback_answer,
    delivery_headers,
    delivery_keys,
    rejection,
    screen,
)
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
from ._webhook_waiter import RecordingSnapshot, RecordingWaiter

if TYPE_CHECKING:
    from ._client import RealtimeKit

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_PENDING",
    "PUBLIC_KEY_URL",
    "RECORDING_STATUS_UPDATE",
    "DeduplicationStore",
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
    "WebhookASGIApp",
    "WebhookAnswer",
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
        self._cooldown = check_non_negative("refetch_cooldown", refetch_cooldown)
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


# -- the receiver, and its aiohttp face -------------------------------------------------

#: Called with each new verified event; may be a plain function or a coroutine function.
EventCallback: TypeAlias = Callable[[WebhookEvent], Awaitable[object] | object]

_CHUNK_SIZE: Final = 64 * 1024


class WebhookHandler(AsyncCloseable):
    """Receives webhook deliveries in any web framework; build it with :func:`webhook_handler`.

    :meth:`respond` is the framework-free entry: headers and body chunks in,
    a :class:`WebhookAnswer` out. In aiohttp.web, route ``POST`` requests to
    :meth:`handle`, or let :meth:`setup` do that and also close the handler on
    app shutdown; in any ASGI framework, mount ``WebhookASGIApp(handler)``.
    Otherwise call :meth:`close` (or use ``async with``) on shutdown yourself.

    Answers: 401 missing or bad signature, 413 body too large, 400 not a JSON
    event, 503 when the public key cannot be fetched, the de-duplication store
    fails, the callback raised :class:`RetryDelivery` in time or too many
    callbacks are running, 200 when handled (or a duplicate: same
    ``rtk-uuid`` or same signed body), 202 when the callback is still running
    in the background.
    """

    def __init__(
        self,
        verifier: WebhookVerifier,
        on_event: EventCallback | None,
        *,
        waiter: RecordingWaiter | None,
        deduplicator: DeduplicationStore,
        max_body_size: int,
        max_pending: int,
        respond_within: float,
        shutdown_timeout: float,
    ) -> None:
        self._verifier = verifier
        self._on_event = on_event
        self._waiter = waiter
        self._store = deduplicator
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
        answer = await self.respond(request.headers, request.content.iter_chunked(_CHUNK_SIZE))
        return web.Response(status=answer.status, text=answer.text)

    async def respond(
        self, headers: Mapping[str, str], body: AsyncIterable[bytes]
    ) -> WebhookAnswer:
        """Handle one delivery: its request headers and its body as it arrives, in chunks.

        Nothing is parsed before the signature checks out, and ``body`` is read
        no further than ``max_body_size``. Whatever ``body`` raises (say, the
        sender went away mid-body) propagates, and nothing is remembered.
        """
        early = screen(
            headers,
            pending=len(self._tasks),
            max_pending=self._max_pending,
            max_body_size=self._max_body_size,
        )
        if early is not None:
            return early
        limit = BodyLimit(self._max_body_size)
        async for chunk in body:
            if not limit.feed(chunk):
                return TOO_LARGE
        raw = limit.body
        try:
            event = await self._verifier.parse(raw, headers)
        except (WebhookVerificationError, WebhookPayloadError, APIError) as exc:
            answer = rejection(exc)
            if answer.status >= 500:
                # Our side cannot check it right now; a 5xx makes the sender try again.
                logger.error("cannot verify webhook delivery: %s", exc)
            else:
                logger.warning("rejected webhook delivery: %s", exc)
            return answer
        keys = delivery_keys(event.delivery_id, raw)
        try:
            new = await self._remember(keys)
        except Exception:  # the store is the user's (Redis, ...): any failure means "not now"
            logger.exception("cannot check webhook delivery %s for duplicates", event.delivery_id)
            return CANNOT_DEDUPLICATE
        if not new:
            return DUPLICATE
        if self._waiter is not None:
            self._waiter.feed(event)
        answer = await self._dispatch(event)
        if answer == REDELIVER:
            await self._forget(keys)
        return answer

    async def _remember(self, keys: tuple[str, ...]) -> bool:
        # The body digest goes first: a replay stops there, storing nothing.
        added: list[str] = []
        try:
            for key in keys:
                if not await self._store.add_if_new(key):
                    return False
                added.append(key)
        except BaseException:
            # Half remembered, the 503'd delivery's retry would pass for a duplicate.
            await self._forget(tuple(added))
            raise
        return True

    async def _forget(self, keys: tuple[str, ...]) -> None:
        try:
            for key in keys:
                await self._store.forget(key)
        except Exception:
            logger.exception("cannot forget webhook delivery keys: its redelivery is dropped")

    async def _dispatch(self, event: WebhookEvent) -> WebhookAnswer:
        if self._on_event is None:
            return OK
        try:
            result = self._on_event(event)
        except Exception as exc:
            if not isinstance(exc, RetryDelivery):
                logger.exception("webhook callback failed for %s", event.event)
            return callback_answer(done=True, error=exc)
        if not inspect.isawaitable(result):
            return OK
        task = asyncio.ensure_future(result)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        try:
            await asyncio.wait({task}, timeout=self._respond_within)
        finally:
            if not task.done():
                # Answer now; the callback keeps running, tracked until shutdown.
                self._background.add(task)
        error = task.exception() if task.done() and not task.cancelled() else None
        return callback_answer(done=task.done(), error=error)

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
    deduplicator: DeduplicationStore | None = None,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_pending: int = DEFAULT_MAX_PENDING,
    respond_within: float = 2.0,
    shutdown_timeout: float = 5.0,
) -> WebhookHandler:
    """A webhook handler that verifies, de-duplicates and dispatches deliveries.

    Each new verified event is fed to ``waiter`` (if any), then passed to
    ``on_event``. A coroutine callback runs in a task the handler tracks: the
    answer waits for it at most ``respond_within`` seconds (so a quick callback
    can still raise :class:`RetryDelivery` and get a 503), after which the
    delivery is acknowledged with 202 and the task carries on until
    :meth:`WebhookHandler.close` (wired to app shutdown by
    :meth:`WebhookHandler.setup`), which waits up to ``shutdown_timeout``
    seconds for it before cancelling it. While ``max_pending`` callbacks are
    running, new deliveries are answered 503 unread, so the sender retries
    later. A plain function runs inline and must be quick. Other exceptions
    from the callback are logged and acknowledged: a redelivery would fail the
    same way. ``deduplicator`` is any :class:`DeduplicationStore` (shared by
    replicas, say in Redis); by default an in-memory :class:`Deduplicator`.
    """
    check_int("max_body_size", max_body_size, 1)
    check_int("max_pending", max_pending, 1)
    if deduplicator is not None and not isinstance(deduplicator, DeduplicationStore):
        raise ValidationError(
            "deduplicator",
            f"must have async add_if_new(key) and forget(key), got {type(deduplicator).__name__}",
        )
    check_non_negative("respond_within", respond_within)
    check_non_negative("shutdown_timeout", shutdown_timeout)
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


# Last: the names re-exported from private modules report this module (see _public).
publish(globals(), __all__, module=__name__)
