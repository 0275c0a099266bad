"""Keys, signatures and payloads for the webhook and waiter tests.

RSA keys are expensive to make on a small machine, so each is generated once
per test process.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from realtimekit_async.testing import generate_webhook_key, public_key_pem, sign_delivery
from realtimekit_async.webhooks import RECORDING_STATUS_UPDATE

RECORDING_ID = "0f6a8e2c-3b1d-4c5e-9f7a-1b2c3d4e5f60"


def private_key(which: int = 0) -> rsa.RSAPrivateKey:
    """Test key number ``which``, generated on first use."""
    return _generate(which)


@functools.cache  # keyed on the positional number, however the caller spelled it
def _generate(_which: int) -> rsa.RSAPrivateKey:
    return generate_webhook_key()


def public_pem(which: int = 0) -> str:
    return public_key_pem(private_key(which))


def sign(body: bytes, which: int = 0) -> str:
    """Base64 RSA-SHA256 PKCS#1 v1.5 signature of ``body``, as RealtimeKit sends it."""
    return sign_delivery(body, private_key(which))["rtk-signature"]


def status_update(
    status: str,
    recording_id: str = RECORDING_ID,
    **recording: Any,
) -> dict[str, Any]:
    """A ``recording.statusUpdate`` body (camelCase, ``fileSize`` as a string)."""
    doc: dict[str, Any] = {
        "id": recording_id,
        "recordingId": recording_id,
        "status": status,
        "outputFileName": "meeting.mp4",
        "meetingId": "bbb4b1a8-7c0a-4c22-9d1b-5a6f3c2e1d00",
        "organizationId": "org-1",
        "roomUUID": "room-1",
    }
    if status == "UPLOADED":
        doc.update(
            downloadUrl=f"https://storage.example/{recording_id}.mp4?X-Signature=abc",
            downloadUrlExpiry="2025-01-09T03:04:05.000Z",
            fileSize="2044680",
            recordingDuration=62,
        )
    doc.update(recording)
    return {
        "event": RECORDING_STATUS_UPDATE,
        "recording": doc,
        "meeting": {
            "id": "bbb4b1a8-7c0a-4c22-9d1b-5a6f3c2e1d00",
            "sessionId": "sess-1",
            "title": "Standup",
            "status": "LIVE",
            "organizedBy": {"id": "org-1", "name": "Acme"},
        },
    }


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def signed_headers(
    body: bytes, delivery_id: str = "delivery-1", *, which: int = 0, prefix: str = "rtk"
) -> dict[str, str]:
    """Headers of a delivery of ``body`` signed with key ``which``."""
    return sign_delivery(
        body,
        private_key(which),
        delivery_id=delivery_id,
        webhook_id="webhook-1",
        legacy=prefix == "dyte",
    )


def key_document(pem: str) -> dict[str, Any]:
    """The body of ``/.well-known/webhooks.json``."""
    return {"success": True, "data": {"publicKey": pem}}


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/{name}.py`` (examples/ is not a package) as a module.

    examples/ is on ``sys.path`` while it runs, as when the example is run as a
    script: an example may import its sibling (archive_service imports webhook_app).
    """
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module
