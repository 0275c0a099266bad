"""A webhook receiver that lets callers wait for recordings, with aiohttp.web.

Routes:

``POST /webhooks``
    RealtimeKit deliveries. Each is verified against RealtimeKit's public key
    (fetched once from the well-known URL, refetched if the key rotates),
    de-duplicated on ``rtk-uuid``, fed to a :class:`RecordingWaiter` and
    logged. Point your app's ``recording.statusUpdate`` webhook here.

``GET /recordings/{recording_id}/wait?status=UPLOADED&timeout=600``
    Answers once the recording reaches ``status`` (repeat the parameter for
    several), with ``{"id", "status", "download_url", "via"}``; ``via`` says
    whether a webhook or the polling fallback (after ``--grace`` seconds
    without news) told us. 409 if it ended ERRORED, 504 on timeout.

Run it (settings come from the environment, like the SDK's)::

    export CLOUDFLARE_API_TOKEN=... CLOUDFLARE_ACCOUNT_ID=... REALTIMEKIT_APP_ID=...
    python examples/webhook_app.py --port 8080

Optional: ``REALTIMEKIT_WEBHOOK_PUBLIC_KEY`` (PEM; otherwise fetched),
``REALTIMEKIT_WEBHOOK_KEY_URL`` (where to fetch it), ``REALTIMEKIT_BASE_URL``.
To try it locally, run ``realtimekit emulator --webhook-url
http://127.0.0.1:8080/webhooks``, export the variables it prints, and set
``REALTIMEKIT_WEBHOOK_KEY_URL`` to the webhook public key URL it prints.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Final

from aiohttp import web

from realtimekit_async import (
    RealtimeKit,
    RecordingFailedError,
    RecordingWaiter,
    ValidationError,
)
from realtimekit_async.webhooks import (
    PUBLIC_KEY_URL,
    GenericEvent,
    RecordingSnapshot,
    RecordingStatusUpdate,
    WebhookEvent,
    WebhookRecording,
    WebhookVerifier,
    webhook_handler,
)

__all__ = ["WAITER", "app_from_env", "create_app", "create_app_from_env", "main"]

log: Final = logging.getLogger("webhook_app")

WAITER: Final = web.AppKey("waiter", RecordingWaiter)


async def log_event(event: WebhookEvent) -> None:
    """The app's own reaction to a delivery; here it only logs (never the download URL)."""
    if isinstance(event, RecordingStatusUpdate):
        log.info("recording %s is %s", event.recording.key, event.recording.status)
    elif isinstance(event, GenericEvent):
        log.info("event %s", event.event)


def describe(snapshot: RecordingSnapshot) -> dict[str, Any]:
    """The JSON answer for a recording that reached the wanted status."""
    url: Any = snapshot.download_url
    if isinstance(url, tuple):  # a track recording: one entry per layer
        url = [
            {
                "layer": layer.layer_name,
                "files": {n: f.download_url for n, f in layer.download_urls.items()},
            }
            for layer in url
        ]
    return {
        "id": snapshot.id,
        "status": str(snapshot.status),
        "download_url": url,
        "via": "webhook" if isinstance(snapshot, WebhookRecording) else "api",
    }


async def wait_view(request: web.Request) -> web.Response:
    """``GET /recordings/{recording_id}/wait``: block until the status is reached."""
    waiter = request.app[WAITER]
    statuses = request.query.getall("status", ["UPLOADED"])
    try:
        timeout = float(request.query.get("timeout", "600"))
        snapshot = await waiter.wait(request.match_info["recording_id"], statuses, timeout=timeout)
    except (ValueError, ValidationError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except RecordingFailedError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    except TimeoutError as exc:
        return web.json_response({"error": str(exc)}, status=504)
    return web.json_response(describe(snapshot))


def create_app(
    client: RealtimeKit,
    verifier: WebhookVerifier,
    *,
    grace: float = 30.0,
    poll_interval: float = 2.0,
) -> web.Application:
    """The app, for a client and verifier the caller owns (and closes after the app)."""
    app = web.Application()
    waiter = RecordingWaiter(client, grace=grace, poll_interval=poll_interval)
    app[WAITER] = waiter
    webhook_handler(verifier, log_event, waiter=waiter).setup(app, "/webhooks")
    app.router.add_get("/recordings/{recording_id}/wait", wait_view)

    async def close_waiter(_app: web.Application) -> None:
        await waiter.close()

    app.on_shutdown.append(close_waiter)
    return app


def app_from_env(
    build: Callable[[RealtimeKit, WebhookVerifier], web.Application],
) -> web.Application:
    """``build(client, verifier)`` with both configured from the environment, closed on cleanup.

    Call it inside the running loop (the client opens an aiohttp session).
    ``REALTIMEKIT_WEBHOOK_PUBLIC_KEY`` (PEM) skips fetching the key;
    ``REALTIMEKIT_WEBHOOK_KEY_URL`` says where to fetch it from.
    """
    client = RealtimeKit()
    verifier = WebhookVerifier(
        os.environ.get("REALTIMEKIT_WEBHOOK_PUBLIC_KEY") or None,
        client=client,
        key_url=os.environ.get("REALTIMEKIT_WEBHOOK_KEY_URL", PUBLIC_KEY_URL),
    )
    app = build(client, verifier)

    async def close_client(_app: web.Application) -> None:
        await verifier.close()
        await client.close()

    app.on_cleanup.append(close_client)
    return app


async def create_app_from_env(grace: float = 30.0) -> web.Application:
    """The app with a client and verifier configured from the environment, closed on cleanup."""
    return app_from_env(lambda client, verifier: create_app(client, verifier, grace=grace))


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``--host``/``--port``/``--grace`` and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds without news before polling"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    web.run_app(create_app_from_env(args.grace), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
