"""A local emulator of the Cloudflare RealtimeKit Recordings API, for tests and demos.

It is an independent oracle: it shares no code with the SDK. One
:class:`Emulator` runs two aiohttp sites on 127.0.0.1:

* the API (``emu.base_url`` = ``http://127.0.0.1:{port}/client/v4``) with the six
  Recordings endpoints under ``/accounts/{account_id}/realtime/kit/{app_id}/recordings``
  for one account (``emu.account_id``) and one app (``emu.app_id``), Bearer auth
  with ``emu.token``, and ``/.well-known/webhooks.json`` on the origin root;
* a storage host on another port serving presigned download URLs
  ``/files/{recording_id}/{video|audio}?X-Expires={epoch}&X-Signature={hmac}``
  with HTTP Range support.

Recordings move INVOKED -> RECORDING -> (PAUSED) -> UPLOADING -> UPLOADED/ERRORED
on an emulated clock (``speed``; ``emu.advance(seconds)``), faults are injected
deterministically (:class:`FaultConfig`), and status changes are delivered as
signed ``recording.statusUpdate`` webhooks (:class:`WebhookFaults`).

Example::

    async with Emulator(recordings=50, speed=0) as emu:
        headers = {"Authorization": f"Bearer {emu.token}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(emu.recordings_url, headers=headers) as r:
                page = await r.json()

For pytest, see :mod:`realtimekit_async.emulator.pytest_plugin`.

Behaviour where the public reference leaves room (all configurable on
:class:`Emulator` unless noted):

* a path naming another account answers 403 in Cloudflare's v4 shape (code
  10000, "Authentication error": what a token gets for an account outside its
  scope), another app id 404 in the RealtimeKit shape; a wrong token is 401;

* start answers 201 (``start_status``); track start answers 200;
* ``per_page`` defaults to 20, maximum 100 (``default_per_page``,
  ``max_per_page``); ``page_no``/``per_page`` accept integral numbers ("2.0");
* ``paging`` offsets are 1-based and inclusive with ``end_offset - start_offset
  + 1 == len(data)``: an empty page has ``end_offset == start_offset - 1``;
* ``expired`` only matches recordings that have a ``download_url_expiry``;
* list items carry ``storage_config`` only when set; single-recording views
  always carry it (null when unset); the active-recording view is the bare
  recording, as in the reference;
* reaching ``max_seconds`` of recorded time (pauses excluded) stops with
  ``stop_reason {"reason": "ALL_PEERS_LEFT"}`` and no caller
  (``auto_stop_reason``); a stop with under ``min_duration`` (5 s) recorded,
  including a stop while INVOKED, goes straight to ERRORED;
* only one INVOKED/RECORDING/PAUSED recording per meeting and kind (composite
  or track) unless ``allow_multiple_recordings``; unknown meetings are created
  on first start (``auto_create_meetings``); INACTIVE meetings answer 400;
* files: video size = ``recording_duration * bytes_per_second`` (8192) plus a
  per-id remainder; the audio file is an eighth of that; URLs live ``url_ttl``
  (7 days) of emulated time.
"""

from ._clock import EmulatedClock
from ._context import EmulatorStats, StorageRequest
from ._emulator import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_APP_ID,
    DEFAULT_TOKEN,
    DEFAULT_WEBHOOK_STATUSES,
    Emulator,
    describe,
    serve,
)
from ._faults import FAULT_KINDS, FaultConfig, FaultSchedule, RateLimiter
from ._state import (
    LifecycleConfig,
    ListQuery,
    PageWindow,
    RecordingStore,
    check_action,
    compute_file_size,
    page_window,
    parse_list_query,
)
from ._storage import (
    RangeNotSatisfiableError,
    UrlSigner,
    expected_file_bytes,
    expected_file_sha256,
    iter_file_bytes,
    parse_range,
)
from ._util import ApiError
from ._webhooks import (
    WebhookDelivery,
    WebhookFaults,
    build_status_payload,
    verify_webhook_signature,
)

__all__ = [
    "ApiError",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_APP_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_WEBHOOK_STATUSES",
    "EmulatedClock",
    "Emulator",
    "EmulatorStats",
    "FAULT_KINDS",
    "FaultConfig",
    "FaultSchedule",
    "LifecycleConfig",
    "ListQuery",
    "PageWindow",
    "RangeNotSatisfiableError",
    "RateLimiter",
    "RecordingStore",
    "StorageRequest",
    "UrlSigner",
    "WebhookDelivery",
    "WebhookFaults",
    "build_status_payload",
    "check_action",
    "compute_file_size",
    "describe",
    "expected_file_bytes",
    "expected_file_sha256",
    "iter_file_bytes",
    "page_window",
    "parse_list_query",
    "parse_range",
    "serve",
    "verify_webhook_signature",
]
