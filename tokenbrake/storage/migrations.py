"""Schema changes as named, ordered migrations, recorded in the `migrations` table.

Each migration is a function named `mNNN_what` returning its SQL statements; the same
statements serve both databases, with column types filled in from the dialect
(`{timestamp}`, `{money}`, ...). `migrate` runs, in one transaction, every migration the
table does not list yet, in order, and records each: opening a database twice changes
nothing the second time. To change the schema, add the next function; never edit one that
has shipped.

Tables:
- `virtual_keys`: one row per key; only a salted hash of the secret, and its role (see keys.py).
- `ledger`: one row per upstream call; `tags` holds the tags as JSON for reading back.
- `ledger_tags`: the same tags, one row per pair, so grouping by tag is plain SQL.
- `routing_examples`: cascade outcomes (prompt, whether the cheaper tier's answer was kept),
  written only for routes with `keep_examples: true` (routing/outcomes.py).
- `rollup_minute`, `rollup_hour`, `rollup_day`, `rollup_week`: the ledger summed per bucket
  and grouping, the minutes written with the rows (rollups.py), the rest folded from them
  (compaction.py) up to the mark in `rollup_compacted`.
- `budgets`: budgets set at run time (`tokenbrake budgets set`, the admin API), one per scope
  and period; gateways merge them over the config's (see budgets.py).
- `responses`: the Responses API conversations the gateway keeps (responses.py): one row per
  response, with its whole input and the Response object, scoped to the key that made it and
  deleted once `expires_at` (epoch seconds) has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tokenbrake.storage import rollups
from tokenbrake.storage.backend import Backend, Dialect

Migration = Callable[[Dialect], list[str]]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(d: Dialect) -> list[str]:
    t = d.types
    return [
        f"""CREATE TABLE virtual_keys (
            key_id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            team TEXT,
            models TEXT,
            salt TEXT NOT NULL,
            key_hash TEXT NOT NULL,
            key_prefix TEXT NOT NULL,
            created_at {t['timestamp']} NOT NULL,
            revoked_at {t['timestamp']}
        )""",
        f"""CREATE TABLE ledger (
            id {t['id']},
            request_id TEXT NOT NULL UNIQUE,
            ts {t['timestamp']} NOT NULL,
            key_name TEXT,
            team TEXT,
            user_name TEXT,
            session_id TEXT,
            tags TEXT NOT NULL,
            requested_model TEXT,
            served_model TEXT,
            provider TEXT,
            input_tokens {t['bigint']} NOT NULL,
            cached_input_tokens {t['bigint']} NOT NULL,
            cache_write_tokens {t['bigint']} NOT NULL,
            output_tokens {t['bigint']} NOT NULL,
            reasoning_tokens {t['bigint']} NOT NULL,
            cost_usd {t['money']} NOT NULL,
            latency_ms {t['float']} NOT NULL,
            status INTEGER NOT NULL,
            error TEXT,
            stream {t['bool']} NOT NULL,
            endpoint TEXT NOT NULL,
            front_door TEXT NOT NULL,
            prompt TEXT,
            completion TEXT
        )""",
        "CREATE INDEX ledger_ts ON ledger (ts)",
        "CREATE INDEX ledger_key_ts ON ledger (key_name, ts)",
        "CREATE INDEX ledger_team_ts ON ledger (team, ts)",
        """CREATE TABLE ledger_tags (
            request_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (request_id, key)
        )""",
        "CREATE INDEX ledger_tags_pair ON ledger_tags (key, value)",
    ]


@migration
def m002_budgets(d: Dialect) -> list[str]:
    t = d.types
    return [
        f"""CREATE TABLE budgets (
            scope TEXT NOT NULL,
            period TEXT NOT NULL,
            rolling_s {t['float']},
            amount_usd {t['money']} NOT NULL,
            mode TEXT NOT NULL,
            downgrade_to TEXT,
            downgrade_below_usd {t['money']},
            alert_at TEXT NOT NULL,
            updated_at {t['timestamp']} NOT NULL,
            PRIMARY KEY (scope, period)
        )""",
    ]


@migration
def m003_loop_flag(d: Dialect) -> list[str]:
    """The loop a session's detector suspected in a call (its kind; NULL: none), so reports
    can count what looping agents cost."""
    return ["ALTER TABLE ledger ADD COLUMN loop_suspected TEXT"]


@migration
def m004_routing(d: Dialect) -> list[str]:
    """The cost a routed call saved against the model asked for (NULL: not routed), and the
    cascade outcomes kept as labelled examples for `tokenbrake router train --from-ledger`."""
    t = d.types
    return [
        f"ALTER TABLE ledger ADD COLUMN saved_usd {t['money']}",
        f"""CREATE TABLE routing_examples (
            id {t['id']},
            ts {t['timestamp']} NOT NULL,
            route TEXT NOT NULL,
            tier_model TEXT NOT NULL,
            key_name TEXT,
            team TEXT,
            prompt TEXT NOT NULL,
            good_enough {t['bool']} NOT NULL
        )""",
    ]


@migration
def m005_tenants(d: Dialect) -> list[str]:
    """Whether a key requires an end user on every request (`keys create --require-user`), and
    whether a run-time user or tag budget is one counter across tenants (`across_tenants`)."""
    t = d.types
    return [
        f"ALTER TABLE virtual_keys ADD COLUMN require_user {t['bool']} NOT NULL DEFAULT FALSE",
        f"ALTER TABLE budgets ADD COLUMN across_tenants {t['bool']} NOT NULL DEFAULT FALSE",
    ]


@migration
def m006_durable_spend(d: Dialect) -> list[str]:
    """What each settled request charged each budget counter, written in the same transaction
    as its ledger row, so a restart rebuilds every counter's spend from the database (the
    ledger is the truth for settled spend); and the flag of a row whose usage was never seen
    (its gateway died mid-call, so it was charged at its reserved worst case)."""
    t = d.types
    return [
        f"ALTER TABLE ledger ADD COLUMN usage_unseen {t['bool']} NOT NULL DEFAULT FALSE",
        f"""CREATE TABLE budget_charges (
            request_id TEXT NOT NULL,
            counter_key TEXT NOT NULL,
            nanos {t['bigint']} NOT NULL,
            at {t['float']} NOT NULL,
            keep_until {t['float']},
            PRIMARY KEY (request_id, counter_key)
        )""",
        "CREATE INDEX budget_charges_counter ON budget_charges (counter_key, at)",
        "CREATE INDEX budget_charges_keep ON budget_charges (keep_until)",
    ]


@migration
def m007_rollups(d: Dialect) -> list[str]:
    """The rollups the insight API, the dashboard and `tokenbrake usage` read (per minute, hour
    and day, by every attribution dimension; see rollups.py), built from the ledger already
    there: a scan of the ledger per grouping, in this migration's transaction."""
    return rollups.schema(d) + rollups.backfill(d)


@migration
def m008_key_roles(d: Dialect) -> list[str]:
    """What a key is for: `app` keys call models; `viewer` keys only read their team's spend
    (the dashboard, the insight API) and are refused on /v1."""
    return ["ALTER TABLE virtual_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'app'"]


@migration
def m009_rollup_compaction(d: Dialect) -> list[str]:
    """Batches write the rollups' minutes only; each closed hour is folded into hours, days and
    weeks once (compaction.py), up to a mark every reader tiles by. Adds weekly rollups (a
    90-day ranking reads 13 weeks and a few days a group, not 90 days). Stop every replica before
    this migration: one still running the code before it adds to hours and days the minutes
    that compaction adds again."""
    return rollups.compaction_schema(d, datetime.now(UTC))


@migration
def m010_rollup_spans(d: Dialect) -> list[str]:
    """An index for one value over a span (a team's users over 90 days) on the tables that
    compaction writes once an hour: the primary key would read every team's rows."""
    return [f"CREATE INDEX {rollups.TABLES[g]}_spans ON {rollups.TABLES[g]} (dims, v1, bucket)" for g in rollups.COARSER]


@migration
def m011_rollup_nested(d: Dialect) -> list[str]:
    """An index for a few users, keys or sessions over a span, whatever their team (the top
    ten users' metrics after their ranking): they are the second value of team pairs, so the
    other indexes read every user's rows. On the tables compaction writes once an hour only."""
    return [f"CREATE INDEX {rollups.TABLES[g]}_nested ON {rollups.TABLES[g]} (dims, v2, bucket)"
            for g in rollups.COARSER]


@migration
def m012_anomaly_alerts(d: Dialect) -> list[str]:
    """Anomaly alerts (foresight/detector.py), one row per incident: the id keeps replicas from
    raising it twice, and so does the partial index, one incident of a kind open per scope
    (alert_rows.py)."""
    t = d.types
    return [
        f"""CREATE TABLE anomaly_alerts (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            scope TEXT NOT NULL,
            team TEXT,
            since {t['timestamp']} NOT NULL,
            raised_at {t['timestamp']} NOT NULL,
            ended_at {t['timestamp']},
            body TEXT NOT NULL
        )""",
        "CREATE UNIQUE INDEX anomaly_alerts_open ON anomaly_alerts (scope, kind) WHERE ended_at IS NULL",
        "CREATE INDEX anomaly_alerts_raised ON anomaly_alerts (raised_at)",
    ]


@migration
def m013_responses_store(d: Dialect) -> list[str]:
    """Responses API conversations kept for `previous_response_id` and `GET /v1/responses/{id}`,
    for upstreams that keep none themselves (responses.py)."""
    t = d.types
    return [
        f"""CREATE TABLE responses (
            response_id TEXT PRIMARY KEY,
            key_name TEXT NOT NULL,
            created_at {t['float']} NOT NULL,
            expires_at {t['float']} NOT NULL,
            input_items TEXT NOT NULL,
            response TEXT NOT NULL
        )""",
        "CREATE INDEX responses_expiry ON responses (expires_at)",
    ]


async def migrate(backend: Backend, until: str | None = None) -> list[str]:
    """Applies the migrations not yet recorded (up to and including `until`, if named);
    returns their names."""
    dialect = backend.dialect
    applied = []
    async with backend.transaction() as tx:
        if dialect.migration_lock:
            await tx.execute(dialect.migration_lock)
        await tx.execute(f"CREATE TABLE IF NOT EXISTS migrations "
                         f"(name TEXT PRIMARY KEY, applied_at {dialect.types['timestamp']} NOT NULL)")
        done = {name for (name,) in await tx.fetch("SELECT name FROM migrations")}
        for name, fn in MIGRATIONS:
            if name not in done:
                for statement in fn(dialect):
                    await tx.execute(statement)
                await tx.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, datetime.now(UTC)))
                applied.append(name)
            if name == until:
                break
    return applied


async def applied_migrations(backend: Backend) -> list[str]:
    rows = await backend.fetch("SELECT name FROM migrations ORDER BY name")
    return [name for (name,) in rows]
