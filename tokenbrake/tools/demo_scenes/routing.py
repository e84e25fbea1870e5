"""Demo scene: routing each request to the cheapest model that can serve it.

The support team's app sends everything to the virtual model `auto`: the router shipped with
tokenbrake scores each prompt on the CPU and sends the easy ones to the local model, the hard
ones to the frontier API. Then a cascade: the local model answers first and its answer is
kept only if it is the JSON the app needs, otherwise the frontier model answers. The scene
ends with the share served locally and what the same calls would have cost all on frontier.
"""

from __future__ import annotations

import functools
from decimal import Decimal

from tokenbrake.config import parse_config
from tokenbrake.core import Usage
from tokenbrake.settlement.pricing import PriceBook
from tokenbrake.storage.reports import money
from tokenbrake.tools.demo_scenes import LABEL_WIDTH, DemoRun, gateway, line, say, short

TITLE = "Routing: `auto` sends easy prompts to the local model, hard ones to frontier; a cascade checks"
KEYS = [{"name": "helpdesk-app", "team": "helpdesk", "models": None}]
STRONG_SHARE = 0.3  # the knob: the share of requests sent to frontier; more for quality, less for cost
PROMPTS = [
    "Thanks, that works!",
    "What is the capital of Australia?",
    "Prove that the sum of the first n odd numbers is n squared, then generalise it and explain each step.",
    'Translate "good morning" into Spanish.',
    "Give me three synonyms for happy.",
    "Write a Python function that finds the longest palindromic substring in O(n) time, explain the "
    "algorithm and analyse its complexity.",
    "What time zone is Tokyo in?",
    "Write a haiku about autumn.",
    "A train leaves at 3pm at 60 km/h and another at 4pm at 90 km/h from the same station. When and where "
    "does the second catch up? Show your reasoning step by step.",
    "Is 17 a prime number?",
    "Compare Paxos, Raft and PBFT: their failure models, message complexity and when to choose each.",
    "Summarise this sentence in five words: the meeting moved to Tuesday.",
]
TICKET = 'Classify this ticket as JSON {"queue": ..., "urgent": true|false}: "The site is down for everyone!"'
TICKET_JSON = {"type": "object", "required": ["queue", "urgent"],
               "properties": {"queue": {"type": "string"}, "urgent": {"type": "boolean"}}}


def configure(raw: dict, emulator_url: str) -> None:
    raw.setdefault("routes", {}).update({
        "auto": {"tiers": ["local", "frontier"], "strategy": "router", "strong_share": STRONG_SHARE},
        "auto-json": {"tiers": ["local", "frontier"], "strategy": "cascade", "checks": [{"json_schema": TICKET_JSON}]},
    })


def _prices() -> PriceBook:
    """The tiers' prices, from the same model definitions the gateway scene gives the demo."""
    raw: dict = {"upstreams": {}, "models": {}}
    gateway.configure(raw, "http://127.0.0.1:9")
    return PriceBook(parse_config(raw))


def play(run: DemoRun) -> None:
    url, keys = run.url, run.keys
    import openai  # here, not at the top: see demo_scenes/__init__.py

    client = openai.OpenAI(base_url=url + "/v1", api_key=keys["helpdesk-app"], max_retries=0)
    prices, spent, frontier, local = _prices(), [], [], 0
    say(f"strong_share {STRONG_SHARE}: prompts scoring like the top {STRONG_SHARE:.0%} of the router's "
        f"training prompts go to frontier.")

    def ask(prompt: str, model: str = "auto") -> str:
        nonlocal local
        raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": prompt}])
        reply, served = raw.parse(), raw.headers["x-tokenbrake-served-by"]
        assert reply.usage is not None  # the gateway always reports usage
        usage = Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens)
        spent.append(prices.cost(served, usage))
        frontier.append(prices.cost("frontier", usage))
        local += served == "local"
        route = dict(part.split("=") for part in raw.headers["x-tokenbrake-route"].split("; ")[1:])
        score = f"score {float(route['score']):.2f} → " if "score" in route else ""
        return f"{score}{served}"

    for prompt in PROMPTS:
        line(short(prompt, LABEL_WIDTH - 2), functools.partial(ask, prompt))
    say("A cascade on auto-json (local first, kept only if it is the JSON asked for):")
    kept = TICKET + ' [[emulator: text="{\\"queue\\": \\"ops\\", \\"urgent\\": true}"]]'
    line("local answers valid JSON", lambda: ask(kept, "auto-json") + " (kept)")
    line("local answers prose", lambda: ask(TICKET + " [[emulator: text=\"It is urgent.\"]]", "auto-json")
         + " (escalated; the local try is billed too)")
    total, all_frontier = sum(spent, Decimal(0)), sum(frontier, Decimal(0))
    say(f"Served locally: {local} of {len(spent)} calls ({local / len(spent):.0%}). Cost {money(total)} against "
        f"{money(all_frontier)} all on frontier ({1 - total / all_frontier:.0%} less; the rejected cascade call "
        f"not included here).")
