"""Labelled routing examples from the RouteLLM evaluation files (`../shared/data/routing/`).

Each example carries what the cheap (weak) and the strong model achieved on the prompt, so a
router can be trained (on `good_enough`) and judged (on the quality each choice delivers):
- GSM8K: quality is 1 when the model's answer was correct; the cheap model is good enough
  when it was correct.
- MT-Bench: every question has two turns, each judged 1-10 per model; each turn is one example
  whose prompt is the conversation's user turns so far. The cheap model is good enough when it
  scored at least as well as the strong one (a tie costs nothing in quality; a margin would
  label as "needs strong" prompts where the strong model is no better).
Prompts listed in the `*_contaminated_prompts.jsonl` files are dropped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
TURN_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Example:
    prompt: str
    weak: float    # the cheap model's quality on this prompt
    strong: float  # the strong model's
    dataset: str
    group: str     # examples of one group (an MT-Bench question's turns) stay in one fold

    @property
    def good_enough(self) -> bool:
        return self.weak >= self.strong


def _normalized(text: str) -> str:
    return " ".join(text.split())


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {_normalized(json.loads(line)["eval_prompt"]) for line in path.read_text().splitlines() if line.strip()}


def gsm8k(data_dir: str | Path) -> list[Example]:
    data_dir = Path(data_dir)
    dropped = _contaminated(data_dir / "gsm8k_contaminated_prompts.jsonl")
    with open(data_dir / "gsm8k_responses.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        Example(row["prompt"], float(row[WEAK] == "True"), float(row[STRONG] == "True"), "gsm8k", f"gsm8k-{index}")
        for index, row in enumerate(rows) if _normalized(row["prompt"]) not in dropped
    ]


def mt_bench(data_dir: str | Path) -> list[Example]:
    data_dir = Path(data_dir)
    dropped = _contaminated(data_dir / "mt_bench_contaminated_prompts.jsonl")
    scores: dict[tuple[int, int, str], float] = {}
    for line in (data_dir / "mt_bench_judgements.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            scores[(record["question_id"], record["turn"], record["model"])] = float(record["score"])
    examples = []
    for line in (data_dir / "mt_bench_questions.jsonl").read_text().splitlines():
        question = json.loads(line)
        turns = question["turns"]
        if any(_normalized(turn) in dropped for turn in turns):
            continue
        for number in range(1, len(turns) + 1):
            weak = scores.get((question["question_id"], number, WEAK))
            strong = scores.get((question["question_id"], number, STRONG))
            if weak is None or strong is None:
                continue
            prompt = TURN_SEPARATOR.join(turns[:number])
            examples.append(Example(prompt, weak, strong, "mt_bench", f"mt_bench-{question['question_id']}"))
    return examples


def load_all(data_dir: str | Path) -> dict[str, list[Example]]:
    return {"gsm8k": gsm8k(data_dir), "mt_bench": mt_bench(data_dir)}
