"""Credential and data scoping: where the API token may go, and where presigned URLs may not.

* The token is sent to the configured API origin only: never to the storage host
  of presigned URLs, never along a redirect, never to the webhook key URL.
* A presigned URL's query (its signature) never shows in logs or exception text.
* TLS certificates are verified, and nothing in the SDK turns that off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

import realtimekit_async
from realtimekit_async import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    RealtimeKit,
    RecordingStatus,
    RetryPolicy,
)
from realtimekit_async._sansio import status_error, unwrap
from realtimekit_async.emulator import Emulator, FaultConfig
from realtimekit_async.export import ExportProgress, export_recordings
from realtimekit_async.webhooks import WebhookVerifier

from ._support import emulator_client

PACKAGE = Path(realtimekit_async.__file__).parent
FAST_RETRY = RetryPolicy(max_retries=4, initial_delay=0.001, max_delay=0.002)
SIGNATURE = "X-Signature="


@attrs.define
class Recorder:
    """A local aiohttp server that records every request it gets and answers ``reply``."""

    reply: Callable[[web.Request], Awaitable[web.StreamResponse]]
    seen: list[tuple[str, str, CIMultiDict[str]]] = attrs.field(factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.seen.append((request.method, request.path_qs, CIMultiDict(request.headers)))
        return await self.reply(request)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Recorder]]]:
    runners: list[web.AppRunner] = []

    async def start(
        reply: Callable[[web.Request], Awaitable[web.StreamResponse]],
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Recorder:
        recorder = Recorder(reply)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", recorder.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = runner.addresses[0][1]
        recorder.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return recorder

    yield start
    for runner in runners:
        await runner.cleanup()


def client_for(base_url: str, **options: Any) -> RealtimeKit:
    return RealtimeKit(
        api_token="secret-token-123",
        account_id="acc",
        app_id="app",
        base_url=base_url,
        rate_limit=None,
        max_retries=options.pop("max_retries", FAST_RETRY),
        **options,
    )


async def nothing(_request: web.Request) -> web.StreamResponse:
    return web.json_response({"success": True, "data": {}})


# -- the token goes to the API origin only ---------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("call", ["get", "start", "list"])
async def test_a_redirect_off_the_api_is_an_error_and_not_followed(
    serve: Callable[..., Awaitable[Recorder]], status: int, call: str
) -> None:
    elsewhere = await serve(nothing)

    async def redirect(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": f"{elsewhere.url}/steal"})

    api = await serve(redirect)
    async with client_for(f"{api.url}/client/v4") as client:
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get": lambda: client.recordings.get("rec-1"),
            "start": lambda: client.recordings.start("meeting-1"),
            "list": lambda: client.recordings.list(),
        }
        with pytest.raises(APIStatusError) as info:
            await calls[call]()
    assert info.value.status == status
    assert type(info.value) is APIStatusError  # not a subclass for some other status
    assert len(api.seen) == 1  # a 3xx is not retried either
    assert api.seen[0][2]["Authorization"] == "Bearer secret-token-123"
    assert elsewhere.seen == []


async def test_presigned_downloads_get_no_token() -> None:
    """The session the SDK hands out (and downloads use) carries no default credentials."""
    async with Emulator(recordings=20, seed=4, speed=0) as emu:
        async with emulator_client(emu) as client:
            uploaded = [r async for r in client.recordings.list(status="UPLOADED")]
            with_urls = [r for r in uploaded if r.download_url]
            assert with_urls
            session = client.session
            assert "Authorization" not in session.headers
            assert session.auth is None
            for rec in with_urls[:3]:
                assert rec.download_url is not None
                async with session.get(rec.download_url) as response:
                    assert response.status == 200
                    await response.read()
        assert len(emu.storage_requests) == 3
        for request in emu.storage_requests:
            assert "Authorization" not in request.headers
            assert all(emu.token not in value for value in request.headers.values())


async def test_the_webhook_key_fetch_gets_no_token(
    serve: Callable[..., Awaitable[Recorder]],
) -> None:
    async def key(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"success": True, "data": {"publicKey": "not a key"}})

    key_host = await serve(key)
    async with client_for("http://127.0.0.1:9/client/v4") as client:
        verifier = WebhookVerifier(
            client=client, key_url=f"{key_host.url}/.well-known/webhooks.json"
        )
        with pytest.raises(APIResponseValidationError):
            await verifier.public_key()
    assert len(key_host.seen) == 1
    assert "Authorization" not in key_host.seen[0][2]


# -- presigned URL queries never show in text ---------------------------------------------

PRESIGNED = "https://storage.example/files/r1/video?X-Expires=1760000000&X-Signature=0badc0ffee"


def _page_with_urls() -> bytes:
    rec = {
        "id": "r1",
        "audio_download_url": PRESIGNED.replace("video", "audio"),
        "download_url": PRESIGNED,
        "status": "UPLOADED",
    }
    return json.dumps({"success": True, "data": [rec], "paging": {"total_count": 1}}).encode()


@pytest.mark.parametrize(
    "body",
    [
        _page_with_urls()[:150],  # a 2xx cut short by a proxy (Content-Length agreeing)
        _page_with_urls()[:150].replace(b"/", b"\\/"),  # the same with JSON-escaped slashes
        b"<html><a href='" + PRESIGNED.encode() + b"'>moved</a></html>",
    ],
    ids=["truncated-json", "escaped-slashes", "html"],
)
@pytest.mark.parametrize("status", [200, 502])
def test_an_unreadable_answer_quoting_a_presigned_url_does_not_leak_it(
    body: bytes, status: int
) -> None:
    with pytest.raises((APIResponseValidationError, APIStatusError)) as info:
        unwrap(status, {}, body, method="GET", path="/recordings")
    for text in (str(info.value), repr(info.value)):
        assert "0badc0ffee" not in text
        assert SIGNATURE not in text
    assert "storage.example" in str(info.value)  # the excerpt is still useful
    # Also when the error is built directly (the retry loop's final error).
    err = status_error(status if status >= 400 else 500, {}, body)
    assert "0badc0ffee" not in str(err)


async def test_no_signature_in_logs_or_errors_across_failing_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """List and get under every fault kind: the debug log and every error stay clean."""
    caplog.set_level(logging.DEBUG, logger="realtimekit_async")
    faults = FaultConfig(
        seed=11, rate=0.3, kinds=("429", "500", "html", "reset", "truncate"), retry_after=0.001
    )
    errors: list[BaseException] = []
    async with Emulator(recordings=60, seed=2, speed=0, faults=faults) as emu:
        async with emulator_client(
            emu, max_retries=RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.001)
        ) as client:
            ids: list[str] = []
            for _ in range(5):
                try:
                    ids = [r.id async for r in client.recordings.list(per_page=7)]
                except APIError as exc:
                    errors.append(exc)
            for rid in [*ids, *emu.store.recordings][:80]:
                try:
                    await client.recordings.get(rid)
                except APIError as exc:
                    errors.append(exc)
        signatures = [
            emu.download_url(rid) or ""
            for rid, rec in emu.store.recordings.items()
            if rec.status == RecordingStatus.UPLOADED
        ]
    assert errors, "the fault rate should have produced some failures"
    assert emu.stats.faults["truncate"] > 0
    secrets = {url.partition("X-Signature=")[2] for url in signatures if url}
    texts = [r.getMessage() for r in caplog.records] + [
        t for e in errors for t in (str(e), repr(e))
    ]
    assert texts
    for text in texts:
        assert SIGNATURE not in text
        assert emu.token not in text
        assert not any(secret in text for secret in secrets)


# -- TLS ------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def test_tls_certificates_are_verified(
    serve: Callable[..., Awaitable[Recorder]], tmp_path: Path
) -> None:
    api = await serve(nothing, ssl_context=_self_signed(tmp_path))
    async with client_for(f"{api.url}/client/v4") as client:
        with pytest.raises(APIConnectionError) as info:
            await client.recordings.get("rec-1")
    assert "certificate" in str(info.value).lower()
    assert "secret-token-123" not in str(info.value)
    assert api.seen == []  # the handshake failed: no request, so no token, was sent


async def test_the_webhook_key_fetch_verifies_tls_too(
    serve: Callable[..., Awaitable[Recorder]], tmp_path: Path
) -> None:
    key_host = await serve(nothing, ssl_context=_self_signed(tmp_path))
    async with WebhookVerifier(key_url=f"{key_host.url}/.well-known/webhooks.json") as verifier:
        with pytest.raises(APIConnectionError):
            await verifier.public_key()
    assert key_host.seen == []


def test_nothing_in_the_sdk_turns_certificate_checks_off() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for needle in (
            "ssl=False",
            "verify_ssl",
            "CERT_NONE",
            "check_hostname = False",
            "_create_unverified_context",
        ):
            if needle in text:
                offenders.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert offenders == []


def test_the_client_offers_no_switch_to_turn_tls_off() -> None:
    import inspect

    for fn in (RealtimeKit.__init__, RealtimeKit.with_options):
        names = set(inspect.signature(fn).parameters)
        assert not names & {"ssl", "verify", "verify_ssl", "insecure", "connector"}


# -- export: downloads carry no token, redirects included; no signature in any output --------


def _listing(download_url: str, size: int) -> dict[str, Any]:
    rec = {
        "id": "0f6a8e2c-3b1d-4c5e-9f7a-1b2c3d4e5f60",
        "status": "UPLOADED",
        "invoked_time": "2025-01-02T03:04:05.000Z",
        "output_file_name": "meeting.mp4",
        "download_url": download_url,
        "download_url_expiry": None,
        "file_size": size,
    }
    return {"success": True, "data": [rec], "paging": {"total_count": 1}}


@pytest.mark.parametrize("status", [302, 307])
async def test_a_download_redirected_to_another_origin_gets_no_token(
    serve: Callable[..., Awaitable[Recorder]], tmp_path: Path, status: int
) -> None:
    async def blob(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"hello")

    elsewhere = await serve(blob)

    async def redirect(_request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, headers={"Location": f"{elsewhere.url}/blob?X-Signature=second"}
        )

    storage = await serve(redirect)

    async def api_answer(_request: web.Request) -> web.StreamResponse:
        return web.json_response(_listing(f"{storage.url}/files/r1?X-Signature=first", 5))

    api = await serve(api_answer)
    async with client_for(f"{api.url}/client/v4") as client:
        report = await export_recordings(client, tmp_path)
    assert report.failed == ()
    (entry,) = report.exported
    assert (tmp_path / entry.path).read_bytes() == b"hello"
    assert api.seen
    assert all("Authorization" in h for _m, _p, h in api.seen)
    assert [p for _m, p, _h in storage.seen] == ["/files/r1?X-Signature=first"]
    assert [p for _m, p, _h in elsewhere.seen] == ["/blob?X-Signature=second"]
    for _method, _path, headers in [*storage.seen, *elsewhere.seen]:
        assert "Authorization" not in headers
        assert all("secret-token-123" not in v for v in headers.values())


async def test_no_signature_in_export_logs_progress_or_failures(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Storage faults, forced URL refreshes and files that keep failing: all output stays clean."""
    caplog.set_level(logging.DEBUG, logger="realtimekit_async")
    faults = FaultConfig(
        seed=3,
        rate=0.5,
        kinds=("500", "reset", "truncate", "html", "slow"),
        routes="storage",
        slow_seconds=0.001,
    )
    events: list[ExportProgress] = []
    async with Emulator(
        recordings=60, seed=8, speed=0, bytes_per_second=4, url_ttl=90 * 86400.0, faults=faults
    ) as emu:
        async with emulator_client(emu, max_retries=FAST_RETRY) as client:
            report = await export_recordings(
                client,
                tmp_path,
                on_progress=events.append,
                max_retries=RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.001),
                url_expiry_margin=200 * 86400.0,  # every URL "expires soon": each is refreshed
            )
        urls = [emu.download_url(rid) for rid in emu.store.recordings]
        secrets = {u.partition(SIGNATURE)[2] for u in urls if u}
    assert report.failed, "the fault rate should make some files fail for good"
    assert report.exported
    assert emu.stats.requests["get_recording"] > 0  # the refresh path ran
    texts = [
        *(r.getMessage() for r in caplog.records),
        *(repr(e) for e in events),
        *(f.reason for f in report.failed),
        repr(report),
        str(report),
    ]
    for text in texts:
        assert SIGNATURE not in text
        assert "X-Expires=" not in text
        assert not any(secret in text for secret in secrets)
