"""Agents that make progress: each builds the steps of a conversation of about `n` calls.

These are the hard negatives: long, repetitive in form, but each step learns something (another
file, another page, a job's changing status, a retry that works, another edit of the same file)."""

from __future__ import annotations

from collections.abc import Callable

from tokenbrake.evaluation.loop_sessions.script import Conversation, Say, Step, Tools
from tokenbrake.evaluation.loop_sessions.world import MODULES, NOUNS, PEOPLE, TOPICS, VERBS, World

CODING_SYSTEM = "You are a senior software engineer working in a repository. Use the tools to read, search, edit and test code."
RESEARCH_SYSTEM = "You are a research assistant. Search the web, read sources, and write a cited summary."
OPS_SYSTEM = "You are an operations agent. You run pipelines, watch jobs and report back."
SUPPORT_SYSTEM = "You are a helpful support engineer for a developer platform. Answer precisely."
ANALYST_SYSTEM = "You are a data analyst with read-only SQL access to the warehouse."
TRIAGE_SYSTEM = "You triage the issue tracker: read every open issue and label it."


def reading(w: World, n: int) -> list[Step]:
    """A coding agent reading one different file after another (and grepping now and then)."""
    paths = w.paths(n + 5)
    steps: list[Step] = []
    for index in range(n):
        if index % 9 == 4:
            symbol = w.identifier()
            steps.append(Tools([("grep", {"pattern": symbol, "path": "src/"})], [w.grep(symbol, paths)]))
        elif index % 11 == 7:
            a, b = paths[index], paths[index + 1]
            steps.append(Tools([("read_file", {"path": a}), ("read_file", {"path": b})], [w.source(a), w.source(b)],
                               thought="Reading both modules side by side."))
        else:
            steps.append(Tools([("read_file", {"path": paths[index]})], [w.source(paths[index])]))
    return steps


def fixing(w: World, n: int) -> list[Step]:
    """Edit the same file again and again with different changes, re-reading it and running the
    tests after each edit; the same failure may come back while the fix is incomplete."""
    paths = w.paths(12)
    target, failing, total = paths[0], [f"{m}_{v}" for m, v in zip(w.rng.sample(MODULES, 6), w.rng.sample(VERBS, 6))], 120 + w.rng.randrange(200)
    steps: list[Step] = [Tools([("read_file", {"path": p})], [w.source(p)]) for p in paths[:3]]
    last_failure = w.test_run(failing, total)
    while len(steps) < n:
        old, new = w.identifier(), w.identifier()
        steps.append(Tools([("edit_file", {"path": target, "old": f"{old}(payload)", "new": f"{new}(payload, strict=True)"})],
                           [f"Edited {target}: replaced 1 occurrence."], thought=f"Switching {old} to {new}."))
        steps.append(Tools([("read_file", {"path": target})], [w.source(target)]))
        if failing and w.rng.random() < 0.5:
            failing = failing[1:]
            last_failure = w.test_run(failing, total)
        steps.append(Tools([("run_tests", {"path": "tests/"})], [last_failure]))
        if not failing:
            failing = [f"{w.pick(MODULES)}_{w.pick(VERBS)}" for _ in range(w.rng.randrange(1, 4))]
            target = w.pick(paths)
            last_failure = w.test_run(failing, total)
    return steps[:n]


def researching(w: World, n: int) -> list[Step]:
    """Many different searches, and the pages they point to."""
    steps: list[Step] = []
    topics = w.rng.sample(sorted(TOPICS), 4)
    while len(steps) < n:
        topic = w.pick(topics)
        query = w.query(topic, TOPICS[topic]) + f" {w.pick(NOUNS)}"
        steps.append(Tools([("web_search", {"query": query})], [w.search_results(query, TOPICS[topic])]))
        if w.rng.random() < 0.6:
            url = f"https://{w.pick(['docs.example.org', 'blog.acme.dev', 'github.com'])}/{w.pick(MODULES)}/{w.hexid(6)}"
            steps.append(Tools([("fetch_url", {"url": url})], [w.article(TOPICS[topic])]))
    return steps[:n]


def paginating(w: World, n: int) -> list[Step]:
    """Page after page of issues (page numbers or opaque cursors), labelling some of them."""
    steps: list[Step] = []
    cursor_style, page, first = w.rng.random() < 0.5, 1, 1000 + w.rng.randrange(5000)
    while len(steps) < n:
        args = {"repo": "acme/platform", "state": "open", "per_page": 25}
        args |= {"cursor": w.hexid(16)} if cursor_style and page > 1 else {"page": page}
        steps.append(Tools([("list_issues", args)], [w.issues(first, 25)]))
        for number in w.rng.sample(range(first, first + 25), w.rng.randrange(0, 3)):
            steps.append(Tools([("add_label", {"issue": number, "label": w.pick(["bug", "triage", "perf"])})],
                               [f"Label added to #{number}."]))
        page, first = page + 1, first + 25
    return steps[:n]


def polling(w: World, n: int) -> list[Step]:
    """Start jobs and poll them until done: the status changes, or stays the same a few times."""
    steps: list[Step] = []
    while len(steps) < n:
        job = f"job-{w.hexid(8)}"
        pipeline = f"{w.pick(MODULES)}-{w.pick(['nightly', 'backfill', 'export', 'reindex'])}"
        steps.append(Tools([("start_pipeline", {"name": pipeline})], [f"Started {pipeline} as {job}."]))
        tool = w.pick(["get_job_status", "wait_for_job", "describe_job"])
        changing = tool == "describe_job" or w.rng.random() < 0.5
        for poll in range(w.rng.randrange(3, 9 if not changing else 25)):
            status = (f"{job}: running, {min(99, 4 * poll + w.rng.randrange(3))}% done, {poll * 1200 + w.rng.randrange(900)} rows written"
                      if changing else f"{job}: running (started at {w.clock.isoformat()}Z)")
            steps.append(Tools([(tool, {"job_id": job})], [status]))
        steps.append(Tools([(tool, {"job_id": job})], [f"{job}: succeeded, {w.rng.randrange(10_000, 90_000)} rows written"]))
        steps.append(Tools([("read_artifact", {"job_id": job, "name": "summary.json"})],
                           [f'{{"rows": {w.rng.randrange(10_000, 90_000)}, "rejected": {w.rng.randrange(0, 40)}, "owner": "{w.pick(PEOPLE)}"}}']))
    return steps[:n]


def retrying(w: World, n: int) -> list[Step]:
    """Calls to a flaky API: a failure, the same call again (once or twice), then success."""
    steps: list[Step] = []
    while len(steps) < n:
        endpoint = f"https://api.acme.dev/v2/{w.pick(MODULES)}/{w.rng.randrange(1, 9999)}"
        call = ("http_get", {"url": endpoint, "headers": {"x-request-id": w.uuid()}})
        for _ in range(w.rng.choice([0, 0, 1, 1, 2])):
            error = w.pick(["HTTP 503 Service Unavailable: upstream connect error", "HTTP 429 Too Many Requests: retry after 2s",
                            "ConnectionResetError: [Errno 104] Connection reset by peer"])
            steps.append(Tools([call], [error], thought="That failed; retrying."))
            call = ("http_get", {"url": endpoint, "headers": {"x-request-id": w.uuid()}})
        steps.append(Tools([call], [f'HTTP 200 {{"id": {w.rng.randrange(99999)}, "{w.pick(NOUNS)}": "{w.identifier()}", "owner": "{w.pick(PEOPLE)}", "updated": "{w.now()}"}}']))
    return steps[:n]


def analysing(w: World, n: int) -> list[Step]:
    """Different SQL queries; a failing one is fixed and run again."""
    steps: list[Step] = []
    while len(steps) < n:
        table, column = w.pick(MODULES), w.pick(NOUNS)
        query = f"SELECT {column}, count(*) AS event_count FROM {table}_events WHERE day >= '{w.clock.date()}' GROUP BY 1 ORDER BY 2 DESC LIMIT {w.rng.randrange(5, 30)}"
        if w.rng.random() < 0.2:
            steps.append(Tools([("run_sql", {"query": query.replace("GROUP BY 1", "GROUP 1")})],
                               [f'ERROR: syntax error at or near "1" LINE 1: ...{table}_events'], thought="Typo; fixing the query."))
        steps.append(Tools([("run_sql", {"query": query})], [w.table([column, "event_count"], w.rng.randrange(3, 12))]))
    return steps[:n]


QUESTIONS = ["How do I tune {t} for {x}?", "Why does {x} get worse with {t}?", "Is {x} affected by {t} {f}?",
             "Can you compare {x} and {t}?", "What breaks {x} {f}?", "Our {x} looks odd after a deploy, {t} related?"]


def chatting(w: World, n: int) -> list[Step]:
    """A support conversation: the user keeps asking about different things."""
    steps: list[Step] = []
    for _ in range(n):
        topic = w.pick(sorted(TOPICS))
        terms = TOPICS[topic]
        answer = f"On {topic}: " + " ".join(w.snippet(terms) for _ in range(w.rng.randrange(3, 6)))
        question = w.pick(QUESTIONS).format(t=w.pick(terms), x=w.pick(sorted(TOPICS)), f=w.pick(["in production", "at scale", "today", "on staging"]))
        steps.append(Say(answer, question))
    return steps


FAMILIES: dict[str, tuple[str, str, Callable[[World, int], list[Step]]]] = {
    "reading": (CODING_SYSTEM, "Read through the code base and write an architecture overview of every module.", reading),
    "fixing": (CODING_SYSTEM, "The test suite is failing on main. Fix the code until every test passes.", fixing),
    "research": (RESEARCH_SYSTEM, "Survey what practitioners say about these topics and summarise with citations.", researching),
    "paginate": (TRIAGE_SYSTEM, "Go through all open issues in acme/platform and label the ones that need triage.", paginating),
    "polling": (OPS_SYSTEM, "Run tonight's pipelines one after the other and report their row counts.", polling),
    "retry": (OPS_SYSTEM, "Collect the current owner of each of these records from the API.", retrying),
    "analyst": (ANALYST_SYSTEM, "Find which events grew fastest this week, per service.", analysing),
    "chat": (SUPPORT_SYSTEM, "Hi! I have a few questions about our infrastructure.", chatting),
}


def progressing(w: World, family: str, n: int, window: int | None = None) -> Conversation:
    system, task, build = FAMILIES[family]
    return Conversation(system, task, build(w, n), window)
