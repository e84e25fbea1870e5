"""A Responses request is budgeted like any other call: refused with the SDK's rate-limit error
naming the budget when its worst case does not fit, and served with a lower output cap when
only that fits, whether its upstream speaks Responses or only Chat Completions."""

import json
import uuid

import httpx
import openai
import pytest
from gateway_setup import MASTER_KEY, create_key, gateway_config, write_config

from tokenbrake.tools.launch import ChildServer

METERED = {"input_per_mtok": 1000, "output_per_mtok": 4000}  # a call of ~15 in, 40 out: about $0.18


def budgeted_gateway(emulator, tmp_path, amount: str) -> tuple[ChildServer, str]:
    config = gateway_config(emulator.url, f"sqlite:///{tmp_path / 'ledger.db'}")
    config["models"]["metered"] = {"upstream": "emu-openai", "model": "metered-oa", "price": METERED}
    config["models"]["metered-local"] = {"upstream": "emu-local", "model": "metered-local", "price": METERED}
    config["budgeting"] = {"min_output_tokens": 4}
    config["budgets"] = [{"scope": "team:proof", "amount_usd": amount, "period": "month"}]
    path = write_config(tmp_path, config)
    key = create_key(path, "budgeted", "--team", "proof")
    return ChildServer(["serve", "--config", str(path)], quiet=True, env={"TOKENBRAKE_MASTER_KEY": MASTER_KEY}), key


@pytest.mark.parametrize("model", ["metered", "metered-local"])
def test_a_responses_request_over_the_budget_is_the_sdk_s_rate_limit_error(emulator, tmp_path, model):
    gateway, key = budgeted_gateway(emulator, tmp_path, "0.01")
    with gateway, openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as oa:
        with pytest.raises(openai.RateLimitError) as refused:
            oa.responses.create(model=model, max_output_tokens=40, input="hello")
        with pytest.raises(openai.RateLimitError):
            with oa.responses.stream(model=model, max_output_tokens=40, input="hello") as stream:
                list(stream)
    assert "Budget team:proof (month)" in refused.value.message and "spent $0.00 of $0.01" in refused.value.message


@pytest.mark.parametrize(("model", "cap_field"), [("metered", "max_output_tokens"), ("metered-local", "max_tokens")])
def test_a_responses_request_whose_worst_case_does_not_fit_gets_a_lower_output_cap(emulator, tmp_path, model, cap_field):
    gateway, key = budgeted_gateway(emulator, tmp_path, "0.10")
    marker = uuid.uuid4().hex[:8]
    with gateway, openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as oa:
        response = oa.responses.create(model=model, max_output_tokens=1000,
                                       input=f"[[emulator: id={marker} tokens=500]]")
    [seen] = [r for r in httpx.get(emulator.url + "/_emulator/requests").json() if marker in json.dumps(r["body"])]
    sent_cap = seen["body"][cap_field]
    assert 4 <= sent_cap < 30 and response.usage.output_tokens == sent_cap
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
