"""The emulator's token log-probabilities, which a cascade's confidence check reads: returned
when asked, deterministic, and made low by the `confidence=P` directive."""

import math

import httpx

from tokenbrake.tools.emulator import EmulatorSettings, build_app


async def ask(text: str, **extra) -> dict:
    app = build_app(EmulatorSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        body = {"model": "small", "messages": [{"role": "user", "content": text}], **extra}
        response = await client.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-emulator"})
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]


async def test_no_logprobs_unless_asked():
    assert (await ask("hello"))["logprobs"] is None


async def test_one_logprob_per_token_of_the_answer_when_asked():
    choice = await ask("hello [[emulator: tokens=7]]", logprobs=True)
    tokens = choice["logprobs"]["content"]
    assert len(tokens) == 7
    assert "".join(t["token"] for t in tokens) == choice["message"]["content"]
    assert all(math.isclose(t["logprob"], math.log(0.95)) for t in tokens)  # confident by default


async def test_the_confidence_directive_sets_the_mean_probability():
    tokens = (await ask("hello [[emulator: confidence=0.2]]", logprobs=True))["logprobs"]["content"]
    assert math.isclose(sum(t["logprob"] for t in tokens) / len(tokens), math.log(0.2))
