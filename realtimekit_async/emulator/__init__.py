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

Answers follow the published schema (the SDK's test suite validates every one
against a copy of it); requests the schema rejects (wrong types, values outside
its enums or ranges, nested configs missing a required key such as
``realtimekit_bucket_config.enabled``) answer 400 in the RealtimeKit error
shape. Where the schema and the seed (the older Go SDK reference) differ, the
emulator follows the schema and still accepts the seed's requests:

* start answers 200 (``start_status``);
* track start accepts the current body (``meeting_id``, ``layers`` of
  ``{file_name_prefix, media_kind}``, ``user_ids``) and the seed's
  (``layers.*.outputs[]``, ``max_seconds``), not a mix; it answers
  ``{"data": {"recording": ...}}`` (``track_response="legacy"``: the recording
  in ``data``; ``"none"``: no ``data``, as the seed documents no answer);
* ``stop_reason``/``start_reason`` are objects, left out while unset; caller
  ``user_Id`` is a UUID (the app id, or one derived from it).

Behaviour where the schema leaves room (all configurable on
:class:`Emulator` unless noted):

* a path naming another account answers 403 in Cloudflare's v4 shape (code
  10000, "Authentication error": what a token gets for an account outside its
  scope), another app id 404 in the RealtimeKit shape; a wrong token is 401;
* ``page_no``/``per_page`` are any numbers >= 0 (the schema's only rule):
  fractions are floored, ``page_no`` 0 and 1 both mean the first page,
  ``per_page`` 0 means the default (20, ``default_per_page``), and a
  ``per_page`` above ``max_per_page`` (100) is silently capped to it, as such
  servers do (set ``max_per_page`` low to test a client against capping);
  anything negative or not a number answers 400;
* meeting ids are not checked to be UUIDs (the schema's ``format``), so tests
  may use short ones (the suite's schema check tolerates those ids only);
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
  (7 days) of emulated time;
* rate limits (``rate_limit``, off by default) are layered fixed windows per
  token, in real seconds: a window starts with the first request after the
  last one ended, a refused request counts against no rule, and every API
  answer carries ``Ratelimit``/``Ratelimit-Policy`` with one item per rule
  (``rate_limit_headers``); a spent rule answers 429 with ``Retry-After``, and
  a rule with ``block`` refuses every call for that long.
"""

from ._clock import EmulatedClock
from ._context import EmulatorStats, StorageRequest
from ._emulator import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_APP_ID,
    DEFAULT_TOKEN,
    DEFAULT_WEBHOOK_STATUSES,
    Emulator,
    serve,
)
from ._faults import (
    CLOUDFLARE_GLOBAL_RATE_LIMIT,
    CLOUDFLARE_RATE_LIMITS,
    FAULT_KINDS,
    FaultConfig,
    RateLimitRule,
    WindowRecord,
)
from ._storage import expected_file_bytes, expected_file_sha256, iter_file_bytes
from ._webhooks import WebhookDelivery, WebhookFaults, verify_webhook_signature

__all__ = [
    "CLOUDFLARE_GLOBAL_RATE_LIMIT",
    "CLOUDFLARE_RATE_LIMITS",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_APP_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_WEBHOOK_STATUSES",
    "EmulatedClock",
    "Emulator",
    "EmulatorStats",
    "FAULT_KINDS",
    "FaultConfig",
    "RateLimitRule",
    "StorageRequest",
    "WebhookDelivery",
    "WebhookFaults",
    "WindowRecord",
    "expected_file_bytes",
    "expected_file_sha256",
    "iter_file_bytes",
    "serve",
    "verify_webhook_signature",
]
