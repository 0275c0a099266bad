"""Archive every recording the moment it is UPLOADED, with a periodic sync as safety net.

``POST /webhooks`` takes RealtimeKit deliveries (verified, de-duplicated); a
``recording.statusUpdate`` saying UPLOADED starts :func:`export_one` for that
recording, after the delivery is acknowledged. Every ``--every`` seconds
:func:`sync_recordings` walks the recent window and exports whatever a lost or
late webhook left behind; both skip what the other stored, so nothing is
fetched twice.

Run it (settings from the environment, like the SDK's; ``AWS_*`` for a bucket)::

    export CLOUDFLARE_API_TOKEN=... CLOUDFLARE_ACCOUNT_ID=... REALTIMEKIT_APP_ID=...
    python examples/archive_service.py --dest s3://my-bucket/recordings --port 8080

Point the app's ``recording.statusUpdate`` webhook at ``/webhooks``.
``REALTIMEKIT_WEBHOOK_PUBLIC_KEY`` (PEM) skips fetching the key. It shares
its set-up of the client and webhook verifier with ``webhook_app.py`` beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Final

from aiohttp import web
from webhook_app import app_from_env  # the sibling example: the same client and verifier set-up

from realtimekit_async import RealtimeKit, RealtimeKitError, RecordingStatus
from realtimekit_async.export import export_one, sync_recordings
from realtimekit_async.webhooks import (
    RecordingStatusUpdate,
    WebhookEvent,
    WebhookVerifier,
    webhook_handler,
)

__all__ = ["Archiver", "create_app", "create_app_from_env", "main"]

log: Final = logging.getLogger("archive_service")


class Archiver:
    """Exports into one destination, from webhooks and on a schedule.

    Runs are serialized: a local destination admits one run at a time, and a
    recording's files are then never fetched by two runs at once.
    """

    def __init__(self, client: RealtimeKit, dest: str, *, lag: timedelta) -> None:
        self._client = client
        self._dest = dest
        self._lag = lag
        self._turn = asyncio.Lock()

    async def on_event(self, event: WebhookEvent) -> None:
        """The webhook callback: archive a recording that reached UPLOADED."""
        if not isinstance(event, RecordingStatusUpdate):
            return
        if event.recording.status != RecordingStatus.UPLOADED:
            return
        rid = event.recording.id
        async with self._turn:
            try:
                report = await export_one(self._client, rid, self._dest)
            except RealtimeKitError as exc:  # the periodic sync retries it
                log.warning("archiving %s failed: %s", rid, exc)
                return
        log.info("archived %s: %d new, %d failed", rid, len(report.exported), len(report.failed))

    async def sync_once(self) -> None:
        """One safety-net sync; failures are logged and retried by the next one."""
        async with self._turn:
            try:
                report = await sync_recordings(self._client, self._dest, lag=self._lag)
            except RealtimeKitError as exc:
                log.warning("sync failed: %s", exc)
                return
        log.info(
            "sync from %s: %d new, %d failed",
            report.since.isoformat(),
            len(report.export.exported),
            len(report.export.failed),
        )

    async def sync_forever(self, every: float) -> None:
        """Sync now, then every ``every`` seconds, until cancelled."""
        while True:
            await self.sync_once()
            await asyncio.sleep(every)


def create_app(
    client: RealtimeKit,
    verifier: WebhookVerifier,
    dest: str,
    *,
    every: float = 900.0,
    lag: timedelta = timedelta(hours=25),
) -> web.Application:
    """The app, for a client and verifier the caller owns (and closes after the app)."""
    archiver = Archiver(client, dest, lag=lag)
    app = web.Application()
    webhook_handler(verifier, archiver.on_event).setup(app, "/webhooks")

    async def periodic_sync(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(archiver.sync_forever(every))
        yield
        task.cancel()  # a file in flight is abandoned safely; the next start resumes
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(periodic_sync)
    return app


async def create_app_from_env(dest: str, every: float) -> web.Application:
    """The app with a client and verifier from the environment, closed on cleanup."""
    return app_from_env(lambda client, verifier: create_app(client, verifier, dest, every=every))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``--dest``/``--every``/``--host``/``--port`` and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--dest", required=True, help="directory or s3://bucket/prefix")
    parser.add_argument("--every", type=float, default=900.0, help="seconds between syncs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(create_app_from_env(args.dest, args.every), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
