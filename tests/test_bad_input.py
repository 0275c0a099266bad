"""What bad input gets, at every public entry point: the rows of the docs' "Bad input" table.

Every row is a test: the exception type and its exact message (or, for the
webhook handler, the HTTP answer; for the CLI, exit code 2 and one line). The
table in docs/bad-input.md is rendered from these rows and checked against
them (:func:`test_the_documented_table_is_these_rows`), so they cannot drift apart.
Regenerate it with ``python -m tests.test_bad_input``.

Argument checks happen before anything is sent: the client here points at a
port nothing listens on, so any request would fail with ``APIConnectionError``
instead of the expected error.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from realtimekit_async import (
    AudioConfig,
    Hooks,
    RateLimit,
    RateLimits,
    RealtimeKit,
    RecordingWaiter,
    RetryPolicy,
    StorageConfig,
    TrackOutput,
    ValidationError,
)
from realtimekit_async._cli import main
from realtimekit_async.export import export_one, export_recordings, sync_recordings
from realtimekit_async.webhooks import Deduplicator, WebhookVerifier, webhook_handler

from ._webhook_support import encode, public_pem, signed_headers, status_update

DOC: Path = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"
NOWHERE = "http://127.0.0.1:9/client/v4"
# Flags that get a command past argument parsing (the URL is never reached).
CONNECTION = ["--api-token", "t", "--account-id", "a", "--app-id", "b", "--base-url", NOWHERE]
ENV = (
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_ACCOUNT_ID",
    "REALTIMEKIT_APP_ID",
    "REALTIMEKIT_BASE_URL",
)
AUTH: dict[str, Any] = {"api_token": "t", "account_id": "acc", "app_id": "app", "base_url": NOWHERE}
STATUSES = "'INVOKED', 'RECORDING', 'UPLOADING', 'UPLOADED', 'ERRORED', 'PAUSED'"
NAIVE = datetime(2025, 1, 1)
JAN_1, JAN_2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC)


@attrs.frozen
class Row:
    entry: str  #: the entry point, as the table shows it
    bad: str  #: the bad input, as the table shows it
    call: Callable[[RealtimeKit], Any]  #: does it (may return an awaitable)
    message: str  #: the exact str() of the ValidationError

    @property
    def id(self) -> str:
        return f"{self.entry} {self.bad}"


def _client(**kwargs: Any) -> Callable[[RealtimeKit], Any]:
    return lambda _c: RealtimeKit(**kwargs)


ROWS: list[Row] = [
    # -- the client ----------------------------------------------------------------------
    Row(
        "RealtimeKit(...)",
        "no `api_token` and no `CLOUDFLARE_API_TOKEN`",
        _client(account_id="a"),
        "api_token: missing: pass api_token= or set CLOUDFLARE_API_TOKEN",
    ),
    Row(
        "RealtimeKit(...)",
        "no `account_id` and no `CLOUDFLARE_ACCOUNT_ID`",
        _client(api_token="t"),
        "account_id: missing: pass account_id= or set CLOUDFLARE_ACCOUNT_ID",
    ),
    Row(
        "RealtimeKit(...)",
        '`api_token="t\\r\\nX-Injected: 1"`',
        _client(**{**AUTH, "api_token": "t\r\nX-Injected: 1"}),
        "api_token: must be visible ASCII without spaces, tabs or line breaks (it is sent in a header)",
    ),
    Row(
        "RealtimeKit(...)",
        '`app_id=" "`',
        _client(api_token="t", account_id="a", app_id=" "),
        "app_id: must be a non-empty string",
    ),
    Row(
        "RealtimeKit(...)",
        '`base_url="ftp://x"`',
        _client(**{**AUTH, "base_url": "ftp://x"}),
        "base_url: must be an http(s) URL, got 'ftp://x'",
    ),
    Row(
        "RealtimeKit(...)",
        '`base_url="https://x\\n/"`',
        _client(**{**AUTH, "base_url": "https://x\n/"}),
        "base_url: must be printable text without spaces, tabs or line breaks (it is sent in a header)",
    ),
    Row(
        "RealtimeKit(...)",
        '`base_url="https://x/?a=1"`',
        _client(**{**AUTH, "base_url": "https://x/?a=1"}),
        "base_url: must not carry a query or fragment",
    ),
    Row(
        "RealtimeKit(...)",
        "`timeout=0`",
        _client(**AUTH, timeout=0),
        "timeout: must be a positive number of seconds, got 0",
    ),
    Row(
        "RealtimeKit(...)",
        "`max_retries=-1`",
        _client(**AUTH, max_retries=-1),
        "max_retries: must be an integer >= 0, got -1",
    ),
    Row(
        "RealtimeKit(...)",
        "`max_retries=True`",
        _client(**AUTH, max_retries=True),
        "max_retries: must be an integer >= 0, got True",
    ),
    Row(
        "RealtimeKit(...)",
        "`max_concurrency=0`",
        _client(**AUTH, max_concurrency=0),
        "max_concurrency: must be an integer >= 1, got 0",
    ),
    Row(
        "RealtimeKit(...)",
        "`max_response_size=0`",
        _client(**AUTH, max_response_size=0),
        "max_response_size: must be an integer >= 1, got 0",
    ),
    Row(
        "RateLimit(...)",
        "`max_requests=0`",
        lambda _c: RateLimit(max_requests=0, period=60),
        "rate_limit.max_requests: must be an integer >= 1, got 0",
    ),
    Row(
        "RateLimit(...)",
        "`period=0`",
        lambda _c: RateLimit(max_requests=10, period=0),
        "rate_limit.period: must be a positive number of seconds, got 0",
    ),
    Row(
        "RateLimits(...)",
        '`layers=("x",)`',
        lambda _c: RateLimits(("x",)),  # type: ignore[arg-type]
        "rate_limit.layers: must hold RateLimit, got 'x'",
    ),
    Row(
        "RealtimeKit(...)",
        '`rate_limit="fast"`',
        _client(**AUTH, rate_limit="fast"),
        "rate_limit: must be RateLimits, RateLimit or None, got 'fast'",
    ),
    Row(
        "RealtimeKit(...)",
        "`hooks=1`",
        _client(**AUTH, hooks=1),
        "hooks: must be a Hooks instance, got int",
    ),
    Row(
        "RealtimeKit(...)",
        '`tracing="yes"`',
        _client(**AUTH, tracing="yes"),
        "tracing: must be True, False or an OpenTelemetry TracerProvider, got 'yes'",
    ),
    Row(
        "Hooks(...)",
        "`on_request=1`",
        lambda _c: Hooks(on_request=1),  # type: ignore[arg-type]
        "hooks: must be a callable or a sequence of them, got 1",
    ),
    Row(
        "RetryPolicy(...)",
        "`max_retries=-1`",
        lambda _c: RetryPolicy(max_retries=-1),
        "max_retries: must be an integer >= 0, got -1",
    ),
    Row(
        "RetryPolicy(...)",
        '`max_delay=float("nan")`',
        lambda _c: RetryPolicy(max_delay=float("nan")),
        "max_delay: must be a number of seconds >= 0, got nan",
    ),
    Row(
        "client.with_options(...)",
        '`app_id=""`',
        lambda c: c.with_options(app_id=""),
        "app_id: must be a non-empty string",
    ),
    Row(
        "client.with_options(...)",
        "`timeout=-1`",
        lambda c: c.with_options(timeout=-1),
        "timeout: must be a positive number of seconds, got -1",
    ),
    Row(
        "client.with_options(...)",
        "`max_retries=-2`",
        lambda c: c.with_options(max_retries=-2),
        "max_retries: must be an integer >= 0, got -2",
    ),
    # -- per-call options (every method takes them) -------------------------------------------
    Row(
        "recordings.get(..., timeout=)",
        "`timeout=0`",
        lambda c: c.recordings.get("r", timeout=0),
        "timeout: must be a positive number of seconds, got 0",
    ),
    Row(
        "recordings.get(..., extra_headers=)",
        '`{"X-Trace": "a\\nb"}`',
        lambda c: c.recordings.get("r", extra_headers={"X-Trace": "a\nb"}),
        "extra_headers: X-Trace: must be a string without line breaks",
    ),
    Row(
        "recordings.get(..., extra_headers=)",
        '`{"Authorization": "Bearer x"}`',
        lambda c: c.recordings.get("r", extra_headers={"Authorization": "Bearer x"}),
        "extra_headers: Authorization is set by the client (pass api_token= for credentials)",
    ),
    Row(
        "recordings.get(..., extra_body=)",
        '`{"a": 1}`',
        lambda c: c.recordings.get("r", extra_body={"a": 1}),
        "extra_body: this GET call sends no body",
    ),
    Row(
        "recordings.start(..., extra_body=)",
        '`{"a": {1, 2}}`',
        lambda c: c.recordings.start("m", extra_body={"a": {1, 2}}),
        "extra_body: cannot be sent as JSON: Type is not JSON serializable: set",
    ),
    # -- recordings.list -------------------------------------------------------------------
    Row(
        "recordings.list(...)",
        "`status=5`",
        lambda c: c.recordings.list(status=5),  # type: ignore[arg-type]
        f"status: 5 is not one of {STATUSES} (or a newer value's string)",
    ),
    Row(
        "recordings.list(...)",
        '`status=["UPLOADED", 5]`',
        lambda c: c.recordings.list(status=["UPLOADED", 5]),  # type: ignore[list-item]
        f"status: 5 is not one of {STATUSES} (or a newer value's string)",
    ),
    Row(
        "recordings.list(...)",
        '`meeting_id=""`',
        lambda c: c.recordings.list(meeting_id=""),
        "meeting_id: must be a non-empty string",
    ),
    Row(
        "recordings.list(...)",
        "`search=5`",
        lambda c: c.recordings.list(search=5),  # type: ignore[arg-type]
        "search: must be a string, got 5",
    ),
    Row(
        "recordings.list(...)",
        "naive `start_time`",
        lambda c: c.recordings.list(start_time=NAIVE),
        "start_time: must be timezone-aware (e.g. datetime.now(timezone.utc))",
    ),
    Row(
        "recordings.list(...)",
        "`start_time` after `end_time`",
        lambda c: c.recordings.list(start_time=JAN_2, end_time=JAN_1),
        "start_time: must not be after end_time",
    ),
    Row(
        "recordings.list(...)",
        '`expired="false"`',
        lambda c: c.recordings.list(expired="false"),  # type: ignore[arg-type]
        "expired: must be True or False, got 'false'",
    ),
    Row(
        "recordings.list(...)",
        '`sort_by=""`',
        lambda c: c.recordings.list(sort_by=""),
        "sort_by: '' is not one of 'invokedTime' (or a newer value's string)",
    ),
    Row(
        "recordings.list(...)",
        "`sort_order=True`",
        lambda c: c.recordings.list(sort_order=True),  # type: ignore[arg-type]
        "sort_order: True is not one of 'ASC', 'DESC' (or a newer value's string)",
    ),
    Row(
        "recordings.list(...)",
        "`page_no=0`",
        lambda c: c.recordings.list(page_no=0),
        "page_no: must be an integer >= 1, got 0",
    ),
    Row(
        "recordings.list(...)",
        "`per_page=0`",
        lambda c: c.recordings.list(per_page=0),
        "per_page: must be an integer >= 1, got 0",
    ),
    Row(
        "recordings.list(...)",
        '`per_page="10"`',
        lambda c: c.recordings.list(per_page="10"),  # type: ignore[arg-type]
        "per_page: must be an integer >= 1, got '10'",
    ),
    Row(
        "recordings.list(...)",
        "`prefetch=0`",
        lambda c: c.recordings.list(prefetch=0),
        "prefetch: must be an integer >= 1, got 0",
    ),
    Row(
        "recordings.list(...)",
        "`max_pages=0`",
        lambda c: c.recordings.list(max_pages=0),
        "max_pages: must be an integer >= 1, got 0",
    ),
    Row(
        "any recordings method",
        "no `app_id` anywhere",
        lambda _c: RealtimeKit(api_token="t", account_id="a", base_url=NOWHERE).recordings.list(),
        "app_id: missing: pass app_id= or set REALTIMEKIT_APP_ID",
    ),
    # -- the other recordings methods --------------------------------------------------------
    Row(
        "recordings.get(...)",
        '`""`',
        lambda c: c.recordings.get(""),
        "recording_id: must be a non-empty string",
    ),
    Row(
        "recordings.get(...)",
        '`".."`',
        lambda c: c.recordings.get(".."),
        "recording_id: '..' is not a valid id",
    ),
    Row(
        "recordings.get(...)",
        "`None`",
        lambda c: c.recordings.get(None),  # type: ignore[arg-type]
        "recording_id: must be a non-empty string",
    ),
    Row(
        "recordings.get_active(...)",
        '`" "`',
        lambda c: c.recordings.get_active(" "),
        "meeting_id: must be a non-empty string",
    ),
    Row(
        "recordings.start(...)",
        '`""`',
        lambda c: c.recordings.start(""),
        "meeting_id: must be a non-empty string",
    ),
    Row(
        "recordings.start(...)",
        "`max_seconds=10`",
        lambda c: c.recordings.start("m", max_seconds=10),
        "max_seconds: must be an integer between 60 and 86400, got 10",
    ),
    Row(
        "recordings.start(...)",
        "`max_seconds=60.5`",
        lambda c: c.recordings.start("m", max_seconds=60.5),  # type: ignore[arg-type]
        "max_seconds: must be an integer between 60 and 86400, got 60.5",
    ),
    Row(
        "recordings.start(...)",
        "`audio_config=AudioConfig(codec=3)`",
        lambda c: c.recordings.start("m", audio_config=AudioConfig(codec=3)),  # type: ignore[arg-type]
        "codec: 3 is not one of 'MP3', 'AAC' (or a newer value's string)",
    ),
    Row(
        "recordings.start(...)",
        "`storage_config=StorageConfig(type=[])`",
        lambda c: c.recordings.start("m", storage_config=StorageConfig(type=[])),  # type: ignore[arg-type]
        "type: [] is not one of 'aws', 'azure', 'digitalocean', 'gcs', 'sftp' (or a newer value's string)",
    ),
    Row(
        "recordings.start_track(...)",
        "`layers={}`",
        lambda c: c.recordings.start_track("m", layers={}),
        "layers: needs at least one layer",
    ),
    Row(
        "recordings.start_track(...)",
        '`layers={"a": 1}`',
        lambda c: c.recordings.start_track("m", layers={"a": 1}),  # type: ignore[dict-item]
        "layers: layer 'a' must be a TrackLayer",
    ),
    Row(
        "recordings.start_track(...)",
        '`user_ids=["u"]` with `max_seconds=60`',
        lambda c: c.recordings.start_track("m", user_ids=["u"], max_seconds=60),
        "user_ids: belongs to the current track-recording body, max_seconds to the legacy "
        "one (layers with outputs, max_seconds): use one of them",
    ),
    Row(
        "TrackOutput(...)",
        "`type=None`",
        lambda _c: TrackOutput(type=None),  # type: ignore[arg-type]
        "type: None is not one of 'REALTIMEKIT_BUCKET', 'STORAGE_CONFIG' (or a newer value's string)",
    ),
    Row(
        "recordings.pause_resume_stop(...)",
        "`action=1`",
        lambda c: c.recordings.pause_resume_stop("r", 1),  # type: ignore[arg-type]
        "action: 1 is not one of 'stop', 'pause', 'resume' (or a newer value's string)",
    ),
    Row(
        "recordings.stop/pause/resume(...)",
        '`""`',
        lambda c: c.recordings.stop(""),
        "recording_id: must be a non-empty string",
    ),
    # -- waiting -----------------------------------------------------------------------------
    Row(
        "recordings.wait_for(...)",
        '`""`',
        lambda c: c.recordings.wait_for(""),
        "recording_id: must be a non-empty string",
    ),
    Row(
        "recordings.wait_for(...)",
        "`status=[]`",
        lambda c: c.recordings.wait_for("r", status=[]),
        "status: needs at least one status",
    ),
    Row(
        "recordings.wait_for(...)",
        '`status="DONE"`',
        lambda c: c.recordings.wait_for("r", status="DONE"),
        f"status: 'DONE' is not one of {STATUSES}",
    ),
    Row(
        "recordings.wait_for(...)",
        "`timeout=0`",
        lambda c: c.recordings.wait_for("r", timeout=0),
        "timeout: must be a positive number of seconds, got 0",
    ),
    Row(
        "recordings.wait_for(...)",
        "`poll_interval=-1`",
        lambda c: c.recordings.wait_for("r", poll_interval=-1),
        "poll_interval: must be a positive number of seconds, got -1",
    ),
    Row(
        "recordings.wait_for(...)",
        '`max_poll_interval=float("nan")`',
        lambda c: c.recordings.wait_for("r", max_poll_interval=float("nan")),
        "max_poll_interval: must be a positive number of seconds, got nan",
    ),
    Row(
        "RecordingWaiter(...)",
        "`grace=0`",
        lambda c: RecordingWaiter(c, grace=0),
        "grace: must be a positive number of seconds, got 0",
    ),
    Row(
        "RecordingWaiter(...)",
        "`max_tracked=0`",
        lambda c: RecordingWaiter(c, max_tracked=0),
        "max_tracked: must be an integer >= 1, got 0",
    ),
    # -- webhooks ----------------------------------------------------------------------------
    Row(
        "WebhookVerifier(...)",
        "`client=` and `session=`",
        lambda c: WebhookVerifier(client=c, session=c.session),
        "session: pass client= or session=, not both",
    ),
    Row(
        "WebhookVerifier(...)",
        "`timeout=0`",
        lambda _c: WebhookVerifier(timeout=0),
        "timeout: must be a positive number of seconds, got 0",
    ),
    Row(
        "WebhookVerifier(...)",
        "`refetch_cooldown=-1`",
        lambda _c: WebhookVerifier(refetch_cooldown=-1),
        "refetch_cooldown: must be a number of seconds >= 0, got -1",
    ),
    Row(
        "webhook_handler(...)",
        "`max_body_size=0`",
        lambda _c: webhook_handler(WebhookVerifier(), max_body_size=0),
        "max_body_size: must be an integer >= 1, got 0",
    ),
    Row(
        "webhook_handler(...)",
        "`max_pending=0`",
        lambda _c: webhook_handler(WebhookVerifier(), max_pending=0),
        "max_pending: must be an integer >= 1, got 0",
    ),
    Row(
        "webhook_handler(...)",
        "`respond_within=-1`",
        lambda _c: webhook_handler(WebhookVerifier(), respond_within=-1),
        "respond_within: must be a number of seconds >= 0, got -1",
    ),
    Row(
        "webhook_handler(...)",
        '`shutdown_timeout="x"`',
        lambda _c: webhook_handler(WebhookVerifier(), shutdown_timeout="x"),  # type: ignore[arg-type]
        "shutdown_timeout: must be a number of seconds >= 0, got 'x'",
    ),
    Row(
        "webhook_handler(...)",
        "`deduplicator=set()`",
        lambda _c: webhook_handler(WebhookVerifier(), deduplicator=set()),  # type: ignore[arg-type]
        "deduplicator: must have async add_if_new(key) and forget(key), got set",
    ),
    Row(
        "Deduplicator(...)",
        "`max_entries=0`",
        lambda _c: Deduplicator(max_entries=0),
        "max_entries: must be an integer >= 1, got 0",
    ),
    Row(
        "Deduplicator(...)",
        "`ttl=0`",
        lambda _c: Deduplicator(ttl=0),
        "ttl: must be a positive number of seconds, got 0",
    ),
    # -- export ------------------------------------------------------------------------------
    Row(
        "export_recordings(...)",
        "`concurrency=0`",
        lambda c: export_recordings(c, "unused", concurrency=0),
        "concurrency: must be an integer >= 1, got 0",
    ),
    Row(
        "export_recordings(...)",
        "`max_audio_size=0`",
        lambda c: export_recordings(c, "unused", max_audio_size=0),
        "max_audio_size: must be an integer >= 1, got 0",
    ),
    Row(
        "export_recordings(...)",
        "`min_rate=-1`",
        lambda c: export_recordings(c, "unused", min_rate=-1),
        "min_rate: must be a number of bytes per second >= 0, got -1",
    ),
    Row(
        "export_recordings(...)",
        "`url_expiry_margin=-1`",
        lambda c: export_recordings(c, "unused", url_expiry_margin=-1),
        "url_expiry_margin: must be a number of seconds >= 0, got -1",
    ),
    Row(
        "export_recordings(...)",
        "`read_timeout=0`",
        lambda c: export_recordings(c, "unused", read_timeout=0),
        "read_timeout: must be a positive number of seconds, got 0",
    ),
    Row(
        "export_recordings(...)",
        "`status=[1]`",
        lambda c: export_recordings(c, "unused", status=[1]),  # type: ignore[list-item]
        f"status: 1 is not one of {STATUSES} (or a newer value's string)",
    ),
    Row(
        "export_recordings(...)",
        "naive `start_time`",
        lambda c: export_recordings(c, "unused", start_time=NAIVE),
        "start_time: must be timezone-aware (e.g. datetime.now(timezone.utc))",
    ),
    Row(
        "export_recordings(...)",
        "`max_retries=-1`",
        lambda c: export_recordings(c, "unused", max_retries=-1),
        "max_retries: must be an integer >= 0, got -1",
    ),
    Row(
        "export_recordings(...)",
        "`since=` and `start_time=`",
        lambda c: export_recordings(c, "unused", since=JAN_1, start_time=JAN_1),
        "since: is the deprecated name of start_time; pass only start_time",
    ),
    Row(
        "sync_recordings(...)",
        "`retry=` and `max_retries=`",
        lambda c: sync_recordings(c, "unused", retry=RetryPolicy(), max_retries=1),
        "retry: is the deprecated name of max_retries; pass only max_retries",
    ),
    Row(
        "export_one(...)",
        "`concurrency=2`",
        lambda c: export_one(c, "rec", "unused", concurrency=2),  # type: ignore[call-arg]
        "concurrency: not an export option",
    ),
]

# The one row that needs a session of the user's own making.
AUTH_SESSION_ROW = Row(
    "export_recordings(...)",
    "client whose `session=` sends `Authorization` by default",
    lambda c: export_recordings(c, "unused"),
    "session: sends an Authorization header by default, which would reach the storage host",
)


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def client() -> AsyncIterator[RealtimeKit]:
    async with RealtimeKit(**AUTH, rate_limit=None, max_retries=0) as rtk:
        yield rtk


def _entries(path: Path) -> list[Path]:
    return list(path.iterdir())


async def _outcome(row: Row, client: RealtimeKit) -> BaseException | None:
    try:
        result = row.call(client)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
async def test_bad_argument(
    row: Row, client: RealtimeKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # export rows name a directory; none may be created
    exc = await _outcome(row, client)
    assert type(exc) is ValidationError, f"{row.id}: got {exc!r}"
    assert str(exc) == row.message
    assert isinstance(exc, ValueError)  # ValidationError is also a ValueError
    assert _entries(tmp_path) == []


async def test_export_refuses_a_session_that_would_send_the_token(tmp_path: Path) -> None:
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as session,
        RealtimeKit(**AUTH, session=session, rate_limit=None) as rtk,
    ):
        exc = await _outcome(AUTH_SESSION_ROW, rtk)
    assert type(exc) is ValidationError
    assert str(exc) == AUTH_SESSION_ROW.message


# -- the webhook handler: bad deliveries get an HTTP answer, not an exception ------------------

BODY = encode(status_update("UPLOADED"))


@attrs.frozen
class Delivery:
    bad: str
    body: bytes
    headers: dict[str, str]
    status: int
    text: str


DELIVERIES = [
    Delivery(
        "no `rtk-signature` header",
        BODY,
        {"Content-Type": "application/json"},
        401,
        "missing rtk-signature header",
    ),
    Delivery(
        "wrong signature",
        BODY,
        {**signed_headers(BODY), "rtk-signature": "AAAA"},
        401,
        "invalid signature",
    ),
    Delivery(
        "`Content-Type: text/plain`",
        BODY,
        {**signed_headers(BODY), "Content-Type": "text/plain"},
        400,
        "expected a JSON body",
    ),
    Delivery(
        "body over `max_body_size`",
        b"{" + b" " * 5000 + b"}",
        signed_headers(b"{}"),
        413,
        "body too large",
    ),
    Delivery(
        "signed, but not JSON", b"not json", signed_headers(b"not json"), 400, "not a webhook event"
    ),
    Delivery(
        "signed JSON without `event`",
        b'{"x": 1}',
        signed_headers(b'{"x": 1}'),
        400,
        "not a webhook event",
    ),
]


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], list[Any]]]:
    events: list[Any] = []
    handler = webhook_handler(WebhookVerifier(public_pem()), events.append, max_body_size=4096)
    app = web.Application()
    handler.setup(app, "/hooks")
    http = TestClient(TestServer(app, host="127.0.0.1"))
    await http.start_server()
    yield http, events
    await http.close()


@pytest.mark.parametrize("delivery", DELIVERIES, ids=lambda d: d.bad)
async def test_bad_delivery(
    delivery: Delivery, hooks: tuple[TestClient[web.Request, web.Application], list[Any]]
) -> None:
    http, events = hooks
    async with http.post("/hooks", data=delivery.body, headers=delivery.headers) as response:
        assert (response.status, await response.text()) == (delivery.status, delivery.text)
    assert events == []


async def test_replayed_delivery_is_acknowledged_once_dispatched(
    hooks: tuple[TestClient[web.Request, web.Application], list[Any]],
) -> None:
    http, events = hooks
    answers = []
    for delivery_id in ("same-id", "same-id", "fresh-id"):
        async with http.post("/hooks", data=BODY, headers=signed_headers(BODY, delivery_id)) as r:
            answers.append((r.status, await r.text()))
    assert answers == [(200, "ok"), (200, "duplicate"), (200, "duplicate")]
    assert len(events) == 1


# -- the CLI: exit code 2 and one line on stderr ----------------------------------------------

CLI_ROWS: list[tuple[list[str], str]] = [
    (
        ["recordings", "list", "--per-page", "0"],
        "realtimekit recordings list: error: argument --per-page: must be at least 1: '0'",
    ),
    (
        ["recordings", "list", "--page", "1.5"],
        "realtimekit recordings list: error: argument --page: not a whole number: '1.5'",
    ),
    (
        ["recordings", "list", "--status", "FINISHED"],
        "realtimekit recordings list: error: argument --status: unknown status 'FINISHED' "
        "(one of INVOKED, RECORDING, UPLOADING, UPLOADED, ERRORED, PAUSED)",
    ),
    (
        ["recordings", "list", "--since", "yesterday"],
        "realtimekit recordings list: error: argument --since: not an ISO 8601 date or time: 'yesterday'",
    ),
    (
        ["recordings", "frobnicate"],
        "realtimekit recordings: error: argument action: invalid choice: 'frobnicate' "
        "(choose from 'list', 'get', 'stop', 'pause', 'resume', 'wait', 'active', 'start', "
        "'start-track')",
    ),
    (
        ["recordings", "get"],
        "realtimekit recordings get: error: the following arguments are required: recording_id",
    ),
    (
        ["recordings", "start", "m", "--max-seconds", "ten"],
        "realtimekit recordings start: error: argument --max-seconds: invalid int value: 'ten'",
    ),
    (
        ["recordings", "list"],
        "realtimekit: error: api_token: missing: pass --api-token or set CLOUDFLARE_API_TOKEN",
    ),
    (
        ["recordings", "list", "--api-token", "t", "--account-id", "a", "--base-url", NOWHERE],
        "realtimekit: error: app_id: missing: pass --app-id or set REALTIMEKIT_APP_ID",
    ),
    (
        ["recordings", "wait", "r", "--timeout", "0"],
        "realtimekit recordings wait: error: argument --timeout: "
        "must be a positive number of seconds: '0'",
    ),
    (
        ["recordings", "list", "--api-token", "t", "--account-id", "a", "--base-url", "ftp://x"],
        "realtimekit: error: base_url: must be an http(s) URL, got 'ftp://x'",
    ),
    (
        [
            "recordings",
            "start",
            "m",
            "--max-seconds",
            "10",
            *CONNECTION,
        ],
        "realtimekit: error: max_seconds: must be an integer between 60 and 86400, got 10",
    ),
    (["export"], "realtimekit export: error: the following arguments are required: --dest"),
    (
        ["export", "--dest", "https://host/x"],
        "realtimekit export: error: argument --dest: exports go to a local directory "
        "or s3://bucket/prefix, not 'https://host/x'",
    ),
    (
        ["export", "--dest", "out", "--concurrency", "0"],
        "realtimekit export: error: argument --concurrency: must be at least 1: '0'",
    ),
    (
        [
            "export",
            "--dest",
            "out",
            "--since",
            "2021-01-01",
            "--until",
            "2020-01-01",
            *CONNECTION,
        ],
        "realtimekit: error: start_time: must not be after end_time",
    ),
]


@pytest.mark.parametrize(
    ("argv", "line"), CLI_ROWS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_cli_bad_arguments(
    argv: list[str],
    line: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == line + "\n"
    assert captured.out == ""


# -- the documented table ---------------------------------------------------------------------


def render_table() -> str:
    """The "Bad input" table, rendered from the rows above."""
    lines = [
        "| Entry point | Bad input | Result |",
        "|---|---|---|",
    ]
    for row in [*ROWS, AUTH_SESSION_ROW]:
        lines.append(f"| `{row.entry}` | {row.bad} | `ValidationError`: `{row.message}` |")
    for d in DELIVERIES:
        lines.append(
            f"| `webhook_handler` (HTTP) | {d.bad} | HTTP {d.status} `{d.text}`, not dispatched |"
        )
    lines.append(
        "| `webhook_handler` (HTTP) | the same signed body again, with the same or a fresh "
        "`rtk-uuid` (a replay) "
        "| HTTP 200 `duplicate`, not dispatched again |"
    )
    for argv, line in CLI_ROWS:
        shown = " ".join(argv).replace(NOWHERE, "URL")
        lines.append(f"| CLI | `realtimekit {shown}` | exit 2, stderr: `{line}` |")
    return "\n".join(lines) + "\n"


def test_the_documented_table_is_these_rows() -> None:
    text = DOC.read_text()
    assert render_table() in text, "docs/bad-input.md is stale: python -m tests.test_bad_input"


def with_current_table(text: str) -> str:
    """``text`` with its Bad input table (up to the next blank line) rendered anew."""
    start = text.index("| Entry point | Bad input | Result |")
    end = text.find("\n\n", start)
    return text[:start] + render_table() + (text[end + 1 :] if end != -1 else "")


if __name__ == "__main__":
    DOC.write_text(with_current_table(DOC.read_text()))
