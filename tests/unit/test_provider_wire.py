"""What an OpenAI-compatible provider sends: the request's output cap in the field its server reads."""

import pytest

from tokenbrake.config import UpstreamConfig
from tokenbrake.core import Endpoint
from tokenbrake.upstream.providers.openai import OpenAIProvider


def provider(base_url: str, **settings) -> OpenAIProvider:
    return OpenAIProvider("up", UpstreamConfig(kind="openai", base_url=base_url, **settings))


OPENAI = "https://api.openai.com/v1"
LOCAL = "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("sent, expected", [
    ({"max_completion_tokens": 50}, {"max_tokens": 50}),
    ({"max_tokens": 50}, {"max_tokens": 50}),
    ({"max_completion_tokens": 50, "max_tokens": 900}, {"max_tokens": 50}),  # the cap the gateway budgeted
    ({"max_completion_tokens": None, "max_tokens": 70}, {"max_tokens": 70}),
    ({"max_completion_tokens": None}, {}),
])
def test_a_local_server_gets_max_tokens(sent, expected):
    body = {"model": "m", "messages": [], **sent}
    assert provider(LOCAL).wire_body(Endpoint.CHAT, body) == {"model": "m", "messages": [], **expected}
    assert body == {"model": "m", "messages": [], **sent}  # the request's own body is left as it was


@pytest.mark.parametrize("sent, expected", [
    ({"max_tokens": 50}, {"max_completion_tokens": 50}),  # what an Anthropic client's max_tokens becomes
    ({"max_completion_tokens": 50}, {"max_completion_tokens": 50}),
    ({"max_completion_tokens": 50, "max_tokens": 900}, {"max_completion_tokens": 50}),
])
def test_openai_gets_max_completion_tokens(sent, expected):
    body = {"model": "m", "messages": [], **sent}
    assert provider(OPENAI).wire_body(Endpoint.CHAT, body) == {"model": "m", "messages": [], **expected}


def test_the_field_follows_the_provider_and_the_setting():
    assert provider("https://example.openai.azure.com/openai/v1", provider="azure").cap_field == "max_completion_tokens"
    assert provider(OPENAI, provider="groq").cap_field == "max_tokens"
    assert provider(LOCAL, output_cap_field="max_completion_tokens").cap_field == "max_completion_tokens"
    assert provider(OPENAI, output_cap_field="max_tokens").cap_field == "max_tokens"


def test_a_body_already_in_the_servers_field_is_sent_as_it_is():
    body = {"model": "m", "max_tokens": 5}
    assert provider(LOCAL).wire_body(Endpoint.CHAT, body) is body
    embeddings = {"model": "e", "input": "x", "max_completion_tokens": 5}  # not a chat: not touched
    assert provider(LOCAL).wire_body(Endpoint.EMBEDDINGS, embeddings) is embeddings
