"""Where the RouteLLM evaluation data lies for the router tests (shared/, beside the repo)."""

from pathlib import Path

from tokenbrake.routing.routellm_data import Example, load_all

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing"


def routellm() -> dict[str, list[Example]]:
    return load_all(DATA_DIR)
