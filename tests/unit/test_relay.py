"""The stream relay on an OpenAI stream to an OpenAI client: what the client gets, and what
is metered, read by reads as the upstream sent them (no network: the upstream stream is a
list of reads)."""

from typing import Any

import orjson

from tokenbrake.core import Attribution, Endpoint, Format, KeyStanding, RequestContext, Target
from tokenbrake.upstream.relay import StreamRelay
from tokenbrake.wire.tokens import count_text

TARGET = Target("gpt-4o", "openai", Format.OPENAI, "gpt-4o")
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


class Reads:
    """An upstream stream that hands over `reads` one by one, then ends."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = list(reads)
        self.released = False

    async def read(self) -> bytes:
        return self.reads.pop(0) if self.reads else b""

    async def arrived(self) -> bytes:
        return b""

    def release(self) -> None:
        self.released = True


def event(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


def text_chunk(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o", "system_fingerprint": "fp",
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}], "usage": None}


def tool_chunk(arguments: str) -> dict[str, Any]:
    call = {"index": 0, "function": {"arguments": arguments}}
    return {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}


USAGE_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}
DONE = b"data: [DONE]\n\n"


async def relay(reads: list[bytes], include_usage: bool = False) -> tuple[bytes, RequestContext, Reads]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    ctx = RequestContext(Format.OPENAI, Endpoint.CHAT, body, {}, stream=True)
    upstream = Reads(reads)
    stream = StreamRelay(ctx, TARGET, upstream, body)
    sent = b"".join([chunk async for chunk in stream])
    await stream.aclose()
    return sent, ctx, upstream


async def test_events_go_out_as_they_came_and_the_upstreams_usage_is_metered():
    events = [event(text_chunk("Hel")), event(text_chunk("lo")), event(tool_chunk('{"a": 1}'))]
    sent, ctx, upstream = await relay([b"".join(events[:2]) + events[2][:9], events[2][9:] + event(USAGE_CHUNK) + DONE],
                                      include_usage=True)
    assert sent == b"".join(events) + event(USAGE_CHUNK) + DONE
    assert (ctx.usage.input_tokens, ctx.usage.output_tokens) == (9, 3)
    assert upstream.released


async def test_the_usage_chunk_asked_for_on_the_clients_behalf_is_withheld_from_it():
    sent, ctx, _ = await relay([event(text_chunk("Hi")) + event(USAGE_CHUNK) + DONE], include_usage=False)
    assert sent == event(text_chunk("Hi")) + DONE
    assert ctx.usage.output_tokens == 3


async def test_without_the_upstreams_usage_the_delivered_text_and_arguments_are_counted():
    sent, ctx, _ = await relay([event(text_chunk("Hello there")) + event(tool_chunk('{"city": "Paris"}'))])
    assert sent.startswith(event(text_chunk("Hello there")) + event(tool_chunk('{"city": "Paris"}')))
    assert ctx.usage.output_tokens == count_text('Hello there{"city": "Paris"}')


async def test_text_beyond_ascii_is_passed_and_counted():
    sent, ctx, _ = await relay([event(text_chunk("café ☕")) + DONE])
    assert sent == event(text_chunk("café ☕")) + DONE
    assert ctx.usage.output_tokens == count_text("café ☕")


async def test_a_chunk_of_an_unusual_shape_is_still_passed_and_metered():
    odd = {**text_chunk("odd"), "usage": "not reported"}  # valid JSON, usage of another type
    sent, ctx, _ = await relay([event(text_chunk("a")) + event(odd) + DONE])
    assert sent == event(text_chunk("a")) + event(odd) + DONE
    assert ctx.usage.output_tokens == count_text("aodd")


async def test_garbage_ends_the_stream_with_an_error_after_the_events_before_it():
    for garbage in (b'{"choices": [', b"not json", b'{"id": "c\xff1", "choices": []}', b"[1, 2]"):
        sent, ctx, _ = await relay([event(text_chunk("fine")) + event(garbage) + event(text_chunk("never")) + DONE])
        first, error, rest = sent.split(b"\n\n", 2)
        assert first + b"\n\n" == event(text_chunk("fine"))
        assert "malformed stream event" in orjson.loads(error.removeprefix(b"data: "))["error"]["message"], garbage
        assert rest == b""
        assert ctx.status == 502 and ctx.usage.output_tokens == count_text("fine")


async def test_an_error_the_upstream_reports_mid_stream_reaches_the_client_in_its_format():
    failure = {"error": {"message": "the model is overloaded", "type": "server_error"}}
    sent, ctx, _ = await relay([event(text_chunk("so far")) + event(failure)])
    first, error, _ = sent.split(b"\n\n", 2)
    assert first + b"\n\n" == event(text_chunk("so far"))
    assert "reported: the model is overloaded" in orjson.loads(error.removeprefix(b"data: "))["error"]["message"]
    assert ctx.error is not None and ctx.usage.output_tokens == count_text("so far")


async def test_a_key_revoked_mid_stream_ends_the_stream_with_an_error_after_what_was_sent():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ctx = RequestContext(Format.OPENAI, Endpoint.CHAT, body, {}, stream=True, who=Attribution(key_name="gone"),
                         key_standing=KeyStanding())
    upstream = Reads([event(text_chunk("one")), event(text_chunk("two")), event(text_chunk("never")) + DONE])
    stream = StreamRelay(ctx, TARGET, upstream, body)
    sent = [await stream.__anext__(), await stream.__anext__()]
    ctx.key_standing.revoked = True  # what the key cache does when a reload finds the key revoked
    sent += [chunk async for chunk in stream]
    await stream.aclose()
    assert sent[:2] == [event(text_chunk("one")), event(text_chunk("two"))] and len(sent) == 3
    error = orjson.loads(sent[2].removeprefix(b"data: "))["error"]
    assert "API key 'gone' was revoked while this stream ran" in error["message"]
    assert ctx.status == 401 and ctx.usage.output_tokens == count_text("onetwo") and upstream.released
