"""Telling every gateway at once that keys or budgets changed.

Whoever changes a key or a budget (the CLI, the admin API) writes it to the database, then
publishes its kind on a channel (`publish(KEYS)`); every gateway listens (`listen()`) and
reloads what changed (`Refresher`, refresher.py), so a key revoked or a budget set on one
replica is in force on all of them within a second. One channel per technology, the one the
config points to (`open_channel`):

- Redis pub/sub (redis_channel.py) when `state:` is Redis;
- PostgreSQL LISTEN/NOTIFY (postgres_channel.py) when the database is PostgreSQL;
- else SQLite (sqlite_channel.py): one gateway process that the CLI cannot reach, so the
  gateway asks SQLite several times a second whether another connection wrote
  (`PRAGMA data_version`: a few microseconds, no I/O).

A message can be lost (a connection drops, Redis restarts): after each (re)connect a channel
yields `EVERYTHING` so its listeners reload it all, and each cache is reloaded every
`refresh_s` whatever the channel says.

May import config, storage and limits; nothing below it imports it.

May import: the package root, wire/, storage/ and limits/.
"""
from __future__ import annotations

from tokenbrake.changes.channel import BUDGETS, EVERYTHING, KEYS, Channel
from tokenbrake.changes.refresher import Refresher
from tokenbrake.config import Config
from tokenbrake.limits import REDIS_SCHEMES
from tokenbrake.storage import Database

__all__ = ["BUDGETS", "EVERYTHING", "KEYS", "Channel", "Refresher", "open_channel", "publish_change"]


def open_channel(config: Config, database: Database) -> Channel:
    """The channel every gateway of this config listens on (connecting lazily)."""
    if config.state_url.startswith(REDIS_SCHEMES):
        from tokenbrake.changes.redis_channel import RedisChannel

        return RedisChannel.from_store_url(config.state_url)
    if database.backend.dialect.name == "postgresql":
        from tokenbrake.changes.postgres_channel import PostgresChannel

        return PostgresChannel(database.backend, config.database)
    from tokenbrake.changes.sqlite_channel import SQLiteChannel

    return SQLiteChannel(database.backend)


async def publish_change(config: Config, database: Database, kind: str) -> None:
    """Tells every gateway that `kind` changed, once the change is committed (the CLI's way:
    a gateway publishes on the channel it holds)."""
    channel = open_channel(config, database)
    try:
        await channel.publish(kind)
    finally:
        await channel.close()
