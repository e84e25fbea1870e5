"""Demo scene: admission before any money is spent.

The research team's power user pastes a whole document and meets the team's input cap
(refused with the count and the cap). Then the team works through its daily budget on the
frontier model: once the remainder falls below the budget's threshold the gateway serves
its requests with the local model instead; when even that no longer fits, it first clamps
`max_tokens` to what is left, then refuses with the budget, the spend and the reset time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenbrake.tools.demo_scenes import DemoRun, line, say

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

TITLE = "Admission: an input cap, and a team budget that downgrades, clamps, then refuses"
KEYS = [{"name": "research-app", "team": "research", "models": None}]
BUDGET_USD = "0.04"
DOWNGRADE_BELOW_USD = "0.015"
INPUT_CAP = 4000
ASKED_TOKENS = 1500


def configure(raw: dict, emulator_url: str) -> None:
    raw.setdefault("limits", []).append({"scope": "team:research", "max_input_tokens": INPUT_CAP})
    raw.setdefault("budgets", []).append({
        "scope": "team:research", "amount_usd": BUDGET_USD, "period": "day",
        "mode": "downgrade", "downgrade_to": "local", "downgrade_below_usd": DOWNGRADE_BELOW_USD,
    })


def document(words: int) -> str:
    """A long, varied 'contract' a user might paste whole."""
    clauses = ["The supplier shall deliver the goods within {n} days of the order.",
               "Either party may terminate this agreement with {n} days' written notice.",
               "Invoices are payable within {n} days; late payments accrue interest of {n}% per year.",
               "Clause {n} survives the termination of this agreement."]
    text: list[str] = []
    n = 0
    while sum(len(t.split()) for t in text) < words:
        n += 1
        text.append(f"Section {n}. " + clauses[n % len(clauses)].format(n=n))
    return "\n".join(text)


def play(run: DemoRun) -> None:
    url, keys = run.url, run.keys
    import openai  # here, not at the top: see demo_scenes/__init__.py

    client = openai.OpenAI(base_url=url + "/v1", api_key=keys["research-app"], max_retries=0)

    def paste_document() -> str:
        ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Summarise this contract:\n" + document(12_000)}]
        client.chat.completions.create(model="frontier", messages=ask, user="dana")
        return "unexpectedly served"

    line("dana pastes a 12,000-word contract → frontier", paste_document)
    say(f"The team's budget: ${BUDGET_USD} a day, mode downgrade (to local once less than ${DOWNGRADE_BELOW_USD} "
        f"is left). erik's calls each ask frontier for {ASKED_TOKENS} output tokens:")
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"Draft the quarterly report. [[emulator: tokens={ASKED_TOKENS} tps=0]]"}]
    for call in range(1, 11):
        refused: list[bool] = []

        def work() -> str:
            raw = client.chat.completions.with_raw_response.create(model="frontier", messages=ask,
                                                                   max_tokens=ASKED_TOKENS, user="erik")
            usage = raw.parse().usage
            assert usage is not None  # the gateway always reports usage
            tokens = usage.completion_tokens
            downgraded = raw.headers.get("x-tokenbrake-downgraded")
            note = f" (downgraded by budget {downgraded})" if downgraded else ""
            clamped = ", max_tokens clamped" if tokens < ASKED_TOKENS else ""
            return f"served by {raw.headers['x-tokenbrake-served-by']}{note}, {tokens} tokens{clamped}"

        def attempt(refused: list[bool] = refused) -> str:  # called at once, in this turn of the loop
            try:
                return work()
            except openai.RateLimitError:
                refused.append(True)
                raise

        line(f"call {call}", attempt, label_width=7)
        if refused:
            break
