"""Where the RouteLLM evaluation data lies for the router tests (shared/, beside the repo)."""


from tokenbrake.evaluation.shared_data import shared_data
from tokenbrake.router.training_data import Example, load_all

DATA_DIR = shared_data("routing")


def routellm() -> dict[str, list[Example]]:
    return load_all(DATA_DIR)
