"""OpenTelemetry spans, read back through the SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

from realtimekit_async import RealtimeKit, ValidationError
from realtimekit_async.emulator import Emulator
from realtimekit_async.export import export_recordings

from ._support import APP, FAST_RETRY, RECORDINGS, TOKEN, emulator_client, ok, recording_json

REC_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
ONE_ROUTE = "/accounts/{account_id}/realtime/kit/{app_id}/recordings/{recording_id}"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def traced(provider: TracerProvider) -> RealtimeKit:
    return RealtimeKit(
        api_token=TOKEN,
        account_id="acc123",
        app_id=APP,
        rate_limit=None,
        max_retries=FAST_RETRY,
        tracing=provider,
    )


def everything(span: ReadableSpan) -> str:
    """All a span records, as text: name, attributes and events."""
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    return f"{span.name} {dict(span.attributes or {})} {events}"


async def test_one_client_span_per_attempt_with_semantic_attributes(
    api: Any, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    url = f"{RECORDINGS}/{REC_ID}"
    api.get(url, status=503, payload={}, headers={"retry-after-ms": "1"})
    api.get(url, payload=ok(recording_json()))
    async with traced(provider) as rtk:
        await rtk.recordings.get(REC_ID)
    first, second = exporter.get_finished_spans()
    for span in (first, second):
        assert span.name == f"GET {ONE_ROUTE}"
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["url.full"] == url
        assert span.attributes["server.address"] == "api.cloudflare.com"
        assert span.attributes["server.port"] == 443
        assert span.attributes["http.route"] == ONE_ROUTE
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert first.status.status_code is StatusCode.ERROR
    assert [(e.name, dict(e.attributes or {})) for e in first.events] == [
        ("retry", {"retry.delay": 0.001})
    ]
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.response.status_code"] == 200
    assert second.attributes["http.request.resend_count"] == 1
    assert "error.type" not in second.attributes
    assert second.events == ()


async def test_no_query_or_token_in_any_span(
    api: Any, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    api.get(
        f"{RECORDINGS}?page_no=1&per_page=100&search=findme",
        payload=ok([], paging={"total_count": 0}),
    )
    async with traced(provider) as rtk:
        await rtk.recordings.list(search="findme")
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET /accounts/{account_id}/realtime/kit/{app_id}/recordings"
    text = everything(span)
    assert "findme" not in text
    assert "?" not in text
    assert TOKEN not in text


async def test_a_failed_attempt_records_its_error_type(
    unused_tcp_port: int, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with RealtimeKit(
        api_token=TOKEN,
        account_id="acc123",
        app_id=APP,
        base_url=f"http://127.0.0.1:{unused_tcp_port}",
        max_retries=0,
        tracing=provider,
    ) as rtk:
        with pytest.raises(Exception, match="cannot connect"):
            await rtk.recordings.get(REC_ID)
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["error.type"] == "APIConnectionError"
    assert "http.response.status_code" not in span.attributes
    assert span.attributes["server.port"] == unused_tcp_port


async def test_the_download_hook_point_drops_a_presigned_query(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with traced(provider) as rtk:
        presigned = URL("https://bucket.s3.amazonaws.com/r/video.mp4?X-Amz-Signature=SIG&a=b")
        with rtk._tracing.attempt(method="GET", url=presigned, route=None) as span:
            span.answered(206)
    (recorded,) = exporter.get_finished_spans()
    assert recorded.name == "GET"
    assert recorded.attributes is not None
    assert recorded.attributes["url.full"] == "https://bucket.s3.amazonaws.com/r/video.mp4"
    assert recorded.attributes["http.response.status_code"] == 206
    assert "SIG" not in everything(recorded)


async def test_tracing_without_opentelemetry_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ValidationError, match=r"realtimekit_async\[otel\]"):
        RealtimeKit(api_token=TOKEN, account_id="a", tracing=True)


def test_the_core_never_imports_opentelemetry() -> None:
    code = (
        "import sys, asyncio, realtimekit_async as r, realtimekit_async.webhooks\n"
        "async def main():\n"
        "    async with r.RealtimeKit(api_token='t', account_id='a', app_id='b'):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


async def test_an_export_traces_each_download_without_its_signature(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with (
        Emulator(recordings=30, seed=3, speed=0) as emu,
        emulator_client(emu, tracing=provider) as client,
    ):
        report = await export_recordings(client, tmp_path, include_audio=False)
    assert report.exported
    downloads = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    assert len(downloads) == len(report.exported)  # one per file, each answered once
    for span in downloads:
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 200
        assert str(span.attributes["url.full"]).startswith(emu.storage_url)
        assert "?" not in everything(span)  # the presigned query never reaches a span
