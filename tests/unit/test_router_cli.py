"""`tokenbrake router train` and `tokenbrake router score`, through click's runner."""

import asyncio
import json

import yaml
from click.testing import CliRunner
from routing_data import DATA_DIR

from tokenbrake.cli import main
from tokenbrake.router.classifier import Router, default_router
from tokenbrake.routing import outcomes
from tokenbrake.storage import open_database

EASY = ["Say hi.", "Thank you!", "What's up?", "Say hello to Bob.", "Good morning.", "Tell me a joke."]
HARD = [
    "Prove that there are infinitely many primes, then write a Python function that lists the first 100 of them.",
    "Solve for x: 3x^2 - 12x + 7 = 0, then compute the integral of x^3 from 0 to 2 step by step.",
    "Implement Dijkstra's algorithm in C++ with a binary heap and prove its O((V+E) log V) complexity.",
    "A train leaves at 3:15 pm at 72 km/h; another at 4:05 pm at 90 km/h. When and where does the second catch up?",
    "Find the bug:\n```python\ndef mean(xs):\n    return sum(xs) / len(xs) - 1\n```\nthen rewrite it to handle empty lists.",
    "Derive the closed form of the Fibonacci sequence and prove it by induction.",
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def labelled(tmp_path):
    records = [{"prompt": p, "good_enough": True} for p in EASY] + [{"prompt": p, "good_enough": False} for p in HARD]
    return write_jsonl(tmp_path / "train.jsonl", records)


def score_lines(output: str) -> list[float]:
    return [json.loads(line)["score"] for line in output.splitlines()]


def test_train_writes_a_router_that_score_then_uses(tmp_path):
    out = tmp_path / "router.json"
    trained = CliRunner().invoke(main, ["router", "train", str(labelled(tmp_path)), "--out", str(out), "--no-embedding", "--l2", "0.1"])
    assert trained.exit_code == 0, trained.output
    assert "features router on 12 examples (6 needing the strong model)" in trained.output
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "Say hi to Ann."}, {"prompt": HARD[0].replace("100", "50")}])
    scored = CliRunner().invoke(main, ["router", "score", str(prompts), "--model", str(out)])
    assert scored.exit_code == 0, scored.output
    easy, hard = score_lines(scored.output)
    assert 0 <= easy < hard <= 1
    assert [easy, hard] == [round(s, 6) for s in Router.load(out).score_many(["Say hi to Ann.", HARD[0].replace("100", "50")])]


def test_score_reads_stdin_and_defaults_to_the_shipped_router():
    result = CliRunner().invoke(main, ["router", "score", "-"], input='{"prompt": "hello"}\n\n{"prompt": "2+2?"}\n')
    assert result.exit_code == 0, result.output
    assert score_lines(result.output) == [round(s, 6) for s in default_router().score_many(["hello", "2+2?"])]


def test_score_names_the_line_without_a_prompt(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "ok"}, {"text": "no prompt here"}])
    result = CliRunner().invoke(main, ["router", "score", str(prompts), "--model", str(trained_router_file(tmp_path))])
    assert result.exit_code != 0
    assert "line 2" in result.output


def trained_router_file(tmp_path):
    path = tmp_path / "r.json"
    CliRunner().invoke(main, ["router", "train", str(labelled(tmp_path)), "--out", str(path), "--no-embedding"])
    return path


def test_train_refuses_malformed_examples_with_the_line(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "good_enough": True}, {"prompt": "b", "good_enough": "yes"}])
    result = CliRunner().invoke(main, ["router", "train", str(bad), "--out", str(tmp_path / "r.json")])
    assert result.exit_code != 0
    assert "bad.jsonl:2" in result.output


def test_train_needs_data_or_from_ledger_but_not_both(tmp_path):
    neither = CliRunner().invoke(main, ["router", "train", "--out", str(tmp_path / "r.json")])
    assert neither.exit_code != 0 and "DATA or --from-ledger" in neither.output
    both = CliRunner().invoke(main, ["router", "train", str(labelled(tmp_path)), "--from-ledger", "--out", str(tmp_path / "r.json")])
    assert both.exit_code != 0 and "DATA or --from-ledger" in both.output


def test_train_from_ledger_learns_from_kept_cascade_outcomes(tmp_path):
    database = f"sqlite:///{tmp_path / 'tokenbrake.db'}"
    config = tmp_path / "tokenbrake.yaml"
    config.write_text(yaml.safe_dump({"database": database, "upstreams": {}, "models": {}}))

    async def keep_examples():
        db = await open_database(database)
        recorder = outcomes.OutcomeRecorder(db)
        for prompt, good in [(p, True) for p in EASY] + [(p, False) for p in HARD]:
            recorder.add(outcomes.example("auto", "small", "k", "team", prompt, good))
        await recorder.close()
        await db.close()

    asyncio.run(keep_examples())
    out = tmp_path / "router.json"
    result = CliRunner().invoke(main, ["router", "train", "--from-ledger", "--config", str(config), "--out", str(out), "--no-embedding"])
    assert result.exit_code == 0, result.output
    assert "on 12 examples (6 needing the strong model)" in result.output
    router = Router.load(out)
    assert router.info["trained_on"] == "ledger"
    assert router.score("Say hi to Bob.") < router.score(HARD[1].replace("3x", "5x"))


def test_train_reads_routellm_files_from_a_directory(tmp_path):
    out = tmp_path / "router.json"
    result = CliRunner().invoke(main, ["router", "train", str(DATA_DIR), "--out", str(out), "--no-embedding"])
    assert result.exit_code == 0, result.output
    assert "on 1451 examples" in result.output  # 1307 GSM8K prompts + 72 MT-Bench questions x 2 turns
    assert "thresholds sending a share of such traffic to the strong model: 20%: 0." in result.output
    assert Router.load(out).info["trained_on"] == str(DATA_DIR)
