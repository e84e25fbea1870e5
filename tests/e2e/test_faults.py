"""Bad input and upstream faults: the right status, an error each SDK raises as its usual
exception with a message that says what went wrong, and a gateway that keeps serving."""

import anthropic
import httpx
import openai
import pytest


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_malformed_json_is_a_400_in_openai_format(gateway):
    response = httpx.post(gateway.url + "/v1/chat/completions", content=b'{"model": "gpt-4o", "messages": [',
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_malformed_json_is_a_400_in_anthropic_format(gateway):
    response = httpx.post(gateway.url + "/v1/messages", content=b"{oops", headers={"anthropic-version": "2023-06-01"})
    body = response.json()
    assert response.status_code == 400 and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"


def test_missing_field_is_named(openai_client):
    with pytest.raises(openai.BadRequestError, match="'messages': this field is required"):
        openai_client.chat.completions.create(model="gpt-4o", messages=None)  # type: ignore[arg-type]


def test_wrong_type_is_named(gateway):
    # The Anthropic SDK itself refuses a non-integer max_tokens, so send what other clients could.
    response = httpx.post(gateway.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"},
                          json={"model": "claude-fast", "max_tokens": "ten", "messages": user("x")})
    assert response.status_code == 400
    assert "'max_tokens': expected an integer" in response.json()["error"]["message"]


def test_unknown_model_is_a_not_found_error_listing_the_available_ones(openai_client, anthropic_client):
    with pytest.raises(openai.NotFoundError, match="'gpt-17' does not exist.*gpt-4o"):
        openai_client.chat.completions.create(model="gpt-17", messages=user("x"))
    with pytest.raises(anthropic.NotFoundError, match="'gpt-17' does not exist"):
        anthropic_client.messages.create(model="gpt-17", max_tokens=5, messages=user("x"))


def test_oversized_body_is_a_413(openai_client, anthropic_client):
    huge = "x" * 300_000
    with pytest.raises(openai.APIStatusError) as raised:
        openai_client.chat.completions.create(model="gpt-4o", messages=user(huge))
    assert raised.value.status_code == 413 and "max_body_bytes" in raised.value.message
    with pytest.raises(anthropic.APIStatusError) as raised_a:
        anthropic_client.messages.create(model="claude-fast", max_tokens=5, messages=user(huge))
    assert raised_a.value.status_code == 413


def test_upstream_4xx_keeps_its_status_and_message(openai_client):
    with pytest.raises(openai.BadRequestError, match="upstream emu-openai answered 400"):
        openai_client.chat.completions.create(model="gpt-4o", messages=user("[[emulator: status=400]]"))


def test_upstream_429_exhausting_retries_is_a_rate_limit_error(anthropic_client):
    with pytest.raises(anthropic.RateLimitError, match="upstream emu-anthropic answered 429"):
        anthropic_client.messages.create(model="claude-fast", max_tokens=5, messages=user("[[emulator: status=429]]"))


def test_upstream_5xx_is_retried_until_it_succeeds(openai_client, emulator):
    reply = openai_client.chat.completions.create(
        model="gpt-4o", messages=user("[[emulator: status=503 fail_first=2 id=retry-ok]]")
    )
    assert reply.choices[0].message.content
    statuses = [r["status"] for r in httpx.get(emulator.url + "/_emulator/requests").json() if "retry-ok" in str(r["body"])]
    assert statuses == [503, 503, 200]


def test_persistent_5xx_is_a_502_naming_the_upstream(openai_client):
    with pytest.raises(openai.InternalServerError, match="upstream emu-openai answered 500") as raised:
        openai_client.chat.completions.create(model="gpt-4o", messages=user("[[emulator: status=500]]"))
    assert raised.value.status_code == 502


def test_upstream_timeout_is_a_504(openai_client):
    with pytest.raises(openai.InternalServerError, match="did not answer in time") as raised:
        openai_client.chat.completions.create(model="slow", messages=user("[[emulator: hang=3]]"))
    assert raised.value.status_code == 504


def test_connection_refused_is_a_502(anthropic_client):
    with pytest.raises(anthropic.InternalServerError, match="could not connect to upstream dead") as raised:
        anthropic_client.messages.create(model="dead", max_tokens=5, messages=user("x"))
    assert raised.value.status_code == 502


def test_connection_refused_falls_back_to_the_next_model(openai_client):
    response = openai_client.chat.completions.with_raw_response.create(model="dead-then-small", messages=user("x"))
    assert response.headers["x-tokenbrake-served-by"] == "small"
    assert response.parse().choices[0].message.content


def test_stream_cut_off_mid_way_raises_in_the_openai_client(openai_client):
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=user("[[emulator: tokens=30 cut=4]]"), stream=True)
    with pytest.raises(openai.APIError, match="broke off|ended the stream"):
        for _ in stream:
            pass


def test_stream_cut_off_mid_way_raises_in_the_anthropic_client(anthropic_client):
    with pytest.raises(anthropic.APIError, match="broke off|ended the stream"):
        with anthropic_client.messages.stream(model="claude-fast", max_tokens=100,
                                              messages=user("[[emulator: tokens=30 cut=4]]")) as stream:
            for _ in stream:
                pass


def test_garbage_in_a_stream_raises_in_the_client(openai_client, anthropic_client):
    stream = openai_client.chat.completions.create(model="gpt-4o", messages=user("[[emulator: garbage=3]]"), stream=True)
    with pytest.raises(openai.APIError, match="malformed stream event"):
        list(stream)
    with pytest.raises(anthropic.APIError, match="malformed stream event"):
        with anthropic_client.messages.stream(model="small", max_tokens=50, messages=user("[[emulator: garbage=3]]")) as s:
            list(s)


def test_garbage_non_stream_answer_is_a_502(openai_client):
    with pytest.raises(openai.InternalServerError, match="not JSON") as raised:
        openai_client.chat.completions.create(model="gpt-4o", messages=user("[[emulator: garbage=1]]"))
    assert raised.value.status_code == 502


def test_gateway_keeps_serving_after_every_fault(openai_client, anthropic_client):
    test_garbage_in_a_stream_raises_in_the_client(openai_client, anthropic_client)
    test_stream_cut_off_mid_way_raises_in_the_openai_client(openai_client)
    assert openai_client.chat.completions.create(model="gpt-4o", messages=user("still there?")).choices


def test_unknown_path_is_a_404_in_the_callers_format(gateway):
    response = httpx.get(gateway.url + "/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.json()
    assert "not served by tokenbrake. tokenbrake serves /v1/chat/completions" in response.json()["error"]["message"]


def test_a_provider_api_the_gateway_does_not_serve_says_what_to_use(openai_client, anthropic_client):
    with pytest.raises(openai.NotFoundError, match=r"Conversations API is not served: chain responses with previous_"):
        openai_client.conversations.create()
    with pytest.raises(openai.NotFoundError, match=r"legacy completions are not served.*serves /v1/chat/completions, /v1/responses"):
        openai_client.completions.create(model="gpt-4o", prompt="hi")
    with pytest.raises(anthropic.NotFoundError, match=r"message batches are not served: send each request to /v1/messages"):
        anthropic_client.messages.batches.list()


def test_wrong_method_on_a_front_door_is_a_405_in_the_callers_format(gateway):
    openai_style = httpx.get(gateway.url + "/v1/chat/completions")
    anthropic_style = httpx.get(gateway.url + "/v1/messages", headers={"anthropic-version": "2023-06-01"})
    assert openai_style.status_code == 405 and "GET /v1/chat/completions" in openai_style.json()["error"]["message"]
    assert anthropic_style.status_code == 405 and anthropic_style.json()["type"] == "error"
