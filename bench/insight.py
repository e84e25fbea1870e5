"""How fast the insight API answers on a big ledger, and what the rollups cost the writer.

1. Generates a ledger (default 10 million rows over 90 days ending now: 50 teams, 5,000 end
   users, 100 keys, 20 models on 5 upstreams, tags, a tenth of the calls in agent sessions of
   20 calls by one user, a few errors) straight into the tables: `executemany` in big
   transactions on SQLite, COPY on PostgreSQL, into a database
   migrated up to m006 (before the rollups). Then runs migration m007, whose backfill builds
   the rollups from that ledger, and times both steps.
2. Asks each query of the API (the dashboard's: overview numbers, 90-day charts, breakdowns,
   recent requests) through its HTTP handler in-process, `--repeat` times after a warm-up,
   and prints p50 and p95.
3. Writes `--writer-rows` rows (timestamped now) through a LedgerWriter into a fresh database,
   with rollups and without, and prints rows/s and the ratio.

    .venv/bin/python bench/insight.py [--rows 10000000] [--db sqlite,postgresql] [--repeat 20]
        [--writer-rows 50000] [--keep] [--reuse]

`--reuse` skips generation when the database is already there (same --rows); `--keep`
leaves it there afterwards. SQLite lives in --sqlite-dir, PostgreSQL in a schema of its own on
--pg-url (TEST_POSTGRES_URL, else the local server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
from starlette.applications import Starlette

from tokenbrake.config import parse_config
from tokenbrake.server import insight
from tokenbrake.storage import LedgerWriter, open_database
from tokenbrake.storage.database import connect
from tokenbrake.storage.ledger import Ledger, LedgerRow
from tokenbrake.storage.migrations import migrate

MASTER = "tb-bench-insight"
COLUMNS = ("request_id", "ts", "key_name", "team", "user_name", "session_id", "tags", "requested_model",
           "served_model", "provider", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
           "reasoning_tokens", "cost_usd", "latency_ms", "status", "error", "stream", "endpoint", "front_door",
           "saved_usd", "usage_unseen")
FEATURES = ["search", "chat", "summarise", "classify", "extract", "translate", "agent", "rerank", "draft", "review"]


def world(teams: int, users: int, models: int):
    models_ = [f"model-{m:02d}" for m in range(models)]
    prices = [(0.1 + m * 0.6) / 1e6 for m in range(models)]  # USD per token, cheap to dear
    return SimpleNamespace(teams=[f"team-{t:02d}" for t in range(teams)], users=[f"user-{u:04d}" for u in range(users)],
                           models=models_, prices=prices, keys=2)


def ledger_rows(count: int, days: int, w, end: datetime, seed: int = 1):
    """The ledger in time order, as plain values (text timestamps, decimal text money)."""
    rnd = random.Random(seed)
    start = end - timedelta(days=days)
    step = days * 86400 / count
    statuses = [200] * 97 + [429, 500, 499]
    for n in range(count):
        ts = start + timedelta(seconds=n * step + rnd.random() * step)
        u = rnd.randrange(len(w.users))
        in_session = (n // 20) % 10 == 0  # a tenth of the calls: agent runs of 20 calls, one user's each
        if in_session:
            u = (n // 20 * 7919) % len(w.users)
        team = w.teams[u % len(w.teams)]
        m = min(int(rnd.paretovariate(1.2)) - 1, len(w.models) - 1)
        served = w.models[m]
        routed = rnd.random() < 0.3
        asked = "auto" if routed else served
        tokens_in, tokens_out = rnd.randrange(50, 4000), rnd.randrange(10, 800)
        cost = (tokens_in + tokens_out) * w.prices[m]
        saved = f"{cost * 0.8:.10f}" if routed else None
        tags = {"feature": FEATURES[u % len(FEATURES)], "env": "prod" if rnd.random() < 0.9 else "staging"}
        session = f"s-{n // 20}" if in_session else None
        status = rnd.choice(statuses)
        yield (f"{int(ts.timestamp() * 1000):012x}{n:010x}", ts, f"key-{team}-{u % w.keys}", team, w.users[u], session,
               tags, asked, served, f"upstream-{m % 5}", tokens_in, rnd.randrange(0, 200), 0, tokens_out,
               rnd.randrange(0, 50), f"{cost:.10f}", rnd.lognormvariate(6.5, 0.8), status,
               None if status < 400 else f"upstream {status}", rnd.random() < 0.5, "chat", "openai", saved, False)


def _text_ts(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def load_sqlite(path: Path, rows) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    insert = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    tags_insert = "INSERT INTO ledger_tags (request_id, key, value) VALUES (?, ?, ?)"
    batch, tags = [], []
    for row in rows:
        values = list(row)
        values[1] = _text_ts(row[1])
        values[6] = json.dumps(row[6], sort_keys=True)
        batch.append(values)
        tags += [(row[0], k, v) for k, v in row[6].items()]
        if len(batch) >= 100_000:
            _sqlite_batch(conn, insert, batch, tags_insert, tags)
            batch, tags = [], []
    _sqlite_batch(conn, insert, batch, tags_insert, tags)
    conn.close()


def _sqlite_batch(conn, insert, batch, tags_insert, tags) -> None:
    conn.execute("BEGIN")
    conn.executemany(insert, batch)
    conn.executemany(tags_insert, tags)
    conn.execute("COMMIT")


def load_postgres(url: str, schema: str, rows) -> None:
    with psycopg.connect(url, autocommit=True, options=f"-csearch_path={schema}") as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ledger ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            tag_rows = []
            for row in rows:
                values = list(row)
                values[1] = _text_ts(row[1])
                values[6] = json.dumps(row[6], sort_keys=True)
                values[19] = "t" if row[19] else "f"
                values[23] = "f"
                copy.write_row(values)
                tag_rows += [(row[0], k, v) for k, v in row[6].items()]
        with cur.copy("COPY ledger_tags (request_id, key, value) FROM STDIN") as copy:
            for tag in tag_rows:
                copy.write_row(tag)
        cur.execute("ANALYZE")


async def generate(kind: str, url: str, schema: str | None, path: Path | None, args, w, end: datetime) -> dict:
    backend = await connect(url, schema)
    try:
        await migrate(backend, until="m006_durable_spend")
    finally:
        await backend.close()
    started = time.perf_counter()
    rows = ledger_rows(args.rows, args.days, w, end)
    if kind == "sqlite":
        await asyncio.to_thread(load_sqlite, path, rows)
    else:
        await asyncio.to_thread(load_postgres, url, schema, rows)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    db = await open_database(url, schema=schema)  # m007: the backfill
    backfill = time.perf_counter() - started
    if kind == "postgresql":
        await db.backend.fetch("SELECT 1")
        async with db.backend.transaction() as tx:
            await tx.execute("ANALYZE")
    await db.close()
    return {"load_s": round(loaded, 1), "backfill_s": round(backfill, 1)}


def queries(w) -> list[tuple[str, str, dict]]:
    """(group, name, parameters): the overview's numbers, then the charts and tables; a chart
    asks for the one metric it draws, as the dashboard does."""
    team = w.teams[3]
    return [
        ("overview", "totals today", {"path": "totals", "since": "today"}),
        ("overview", "totals this week", {"path": "totals", "since": "7d"}),
        ("overview", "totals this month", {"path": "totals", "since": "30d"}),
        ("overview", "savings this month", {"path": "savings", "since": "30d"}),
        ("overview", "team's totals this month", {"path": "totals", "since": "30d", "team": team}),
        ("90-day chart", "series by day", {"path": "series", "since": "90d", "every": "day", "metrics": "cost_usd"}),
        ("90-day chart", "series by day, by model", {"path": "series", "since": "90d", "every": "day", "by": "model", "metrics": "cost_usd"}),
        ("90-day chart", "series by day, by team", {"path": "series", "since": "90d", "every": "day", "by": "team",
                                                    "metrics": "cost_usd"}),
        # What no chart asks (a chart draws at most 1,500 points a line, explore.js): the API's.
        ("API", "series by hour, by team", {"path": "series", "since": "90d", "every": "hour", "by": "team",
                                            "metrics": "cost_usd"}),
        ("API", "the same, every metric", {"path": "series", "since": "90d", "every": "hour", "by": "team"}),
        ("90-day chart", "series by day, a team by user", {"path": "series", "since": "90d", "every": "day", "by": "user",
                                                           "team": team, "metrics": "cost_usd"}),
        ("90-day chart", "breakdown by user, top 10", {"path": "breakdown", "since": "90d", "by": "user", "top": "10"}),
        ("90-day chart", "breakdown by key", {"path": "breakdown", "since": "90d", "by": "key"}),
        ("90-day chart", "breakdown by team and model", {"path": "breakdown", "since": "90d", "by": "team,model",
                                                         "top": "20"}),
        ("90-day chart", "breakdown by feature tag", {"path": "breakdown", "since": "90d", "by": "tag.feature"}),
        ("90-day chart", "breakdown by session, top 10", {"path": "breakdown", "since": "90d", "by": "session",
                                                          "top": "10"}),
        ("last day", "series by minute, last 3 h", {"path": "series", "since": "3h", "every": "minute"}),
        ("last day", "series by hour, 24 h, by model", {"path": "series", "since": "24h", "every": "hour", "by": "model"}),
        ("last day", "breakdown by user, 24 h, top 10", {"path": "breakdown", "since": "24h", "by": "user", "top": "10"}),
        ("requests", "recent 50", {"path": "requests", "limit": "50"}),
        ("requests", "recent 50 of a team", {"path": "requests", "limit": "50", "team": team}),
    ]


async def measure(url: str, schema: str | None, w, repeat: int) -> list[dict]:
    os.environ["TOKENBRAKE_MASTER_KEY"] = MASTER
    db = await open_database(url, schema=schema)
    writer = LedgerWriter(db.ledger)
    app = Starlette(routes=insight.routes)
    app.state.tokenbrake = SimpleNamespace(config=parse_config({"database": url, "upstreams": {}, "models": {}}),
                                           database=db, writer=writer)
    results = []
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     headers={"authorization": f"Bearer {MASTER}"}, timeout=600) as client:
            for group, name, params in queries(w):
                params = dict(params)
                path = params.pop("path")
                if params.get("since") == "today":
                    params["since"] = midnight.isoformat()
                timings = []
                for n in range(repeat + 2):
                    started = time.perf_counter()
                    response = await client.get(f"/admin/insight/{path}", params=params)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text}")
                    if n >= 2:
                        timings.append(elapsed * 1000)
                timings.sort()
                results.append({"group": group, "query": name, "p50_ms": round(statistics.median(timings), 1),
                                "p95_ms": round(timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))], 1),
                                "bytes": len(response.content)})
                print(f"  {group:<13} {name:<36} p50 {results[-1]['p50_ms']:>8} ms  p95 {results[-1]['p95_ms']:>8} ms",
                      file=sys.stderr)
    finally:
        await db.close()
    return results


def live_rows(count: int, w, seed: int = 2) -> list[LedgerRow]:
    from decimal import Decimal

    now = datetime.now(UTC)
    rows = []
    for n, values in enumerate(ledger_rows(count, 1, w, now, seed)):
        (rid, _, key, team, user, session, tags, asked, served, upstream, tin, cached, write, tout, reasoning, cost,
         latency, status, error, stream, endpoint, door, saved, unseen) = values
        rows.append(LedgerRow(request_id=f"live-{seed}-{n}", ts=now, key_name=key, team=team, user=user,
                              session=session, tags=tags, requested_model=asked, served_model=served, provider=upstream,
                              input_tokens=tin, cached_input_tokens=cached, cache_write_tokens=write,
                              output_tokens=tout, reasoning_tokens=reasoning, cost_usd=Decimal(cost),
                              latency_ms=latency, status=status, error=error, stream=stream, endpoint=endpoint,
                              front_door=door, saved_usd=None if saved is None else Decimal(saved)))
    return rows


async def writer_throughput(url: str, schema: str | None, rows: list[LedgerRow], rollups: bool) -> float:
    """Rows per second through a LedgerWriter: queued as the gateway queues them, written in
    its batches (500), into a fresh database."""
    db = await open_database(url, schema=schema)
    ledger = Ledger(db.backend, rollups=rollups)
    writer = LedgerWriter(ledger)
    try:
        await writer.flush()
        started = time.perf_counter()
        for row in rows:
            writer.add(row)
        await writer.flush()
        return len(rows) / (time.perf_counter() - started)
    finally:
        await db.close()


async def writer_bench(kind: str, args, w, pg_url: str) -> dict:
    rows = live_rows(args.writer_rows, w)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for round_ in range(args.writer_rounds):
        for mode in ("off", "on"):
            fresh = [LedgerRow(**{**{f: getattr(r, f) for f in r.__slots__}, "request_id": f"{r.request_id}-{round_}"})
                     for r in rows]
            if kind == "sqlite":
                path = Path(args.sqlite_dir) / f"writer-{mode}-{round_}.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                rates[mode].append(await writer_throughput(f"sqlite:///{path}", None, fresh, mode == "on"))
            else:
                schema = f"tb_bench_writer_{mode}_{round_}"
                _drop_schema(pg_url, schema)
                rates[mode].append(await writer_throughput(pg_url, schema, fresh, mode == "on"))
                _drop_schema(pg_url, schema)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {"rows": len(rows), "rows_per_s_off": round(off), "rows_per_s_on": round(on), "on_over_off": round(on / off, 3)}


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--writer-rows", type=int, default=50_000)
    parser.add_argument("--writer-rounds", type=int, default=3)
    parser.add_argument("--sqlite-dir", default="/tmp/tokenbrake-bench")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--reuse", action="store_true", help="keep a database generated before with these --rows")
    parser.add_argument("--keep", action="store_true", help="leave the generated databases in place")
    parser.add_argument("--skip-writer", action="store_true")
    args = parser.parse_args()
    w = world(args.teams, args.users, args.models)
    Path(args.sqlite_dir).mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "rows": args.rows,
              "days": args.days, "results": {}}
    end = datetime.now(UTC)
    for kind in args.db.split(","):
        print(f"{kind}:", file=sys.stderr)
        if kind == "sqlite":
            path = Path(args.sqlite_dir) / f"insight-{args.rows}.db"
            url, schema = f"sqlite:///{path}", None
            exists = path.exists()
        else:
            path, url, schema = None, args.pg_url, f"tb_bench_insight_{args.rows}"
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
        result: dict = {}
        if not (args.reuse and exists):
            if kind == "sqlite":
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            else:
                _drop_schema(args.pg_url, schema)
            result["generate"] = await generate(kind, url, schema, path, args, w, end)
            print(f"  generated: {result['generate']}", file=sys.stderr)
        if kind == "sqlite":
            result["size_mb"] = round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20)
        result["queries"] = await measure(url, schema, w, args.repeat)
        if not args.skip_writer:
            result["writer"] = await writer_bench(kind, args, w, args.pg_url)
            print(f"  writer: {result['writer']}", file=sys.stderr)
        if not args.keep:
            if kind == "sqlite":
                for p in path.parent.glob(path.name + "*"):
                    p.unlink()
            else:
                _drop_schema(args.pg_url, schema)
        report["results"][kind] = result
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
