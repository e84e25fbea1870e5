"""Where the RouteLLM evaluation data lies for the router tests (shared/, beside the repo)."""


from tokenbrake.routing.routellm_data import Example, load_all
from tokenbrake.shared_data import shared_data

DATA_DIR = shared_data("routing")


def routellm() -> dict[str, list[Example]]:
    return load_all(DATA_DIR)
