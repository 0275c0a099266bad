"""End to end: emulator -> signed webhooks -> examples/webhook_app.py -> RecordingWaiter.

The example app runs on 127.0.0.1 exactly as a user would run it, with a
client and a key-fetching verifier pointed at the emulator; waits go through
its ``/recordings/{id}/wait`` route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from realtimekit_async import RealtimeKit
from realtimekit_async.emulator import Emulator, WebhookFaults
from realtimekit_async.webhooks import WebhookVerifier

from ._support import emulator_client
from ._webhook_support import load_example


@attrs.define
class Stack:
    emu: Emulator
    client: RealtimeKit
    verifier: WebhookVerifier
    app_url: str
    http: aiohttp.ClientSession
    app: web.Application
    example: ModuleType

    async def wait(self, recording_id: str, **query: str) -> tuple[int, dict[str, Any]]:
        url = f"{self.app_url}/recordings/{recording_id}/wait"
        async with self.http.get(url, params=query) as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def start_stack(*, grace: float, **emulator: Any) -> AsyncIterator[Stack]:
    # Bind the app's socket first, so the emulator knows where to deliver.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app_url = f"http://127.0.0.1:{port}"
    async with Emulator(speed=0, webhook_urls=[f"{app_url}/webhooks"], **emulator) as emu:
        client = emulator_client(emu, max_retries=0)
        verifier = WebhookVerifier(client=client, key_url=emu.webhook_keys_url)
        example = load_example("webhook_app")
        app = example.create_app(client, verifier, grace=grace, poll_interval=0.01)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Stack(emu, client, verifier, app_url, http, app, example)
        finally:
            await runner.cleanup()
            await verifier.close()
            await client.close()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with start_stack(grace=30.0) as value:  # webhooks only: no polling in practice
        yield value


@pytest.fixture
async def lossy_stack() -> AsyncIterator[Stack]:
    async with start_stack(grace=0.2, webhook_faults=WebhookFaults(drop_rate=1.0)) as value:
        yield value


async def record(stack: Stack) -> str:
    """Start a recording, let it run 10 emulated seconds, stop it; returns its id."""
    emu = stack.emu
    recording = await stack.client.recordings.start(emu.add_meeting())
    emu.advance(2.0)  # INVOKED -> RECORDING
    emu.advance(10.0)
    await stack.client.recordings.stop(recording.id)  # -> UPLOADING
    return recording.id


async def test_webhooks_resolve_the_wait_with_the_download_url(stack: Stack) -> None:
    emu = stack.emu
    recording_id = await record(stack)
    waiting = asyncio.create_task(stack.wait(recording_id, timeout="10"))
    await emu.wait_for_webhooks()
    assert not waiting.done()
    emu.advance(3.0)  # UPLOADING -> UPLOADED, delivered as a signed webhook
    status, answer = await waiting
    assert status == 200
    assert answer == {
        "id": recording_id,
        "status": "UPLOADED",
        "download_url": emu.download_url(recording_id),
        "via": "webhook",
    }
    await emu.wait_for_webhooks()
    deliveries = [d for d in emu.webhook_deliveries if d.recording_id == recording_id]
    assert [d.recording_status for d in deliveries] == ["RECORDING", "UPLOADING", "UPLOADED"]
    assert {d.status_code for d in deliveries} == {200}
    assert stack.verifier.fetch_count == 1  # the key was fetched once, then cached
    assert emu.stats.requests["webhook_public_key"] == 1
    assert emu.stats.requests["get_recording"] == 0  # webhooks alone, no polling


async def test_key_rotation_mid_lifecycle(stack: Stack) -> None:
    emu = stack.emu
    recording_id = await record(stack)
    await emu.wait_for_webhooks()
    emu.rotate_webhook_key()
    waiting = asyncio.create_task(stack.wait(recording_id, timeout="10"))
    emu.advance(3.0)
    status, answer = await waiting
    assert (status, answer["via"]) == (200, "webhook")
    assert stack.verifier.fetch_count == 2  # one refetch after the rotation


async def test_errored_recording_answers_409(stack: Stack) -> None:
    emu = stack.emu
    recording = await stack.client.recordings.start(emu.add_meeting())
    waiting = asyncio.create_task(stack.wait(recording.id, timeout="10"))
    emu.advance(2.0)
    emu.advance(1.0)
    await stack.client.recordings.stop(recording.id)  # under 5 s recorded: ERRORED
    status, answer = await waiting
    assert status == 409
    assert "ERRORED" in answer["error"]


async def test_duplicated_and_reordered_deliveries(caplog: pytest.LogCaptureFixture) -> None:
    # Seed 2 delays the RECORDING delivery (so it lands last) and sends every one twice.
    faults = WebhookFaults(seed=2, duplicate_rate=1.0, delay_rate=0.5, delay_seconds=0.1)
    async with start_stack(grace=30.0, webhook_faults=faults) as stack:
        emu = stack.emu
        with caplog.at_level(logging.INFO, logger="webhook_app"):
            recording_id = await record(stack)
            emu.advance(3.0)
            status, answer = await stack.wait(recording_id, timeout="10")
            await emu.wait_for_webhooks()
        assert (status, answer["via"], answer["status"]) == (200, "webhook", "UPLOADED")
        arrived = [d.recording_status for d in emu.webhook_deliveries if not d.duplicate]
        assert arrived[-1] == "RECORDING"  # the stale status came last...
        waiter = stack.app[stack.example.WAITER]
        assert waiter.status(recording_id) == "UPLOADED"  # ...and changed nothing
        assert sum(d.duplicate for d in emu.webhook_deliveries) == 3
        dispatched = [r.getMessage() for r in caplog.records if r.name == "webhook_app"]
        assert sorted(dispatched) == sorted(  # each event reached user code once
            f"recording {recording_id} is {s}" for s in ("RECORDING", "UPLOADING", "UPLOADED")
        )


async def test_dropped_webhooks_fall_back_to_polling(lossy_stack: Stack) -> None:
    emu = lossy_stack.emu
    recording_id = await record(lossy_stack)
    emu.advance(3.0)
    status, answer = await lossy_stack.wait(recording_id, timeout="10")
    assert status == 200
    assert answer == {
        "id": recording_id,
        "status": "UPLOADED",
        "download_url": emu.download_url(recording_id),
        "via": "api",
    }
    assert all(d.dropped for d in emu.webhook_deliveries)
    assert emu.stats.requests["get_recording"] >= 1


async def test_bad_wait_arguments_answer_400(stack: Stack) -> None:
    status, answer = await stack.wait("some-id", status="DONE")
    assert status == 400
    assert "status" in answer["error"]
    status, _ = await stack.wait("some-id", timeout="soon")
    assert status == 400


def test_example_main_is_runnable(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example("webhook_app")
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_run_app(app: Any, **kwargs: Any) -> None:
        calls.append((app, kwargs))
        app.close()  # the coroutine that would build the app; not awaited here

    monkeypatch.setattr(example.web, "run_app", fake_run_app)
    example.main(["--port", "9999", "--grace", "5"])
    assert calls[0][1] == {"host": "127.0.0.1", "port": 9999}
