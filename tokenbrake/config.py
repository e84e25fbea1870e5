"""The YAML config: typed, validated at start-up, overridable from the environment.

Every section rejects unknown keys, and every error names the key at fault
(`models.small.price.input_per_mtok: ...`); a key given twice in the file is refused.
Environment variables `TOKENBRAKE_A__B__C=value` override the key `a.b.c`: segments are
matched against the keys the file already has case-insensitively and with `_` standing for
any character a shell variable cannot hold (`TOKENBRAKE_MODELS__GPT_4O__UPSTREAM` reaches
`models.gpt-4o.upstream`); the value is read as YAML, so `TOKENBRAKE_MODELS='{"gpt-4o": ...}'`
sets a whole section. Relative file paths in the config (the SQLite database, the state's
snapshot, a route's router) are relative to the config file's folder. Upstream API keys are
never in the file: an upstream names the environment variable that holds its key.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tokenbrake.scopes import check_across_tenants, check_scope, check_session_scope
from tokenbrake.yaml_file import load_yaml

ENV_PREFIX = "TOKENBRAKE_"
# TOKENBRAKE_* variables that are not config overrides (SHARED_DATA: evaluation/shared_data.py's).
RESERVED_ENV = {"TOKENBRAKE_CONFIG", "TOKENBRAKE_MASTER_KEY", "TOKENBRAKE_PROBE_KEY",
                "TOKENBRAKE_SHARED_DATA"}


class ConfigError(ValueError):
    """The config cannot be used; the message names the key and what is wrong with it."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # How long SIGTERM waits for requests in flight before closing them.
    graceful_shutdown_s: float = Field(30.0, ge=0)
    # The environment variable holding a token /metrics then asks for (Authorization: Bearer
    # TOKEN); unset: /metrics is open to whoever reaches the port.
    metrics_token_env: str | None = None
    # What a client, with or without a key, may hold (server/guard.py; README "Hostile clients").
    max_connections: int = Field(4096, gt=0)  # open client connections; past it a new one gets 503
    max_header_bytes: int = Field(32 * 1024, ge=1024)  # a request's line and headers together (431)
    max_headers: int = Field(100, gt=0)  # (431)
    header_timeout_s: float = Field(10.0, gt=0)  # to a request's last header, from its first byte (408)
    body_timeout_s: float = Field(60.0, gt=0)  # to a request's last body byte, from its last header (408)
    idle_timeout_s: float = Field(30.0, gt=0)  # a keep-alive connection with no request in progress is closed
    max_admin_body_bytes: int = Field(64 * 1024, gt=0)  # a request body to /admin/ (413)


class RetryConfig(Strict):
    """Retries of one upstream after 429, 5xx or a failed connection, before the first byte."""

    attempts: int = Field(2, ge=0, le=10)  # retries after the first try
    backoff_initial_s: float = Field(0.25, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)


class UpstreamConfig(Strict):
    kind: Literal["openai", "anthropic"]
    base_url: str
    api_key_env: str | None = None
    # Catalog provider id for prices (openai, anthropic, ...); guessed from base_url if unset.
    provider: str | None = None
    headers: dict[str, str] = {}
    connect_timeout_s: float = Field(5.0, gt=0)
    # Longest wait for the first byte of a response, and then between bytes of a stream.
    timeout_s: float = Field(600.0, gt=0)
    max_connections: int = Field(256, gt=0)
    anthropic_version: str = "2023-06-01"
    # The field a `kind: openai` upstream reads the output cap from. Unset: max_completion_tokens
    # for OpenAI's and Azure's APIs (their reasoning models refuse max_tokens), max_tokens for
    # every other server (vLLM, llama.cpp, Ollama, LM Studio, Mistral...: some know no other).
    output_cap_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    # Whether a `kind: openai` upstream serves OpenAI's Responses API (/v1/responses) itself: then
    # a Responses request reaches it as sent. Unset: true for OpenAI's own API (provider openai),
    # false for every other server (vLLM, llama.cpp, Ollama...), which get it as a chat completion.
    responses_api: bool | None = None
    retry: RetryConfig | None = None  # overrides the top-level retry policy
    # Provider prompt caching (upstream/prompt_caching.py). auto: an Anthropic upstream gets
    # cache_control breakpoints at the stable prefix when the client set none; an OpenAI one a
    # prompt_cache_key per tenant and session where it reads one. off: bodies go as built.
    prompt_caching: Literal["auto", "off"] = "auto"
    # Whether a `kind: openai` upstream is sent `prompt_cache_key`. Unset: only OpenAI's own API
    # (provider openai); another server may refuse a field it does not know.
    prompt_cache_key: bool | None = None

    @model_validator(mode="after")
    def _check_base_url(self) -> UpstreamConfig:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        return self

    @model_validator(mode="after")
    def _check_output_cap_field(self) -> UpstreamConfig:
        if self.output_cap_field is not None and self.kind != "openai":
            raise ValueError("output_cap_field applies to kind: openai upstreams (Anthropic's API reads max_tokens)")
        if self.prompt_cache_key and self.kind != "openai":
            raise ValueError("prompt_cache_key applies to kind: openai upstreams (Anthropic's API caches at cache_control)")
        if self.responses_api and self.kind != "openai":
            raise ValueError("responses_api applies to kind: openai upstreams (Anthropic's API has no /v1/responses)")
        return self


class GpuPriceConfig(Strict):
    """A self-hosted model priced from what its GPU costs and the throughput measured on it."""

    cost_per_hour: Decimal = Field(gt=0)
    output_tokens_per_s: Decimal = Field(gt=0)
    input_tokens_per_s: Decimal | None = Field(None, gt=0)  # prefill; default 10× the output rate


class PriceConfig(Strict):
    """USD per million tokens, or a GPU's cost. Unset cached/cache-write prices fall back to
    the input price."""

    input_per_mtok: Decimal | None = Field(None, ge=0)
    output_per_mtok: Decimal | None = Field(None, ge=0)
    cached_input_per_mtok: Decimal | None = Field(None, ge=0)
    cache_write_per_mtok: Decimal | None = Field(None, ge=0)
    gpu: GpuPriceConfig | None = None

    @model_validator(mode="after")
    def _one_way_of_pricing(self) -> PriceConfig:
        per_token = self.input_per_mtok is not None and self.output_per_mtok is not None
        if per_token == (self.gpu is not None):
            raise ValueError("give either input_per_mtok and output_per_mtok, or gpu")
        return self


class ModelConfig(Strict):
    upstream: str
    model: str | None = None  # the upstream's name for it; defaults to the config key
    # The output cap assumed when a request sets none (the worst case a budget reserves for).
    default_max_tokens: int = Field(4096, gt=0)
    # The most output the model can produce: a request asking for more is clamped to it (the
    # provider would refuse it, and budgets would reserve for output that cannot come).
    max_output_tokens: int | None = Field(None, gt=0)
    fallbacks: list[str] = []
    price: PriceConfig | None = None
    free: bool = False  # a model with no price must say so, so nothing is priced at zero by accident


class AuthConfig(Strict):
    # Off only for trying things out: every request is then anonymous and may use every model.
    require_keys: bool = True
    # How often each replica reloads keys from the database whatever the change channel says
    # (changes/ tells it at once; this bounds a change whose message was lost); an unknown key
    # triggers an immediate reload.
    refresh_s: float = Field(5.0, gt=0)


class LedgerConfig(Strict):
    store_prompts: bool = False  # keep prompt and completion text in the ledger
    flush_interval_s: float = Field(0.5, gt=0)
    batch_size: int = Field(500, gt=0)
    # The local journal of calls in flight and rows not yet written (journal/): default beside
    # an SQLite ledger (x.db.journal), else ./tokenbrake-journal. Gateways on one machine may
    # share the folder: each recovers what a dead one left there.
    journal_dir: str | None = None
    shutdown_write_s: float = Field(10.0, gt=0)  # on shutdown, how long to try writing queued rows
    # A batch the database has not committed by then counts as failed and is retried: a frozen
    # or partitioned database is reported, not waited on in silence (rows are written once).
    write_timeout_s: float = Field(10.0, gt=0)


STATE_SCHEMES = ("memory://", "redis://", "rediss://", "unix://")  # as tokenbrake.limits.open_limit_store reads them


Period = Literal["minute", "hour", "day", "week", "month", "total", "rolling"]


class BudgetConfig(Strict):
    scope: str
    amount_usd: Decimal = Field(gt=0)
    period: Period = "month"
    rolling_s: float | None = Field(None, gt=0)  # the window's length, with period: rolling
    mode: Literal["hard", "soft", "downgrade"] = "hard"
    downgrade_to: str | None = None  # the cheaper model served in downgrade mode…
    downgrade_below_usd: Decimal | None = Field(None, ge=0)  # …once the remainder is below this
    alert_at: list[float] = [0.5, 0.8, 1.0]  # shares of the amount that fire an alert, once a period
    # user: and tag: scopes count per tenant (the key's team, or the key); true: one counter
    # shared by every tenant's user (or tag) of that name.
    across_tenants: bool = False

    @model_validator(mode="after")
    def _check(self) -> BudgetConfig:
        check_scope(self.scope)
        check_across_tenants(self.scope, self.across_tenants)
        if (self.period == "rolling") != (self.rolling_s is not None):
            raise ValueError("rolling_s is required with period: rolling, and only then")
        if self.mode == "downgrade" and (self.downgrade_to is None or self.downgrade_below_usd is None):
            raise ValueError("mode: downgrade needs downgrade_to and downgrade_below_usd")
        if any(not 0 < share <= 10 for share in self.alert_at):
            raise ValueError("alert_at: shares of the amount, e.g. [0.5, 0.8, 1.0]")
        return self


class LimitRuleConfig(Strict):
    """Rate limits and per-request caps on every request in a scope."""

    scope: str
    requests_per_minute: int | None = Field(None, gt=0)
    tokens_per_minute: int | None = Field(None, gt=0)
    concurrent: int | None = Field(None, gt=0)
    max_input_tokens: int | None = Field(None, gt=0)  # refused above
    max_output_tokens: int | None = Field(None, gt=0)  # clamped to
    across_tenants: bool = False  # as a budget's: user: and tag: counters shared by every tenant

    @model_validator(mode="after")
    def _check(self) -> LimitRuleConfig:
        check_scope(self.scope)
        check_across_tenants(self.scope, self.across_tenants)
        return self


class LogConfig(Strict):
    """What `serve` writes to stderr: its messages, and a line per request (the access log)."""

    access: bool = True  # one line per request, at level info (never prompt text or key material)
    format: Literal["text", "json"] = "text"
    # The same error (logger and message) is written once per this many seconds; the next
    # one written says how many were held back.
    repeat_s: float = Field(60.0, ge=0)


class AlertsConfig(Strict):
    webhook_url: str | None = None  # JSON POSTed for each alert; alerts are always logged
    timeout_s: float = Field(5.0, gt=0)  # a webhook slower than this is given up on (and logged)


class AnomaliesConfig(Strict):
    """The spend anomaly detector (foresight/detector.py): what departs from a scope's own usual
    for this hour of the week, past an absolute floor, and for how long."""

    enabled: bool = True  # evaluated inside every gateway, on the shared database's rollups
    every_s: float = Field(60.0, ge=5, le=60)  # how often the detector looks (at least once a minute)
    settle_s: float = Field(15.0, ge=0, le=50)  # a minute is read this long after it ends (late batches)
    window_minutes: int = Field(5, ge=1, le=30)  # the rate compared with the usual: the last N closed minutes
    floor_usd_per_hour: float = Field(2.0, gt=0)  # excess below this never alerts, whatever the factor
    heavy_usd_per_hour: float = Field(10.0, gt=0)  # a new spender or a session this fast is heavy
    spike_factor: float = Field(3.0, gt=1)  # spend against its usual for this hour of the week
    size_factor: float = Field(3.0, gt=1)  # tokens per request against the usual
    mix_factor: float = Field(2.0, gt=1)  # cost per request against the usual model mix's
    error_factor: float = Field(4.0, gt=1)  # error spend against its usual
    runaway_factor: float = Field(5.0, gt=1)  # a session's rate against its team's busiest session's
    min_z: float = Field(5.0, ge=0)  # and as rare as that many standard deviations (counts: Poisson, binomial)
    rare_hours: int = Field(3, ge=0)  # a key or user seen spending in at most this many hours (4 weeks) is new
    end_after_minutes: int = Field(10, ge=1)  # quiet this long: the incident is over


class LoopConfig(Strict):
    """Loop detection on a session's requests (tokenbrake/loops): what counts as no progress."""

    enabled: bool = True
    # Occurrences of the same step (or of a cycle of steps, or near-identical texts) in a row,
    # with nothing new in between, that make a loop: a cycle of 4 steps is stopped on its 4th
    # round, 12 calls after its first.
    repetitions: int = Field(4, ge=2, le=10)
    max_period: int = Field(4, ge=1, le=8)  # longest cycle (A→B→C→D→A…) recognised as a loop
    # Estimated Jaccard similarity of two short messages' content words from which one
    # paraphrases the other (real paraphrases mostly score 0.4 to 0.8, unrelated texts 0.1)…
    similarity: float = Field(0.45, gt=0, le=1)
    # …and of two tool results, or two long messages (32 content words or more), from which the
    # second is the first with a few words changed (long texts on one topic share many words).
    near_duplicate: float = Field(0.8, gt=0, le=1)
    # A short message whose content words are at least this share of the words its side used in
    # its last four messages adds nothing, even if it is close to none of them alone.
    coverage: float = Field(0.8, gt=0, le=1)
    # Messages shorter than this are neither progress nor loop ("ok", "continue"); tool results
    # shorter than this are compared exactly (an edit tool's "OK" after different edits is no loop).
    min_text_chars: int = Field(80, ge=0)
    # Tools expected to be called again and again with the same arguments (glob patterns on the
    # tool name): their identical answers are a loop only after `polling_allowance` of them.
    polling_tools: list[str] = ["*status*", "*poll*", "wait*", "*progress*", "get_job*", "check_job*"]
    polling_allowance: int = Field(10, ge=2, le=50)
    # The evidence of a loop (kept in the session state, shown in refusals, alerts and
    # `sessions show`) quotes the repeated call's arguments and the repeated text. Off: tool
    # and argument names only, and a text's length: no prompt content is kept.
    evidence_text: bool = False


LoopAction = Literal["off", "warn", "throttle", "stop"]


class SessionRuleConfig(Strict):
    """Limits on each agent session in a scope (`global`, `key:NAME`, `team:NAME`), and what
    to do when one loops. Every rule whose scope a session is in applies its limits (the
    smallest wins); `on_loop` comes from the most specific rule that sets it (key, then team,
    then global)."""

    scope: str = "global"
    across_tenants: ClassVar[bool] = False  # not a setting: key and team scopes are the same for every tenant
    max_calls: int | None = Field(None, gt=0)  # upstream calls per session
    max_tokens: int | None = Field(None, gt=0)  # tokens (input + output) per session, settled after each call
    max_cost_usd: Decimal | None = Field(None, gt=0)  # USD per session, settled after each call
    max_duration_s: float | None = Field(None, gt=0)  # wall-clock seconds since the session's first call
    calls_per_minute: int | None = Field(None, gt=0)  # sliding 60-second window
    # warn: X-Tokenbrake-Loop header, ledger flag, alert; throttle: also sleep before each
    # looping call; stop: also refuse the session's calls until an operator resumes it.
    on_loop: LoopAction | None = None  # None: this rule does not say (off: no detection)

    @model_validator(mode="after")
    def _check(self) -> SessionRuleConfig:
        check_session_scope(self.scope)
        return self


class SessionsConfig(Strict):
    """Agent sessions (X-Tokenbrake-Session, or Anthropic metadata.session_id), each scoped to its key."""

    rules: list[SessionRuleConfig] = []  # none: sessions are only attributed, never limited or watched
    idle_ttl_s: float = Field(86400.0, gt=0)  # a session idle this long is forgotten (a stopped one too)
    throttle_initial_s: float = Field(1.0, ge=0)  # throttle: sleep before a looping call, doubling per repetition…
    throttle_max_s: float = Field(30.0, ge=0)  # …up to this
    history: int = Field(20, ge=1, le=200)  # loop verdicts kept per session (the latest)
    loops: LoopConfig = LoopConfig()  # what the detector counts as a loop


class ResponsesConfig(Strict):
    """The conversations the gateway keeps for OpenAI's Responses API (`previous_response_id`,
    `GET /v1/responses/{id}`), for upstreams that keep none themselves."""

    store: bool = True  # false: nothing is kept, whatever a request's `store` says
    retention_s: float = Field(30 * 86400.0, gt=0)  # a kept response is deleted this long after it was made


class BudgetingConfig(Strict):
    timezone: str = "UTC"  # calendar periods (day, week, month) begin at midnight here
    min_output_tokens: int = Field(16, gt=0)  # clamp max_tokens no lower than this; refuse below
    reservation_ttl_s: float = Field(900.0, gt=0)  # a dead gateway's reservations expire after this
    # When requests in flight hold what a request needs, it waits up to this long for them to
    # settle (most settle below their worst case) before it is clamped or refused; 0: never wait.
    max_wait_s: float = Field(5.0, ge=0)
    refresh_s: float = Field(5.0, gt=0)  # budgets set at run time are reloaded this often, told or not


class CheckConfig(Strict):
    """One acceptance check of a cascade (exactly one key): the cheaper tier's answer is kept
    only when every check of the route passes (routing/checks.py)."""

    json_schema: dict[str, Any] | None = None  # the answer must be JSON valid against this schema
    regex: str | None = None  # the answer must contain a match (Python `re.search`)
    # The mean of the answer's token log-probabilities must be at least this (e.g. -0.3);
    # asked of OpenAI-compatible upstreams; an answer that comes without them fails.
    min_mean_logprob: float | None = Field(None, le=0)
    grader: str | None = None  # a configured model asked whether the answer will do (yes/no)

    @model_validator(mode="after")
    def _one(self) -> CheckConfig:
        if sum(value is not None for value in (self.json_schema, self.regex, self.min_mean_logprob, self.grader)) != 1:
            raise ValueError("a check has exactly one of json_schema, regex, min_mean_logprob, grader")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r}: {exc}") from None
        if self.json_schema is not None:
            import jsonschema

            try:
                jsonschema.Draft202012Validator.check_schema(self.json_schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"json_schema: not a valid JSON schema: {exc.message}") from None
        return self


class RerouteConfig(Strict):
    """Requests from `scope` for one of `models` are routed by the route instead."""

    scope: str
    models: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> RerouteConfig:
        check_scope(self.scope)
        return self


class RouteConfig(Strict):
    """A virtual model: clients ask for its name; one of its tiers serves (routing/)."""

    tiers: list[str] = Field(min_length=1)  # configured models, cheapest first
    strategy: Literal["router", "cascade", "fallback"] = "router"
    # router: a file written by `tokenbrake router train`, or a shipped router: `default`
    # (features only) or `default-embedding` (needs the router extra). None: `default`.
    router: str | None = None
    # router, the cost/quality knob: the share of requests sent above the cheapest tier,
    # calibrated on the router's training prompts (0.3: the 30% that score highest). With
    # more than two tiers, each tier above gets the same share of it.
    strong_share: float | None = Field(None, ge=0, le=1)
    # router, instead of strong_share: a score at or above thresholds[i] goes to tier i+1, one
    # threshold fewer than tiers, ascending. Neither set: strong_share 0.3.
    thresholds: list[float] | None = None
    checks: list[CheckConfig] = []  # cascade: all must pass for a cheaper tier's answer to be kept
    # On an error, timeout or rate limit of the chosen tier, try the stronger tiers after it.
    escalate_on_error: bool = True
    # cascade: keep each outcome's prompt text and label for `tokenbrake router train
    # --from-ledger` (prompt text is stored only with this on).
    keep_examples: bool = False
    reroute: list[RerouteConfig] = []  # scopes whose requests for concrete models use this route

    @model_validator(mode="after")
    def _check(self) -> RouteConfig:
        if self.thresholds is not None and self.strong_share is not None:
            raise ValueError("set strong_share or thresholds, not both")
        if self.thresholds is not None:
            if len(self.thresholds) != len(self.tiers) - 1:
                raise ValueError(f"thresholds: {len(self.tiers)} tiers need {len(self.tiers) - 1} thresholds")
            if any(not 0 <= t <= 1 for t in self.thresholds) or self.thresholds != sorted(self.thresholds):
                raise ValueError("thresholds: ascending scores between 0 and 1")
        if self.strategy == "cascade" and (len(self.tiers) < 2 or not self.checks):
            raise ValueError("strategy cascade needs at least two tiers and one check")
        return self


def check_routes(config: Config) -> None:
    """Route names are not model names; tiers, graders and rerouted models are models."""
    for name, route in config.routes.items():
        if name in config.models:
            raise ValueError(f"routes.{name}: a route cannot share its name with a model")
        for tier in route.tiers:
            if tier not in config.models:
                raise ValueError(f"routes.{name}.tiers: no model named {tier!r}")
        for index, check in enumerate(route.checks):
            if check.grader is not None and check.grader not in config.models:
                raise ValueError(f"routes.{name}.checks[{index}].grader: no model named {check.grader!r}")
            if check.min_mean_logprob is not None:  # only OpenAI-compatible upstreams return logprobs
                for tier in route.tiers[:-1]:
                    if config.upstreams[config.models[tier].upstream].kind != "openai":
                        raise ValueError(f"routes.{name}.checks[{index}].min_mean_logprob: tier {tier!r} is on an "
                                         f"Anthropic upstream, which returns no logprobs: its answers would "
                                         f"always be escalated")
        for index, rule in enumerate(route.reroute):
            for model in rule.models:
                if model not in config.models:
                    raise ValueError(f"routes.{name}.reroute[{index}].models: no model named {model!r}")


class Config(Strict):
    database: str = "sqlite:///tokenbrake.db"  # or postgresql://user@host:5432/db
    # Budgets, rate limits, concurrency and sessions: memory:// (this process only),
    # memory:///relative/state.json or memory:////absolute/state.json (kept across restarts), or
    # redis://host:6379/0 (shared by replicas). Unset: kept beside an SQLite ledger (`state_url`).
    state: str | None = None
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    ledger: LedgerConfig = LedgerConfig()
    retry: RetryConfig = RetryConfig()
    budgeting: BudgetingConfig = BudgetingConfig()
    budgets: list[BudgetConfig] = []
    limits: list[LimitRuleConfig] = []
    alerts: AlertsConfig = AlertsConfig()
    anomalies: AnomaliesConfig = AnomaliesConfig()  # spend departing from its usual
    log: LogConfig = LogConfig()
    sessions: SessionsConfig = SessionsConfig()  # per-session limits and loop detection
    responses: ResponsesConfig = ResponsesConfig()  # conversations kept for the Responses API
    upstreams: dict[str, UpstreamConfig]
    models: dict[str, ModelConfig]
    routes: dict[str, RouteConfig] = {}  # virtual models (e.g. `auto`) and how they pick a tier

    @property
    def state_url(self) -> str:
        """The state backend in use: `state`, or by default a snapshot beside an SQLite
        ledger (`sqlite:///x.db` → `memory:///x.db.state.json`), so a restart keeps the
        period's spend and reservations; with another database, this process's memory."""
        if self.state is not None:
            return self.state
        if self.database.startswith("sqlite:///"):
            return "memory:///" + self.database[len("sqlite:///"):].split("?")[0] + ".state.json"
        return "memory://"

    @property
    def journal_dir(self) -> str:
        """The journal's folder: `ledger.journal_dir`, or beside an SQLite ledger, or
        tokenbrake-journal (beside the config file, once loaded from one)."""
        if self.ledger.journal_dir is not None:
            return self.ledger.journal_dir
        if self.database.startswith("sqlite:///"):
            return self.database[len("sqlite:///"):].split("?")[0] + ".journal"
        return "tokenbrake-journal"

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        check_routes(self)
        if not self.database.startswith(("sqlite:///", "postgresql://", "postgres://")) or self.database == "sqlite:///":
            raise ValueError(f"database: expected sqlite:///PATH or postgresql://..., got {self.database!r}")
        if self.state is not None and not self.state.startswith(STATE_SCHEMES):
            raise ValueError(f"state: expected memory://, memory:///PATH or redis://HOST:PORT/DB, got {self.state!r}")
        if self.state is not None and self.state.startswith(STATE_SCHEMES[1:3]):
            try:
                _ = urlsplit(self.state).port  # raises for a port that is not a number
            except ValueError:
                raise ValueError(f"state: {self.state!r} has a port that is not a number") from None
        for index, budget in enumerate(self.budgets):
            if budget.downgrade_to is not None and budget.downgrade_to not in self.models:
                raise ValueError(f"budgets[{index}].downgrade_to: no model named {budget.downgrade_to!r}")
        try:
            zoneinfo.ZoneInfo(self.budgeting.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"budgeting.timezone: unknown time zone {self.budgeting.timezone!r}") from None
        for name, model in self.models.items():
            if model.upstream not in self.upstreams:
                known = ", ".join(sorted(self.upstreams)) or "none"
                raise ValueError(f"models.{name}.upstream: no upstream named {model.upstream!r} (known: {known})")
            for fallback in model.fallbacks:
                if fallback not in self.models:
                    raise ValueError(f"models.{name}.fallbacks: no model named {fallback!r}")
                if fallback == name:
                    raise ValueError(f"models.{name}.fallbacks: a model cannot be its own fallback")
        return self

    def retry_for(self, upstream: str) -> RetryConfig:
        return self.upstreams[upstream].retry or self.retry


def unset_key_envs(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each upstream whose `api_key_env` names a variable that is not set: its
    requests go without a key, and the provider will refuse them; and for a metrics token
    variable that is not set, which closes /metrics."""
    environ = os.environ if environ is None else environ
    warnings = [f"upstreams.{name}.api_key_env names {upstream.api_key_env}, which is not set: requests to "
                f"{name} go without a key"
                for name, upstream in config.upstreams.items()
                if upstream.api_key_env and not environ.get(upstream.api_key_env)]
    token = config.server.metrics_token_env
    if token and not environ.get(token):
        warnings.append(f"server.metrics_token_env names {token}, which is not set: /metrics refuses every scrape")
    return warnings


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Reads, overrides from the environment and validates; raises ConfigError. Relative
    paths in it are made relative to the file's folder (see `resolve_paths`)."""
    try:
        raw = load_yaml(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return resolve_paths(parse_config(raw, os.environ if environ is None else environ), Path(path).resolve().parent)


def parse_config(raw: dict[str, Any], environ: Mapping[str, str] | None = None) -> Config:
    data, sources = apply_env_overrides(raw, environ or {})
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, sources)) from None


def resolve_paths(config: Config, folder: Path) -> Config:
    """The config with its relative file paths made absolute against `folder` (the config
    file's), so a command run from another directory opens the same database and snapshot."""
    def absolute(prefix: str, url: str | None) -> str | None:
        if url is None or not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix:
            return url
        return prefix + str(folder / url[len(prefix):])

    routes = {name: route.model_copy(update={"router": absolute("", route.router) if route.router not in
                                             (None, "default", "default-embedding") else route.router})
              for name, route in config.routes.items()}
    # The journal's folder too; with neither it nor an SQLite ledger set, ./tokenbrake-journal
    # beside the config file rather than wherever the command runs.
    journal = config.ledger.journal_dir or (None if config.database.startswith("sqlite:///") else "tokenbrake-journal")
    ledger = config.ledger.model_copy(update={"journal_dir": absolute("", journal)})
    return config.model_copy(update={"database": absolute("sqlite:///", config.database),
                                     "state": absolute("memory:///", config.state), "routes": routes,
                                     "ledger": ledger})


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple, str]]:
    """The config with each TOKENBRAKE_ variable applied, and which variable set which key
    (so an error in a value the environment gave names the variable)."""
    data = _deep_copy(raw)
    sources: dict[tuple, str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        path = name[len(ENV_PREFIX) :].split("__")
        node, keys = data, []
        for segment in path[:-1]:
            key = _match_key(node, segment, name)
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
            keys.append(key)
        key = _match_key(node, path[-1], name)
        try:
            node[key] = yaml.safe_load(value) if value else value
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {name}: its value is not valid YAML: {exc}") from None
        sources[(*keys, key)] = name
    return data, sources


def _env_spelling(key: str) -> str:
    """How a key can be written in a variable name: upper case, `_` for anything else."""
    return re.sub(r"[^A-Z0-9_]", "_", key.upper())


def _match_key(node: dict[str, Any], segment: str, variable: str) -> str:
    matches = [key for key in node if isinstance(key, str) and key.lower() == segment.lower()]
    if not matches:
        matches = [key for key in node if isinstance(key, str) and _env_spelling(key) == segment.upper()]
    if len(matches) > 1:
        raise ConfigError(f"environment variable {variable}: {segment} matches several keys "
                          f"({', '.join(matches)}): set the section as JSON instead")
    return matches[0] if matches else segment.lower()


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep_copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_deep_copy(child) for child in value]
    return value


def describe_validation_error(exc: ValidationError, sources: Mapping[tuple, str] | None = None) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
        variable = _source(where or message.partition(":")[0], sources or {})
        if variable is not None:
            message += f" (set by the environment variable {variable})"
        lines.append(f"{where}: {message}" if where else message)
    return "invalid config: " + "; ".join(lines)


def _source(where: str, sources: Mapping[tuple, str]) -> str | None:
    """The variable that set the key at `where` (a dotted path) or a section above it."""
    for path, variable in sources.items():
        dotted = ".".join(map(str, path))
        if where == dotted or where.startswith(dotted + ".") or where.startswith(dotted + "["):
            return variable
    return None
