"""The :class:`Emulator` facade: wires state, both sites, webhooks and the ticker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from ._app import WELL_KNOWN_PATH, build_api_app
from ._clock import EmulatedClock
from ._context import (
    TRACK_RESPONSES,
    EmulatorContext,
    EmulatorStats,
    StorageRequest,
    TrackResponse,
)
from ._faults import (
    FaultConfig,
    FaultSchedule,
    RateLimiter,
    RateLimitRule,
    WindowRecord,
    to_rules,
)
from ._http import API_PREFIX, RATE_LIMIT_HEADER_STYLES
from ._parsing import STATUSES
from ._seed import generate_seed_data
from ._serialize import View, recording_json
from ._signing import UrlSigner
from ._state import LifecycleConfig, Meeting, Recording, RecordingStore
from ._storage import build_storage_app, file_size_for
from ._util import caller_id, datetime_to_ms
from ._webhooks import (
    WebhookDelivery,
    WebhookFaults,
    WebhookSender,
    build_status_payload,
    default_private_key,
    generate_private_key,
    public_key_pem,
)

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_APP_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_WEBHOOK_STATUSES",
    "Emulator",
    "describe",
    "serve",
]

DEFAULT_TOKEN: Final = "rtk-emulator-token"
DEFAULT_ACCOUNT_ID: Final = "0e3a1c5b7d9f42e68a0b1c2d3e4f5a6b"
DEFAULT_APP_ID: Final = "9c2f6e1a-3b4d-4e5f-8a7b-6c5d4e3f2a1b"
DEFAULT_WEBHOOK_STATUSES: Final = ("RECORDING", "UPLOADING", "UPLOADED", "ERRORED")


class Emulator:
    """A local RealtimeKit Recordings API, storage host and webhook sender.

    Use ``async with Emulator(...) as emu:``; both sites bind ``host`` on
    ephemeral ports by default (``port``, ``storage_port``). It has one account
    (``account_id``) with one app (``app_id``), as a real token's scope would:
    another account id answers 403 (Cloudflare's "Authentication error", code
    10000) and another app id 404, so a misconfigured client fails here as it
    would in production.

    Options, by group:

    * identity: ``token``, ``account_id``, ``app_id``, ``app_name`` (the caller
      name in ``start_reason``);
    * data: ``recordings`` seeded over ``meetings`` (default one per 5) from
      ``seed``, which also seeds new ids, URL signing and webhook uuids;
    * time: ``speed`` (emulated s per real s; 0 freezes the clock so only
      :meth:`advance` moves it), ``start_time`` (default: now), ``start_delay``
      (2), ``upload_delay`` (3), ``min_duration`` (5), ``url_ttl`` (7 days) --
      all emulated seconds; ``tick_interval`` is the ticker's real period;
    * API behaviour: ``bytes_per_second``, ``default_per_page`` (20, also for
      ``per_page=0``), ``max_per_page`` (100; a larger ``per_page`` is silently
      capped to it), ``auto_create_meetings``, ``auto_stop_reason``,
      ``start_status`` (200), ``track_response`` (``"current"``:
      ``data.recording``; ``"legacy"``: the recording in ``data``; ``"none"``: no
      ``data``), ``extra_fields`` (add unknown JSON keys),
      ``public_key_literal_newlines``;
    * network: ``faults`` (:class:`FaultConfig`), ``latency`` (real seconds);
    * rate limits, per token, in real seconds: ``rate_limit`` (one or several
      :class:`RateLimitRule`, all enforced; ``(n, seconds)`` is one rule; default
      none; ``CLOUDFLARE_RATE_LIMITS`` are the documented ones),
      ``rate_limit_headers`` (``"ietf"``: ``Ratelimit``/``Ratelimit-Policy``,
      ``"legacy"``: ``X-RateLimit-*``, ``"none"``);
    * webhooks: ``webhook_urls``, ``webhook_statuses``, ``legacy_headers``
      (``dyte-*``), ``webhook_private_key`` (default: one 2048-bit key per
      process), ``webhook_faults`` (:class:`WebhookFaults`),
      ``webhook_max_attempts`` (5), ``webhook_backoff`` (1 emulated s, doubled
      per attempt), ``webhook_timeout`` (10 real s).

    Raises ValueError for invalid options.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_port: int = 0,
        token: str = DEFAULT_TOKEN,
        account_id: str = DEFAULT_ACCOUNT_ID,
        app_id: str = DEFAULT_APP_ID,
        app_name: str = "emulator-app",
        seed: int = 0,
        recordings: int = 0,
        meetings: int | None = None,
        speed: float = 1.0,
        start_time: datetime | None = None,
        start_delay: float = 2.0,
        upload_delay: float = 3.0,
        min_duration: float = 5.0,
        url_ttl: float = 7 * 86400.0,
        bytes_per_second: int = 8192,
        default_per_page: int = 20,
        max_per_page: int = 100,
        auto_create_meetings: bool = True,
        auto_stop_reason: str = "ALL_PEERS_LEFT",
        start_status: int = 200,
        track_response: TrackResponse = "current",
        extra_fields: bool = False,
        public_key_literal_newlines: bool = False,
        faults: FaultConfig | None = None,
        rate_limit: RateLimitRule | Sequence[RateLimitRule] | tuple[int, float] | None = None,
        rate_limit_headers: str = "ietf",
        latency: float = 0.0,
        webhook_urls: Sequence[str] = (),
        webhook_faults: WebhookFaults | None = None,
        legacy_headers: bool = False,
        webhook_private_key: rsa.RSAPrivateKey | None = None,
        webhook_statuses: Sequence[str] = DEFAULT_WEBHOOK_STATUSES,
        webhook_max_attempts: int = 5,
        webhook_backoff: float = 1.0,
        webhook_timeout: float = 10.0,
        tick_interval: float = 0.05,
    ) -> None:
        if not 1 <= default_per_page <= max_per_page:
            raise ValueError("need 1 <= default_per_page <= max_per_page")
        if track_response not in TRACK_RESPONSES:
            raise ValueError(f"track_response must be one of {', '.join(TRACK_RESPONSES)}")
        unknown = set(webhook_statuses) - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown webhook statuses {sorted(unknown)}")
        if rate_limit_headers not in RATE_LIMIT_HEADER_STYLES:
            raise ValueError(f"rate_limit_headers must be one of {RATE_LIMIT_HEADER_STYLES}")
        rules = to_rules(rate_limit)
        if isinstance(webhook_urls, str):
            raise ValueError("webhook_urls must be a sequence of URLs, not one string")
        self.host = host
        self.token = token
        self.account_id = account_id
        self.app_id = app_id
        self.app_name = app_name
        self.seed = seed
        self._port = port
        self._storage_port = storage_port
        start = start_time or datetime.now(UTC)
        self.clock = EmulatedClock(datetime_to_ms(start), speed)
        self.config = LifecycleConfig(
            start_delay=start_delay,
            upload_delay=upload_delay,
            min_duration=min_duration,
            url_ttl=url_ttl,
            bytes_per_second=bytes_per_second,
            auto_stop_reason=auto_stop_reason,
            default_per_page=default_per_page,
            max_per_page=max_per_page,
            auto_create_meetings=auto_create_meetings,
        )
        caller = {"name": app_name, "type": "ORGANIZATION", "user_Id": caller_id(app_id)}
        self.store = RecordingStore(
            self.clock,
            self.config,
            ids_rng=random.Random(f"rtk-emulator-ids:{seed}"),
            caller=caller,
        )
        if recordings or meetings:
            seeded = generate_seed_data(
                seed=seed,
                recordings=recordings,
                meetings=meetings,
                now_ms=self.clock.now_ms(),
                config=self.config,
                caller=caller,
            )
            self.store.load(*seeded)
        self._private_key = webhook_private_key or default_private_key()
        secret = hashlib.sha256(f"rtk-emulator-url-secret:{seed}".encode()).digest()
        self._ctx = EmulatorContext(
            store=self.store,
            clock=self.clock,
            signer=UrlSigner(secret),
            token=token,
            account_id=account_id,
            app_id=app_id,
            public_key_pem=lambda: self.webhook_public_key_pem,
            faults=FaultSchedule(faults) if faults is not None else None,
            rate_limiter=RateLimiter(rules) if rules else None,
            rate_limit_headers=rate_limit_headers,
            latency=latency,
            extra_fields=extra_fields,
            start_status=start_status,
            track_response=track_response,
            public_key_literal_newlines=public_key_literal_newlines,
            ray_prefix=random.Random(seed).getrandbits(40) << 20,
        )
        self._webhook_statuses = frozenset(webhook_statuses)
        self._sender = WebhookSender(
            webhook_urls,
            key=lambda: self._private_key,
            clock=self.clock,
            seed=seed,
            legacy_headers=legacy_headers,
            faults=webhook_faults,
            max_attempts=webhook_max_attempts,
            backoff=webhook_backoff,
            timeout=webhook_timeout,
        )
        self.store.add_listener(self._on_status_change)
        self._tick_interval = tick_interval
        self._runners: list[web.AppRunner] = []
        self._ticker: asyncio.Task[None] | None = None
        self._api_origin: str | None = None
        self._storage_origin: str | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind both sites, open the webhook session and start the ticker."""
        if self._runners:
            raise RuntimeError("emulator already started")
        try:
            self._api_origin = await self._serve(build_api_app(self._ctx), self._port)
            self._storage_origin = await self._serve(
                build_storage_app(self._ctx), self._storage_port
            )
            self._ctx.signer.base_url = self._storage_origin
            await self._sender.start()
        except BaseException:
            await self.close()
            raise
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _serve(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.host, port)
        await site.start()
        bound = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{bound}"

    async def close(self) -> None:
        """Stop the ticker, cancel webhook deliveries, close both sites. Idempotent."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self._sender.close()
        while self._runners:
            await self._runners.pop().cleanup()

    async def _tick(self) -> None:
        # Drives transitions without client polling, so webhooks fire on time.
        while True:
            self.store.run_due()
            delay = self._tick_interval
            due = self.store.next_due_ms()
            if due is not None and self.clock.speed > 0:
                until = (due - self.clock.now_ms()) / 1000 / self.clock.speed
                delay = min(delay, max(0.001, until))
            await asyncio.sleep(delay)

    def _on_status_change(self, rec: Recording, meeting: Meeting) -> None:
        if rec.status not in self._webhook_statuses or not self._sender.urls:
            return
        payload = build_status_payload(
            rec,
            meeting,
            url_for=self._ctx.signer.url_for,
            organization_id=self.app_id,
            organization_name=self.app_name,
        )
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._sender.submit("recording.statusUpdate", rec.id, rec.status, body)

    # -- addresses --------------------------------------------------------------------

    def _need(self, origin: str | None) -> str:
        if origin is None:
            raise RuntimeError("emulator not started; use 'async with Emulator() as emu'")
        return origin

    @property
    def api_origin(self) -> str:
        """``http://host:port`` of the API site."""
        return self._need(self._api_origin)

    @property
    def base_url(self) -> str:
        """API base URL, ending in ``/client/v4`` (like ``https://api.cloudflare.com/client/v4``)."""
        return self.api_origin + API_PREFIX

    @property
    def recordings_url(self) -> str:
        """Full URL of the recordings collection for the default account and app."""
        return f"{self.base_url}/accounts/{self.account_id}/realtime/kit/{self.app_id}/recordings"

    @property
    def storage_url(self) -> str:
        """``http://host:port`` of the storage (download) site, a different origin."""
        return self._need(self._storage_origin)

    @property
    def webhook_keys_url(self) -> str:
        """URL serving ``{"success": true, "data": {"publicKey": PEM}}``."""
        return self.api_origin + WELL_KNOWN_PATH

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        """Where status changes are delivered as signed webhooks."""
        return tuple(self._sender.urls)

    # -- state and observation --------------------------------------------------------

    @property
    def stats(self) -> EmulatorStats:
        """Request, status, fault and start counters."""
        return self._ctx.stats

    def reset_stats(self) -> None:
        """Zero all counters (and forget recorded storage requests)."""
        self._ctx.stats = EmulatorStats()
        self._ctx.storage_requests.clear()

    def rate_limit_windows(self, token: str | None = None) -> dict[str, list[WindowRecord]]:
        """Every rate-limit window so far per rule name, for ``token`` (default: ``self.token``)."""
        limiter = self._ctx.rate_limiter
        if limiter is None:
            return {}
        key = self.token if token is None else token
        return {
            rule.name: list(limiter.windows.get((key, rule.name), [])) for rule in limiter.rules
        }

    @property
    def storage_requests(self) -> list[StorageRequest]:
        """Every request the storage site received, with its headers."""
        return self._ctx.storage_requests

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook attempt (and dropped delivery), in completion order."""
        return self._sender.deliveries

    def webhook_id(self, url: str) -> str:
        """The ``rtk-webhook-id`` used for deliveries to ``url``. Raises KeyError."""
        return self._sender.webhook_id(url)

    async def wait_for_webhooks(self, max_wait: float = 5.0) -> None:
        """Wait until no webhook delivery is in flight. Raises TimeoutError."""
        await self._sender.drain(max_wait)

    @property
    def faults(self) -> FaultConfig | None:
        """The active fault configuration; assigning restarts its schedule."""
        schedule = self._ctx.faults
        return schedule.config if schedule is not None else None

    @faults.setter
    def faults(self, config: FaultConfig | None) -> None:
        self._ctx.faults = FaultSchedule(config) if config is not None else None

    @property
    def webhook_public_key_pem(self) -> str:
        """PEM of the current webhook signing key's public half."""
        return public_key_pem(self._private_key)

    def rotate_webhook_key(self, key: rsa.RSAPrivateKey | None = None) -> str:
        """Switch to a new (or the given) signing key; returns the new public PEM."""
        self._private_key = key or generate_private_key()
        return self.webhook_public_key_pem

    # -- time and test hooks ----------------------------------------------------------

    def now(self) -> datetime:
        """Current emulated time (aware UTC)."""
        return self.clock.now()

    def advance(self, seconds: float) -> int:
        """Jump emulated time forward and apply due transitions; returns how many."""
        self.clock.advance(seconds)
        return self.store.run_due()

    def add_meeting(
        self, meeting_id: str | None = None, *, title: str | None = None, status: str = "ACTIVE"
    ) -> str:
        """Create (or replace) a meeting; returns its id."""
        mid = meeting_id or self.store.new_id()
        now = self.clock.now_ms()
        self.store.add_meeting(Meeting(mid, title or f"Meeting {mid[:8]}", now, now, status))
        return mid

    def set_file_size(self, recording_id: str, size: int) -> None:
        """Make a recording's video file ``size`` bytes (served lazily, never in memory).

        Applies now if uploaded, else when the upload finishes. Raises KeyError.
        """
        self.store.set_file_size(recording_id, size)

    def file_size(self, recording_id: str, kind: str = "video") -> int | None:
        """Size the storage site serves for a file, or None if it has no such file."""
        return file_size_for(self._ctx, recording_id, kind)

    def download_url(self, recording_id: str, kind: str = "video") -> str | None:
        """The presigned URL the API would return for this file, or None. Raises KeyError."""
        data = self.recording_json(recording_id)
        url: str | None = data["download_url" if kind == "video" else "audio_download_url"]
        return url

    def recording_json(self, recording_id: str, view: View = "detail") -> dict[str, Any]:
        """The JSON the API would return for a recording right now. Raises KeyError."""
        self.store.run_due()
        rec = self.store.recordings[recording_id]
        return recording_json(
            rec,
            self.store.meetings[rec.meeting_id],
            view=view,
            url_for=self._ctx.signer.url_for,
            extra_fields=self._ctx.extra_fields,
        )


def describe(emu: Emulator) -> list[str]:
    """What ``realtimekit emulator`` prints: the addresses, the identity, and shell exports."""
    lines = [
        f"RealtimeKit emulator API:     {emu.base_url}",
        f"  storage (downloads):        {emu.storage_url}",
        f"  webhook public key:         {emu.webhook_keys_url}",
        f"  token:                      {emu.token}",
        f"  account_id:                 {emu.account_id}",
        f"  app_id:                     {emu.app_id}",
        f"  recordings:                 {len(emu.store.recordings)}",
    ]
    lines += [f"  webhooks to:                {url}" for url in emu.webhook_urls]
    lines += [
        "",
        "Point the SDK and the CLI at it (POSIX shell):",
        f"  export REALTIMEKIT_BASE_URL={emu.base_url}",
        f"  export CLOUDFLARE_API_TOKEN={emu.token}",
        f"  export CLOUDFLARE_ACCOUNT_ID={emu.account_id}",
        f"  export REALTIMEKIT_APP_ID={emu.app_id}",
    ]
    return lines


async def serve(
    host: str = "127.0.0.1",
    port: int = 8788,
    *,
    announce: Callable[[str], None] = print,
    **options: Any,
) -> None:
    """Run an emulator until cancelled, announcing its URLs and token.

    ``options`` are :class:`Emulator` keyword arguments (``recordings``, ``seed``,
    ``speed``, ``faults``...). This is what ``realtimekit emulator`` runs.
    """
    async with Emulator(host=host, port=port, **options) as emu:
        for line in describe(emu):
            announce(line)
        await asyncio.Event().wait()
