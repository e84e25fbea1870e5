"""What the Redis store leaves behind: prefixed keys, with TTLs wherever a key can end."""

from __future__ import annotations

import redis.asyncio as aioredis
from limits_backends import REDIS_URL, acquire_slot, clock, hit, monthly, place, total, usd  # noqa: F401

from tokenbrake.limits import BudgetCounter, Window


async def _ttls(prefix: str) -> dict[str, int]:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        return {key[len(prefix):]: await client.pttl(key) async for key in client.scan_iter(match=prefix + "*")}
    finally:
        await client.aclose()


async def test_every_key_is_prefixed_and_only_total_budgets_live_forever(place, clock):
    if place.kind != "redis":
        return
    store = await place.open()
    counters = [monthly("team:a", "10", tz="Europe/Paris"), total("key:k", "10"),
                BudgetCounter("user:u", usd("10"), Window.rolling(60))]
    await store.reserve("open", counters, usd("1"))
    await store.reserve("done", counters, usd("1"))
    await store.settle("done", usd("1"))
    await hit(store, "key:k", 10, 60)
    await acquire_slot(store, "key:k", 10, "open", ttl_s=30)

    ttls = await _ttls(place.prefix)
    month = "budget:team:a:2026-10-01T00:00+02:00"
    assert set(ttls) == {
        month, month + ":exp", "budget:key:k:total", "budget:key:k:total:exp",
        "budget:user:u:rolling:60s", "budget:user:u:rolling:60s:exp", "budget:user:u:rolling:60s:log",
        "reservation:open", "rate:key:k", "rate:key:k:used", "slots:key:k", "leases:reservations",
    }
    forever = {key for key, ttl in ttls.items() if ttl < 0}
    assert forever == {"budget:key:k:total", "budget:key:k:total:exp"}
    # October ends in Paris on the 31st at 23:00 UTC, 16 days 11 hours after the clock's now;
    # the counter outlives it by an hour, no more.
    until_end_ms = (16 * 86400 + 11 * 3600) * 1000
    assert until_end_ms < ttls[month] <= until_end_ms + 3600 * 1000
