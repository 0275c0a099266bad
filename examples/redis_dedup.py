"""A webhook de-duplication store in Redis, shared by every replica of a receiver.

RealtimeKit delivers at least once, and a redelivery may reach another
replica than the first attempt did. With the keys in Redis, every replica
sees every delivery already handled::

    import redis.asyncio as redis

    store = RedisDeduplicator(redis.Redis.from_url("redis://localhost:6379/0"))
    handler = webhook_handler(verifier, on_event, deduplicator=store)

``SET key 1 NX EX ttl`` is atomic: of two replicas receiving the same
delivery at once, exactly one dispatches it. If Redis is unreachable the
handler answers 503 and RealtimeKit delivers again later. Needs
``pip install redis`` (not a dependency of realtimekit_async); any client
with the same ``set``/``delete`` calls works.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

__all__ = ["RedisCommands", "RedisDeduplicator"]


class RedisCommands(Protocol):
    """The two commands used, as ``redis.asyncio.Redis`` spells them."""

    def set(self, name: str, value: bytes, *, ex: int, nx: bool) -> Awaitable[Any]: ...

    def delete(self, *names: str) -> Awaitable[Any]: ...


class RedisDeduplicator:
    """A :class:`~realtimekit_async.webhooks.DeduplicationStore` keeping each key ``ttl`` seconds."""

    def __init__(
        self, redis: RedisCommands, *, ttl: int = 24 * 3600, prefix: str = "rtk-webhook:"
    ) -> None:
        self._redis = redis
        self._ttl = ttl
        self._prefix = prefix

    async def add_if_new(self, key: str) -> bool:
        """``SET prefix+key 1 NX EX ttl``: true only for the first to set it."""
        return bool(await self._redis.set(self._prefix + key, b"1", ex=self._ttl, nx=True))

    async def forget(self, key: str) -> None:
        """``DEL prefix+key``, so the redelivery asked for is dispatched."""
        await self._redis.delete(self._prefix + key)
