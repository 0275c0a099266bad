"""examples/archive_service.py end to end: emulator -> signed webhook -> export_one,
with the periodic sync as the safety net for a webhook that never arrives."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from realtimekit_async.emulator import Emulator, WebhookFaults
from realtimekit_async.webhooks import WebhookVerifier

from ._export_support import manifest_lines
from ._support import emulator_client, eventually
from ._webhook_support import load_example


@contextlib.asynccontextmanager
async def service(dest: Path, *, every: float, **emulator: object) -> AsyncIterator[Emulator]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks"
    async with Emulator(
        speed=0,
        bytes_per_second=2,
        webhook_urls=[url],
        **emulator,  # type: ignore[arg-type]
    ) as emu:
        client = emulator_client(emu)
        verifier = WebhookVerifier(client=client, key_url=emu.webhook_keys_url)
        app = load_example("archive_service").create_app(client, verifier, str(dest), every=every)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        try:
            yield emu
        finally:
            await runner.cleanup()
            await verifier.close()
            await client.close()


async def uploaded_via_webhook(emu: Emulator) -> str:
    async with emulator_client(emu) as client:
        rec = await client.recordings.start(emu.add_meeting())
        emu.advance(2.0)
        emu.advance(10.0)
        await client.recordings.stop(rec.id)
        emu.advance(3.0)  # -> UPLOADED, delivered as a signed webhook
    await emu.wait_for_webhooks()
    return rec.id


async def archived(dest: Path, rid: str, within: float = 20.0) -> Counter[str]:
    async with asyncio.timeout(within):
        while True:
            if (dest / "manifest.jsonl").exists():
                kinds = Counter(
                    line["kind"] for line in manifest_lines(dest) if line["recording_id"] == rid
                )
                if kinds:
                    return kinds
            await asyncio.sleep(0.05)


async def test_an_uploaded_webhook_archives_the_recording_at_once(tmp_path: Path) -> None:
    async with service(tmp_path, every=3600.0) as emu:
        rid = await uploaded_via_webhook(emu)
        kinds = await archived(tmp_path, rid)
        served = [r for r in emu.storage_requests if r.path.startswith(f"/files/{rid}/")]
    assert set(kinds.values()) == {1}
    assert len(served) == sum(kinds.values())  # each file fetched once


async def test_the_periodic_sync_catches_a_lost_webhook(tmp_path: Path) -> None:
    async with service(tmp_path, every=0.3, webhook_faults=WebhookFaults(drop_rate=1.0)) as emu:
        rid = await uploaded_via_webhook(emu)
        kinds = await archived(tmp_path, rid)
    assert set(kinds.values()) == {1}


async def test_the_app_from_the_environment_syncs_with_its_own_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Emulator(speed=0) as emu:
        for name, value in {
            "CLOUDFLARE_API_TOKEN": emu.token,
            "CLOUDFLARE_ACCOUNT_ID": emu.account_id,
            "REALTIMEKIT_APP_ID": emu.app_id,
            "REALTIMEKIT_BASE_URL": emu.base_url,
            "REALTIMEKIT_WEBHOOK_KEY_URL": emu.webhook_keys_url,
        }.items():
            monkeypatch.setenv(name, value)
        example = load_example("archive_service")
        app = await example.create_app_from_env(str(tmp_path), every=3600.0)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()  # starts the periodic sync, with the client from the environment
        try:
            await eventually(lambda: emu.stats.requests["list_recordings"] > 0)
        finally:
            await runner.cleanup()  # closes the verifier and the client (a leak would warn)
