import os
import stat
from datetime import UTC, datetime

import pytest
from storage_backends import PG_URL, Place, db, dump, pg_place, place, sqlite_place  # noqa: F401

from tokenbrake.storage import migrations, open_database
from tokenbrake.storage.database import connect
from tokenbrake.storage.migrations import MIGRATIONS, applied_migrations, migrate


async def test_opening_a_new_database_records_every_migration_in_order(db):
    assert await applied_migrations(db.backend) == [name for name, _ in MIGRATIONS]
    assert MIGRATIONS[0][0] == "m001_initial"


async def test_opening_twice_applies_nothing_the_second_time_and_keeps_the_data(place: Place):
    first = await place.open()
    await first.keys.create("kept")
    await first.close()
    second = await place.open()
    try:
        assert await migrate(second.backend) == []
        assert await applied_migrations(second.backend) == [name for name, _ in MIGRATIONS]
        assert [key.name for key in await second.keys.list()] == ["kept"]
    finally:
        await second.close()


async def test_sqlite_file_is_created_readable_by_its_owner_only(tmp_path):
    database = await open_database(f"sqlite:///{tmp_path / 'new.db'}")
    await database.close()
    assert stat.S_IMODE(os.stat(tmp_path / "new.db").st_mode) == 0o600


async def test_sqlite_url_with_three_slashes_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = await open_database("sqlite:///relative.db")
    await database.close()
    assert (tmp_path / "relative.db").exists()


async def test_sqlite_runs_in_wal_mode(sqlite_place: Place):
    db = await sqlite_place.open()
    try:
        assert await db.backend.fetch("PRAGMA journal_mode") == [("wal",)]
    finally:
        await db.close()


@pytest.mark.parametrize("url", ["mysql://x@y/z", "sqlite://no-third-slash.db", "sqlite:///"])
async def test_unsupported_database_url_is_refused(url):
    with pytest.raises(ValueError, match="sqlite:///"):
        await open_database(url)


@pytest.mark.parametrize("form", ["schema", "options"])
async def test_postgres_url_can_name_the_schema(form, pg_place: Place):
    place = pg_place
    if form == "options":  # a libpq parameter: the schema must exist already
        setup = await place.open()
        await setup.close()
        url = f"{PG_URL}?options=-csearch_path%3D{place.schema}"
    else:  # ours: taken out of the URL, and the schema is created
        url = f"{PG_URL}?schema={place.schema}"
    database = await open_database(url)
    try:
        await database.keys.create("in-schema")
        tables = await database.backend.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'virtual_keys'"
            " AND table_schema = current_schema()")
        assert tables == [(place.schema,)]
        assert "in-schema" in await dump(database)
    finally:
        await database.close()


async def test_postgres_schema_name_must_be_a_plain_identifier():
    with pytest.raises(ValueError, match="schema"):
        await open_database(PG_URL, schema="x; DROP TABLE y")


async def test_keys_and_budgets_made_before_tenants_read_back_as_they_behaved(place: Place, monkeypatch):
    """A database from before m005_tenants: its keys require no end user, and its run-time
    budgets count per tenant (the new default, which is what the column's default says)."""
    before = [name for name, _ in MIGRATIONS].index("m005_tenants")
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:before])
    backend = await connect(place.url, place.schema)
    try:
        await migrate(backend)
        async with backend.transaction() as tx:
            await tx.execute("INSERT INTO virtual_keys (key_id, name, team, models, salt, key_hash, key_prefix, "
                             "created_at) VALUES ('abcdefgh', 'old', 'search', NULL, '00', '00', 'tb-abcdefgh…', ?)",
                             (datetime.now(UTC),))
            await tx.execute("INSERT INTO budgets (scope, period, rolling_s, amount_usd, mode, downgrade_to, "
                             "downgrade_below_usd, alert_at, updated_at) VALUES ('user:*', 'day', NULL, 5, 'hard', "
                             "NULL, NULL, '[1.0]', ?)", (datetime.now(UTC),))
    finally:
        await backend.close()
    monkeypatch.undo()
    db = await place.open()
    try:
        assert MIGRATIONS[before][0] in await applied_migrations(db.backend)
        [key] = await db.keys.list()
        [budget] = await db.budgets.list()
        assert (key.name, key.require_user) == ("old", False)
        assert (budget.scope, budget.across_tenants) == ("user:*", False)
    finally:
        await db.close()


async def test_keys_made_before_roles_are_application_keys(place: Place, monkeypatch):
    """A database from before m008_key_roles: every key it holds calls models, as it did."""
    before = [name for name, _ in MIGRATIONS].index("m008_key_roles")
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:before])
    old = await place.open()
    try:
        async with old.backend.transaction() as tx:
            await tx.execute("INSERT INTO virtual_keys (key_id, name, team, models, salt, key_hash, key_prefix, "
                             "created_at) VALUES ('abcdefgh', 'old', 'search', NULL, '00', '00', 'tb-abcdefgh…', ?)",
                             (datetime.now(UTC),))
    finally:
        await old.close()
    monkeypatch.undo()
    db = await place.open()
    try:
        assert "m008_key_roles" in await applied_migrations(db.backend)
        [key] = await db.keys.list()
        assert (key.name, key.role) == ("old", "app")
    finally:
        await db.close()
