"""Made-up but realistic material for the evaluation sessions: a code base, documents, issues,
tables, and the texts that tools return about them. Everything comes from a seeded
`random.Random`, so the same seed gives byte-identical sessions."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

MODULES = ["auth", "billing", "parser", "scheduler", "cache", "router", "storage", "metrics", "invoice",
           "session", "webhook", "config", "export", "search", "payments", "notify", "users", "reports",
           "ledger", "quota", "upload", "render", "audit", "i18n", "queue", "sync", "geo", "pricing"]
PACKAGES = ["core", "api", "services", "workers", "utils", "models", "adapters", "cli"]
VERBS = ["load", "parse", "validate", "compute", "fetch", "build", "resolve", "apply", "merge", "emit",
         "encode", "decode", "refresh", "flush", "schedule", "retry", "render", "normalize", "index", "sync"]
NOUNS = ["token", "invoice", "window", "record", "payload", "cursor", "batch", "header", "policy", "limit",
         "account", "order", "event", "report", "snapshot", "segment", "entry", "profile", "rule", "quote"]
TOPICS = {
    "postgres vacuum": ["autovacuum", "dead tuples", "bloat", "xid wraparound", "fillfactor", "visibility map"],
    "kafka consumer lag": ["partition", "offset", "rebalance", "consumer group", "throughput", "backpressure"],
    "rust async cancellation": ["future", "drop", "tokio", "select", "cancellation safety", "join handle"],
    "react hydration errors": ["server rendering", "mismatch", "useEffect", "suspense", "markup", "client bundle"],
    "kubernetes pod eviction": ["node pressure", "qos class", "requests", "limits", "kubelet", "priority"],
    "python gil removal": ["free threading", "pep 703", "reference counting", "biased locking", "extensions", "nogil"],
    "llm prompt caching": ["prefix", "cache hit", "ttl", "breakpoint", "latency", "discount"],
    "stripe webhooks": ["signature", "idempotency", "retry schedule", "event ordering", "endpoint secret", "replay"],
    "s3 consistency": ["read after write", "list consistency", "versioning", "multipart upload", "etag", "prefix"],
    "sqlite wal mode": ["checkpoint", "writer lock", "readers", "wal file", "fsync", "busy timeout"],
    "oauth pkce": ["code verifier", "challenge", "authorization code", "redirect uri", "public client", "token endpoint"],
    "redis eviction": ["maxmemory", "lru", "lfu", "volatile ttl", "allkeys", "memory fragmentation"],
}
FILLER = ["in practice", "according to the maintainers", "for large deployments", "under load", "by default",
          "in the latest release", "on most platforms", "since version 2", "when misconfigured", "in benchmarks"]
PEOPLE = ["alice", "bob", "chen", "dana", "emeka", "farah", "goran", "hiro", "ines", "jules", "kofi", "lena"]


class World:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clock = datetime(2025, 3, 3, 9, 0, 0) + timedelta(minutes=rng.randrange(100_000))

    # ---- small things -------------------------------------------------------------------
    def pick(self, items):
        return self.rng.choice(items)

    def now(self) -> str:
        self.clock += timedelta(seconds=self.rng.randrange(2, 90), milliseconds=self.rng.randrange(1000))
        return self.clock.isoformat(timespec="milliseconds") + "Z"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hexid(self, n: int = 12) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def call_id(self, anthropic: bool) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        body = "".join(self.rng.choice(alphabet) for _ in range(24))
        return ("toolu_01" if anthropic else "call_") + body

    def identifier(self) -> str:
        return f"{self.pick(VERBS)}_{self.pick(NOUNS)}"

    # ---- a code base ----------------------------------------------------------------------
    def paths(self, count: int) -> list[str]:
        seen: set[str] = set()
        while len(seen) < count:
            seen.add(f"src/{self.pick(PACKAGES)}/{self.pick(MODULES)}/{self.pick(VERBS)}_{self.pick(NOUNS)}.py")
        return sorted(seen, key=lambda _: self.rng.random())

    def source(self, path: str, lines: int | None = None) -> str:
        rng = self.rng
        module = path.rsplit("/", 1)[-1][:-3]
        out = [f'"""{module.replace("_", " ").capitalize()} for the {path.split("/")[2]} service."""', "",
               "from __future__ import annotations", "",
               f"import {self.pick(['logging', 'json', 'time', 'asyncio', 'hashlib', 're'])}",
               f"from app.{self.pick(PACKAGES)}.{self.pick(MODULES)} import {self.identifier()}", ""]
        for _ in range(lines or rng.randrange(2, 5)):
            name, arg = self.identifier(), self.pick(NOUNS)
            out += [f"def {name}({arg}: dict, *, limit: int = {rng.choice([10, 50, 100, 500])}) -> list:",
                    f'    """{self.pick(VERBS).capitalize()} the {arg} {self.pick(FILLER)}."""',
                    f"    result = [{self.identifier()}(item) for item in {arg}.get('{self.pick(NOUNS)}s', [])]",
                    "    if len(result) > limit:",
                    f"        raise ValueError('too many {self.pick(NOUNS)}s: %d' % len(result))",
                    f"    return sorted(result, key=lambda r: r.{self.pick(NOUNS)}_id)", ""]
        return "\n".join(out)

    def grep(self, pattern: str, paths: list[str]) -> str:
        hits = self.rng.sample(paths, min(len(paths), self.rng.randrange(1, 6)))
        return "\n".join(f"{path}:{self.rng.randrange(3, 400)}:    {pattern}({self.pick(NOUNS)}, limit={self.rng.randrange(5, 500)})"
                         for path in hits)

    def test_run(self, failing: list[str], total: int) -> str:
        lines = ["============================= test session starts ==============================",
                 f"collected {total} items", ""]
        for name in failing:
            lines.append(f"FAILED tests/test_{name}.py::test_{name} - AssertionError: expected {self.rng.randrange(100)} got {self.rng.randrange(100)}")
        lines.append(f"=========== {len(failing)} failed, {total - len(failing)} passed in {self.rng.uniform(1, 30):.2f}s ===========")
        return "\n".join(lines)

    # ---- documents and searches -----------------------------------------------------------------
    def query(self, topic: str, terms: list[str]) -> str:
        return f"{topic} {self.pick(terms)} {self.pick(['how to', 'best practice', 'debug', 'explained', 'vs', 'tuning', 'example', 'docs'])}"

    def snippet(self, terms: list[str]) -> str:
        a, b = self.rng.sample(terms, 2)
        return (f"{a.capitalize()} interacts with {b} {self.pick(FILLER)}; {self.pick(VERBS)} the {self.pick(NOUNS)} "
                f"before {self.pick(VERBS)}ing to avoid {self.pick(['stalls', 'data loss', 'timeouts', 'duplicates', 'spikes'])} "
                f"({self.rng.randrange(2, 98)}% of reported cases).")

    def search_results(self, query: str, terms: list[str]) -> str:
        rows = []
        for rank in range(1, self.rng.randrange(3, 6)):
            site = self.pick(["stackoverflow.com", "github.com", "docs.example.org", "medium.com", "news.ycombinator.com", "blog.acme.dev"])
            rows.append(f"{rank}. {self.pick(terms).title()} — {self.pick(VERBS)} {self.pick(NOUNS)}s ({site}/{self.hexid(6)})\n   {self.snippet(terms)}")
        return f'Results for "{query}":\n' + "\n".join(rows)

    def article(self, terms: list[str], paragraphs: int = 3) -> str:
        return "\n\n".join(" ".join(self.snippet(terms) for _ in range(3)) for _ in range(paragraphs))

    # ---- tickets, tables, jobs -----------------------------------------------------------------
    def issues(self, first: int, count: int) -> str:
        return "\n".join(f"#{first + i} {self.pick(VERBS)} {self.pick(NOUNS)} fails when {self.pick(NOUNS)} is empty "
                         f"[{self.pick(['bug', 'feature', 'docs', 'perf'])}] @{self.pick(PEOPLE)}" for i in range(count))

    def table(self, columns: list[str], rows: int) -> str:
        lines = [" | ".join(columns)]
        for _ in range(rows):
            lines.append(" | ".join(str(self.rng.randrange(1, 100_000)) if c.endswith(("count", "total", "id"))
                                    else self.pick(PEOPLE + MODULES) for c in columns))
        return "\n".join(lines)
