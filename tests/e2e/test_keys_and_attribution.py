"""Virtual keys, the admin API and attribution, through the official SDKs."""

import json
import subprocess
import sys

import anthropic
import httpx
import openai
import pytest


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def admin(gateway, master_key):
    def call(method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, gateway.url + path, headers={"authorization": f"Bearer {master_key}"}, **kwargs)
    return call


def test_request_without_a_key_is_an_authentication_error(gateway):
    # Both SDKs refuse to send a request without a key, so this is what other clients send.
    response = httpx.post(gateway.url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": user("x")})
    assert response.status_code == 401 and "No API key" in response.json()["error"]["message"]


def test_unknown_key_is_an_authentication_error_in_both_formats(gateway):
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        openai.OpenAI(base_url=gateway.url + "/v1", api_key="tb-notarealkey", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=user("x"))
    with pytest.raises(anthropic.AuthenticationError, match="Invalid API key"):
        anthropic.Anthropic(base_url=gateway.url, api_key="tb-notarealkey", max_retries=0).messages.create(
            model="claude-fast", max_tokens=5, messages=user("x"))


def test_key_limited_to_some_models_is_refused_others_naming_them(gateway, make_key, admin):
    key = make_key("only-small", "--models", "small")
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    assert client.chat.completions.create(model="small", messages=user("x")).choices
    with pytest.raises(openai.PermissionDeniedError, match="'only-small' may not use model 'gpt-4o'"):
        client.chat.completions.create(model="gpt-4o", messages=user("x"))
    assert [m.id for m in client.models.list()] == ["small"]


def test_revoked_key_is_refused(gateway, make_key, admin):
    key = make_key("to-revoke")
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    assert client.messages.create(model="claude-fast", max_tokens=5, messages=user("x")).content
    assert admin("POST", "/admin/keys/to-revoke/revoke").status_code == 200
    with pytest.raises(anthropic.AuthenticationError, match="'to-revoke' has been revoked"):
        client.messages.create(model="claude-fast", max_tokens=5, messages=user("x"))


def test_admin_api_needs_the_master_key(gateway):
    assert httpx.get(gateway.url + "/admin/keys").status_code == 401
    assert httpx.get(gateway.url + "/admin/keys", headers={"authorization": "Bearer nope"}).status_code == 401


def test_key_created_through_the_admin_api_works_at_once_and_is_listed_without_its_secret(gateway, admin):
    created = admin("POST", "/admin/keys", json={"name": "via-admin", "team": "growth"})
    assert created.status_code == 201
    key = created.json()["key"]
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    assert client.chat.completions.create(model="small", messages=user("x")).choices
    listing = admin("GET", "/admin/keys").json()["data"]
    entry = next(k for k in listing if k["name"] == "via-admin")
    assert entry["team"] == "growth" and key not in str(listing)


def test_duplicate_key_name_is_refused(admin):
    admin("POST", "/admin/keys", json={"name": "twice"})
    assert admin("POST", "/admin/keys", json={"name": "twice"}).status_code == 409


def test_user_session_and_tags_are_attributed(gateway, make_key, admin):
    key = make_key("attribution", "--team", "search")
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0,
                       default_headers={"X-Tokenbrake-Session": "sess-42", "X-Tokenbrake-Tags": "feature=search,env=prod"})
    oa.chat.completions.create(model="small", messages=user("x"), user="alice")
    an = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                             default_headers={"X-Tokenbrake-Tags": "feature=search"})
    an.messages.create(model="small", max_tokens=5, messages=user("x"), metadata={"user_id": "bob"})
    oa.chat.completions.create(model="small", messages=user("x"), extra_headers={"X-Tokenbrake-User": "carol"})

    def groups(by: str) -> dict:
        return {row[by]: row["requests"] for row in admin("GET", f"/admin/usage?by={by}").json()["data"]}

    assert groups("key")["attribution"] == 3
    assert groups("team")["search"] >= 3
    assert {"alice", "bob", "carol"} <= set(groups("user"))
    assert groups("session")["sess-42"] == 2
    assert groups("tag")["feature=search"] >= 3 and groups("tag")["env=prod"] >= 2


def test_malformed_tags_header_is_a_clear_error(openai_client):
    with pytest.raises(openai.BadRequestError, match="X-Tokenbrake-Tags"):
        openai_client.chat.completions.create(model="small", messages=user("x"), extra_headers={"X-Tokenbrake-Tags": "oops"})


def test_a_key_that_requires_an_end_user_refuses_requests_naming_none_and_serves_the_rest(gateway, make_key, admin):
    key = make_key("needs-user", "--team", "strict", "--require-user")
    make_key("no-user-needed", "--team", "strict")
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    an = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError, match=r"'needs-user' requires an end user.*request's `user` field "
                                                     r"or in the X-Tokenbrake-User header"):
        oa.chat.completions.create(model="small", messages=user("x"))
    with pytest.raises(anthropic.BadRequestError, match=r"requires an end user.*`metadata.user_id` field"):
        an.messages.create(model="small", max_tokens=5, messages=user("x"))
    assert oa.chat.completions.create(model="small", messages=user("x"), user="alice").choices
    assert an.messages.create(model="small", max_tokens=5, messages=user("x"), metadata={"user_id": "bob"}).content
    assert oa.chat.completions.create(model="small", messages=user("x"),
                                      extra_headers={"X-Tokenbrake-User": "carol"}).choices
    assert admin("GET", "/admin/keys/needs-user").json()["require_user"] is True
    listed = {k["name"]: k["require_user"] for k in admin("GET", "/admin/keys").json()["data"]}
    assert listed["needs-user"] is True and listed["no-user-needed"] is False


def test_keys_list_and_show_say_whether_a_key_requires_an_end_user(make_key, gateway_config_path):
    make_key("shown-strict", "--require-user")

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "tokenbrake.cli", "keys", *args, "--config", str(gateway_config_path)],
                              capture_output=True, text=True, check=True, timeout=60).stdout

    [line] = [line for line in cli("list").splitlines() if line.startswith("shown-strict ")]
    assert " required " in line
    assert json.loads(cli("show", "shown-strict", "--json"))["require_user"] is True
    assert "require_user True" in cli("show", "shown-strict")


def test_the_admin_api_creates_a_key_that_requires_an_end_user(gateway, admin):
    created = admin("POST", "/admin/keys", json={"name": "via-admin-strict", "require_user": True})
    assert created.status_code == 201 and created.json()["require_user"] is True
    with pytest.raises(openai.BadRequestError, match="requires an end user"):
        openai.OpenAI(base_url=gateway.url + "/v1", api_key=created.json()["key"], max_retries=0
                      ).chat.completions.create(model="small", messages=user("x"))
    bad = admin("POST", "/admin/keys", json={"name": "via-admin-bad", "require_user": "yes"})
    assert bad.status_code == 400 and "'require_user'" in bad.json()["error"]["message"]
