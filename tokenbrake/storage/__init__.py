"""Where virtual keys and the spend ledger live: SQLite (embedded) or PostgreSQL (scale-out).

`open_database(url)` picks the backend from the URL, connects, and applies the named
migrations (migrations.py). Above the two backends (sqlite.py, postgres.py) sits one
narrow interface (backend.py), so keys (keys.py), the ledger (ledger.py) and its reports
(usage.py) are written once, in SQL both databases run. Each ledger batch also updates the
rollups (rollups.py), which the insight queries (insight_queries.py) read instead of the
ledger. The request path touches neither: keys are checked against an in-memory `KeyRing`,
and ledger rows are queued to a `LedgerWriter` that writes them in batches in the background
(writer.py). Past calls come in from a file (`tokenbrake ledger import`): ledger_import.py
checks every line, read as import_format.py says, then writes them through the same `Ledger`.
The Responses API conversations the gateway keeps for `previous_response_id` are in
responses.py.

May import: the package root and wire/.
"""
from tokenbrake.storage.database import Database, open_database
from tokenbrake.storage.keys import KeyRing, KeyStore, VirtualKey
from tokenbrake.storage.ledger import Ledger, LedgerRow
from tokenbrake.storage.since import parse_since
from tokenbrake.storage.usage import GROUPINGS, UsageGroup
from tokenbrake.storage.writer import LedgerWriter

__all__ = [
    "GROUPINGS", "Database", "KeyRing", "KeyStore", "Ledger", "LedgerRow", "LedgerWriter", "UsageGroup",
    "VirtualKey", "open_database", "parse_since",
]
