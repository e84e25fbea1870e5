"""The insight API through the real gateway: calls made with the official SDKs show at once in
/admin/insight/totals, breakdown, series and requests, with the costs the ledger recorded,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

import anthropic
import httpx
import openai
from gateway_setup import create_key, gateway_config, write_config

from tokenbrake.tools.launch import ChildServer


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_calls_made_show_in_totals_breakdown_series_and_requests(emulator, tmp_path, database_url, master_key):
    path = write_config(tmp_path, gateway_config(emulator.url, database_url))
    key = create_key(path, "insight-key", "--team", "insight")
    with ChildServer(["serve", "--config", str(path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": master_key}) as gateway:
        tags = {"X-Tokenbrake-Tags": "feature=search"}
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, default_headers=tags) as oa:
            for n in range(3):
                oa.chat.completions.create(model="gpt-4o", messages=user(f"[[emulator: tokens={5 + n}]]"), user="ana")
            stream = oa.chat.completions.create(model="small", messages=user("hi"), stream=True, user="bo")
            list(stream)
        with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as an:
            an.messages.create(model="small", max_tokens=20, messages=user("hello"))

        def get(endpoint: str, **params) -> dict:
            response = httpx.get(f"{gateway.url}/admin/insight/{endpoint}", params=params,
                                 headers={"authorization": f"Bearer {master_key}"})
            assert response.status_code == 200, response.text
            return response.json()

        totals = get("totals", since="1h", team="insight")
        breakdown = get("breakdown", by="model", since="1h", team="insight")
        tagged = get("breakdown", by="team", since="1h", **{"tag.feature": "search"})
        users = get("breakdown", by="user", since="1h", team="insight")
        series = get("series", every="minute", since="30m", team="insight")
        recent = get("requests", team="insight", limit="10")
        refused = httpx.get(f"{gateway.url}/admin/insight/breakdown", params={"by": "colour"},
                            headers={"authorization": f"Bearer {master_key}"})

    rows = recent["rows"]
    assert len(rows) == 5 and {r["key_name"] for r in rows} == {"insight-key"}
    cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    assert totals["current"]["requests"] == 5 and Decimal(totals["current"]["cost_usd"]) == cost > 0
    assert totals["current"]["output_tokens"] == sum(r["output_tokens"] for r in rows)
    assert totals["previous"]["requests"] == 0
    by_model = {row["group"]["model"]: row for row in breakdown["rows"]}
    assert by_model["gpt-4o"]["requests"] == 3 and by_model["small"]["requests"] == 2
    assert Decimal(by_model["gpt-4o"]["cost_usd"]) == sum(
        (Decimal(r["cost_usd"]) for r in rows if r["served_model"] == "gpt-4o"), Decimal(0))
    assert {row["group"]["team"]: row["requests"] for row in tagged["rows"]} == {"insight": 4}
    assert {row["group"]["user"]: row["requests"] for row in users["rows"]} == {"ana": 3, "bo": 1, None: 1}
    assert sum(p["requests"] for p in series["series"][0]["points"]) == 5
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("'by': ")
