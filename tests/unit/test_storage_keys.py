import time

import pytest
from storage_backends import Place, db, dump, place  # noqa: F401


async def test_created_key_verifies_as_itself(db):
    plaintext, key = await db.keys.create("search-app", team="search", models=["small", "gpt-4o"])
    found = (await db.keys.load_ring()).verify(plaintext)
    assert found == key
    assert (found.name, found.team, found.models, found.revoked) == ("search-app", "search", ["small", "gpt-4o"], False)


async def test_key_without_models_may_use_every_model(db):
    plaintext, _ = await db.keys.create("open")
    assert (await db.keys.load_ring()).verify(plaintext).models is None


async def test_key_looks_like_tb_then_id_then_at_least_32_bytes_of_secret(db):
    plaintext, key = await db.keys.create("k")
    assert plaintext.startswith("tb-")
    assert len(plaintext) >= 3 + 8 + 43  # 32 random bytes are 43 URL-safe base64 characters
    assert key.key_prefix == plaintext[:11] + "…"


async def test_two_keys_never_share_a_secret(db):
    first, _ = await db.keys.create("one")
    second, _ = await db.keys.create("two")
    assert first[11:] != second[11:]


async def test_wrong_secret_is_not_a_key(db):
    plaintext, _ = await db.keys.create("k")
    ring = await db.keys.load_ring()
    assert ring.verify(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    assert ring.verify(plaintext[:11]) is None


@pytest.mark.parametrize("presented", ["tb-unknownXsecretsecretsecretsecretsecretsecret", "sk-openai", "", "tb-"])
async def test_unknown_or_malformed_key_is_not_a_key(db, presented):
    await db.keys.create("k")
    assert (await db.keys.load_ring()).verify(presented) is None


async def test_unknown_id_takes_about_as_long_as_a_wrong_secret(db):
    plaintext, _ = await db.keys.create("k")
    ring = await db.keys.load_ring()
    wrong_secret = plaintext[:-4] + "zzzz"
    unknown_id = "tb-" + "Q" * 8 + plaintext[11:]

    def fastest(presented: str) -> float:
        best = float("inf")
        for _ in range(200):
            start = time.perf_counter()
            for _ in range(50):
                ring.verify(presented)
            best = min(best, time.perf_counter() - start)
        return best

    ratio = fastest(unknown_id) / fastest(wrong_secret)
    assert 0.5 < ratio < 2.0


async def test_revoked_key_is_recognised_as_revoked(db):
    plaintext, _ = await db.keys.create("old")
    revoked = await db.keys.revoke("old")
    assert revoked.revoked and revoked.revoked_at is not None
    found = (await db.keys.load_ring()).verify(plaintext)
    assert found is not None and found.name == "old" and found.revoked


async def test_revoking_twice_keeps_the_first_revocation_time(db):
    await db.keys.create("old")
    first = await db.keys.revoke("old")
    assert (await db.keys.revoke("old")).revoked_at == first.revoked_at


async def test_revoking_an_unknown_key_raises_key_error(db):
    with pytest.raises(KeyError):
        await db.keys.revoke("nobody")


async def test_duplicate_name_is_refused_naming_it(db):
    await db.keys.create("search-app")
    with pytest.raises(ValueError, match="search-app"):
        await db.keys.create("search-app", team="other")
    assert len(await db.keys.list()) == 1


async def test_list_and_get_show_keys_without_secrets(db):
    await db.keys.create("b-key", team="b")
    _, a = await db.keys.create("a-key")
    assert [key.name for key in await db.keys.list()] == ["a-key", "b-key"]
    assert await db.keys.get("a-key") == a
    assert await db.keys.get("missing") is None


async def test_times_are_utc(db):
    _, key = await db.keys.create("k")
    stored = await db.keys.get("k")
    assert stored.created_at == key.created_at
    assert stored.created_at.utcoffset().total_seconds() == 0


async def test_only_a_salted_hash_is_stored(place: Place, db):
    plaintext, _ = await db.keys.create("k1")
    other, _ = await db.keys.create("k2")
    everything = await dump(db)
    for key in (plaintext, other):
        assert key not in everything and key[11:] not in everything and key[11:31] not in everything
    salts = [row[0] for row in await db.backend.fetch("SELECT salt FROM virtual_keys")]
    assert len(set(salts)) == 2
    if place.kind == "sqlite":  # nor anywhere in the files, journal included
        await db.close()
        for path in place.path.parent.glob(place.path.name + "*"):
            raw = path.read_bytes()
            assert plaintext.encode() not in raw and plaintext[11:].encode() not in raw


async def test_a_key_matched_before_is_still_checked_against_the_ring_it_came_from(db):
    """The memo of matched keys: repeat calls find the same key, a near miss of a memoised
    key is still refused, and a reloaded ring sees a revocation the old ring's memo predates."""
    plaintext, key = await db.keys.create("app")
    ring = await db.keys.load_ring()
    assert ring.verify(plaintext) == key
    assert ring.verify(plaintext) == key
    assert ring.verify(plaintext + "x") is None
    assert ring.verify(plaintext[:-1]) is None
    await db.keys.revoke("app")
    assert not ring.verify(plaintext).revoked  # as of that ring's loading
    assert (await db.keys.load_ring()).verify(plaintext).revoked


async def test_the_memo_of_matched_keys_stays_bounded(db, monkeypatch):
    from tokenbrake.storage import keys

    monkeypatch.setattr(keys, "VERIFIED_MEMO_SIZE", 2)
    created = [await db.keys.create(f"k{n}") for n in range(5)]
    ring = await db.keys.load_ring()
    for plaintext, key in created:
        assert ring.verify(plaintext) == key
        assert len(ring._verified) <= 2
    for plaintext, key in created:  # forgotten ones are matched again
        assert ring.verify(plaintext) == key


async def test_a_key_that_requires_an_end_user_says_so_wherever_it_is_read(db):
    plaintext, created = await db.keys.create("strict", team="search", require_user=True)
    await db.keys.create("lenient")
    assert created.require_user
    assert (await db.keys.load_ring()).verify(plaintext).require_user
    assert (await db.keys.get("strict")).require_user and not (await db.keys.get("lenient")).require_user
    assert [(k.name, k.require_user) for k in await db.keys.list()] == [("lenient", False), ("strict", True)]


async def test_a_key_is_an_application_key_unless_made_a_viewer(db):
    plaintext, _ = await db.keys.create("app-key", team="search")
    viewer_plaintext, viewer = await db.keys.create("search-viewer", team="search", role="viewer")
    ring = await db.keys.load_ring()
    assert ring.verify(plaintext).role == "app"
    assert ring.verify(viewer_plaintext) == viewer and viewer.role == "viewer"
    assert (await db.keys.get("search-viewer")).role == "viewer"


@pytest.mark.parametrize(("options", "message"), [
    ({"role": "owner", "team": "search"}, "expected one of app, viewer"),
    ({"role": "viewer"}, "give it the team"),
    ({"role": "viewer", "team": "search", "models": ["small"]}, "calls no models"),
])
async def test_a_viewer_key_needs_a_team_and_no_models_and_roles_are_checked(db, options, message):
    with pytest.raises(ValueError, match=message):
        await db.keys.create("bad", **options)
    assert await db.keys.get("bad") is None
