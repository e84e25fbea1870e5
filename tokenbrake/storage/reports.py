"""How keys and usage are shown: JSON views for the admin API and `--json`, tables for people."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokenbrake.storage import UsageGroup, VirtualKey

GROUPINGS = ("key", "team", "user", "model", "session", "tag", "day")


def key_view(key: VirtualKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "team": key.team,
        "models": key.models,
        "require_user": key.require_user,
        "role": key.role,
        "key_prefix": key.key_prefix.rstrip("…"),  # stored with an ellipsis for tables; plain ASCII in JSON
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def usage_view(by: str, groups: list[UsageGroup], totals: list[UsageGroup] | None = None) -> dict[str, Any]:
    """`totals`: groups that count each request once, when `groups` do not (by tag)."""
    rows = [
        {
            by: g.group,
            "requests": g.requests,
            "errors": g.errors,
            "input_tokens": g.input_tokens,
            "output_tokens": g.output_tokens,
            "cost_usd": str(g.cost_usd),
            "saved_usd": str(g.saved_usd),
        }
        for g in groups
    ]
    total = sum((g.cost_usd for g in totals or groups), Decimal(0))
    return {"by": by, "data": rows, "total_cost_usd": str(total)}


def usage_table(by: str, groups: list[UsageGroup], totals: list[UsageGroup] | None = None) -> str:
    """One row per group and a total row; `totals`: groups that count each request once, when
    `groups` do not (a request carries several tags, so tag rows do not add up)."""
    header = (f"{by:<28} {'requests':>9} {'errors':>7} {'input tok':>11} {'output tok':>11} {'cost USD':>14}"
              f" {'saved USD':>14}")
    lines = [header, "-" * len(header)]
    for g in groups:
        lines.append(f"{_fit(g.group, 28):<28} {g.requests:>9} {g.errors:>7} {g.input_tokens:>11} "
                     f"{g.output_tokens:>11} {money(g.cost_usd):>14} {money(g.saved_usd):>14}")
    counted = totals or groups
    lines.append("-" * len(header))
    lines.append(f"{'total' if totals is None else 'total (each request once)':<28} "
                 f"{sum(g.requests for g in counted):>9} {sum(g.errors for g in counted):>7} "
                 f"{sum(g.input_tokens for g in counted):>11} {sum(g.output_tokens for g in counted):>11} "
                 f"{money(sum((g.cost_usd for g in counted), Decimal(0))):>14} "
                 f"{money(sum((g.saved_usd for g in counted), Decimal(0))):>14}")
    return "\n".join(lines)


TABLE_METRICS = ("requests", "errors", "input_tokens", "output_tokens", "cost_usd", "saved_usd")
ROW_METRICS = ("requests", "errors", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens",
               "cost_usd", "saved_usd", "latency_ms_avg", "latency_ms_p95")


def flat_rows(by: list[str], rows: list[tuple[datetime | None, tuple | None, Any]]) -> list[dict[str, Any]]:
    """(bucket start or None, group values or None for the rest, metrics) as flat records:
    `t` if bucketed, one column per dimension ("(other)" for the rest), then the metrics."""
    found = []
    for t, group, metrics in rows:
        view = metrics.view()
        record: dict[str, Any] = {"t": t.strftime("%Y-%m-%dT%H:%M:%SZ")} if t is not None else {}
        for i, name in enumerate(by):
            record[name] = "(other)" if group is None else group[i]
        found.append(record | {m: view[m] for m in ROW_METRICS})
    return found


def rows_csv(records: list[dict[str, Any]]) -> str:
    if not records:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    return out.getvalue().rstrip("\n")


def rows_table(records: list[dict[str, Any]]) -> str:
    """Aligned columns: text left, numbers right, money as $0.000442."""
    if not records:
        return "(nothing recorded in that span)"
    columns = [c for c in records[0] if c not in ROW_METRICS or c in TABLE_METRICS]
    cells = [[_cell(c, r[c]) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    right = [c in ROW_METRICS for c in columns]

    def line(values: list[str]) -> str:
        return " ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)).rstrip()

    header = line([c.replace("_", " ") for c in columns])
    return "\n".join([header, "-" * len(header), *(line(row) for row in cells)])


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if column.endswith("_usd"):
        return money(Decimal(value))
    return _fit(str(value), 40)


def money(value: Decimal) -> str:
    """Table columns: $0.000442, six places."""
    return f"${value:.6f}"


def usd(amount: Decimal) -> str:
    """$49.98, $0.0000042: cents at least, and every nano-dollar that is there."""
    text = format(amount.quantize(Decimal("1e-9")).normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def plain(amount: Decimal) -> str:
    """USD as plain digits, no exponent and no trailing zeros: `0`, `0.00099442`, `12.5`."""
    return format(amount.normalize(), "f")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
