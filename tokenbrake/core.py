"""The core types every other module depends on.

A request enters through a front door (OpenAI- or Anthropic-shaped), becomes a
`RequestContext`, and flows through the pipeline's stages in order. A stage either lets the
request go on or answers it itself by raising `GatewayError` (a refusal is just another
response). Nothing here does I/O.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


class Format(enum.StrEnum):
    """A wire format: the front door a client used, or the kind of an upstream."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class Endpoint(enum.StrEnum):
    CHAT = "chat"  # OpenAI /v1/chat/completions or Anthropic /v1/messages
    EMBEDDINGS = "embeddings"
    COUNT_TOKENS = "count_tokens"
    # An upstream's own /v1/responses. A request through the Responses front door is a CHAT to
    # every stage; only an upstream that speaks Responses is sent it on this endpoint.
    RESPONSES = "responses"


class ErrorKind(enum.StrEnum):
    """What went wrong, independent of the wire format that reports it."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMIT = "rate_limit"
    UPSTREAM = "upstream"  # the provider failed or answered garbage
    TIMEOUT = "timeout"  # the provider did not answer in time
    OVERLOADED = "overloaded"
    INTERNAL = "internal"


DEFAULT_STATUS = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.REQUEST_TOO_LARGE: 413,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.UPSTREAM: 502,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.OVERLOADED: 529,
    ErrorKind.INTERNAL: 500,
}


class GatewayError(Exception):
    """A request that ends in an error response, in whatever format the client speaks.

    `limit` names the configured limit that tripped, when one did; `param` the request field
    at fault. `errors.py` is the one place that turns this into an OpenAI or Anthropic body.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        limit: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status or DEFAULT_STATUS[kind]
        self.param = param
        self.code = code
        self.limit = limit
        self.headers = headers or {}


def new_request_id() -> str:
    """A UUIDv7 in hex: the time in milliseconds, then random bits.

    Ids that start with the time sort by time, so the ledger's request_id index grows at its
    end; random ones (UUIDv4) land on random pages of it, and each batch of rows then rewrites
    pages all over an index that only grows, a cost that rises with the ledger's size.

    The ids must be unique, not unguessable: `random` (seeded from the OS, and reseeded in a
    forked child) spares a getrandom() system call per request."""
    rand = random.getrandbits(80)  # 74 of these bits are used
    version_7, rand_a, variant_rand_b = 7, rand >> 68, (0b10 << 62) | (rand & ((1 << 62) - 1))
    return f"{time.time_ns() // 1_000_000:012x}{version_7:x}{rand_a:03x}{variant_rand_b:016x}"


@dataclass(slots=True)
class Usage:
    """Tokens an upstream call consumed. `input_tokens` excludes cached and cache-write ones."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens + self.output_tokens


@dataclass(slots=True)
class Target:
    """One concrete place a request can be sent: a configured model on an upstream."""

    name: str  # the model name clients use (config key)
    upstream: str  # config name of the upstream
    kind: Format  # wire format the upstream speaks
    upstream_model: str  # the model name the upstream expects


@dataclass(slots=True)
class Attempt:
    """One upstream call made for a request (retries and fallbacks each add one)."""

    target: Target
    status: int | None = None  # upstream HTTP status; None when no answer came
    error: str | None = None
    latency_s: float = 0.0


@dataclass(slots=True)
class Attribution:
    """Who a request is for: set by identification, recorded with every call."""

    key_name: str | None = None
    team: str | None = None
    allowed_models: list[str] | None = None  # None: every model
    require_user: bool = False  # the key refuses requests that name no end user
    user: str | None = None  # the application's end user
    session: str | None = None  # an agent session, scoped to its key
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class KeyStanding:
    """Whether a request's key still stands, for as long as the request runs: one per key,
    shared by its requests, flipped by the key cache when it learns the key was revoked and
    read by a stream between chunks (relay.py), so a revocation ends running streams without
    any I/O per chunk."""

    revoked: bool = False


@dataclass(slots=True)
class PriorCall:
    """An upstream call made for a request before the one that served it (a cascade's
    rejected answer, or its grader's verdict): it cost money, so it is priced and recorded."""

    target: Target
    usage: Usage
    cost: Decimal
    status: int
    latency_s: float
    error: str | None = None


@dataclass(slots=True)
class BudgetHold:
    """What the budgets reserved for a request (stages/budgets.py): the grant (a limits.Grant:
    the amount, and the counters it is held on) and the budgets that applied; `settled_at`
    (epoch seconds) once its cost was settled on them."""

    grant: Any
    applied: list[Any]
    settled_at: float | None = None


@dataclass(slots=True)
class RequestContext:
    """Everything known about one request as it moves through the pipeline."""

    format: Format
    endpoint: Endpoint
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool = False
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    who: Attribution = field(default_factory=Attribution)
    key_standing: KeyStanding | None = None  # set by identification when the request has a key
    input_tokens: int | None = None  # counted once, by request_size.input_tokens
    requested_model: str = ""
    targets: list[Target] = field(default_factory=list)  # primary first, then fallbacks
    served: Target | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    cost: Decimal | None = None  # USD, from usage at the served model's price
    completion_text: str | None = None  # what the model answered, when it is to be stored
    status: int = 200
    error: GatewayError | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    # Routing (routing/): the decision for a virtual model; fields a cascade adds to the upstream
    # body (logprobs); calls made before the one that served (a cascade's rejected answers,
    # its grader) — each has its own ledger row and counts against budgets; and the cost saved
    # against the model the client asked for.
    route: Any = None
    upstream_extra: dict[str, Any] | None = None
    prior_calls: tuple[PriorCall, ...] = ()
    saved: Decimal | None = None
    loop_suspected: str | None = None  # the loop kind a session's detector saw (stages/sessions.py): a ledger flag
    budget_hold: BudgetHold | None = None  # what the budgets reserved; the ledger row records its charges
    # Held in shared state until the after step of the stage that took them gives them back:
    concurrency_slots: tuple[str, ...] = ()  # the counters with a slot taken (stages/rate_limits.py)
    session_counted: tuple[str, str] | None = None  # (key name, session) the call counts on (stages/watch_session.py)
    usage_unseen: bool = False  # cut mid-call with no usage seen: charged at the worst case it reserved
    # A request through the Responses front door (wire/responses_api.Exchange): what the client
    # sent, its response id, the conversation it continues, and the response it got. `body`
    # then holds its translation into a chat completion request, which the stages read.
    responses: Any = None

    @property
    def total_cost(self) -> Decimal:
        """What the request cost: the call that served it and the calls made before it."""
        return (self.cost or Decimal(0)) + sum((prior.cost for prior in self.prior_calls), Decimal(0))

    @property
    def total_tokens(self) -> int:
        """The tokens of the call that served the request and of the calls made before it."""
        served = self.usage.total_tokens if self.usage is not None else 0
        return served + sum(prior.usage.total_tokens for prior in self.prior_calls)

    @property
    def endpoint_name(self) -> str:
        """The endpoint the ledger records: the client's (`responses` for the Responses API)."""
        return Endpoint.RESPONSES.value if self.responses is not None else self.endpoint.value

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


class ReplyStream(Protocol):
    """A reply's SSE bytes; closing it, at its end or before, is what settles the request."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Reply:
    """What goes back to the client: a JSON body, or a stream of SSE bytes."""

    status: int = 200
    body: dict[str, Any] | None = None
    stream: ReplyStream | None = None
    headers: dict[str, str] = field(default_factory=dict)


class BeforeStep(Protocol):
    async def before(self, ctx: RequestContext) -> None: ...


class AfterStep(Protocol):
    async def after(self, ctx: RequestContext) -> None: ...


# One step of the pipeline: an object with a `before` step, an `after` step, or both.
#
# `before` runs in pipeline order and may raise `GatewayError` to answer the request
# itself. `after` runs in reverse order for the stages the request reached (those up to
# the one that refused it, if one did), once the response is complete (for a stream: after
# its last byte, or when it broke off), whether the request succeeded or not.
Stage = BeforeStep | AfterStep
