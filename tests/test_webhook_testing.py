"""The public test helpers (realtimekit_async.testing) and the Redis store example."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtimekit_async.emulator import verify_webhook_signature
from realtimekit_async.testing import generate_webhook_key, public_key_pem, sign_delivery
from realtimekit_async.webhooks import (
    DeduplicationStore,
    GenericEvent,
    WebhookVerificationError,
    WebhookVerifier,
    verify_signature,
)

from ._webhook_support import load_example, private_key, public_pem

BODY = b'{"event":"meeting.started","meeting":{"id":"m1"}}'


async def test_a_signed_delivery_passes_the_sdks_verifier() -> None:
    headers = sign_delivery(BODY, private_key(), delivery_id="d1", webhook_id="w1")
    assert set(headers) == {"Content-Type", "rtk-signature", "rtk-uuid", "rtk-webhook-id"}
    assert headers["Content-Type"] == "application/json"
    event = await WebhookVerifier(public_key_pem(private_key())).parse(BODY, headers)
    assert event == GenericEvent("meeting.started", json.loads(BODY), "d1", "w1")


def test_the_signature_is_over_the_exact_bytes() -> None:
    signature = sign_delivery(BODY, private_key())["rtk-signature"]
    assert verify_signature(public_pem(), BODY, signature)
    assert verify_webhook_signature(public_pem(), BODY, signature)  # the emulator's own check
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert not verify_signature(public_pem(), reserialised, signature)


async def test_another_key_does_not_verify() -> None:
    headers = sign_delivery(BODY, private_key(1))
    with pytest.raises(WebhookVerificationError):
        await WebhookVerifier(public_pem(0)).verify(BODY, headers)


def test_each_delivery_gets_a_fresh_uuid_unless_given() -> None:
    first, second = (sign_delivery(BODY, private_key())["rtk-uuid"] for _ in range(2))
    assert first != second
    assert sign_delivery(BODY, private_key(), delivery_id="same")["rtk-uuid"] == "same"


def test_legacy_names() -> None:
    headers = sign_delivery(BODY, private_key(), legacy=True)
    assert {"dyte-signature", "dyte-uuid", "dyte-webhook-id"} <= set(headers)
    assert not any(name.startswith("rtk-") for name in headers)


def test_a_generated_key_is_a_fresh_pair() -> None:
    key = generate_webhook_key(key_size=1024)  # smaller: quicker, and enough for a test
    assert key.key_size == 1024
    assert public_key_pem(key).startswith("-----BEGIN PUBLIC KEY-----")
    signature = sign_delivery(BODY, key)["rtk-signature"]
    assert verify_signature(public_key_pem(key), BODY, signature)
    assert not verify_signature(public_pem(), BODY, signature)


# -- examples/redis_dedup.py against a fake Redis ---------------------------------------


class FakeRedis:
    """``SET ... NX EX`` and ``DEL`` as Redis answers them; records every command."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.commands: list[tuple[Any, ...]] = []

    async def set(self, name: str, value: bytes, *, ex: int, nx: bool) -> bool | None:
        self.commands.append(("SET", name, value, "EX", ex, "NX" if nx else ""))
        if nx and name in self.data:
            return None  # what redis-py returns when NX refuses
        self.data[name] = value
        return True

    async def delete(self, *names: str) -> int:
        self.commands.append(("DEL", *names))
        return sum(self.data.pop(n, None) is not None for n in names)


async def test_the_redis_store_sets_nx_with_a_ttl_and_deletes() -> None:
    redis = FakeRedis()
    store = load_example("redis_dedup").RedisDeduplicator(redis, ttl=600)
    assert isinstance(store, DeduplicationStore)
    assert await store.add_if_new("body:abc")
    assert not await store.add_if_new("body:abc")
    await store.forget("body:abc")
    assert await store.add_if_new("body:abc")
    assert redis.commands[:3] == [
        ("SET", "rtk-webhook:body:abc", b"1", "EX", 600, "NX"),
        ("SET", "rtk-webhook:body:abc", b"1", "EX", 600, "NX"),
        ("DEL", "rtk-webhook:body:abc"),
    ]
