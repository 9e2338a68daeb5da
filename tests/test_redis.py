"""With REDIS_URL set, the channel layer and the cache are the real Redis."""

import uuid

import pytest
from channels.layers import get_channel_layer
from django.core.cache import cache, caches

pytestmark = pytest.mark.redis


async def test_a_group_message_crosses_the_redis_channel_layer():
    layer = get_channel_layer()
    assert type(layer).__module__ == "channels_redis.core"
    group = f"test-{uuid.uuid4().hex}"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        await layer.group_send(group, {"type": "job.changed", "job": {"id": "abc", "progress": 42}})
        message = await layer.receive(channel)
    finally:
        await layer.group_discard(group, channel)
    assert message == {"type": "job.changed", "job": {"id": "abc", "progress": 42}}


def test_the_cache_is_redis():
    key = f"test-{uuid.uuid4().hex}"
    assert type(caches["default"]).__name__ == "RedisCache"
    cache.set(key, {"answer": 42}, timeout=30)
    try:
        assert cache.get(key) == {"answer": 42}
    finally:
        cache.delete(key)
