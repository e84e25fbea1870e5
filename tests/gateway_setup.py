"""How the end-to-end tests set up a gateway: its config, master key and upstream keys, and
virtual keys made with the CLI as an operator would. A plain module (not conftest) so that
test files import it by name whichever conftest pytest loaded last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tokenbrake.tools.launch import free_port


def gateway_config(emulator_url: str, database_url: str) -> dict:
    """Models covering every route the tests need, all in front of the one emulator."""
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    return {
        "database": database_url,
        "server": {"max_body_bytes": 256 * 1024},
        "retry": {"attempts": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        "upstreams": {
            "emu-openai": {"kind": "openai", "base_url": emulator_url + "/v1", "provider": "openai",
                           "api_key_env": "TEST_UPSTREAM_OPENAI_KEY"},
            "emu-anthropic": {"kind": "anthropic", "base_url": emulator_url, "provider": "anthropic",
                              "api_key_env": "TEST_UPSTREAM_ANTHROPIC_KEY"},
            "emu-local": {"kind": "openai", "base_url": emulator_url + "/v1"},
            "emu-slow": {"kind": "openai", "base_url": emulator_url + "/v1", "timeout_s": 1.0},
            "dead": {"kind": "openai", "base_url": dead + "/v1"},
        },
        "models": {
            "gpt-4o": {"upstream": "emu-openai"},
            "claude-fast": {"upstream": "emu-anthropic", "model": "claude-3-5-haiku-latest", "max_output_tokens": 8192},
            "small": {"upstream": "emu-local", "model": "qwen2.5-3b-instruct",
                      "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
            # The OpenAI Agents SDK's default model, served by a Chat-Completions-only local server
            "gpt-5.6-luna": {"upstream": "emu-local", "model": "qwen2.5-3b-instruct",
                             "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.06}},
            "slow": {"upstream": "emu-slow", "free": True},
            "dead": {"upstream": "dead", "free": True},
            "dead-then-small": {"upstream": "dead", "free": True, "fallbacks": ["small"]},
            "text-embedding-3-small": {"upstream": "emu-openai"},
        },
    }


MASTER_KEY = "tb-master-e2e"
UPSTREAM_KEYS = {"TEST_UPSTREAM_OPENAI_KEY": "sk-upstream-openai", "TEST_UPSTREAM_ANTHROPIC_KEY": "sk-ant-upstream"}


def create_key(config_path: Path, name: str, *options: str) -> str:
    """A new virtual key, made with the CLI as an operator would."""
    result = subprocess.run(
        [sys.executable, "-m", "tokenbrake.cli", "keys", "create", "--name", name, "--json", "--config", str(config_path), *options],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return json.loads(result.stdout)["key"]


def write_config(folder: Path, config: dict) -> Path:
    path = folder / "tokenbrake.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
