"""`mark_once`: the first caller wins until the mark expires, on both backends and across a
restart (what makes a budget alert fire once per period across replicas)."""

from limits_backends import clock, place, store  # noqa: F401


async def test_only_the_first_mark_wins_until_it_expires(store, clock):
    assert await store.mark_once("alert:x", 60) is True
    assert await store.mark_once("alert:x", 60) is False
    assert await store.mark_once("alert:y", 60) is True
    clock.advance(61)
    assert await store.mark_once("alert:x", 60) is True


async def test_a_mark_without_expiry_is_kept(store, clock):
    assert await store.mark_once("alert:total", None) is True
    clock.advance(10 ** 8)
    assert await store.mark_once("alert:total", None) is False


async def test_marks_survive_a_restart_and_are_shared(place):
    first = await place.open()
    assert await first.mark_once("alert:x", 3600) is True
    await first.close()
    place.opened.remove(first)
    again = await place.open()
    assert await again.mark_once("alert:x", 3600) is False
