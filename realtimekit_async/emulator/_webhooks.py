"""Webhook sender: signed ``recording.statusUpdate`` deliveries with retries and faults."""

from __future__ import annotations

import asyncio
import base64
import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ._clock import EmulatedClock
from ._serialize import UrlFor, download_urls
from ._state import Meeting, Recording
from ._util import format_ms, new_uuid

__all__ = [
    "WebhookDelivery",
    "WebhookFaults",
    "WebhookSender",
    "build_status_payload",
    "default_private_key",
    "generate_private_key",
    "public_key_pem",
    "sign_body",
    "signed_headers",
    "verify_webhook_signature",
]


def generate_private_key(key_size: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key (2048 bits take ~0.1 s)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


@functools.cache
def default_private_key() -> rsa.RSAPrivateKey:
    """A per-process key shared by emulators that were not given one (keeps tests fast)."""
    return generate_private_key()


def public_key_pem(key: rsa.RSAPrivateKey) -> str:
    """SubjectPublicKeyInfo PEM of the key's public half."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign_body(key: rsa.RSAPrivateKey, body: bytes) -> str:
    """Base64 RSA-SHA256 (PKCS#1 v1.5) signature of the exact body bytes."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_headers(
    key: rsa.RSAPrivateKey, body: bytes, *, delivery_id: str, webhook_id: str, legacy: bool
) -> dict[str, str]:
    """The headers RealtimeKit sends with ``body``: its JSON type, signature and ids.

    ``legacy`` uses the Dyte-era ``dyte-*`` names instead of ``rtk-*``.
    """
    prefix = "dyte" if legacy else "rtk"
    return {
        "Content-Type": "application/json",
        f"{prefix}-signature": sign_body(key, body),
        f"{prefix}-uuid": delivery_id,
        f"{prefix}-webhook-id": webhook_id,
    }


def verify_webhook_signature(public_key: str | bytes, body: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``body`` under the PEM public key."""
    pem = public_key.encode() if isinstance(public_key, str) else public_key
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _track_urls(rec: Recording, video: str) -> list[dict[str, Any]]:
    layers = rec.layers or {}
    return [
        {"layer_name": name, "download_urls": {f"{name}.mp4": {"download_url": video}}}
        for name, layer in layers.items()
        if any(o.get("type") == "REALTIMEKIT_BUCKET" for o in layer.get("outputs", []))
    ]


def build_status_payload(
    rec: Recording,
    meeting: Meeting,
    *,
    url_for: UrlFor,
    organization_id: str,
    organization_name: str,
) -> dict[str, Any]:
    """The camelCase ``recording.statusUpdate`` body for the recording's current state.

    ``fileSize`` is a string (or null). For track recordings ``downloadUrl`` is a
    list of ``{layer_name, download_urls: {file: {download_url}}}``.
    """
    video, audio = download_urls(rec, url_for)
    download: Any = video
    if video is not None and rec.kind == "track":
        download = _track_urls(rec, video)
    live = meeting.live_session_id is not None
    return {
        "event": "recording.statusUpdate",
        "recording": {
            "id": rec.id,
            "recordingId": rec.id,
            "status": rec.status,
            "downloadUrl": download,
            "audioDownloadUrl": audio,
            "downloadUrlExpiry": format_ms(rec.expiry_ms) if video else None,
            "startedTime": format_ms(rec.started_ms),
            "stoppedTime": format_ms(rec.stopped_ms),
            "fileSize": None if rec.file_size is None else str(rec.file_size),
            "outputFileName": rec.output_file_name,
            "meetingId": meeting.id,
            "recordingDuration": rec.duration_s,
            "organizationId": organization_id,
            "roomUUID": meeting.id,
        },
        "meeting": {
            "id": meeting.id,
            "sessionId": rec.session_id,
            "title": meeting.title,
            "roomName": "room-" + meeting.id[:8],
            "status": "LIVE" if live else "ENDED",
            "createdAt": format_ms(meeting.created_ms),
            "startedAt": format_ms(meeting.session_started_ms),
            "endedAt": None if live else format_ms(meeting.session_ended_ms),
            "organizedBy": {"id": organization_id, "name": organization_name},
        },
    }


def _check_probability(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1]")


@attrs.frozen
class WebhookFaults:
    """Seeded delivery faults: duplicate (same uuid), drop, or delay (reordering).

    A delayed delivery waits ``delay_seconds`` real seconds before its first
    attempt, so deliveries of later status changes overtake it. Raises ValueError
    for probabilities outside [0, 1].
    """

    seed: int = 0
    duplicate_rate: float = attrs.field(default=0.0, validator=_check_probability)
    drop_rate: float = attrs.field(default=0.0, validator=_check_probability)
    delay_rate: float = attrs.field(default=0.0, validator=_check_probability)
    delay_seconds: float = 0.2


@attrs.define
class WebhookDelivery:
    """One delivery attempt (or a dropped delivery) and what the receiver answered.

    ``status_code`` is None for network errors (``error`` says which) and for
    dropped deliveries, which were never sent.
    """

    url: str
    event: str
    uuid: str
    webhook_id: str
    recording_id: str
    recording_status: str
    attempt: int
    status_code: int | None
    error: str | None = None
    dropped: bool = False
    duplicate: bool = False
    delayed: bool = False
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)


class WebhookSender:
    """Delivers signed webhook bodies to every URL, asynchronously and at-least-once.

    Retries network errors and 5xx answers with exponential backoff in emulated
    seconds (``backoff * 2**(attempt-1)``, scaled by the clock speed) up to
    ``max_attempts``; other answers end the delivery. Each attempt re-signs with
    the current key (so a rotation affects retries) and keeps its uuid.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        key: Callable[[], rsa.RSAPrivateKey],
        clock: EmulatedClock,
        seed: int = 0,
        legacy_headers: bool = False,
        faults: WebhookFaults | None = None,
        max_attempts: int = 5,
        backoff: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.urls = tuple(urls)
        self.deliveries: list[WebhookDelivery] = []
        self._key = key
        self._clock = clock
        self._ids = random.Random(f"rtk-emulator-webhooks:{seed}")
        self._webhook_ids = {url: new_uuid(self._ids) for url in self.urls}
        self._legacy = legacy_headers
        self._faults = faults or WebhookFaults()
        self._fault_rng = random.Random(self._faults.seed)
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def webhook_id(self, url: str) -> str:
        """The stable id of the webhook subscription for ``url``."""
        return self._webhook_ids[url]

    async def start(self) -> None:
        """Open the HTTP session (needs the running loop)."""
        if self.urls and self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )

    def submit(self, event: str, recording_id: str, status: str, body: bytes) -> None:
        """Schedule delivery of ``body`` to every URL; never blocks the caller."""
        if self._session is None:
            return
        faults = self._faults
        for url in self.urls:
            uuid = new_uuid(self._ids)
            meta = WebhookDelivery(
                url=url,
                event=event,
                uuid=uuid,
                webhook_id=self._webhook_ids[url],
                recording_id=recording_id,
                recording_status=status,
                attempt=0,
                status_code=None,
                body=body,
            )
            rng = self._fault_rng
            # One draw per fault type and delivery keeps the sequence seed-stable.
            dropped = rng.random() < faults.drop_rate
            duplicate = rng.random() < faults.duplicate_rate
            delayed = rng.random() < faults.delay_rate
            if dropped:
                self.deliveries.append(attrs.evolve(meta, dropped=True))
                continue
            task = asyncio.get_running_loop().create_task(
                self._deliver(meta, copies=2 if duplicate else 1, delayed=delayed)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _headers(self, meta: WebhookDelivery) -> dict[str, str]:
        signed = signed_headers(
            self._key(),
            meta.body,
            delivery_id=meta.uuid,
            webhook_id=meta.webhook_id,
            legacy=self._legacy,
        )
        return {"User-Agent": "realtimekit-emulator-webhooks/1", **signed}

    async def _deliver(self, meta: WebhookDelivery, *, copies: int, delayed: bool) -> None:
        if delayed:
            await asyncio.sleep(self._faults.delay_seconds)
        for copy in range(copies):
            await self._attempts(attrs.evolve(meta, duplicate=copy > 0, delayed=delayed))

    async def _attempts(self, meta: WebhookDelivery) -> None:
        assert self._session is not None
        for attempt in range(1, self._max_attempts + 1):
            headers = self._headers(meta)
            code: int | None = None
            error: str | None = None
            try:
                async with self._session.post(
                    meta.url, data=meta.body, headers=headers, allow_redirects=False
                ) as resp:
                    await resp.read()
                    code = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            self.deliveries.append(
                attrs.evolve(meta, attempt=attempt, status_code=code, error=error, headers=headers)
            )
            if code is not None and code < 500:
                return
            if attempt < self._max_attempts:
                delay = self._backoff * 2 ** (attempt - 1)
                await asyncio.sleep(self._clock.to_real_seconds(delay))

    @property
    def pending(self) -> int:
        """Deliveries still in flight (including their retries)."""
        return len(self._tasks)

    async def drain(self, max_wait: float = 5.0) -> None:
        """Wait until every scheduled delivery finished. Raises TimeoutError."""
        async with asyncio.timeout(max_wait):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel in-flight deliveries and close the HTTP session."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
