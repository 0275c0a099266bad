"""Helpers for testing your own webhook receiver: keys, and deliveries signed as RealtimeKit signs them.

RealtimeKit signs the raw body bytes with RSA-SHA256 (PKCS#1 v1.5) and sends
the base64 signature in ``rtk-signature``, next to ``rtk-uuid`` and
``rtk-webhook-id``. Sign your test bodies the same way and give the public
half to :class:`~realtimekit_async.webhooks.WebhookVerifier`::

    key = generate_webhook_key()
    verifier = WebhookVerifier(public_key_pem(key))
    body = b'{"event": "meeting.started", "meeting": {"id": "m1"}}'
    await http.post("/webhooks", data=body, headers=sign_delivery(body, key))

The signing is the emulator's (:mod:`realtimekit_async.emulator`), which
stays an independent oracle: it shares no code with the SDK's verification.
"""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.asymmetric import rsa

from ._public import publish
from .emulator._webhooks import generate_private_key, public_key_pem, signed_headers

__all__ = ["generate_webhook_key", "public_key_pem", "sign_delivery"]


def generate_webhook_key(key_size: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA key pair to sign test deliveries with (2048 bits take ~0.1 s: reuse it).

    :func:`public_key_pem` gives the public half as RealtimeKit's key URL serves it.
    """
    return generate_private_key(key_size)


def sign_delivery(
    body: bytes,
    private_key: rsa.RSAPrivateKey,
    *,
    delivery_id: str | None = None,
    webhook_id: str = "test-webhook",
    legacy: bool = False,
) -> dict[str, str]:
    """The headers RealtimeKit sends with ``body``: ``Content-Type`` and the signed ``rtk-*`` set.

    The signature is base64 RSA-SHA256 (PKCS#1 v1.5) over the exact ``body``
    bytes: send them as signed, since re-serialised JSON no longer matches.
    ``delivery_id`` (``rtk-uuid``) is a fresh UUID unless given (pass one twice
    to test a redelivery); ``legacy=True`` uses the ``dyte-*`` names of older
    senders.
    """
    return signed_headers(
        private_key,
        body,
        delivery_id=delivery_id if delivery_id is not None else str(uuid.uuid4()),
        webhook_id=webhook_id,
        legacy=legacy,
    )


# Last: the names re-exported from private modules report this module (see _public).
publish(globals(), __all__, module=__name__)
