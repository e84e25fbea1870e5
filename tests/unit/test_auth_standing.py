"""A key's standing: the one object its requests share, flipped when a reload of the key cache
finds the key revoked (what ends its running streams), on SQLite and PostgreSQL."""

from storage_backends import db, place  # noqa: F401

from tokenbrake.admission.auth import KeyCache, authenticate


async def test_a_reload_that_finds_the_key_revoked_flips_the_standing_its_requests_share(db):
    plaintext, _ = await db.keys.create("k")
    cache = KeyCache(db)
    await cache.reload()
    who = await authenticate({"authorization": f"Bearer {plaintext}"}, cache)
    first, second = cache.standing(who.key_name), cache.standing(who.key_name)
    assert first is second and not first.revoked
    await cache.reload()
    assert not first.revoked  # a reload alone changes nothing
    await db.keys.revoke("k")
    await cache.reload()
    assert first.revoked


async def test_revoking_one_key_leaves_the_others_standing(db):
    await db.keys.create("a")
    await db.keys.create("b")
    cache = KeyCache(db)
    await cache.reload()
    a, b = cache.standing("a"), cache.standing("b")
    await db.keys.revoke("a")
    await cache.reload()
    assert (a.revoked, b.revoked) == (True, False)
