"""The README's Quickstart, pasted as a new user would: its shell blocks run as written, in an
empty folder, with only the ports changed to free ones (so the test can share the machine).

Pins that the Quickstart copy-pastes without an error: the emulator and the gateway start, the
key goes into an environment variable, both SDK calls answer, `usage --by user` shows alice,
and the block that appends a budget and `auto` keeps the config valid (served by a restarted
gateway, listed by `budgets list`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokenbrake.tools.launch import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart_blocks() -> list[str]:
    section = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def with_free_ports(script: str, emulator_port: int, gateway_port: int) -> str:
    return script.replace("8400", str(emulator_port)).replace("4000", str(gateway_port))


def run(script: str, folder: Path, timeout_s: float = 120) -> subprocess.CompletedProcess:
    # Background jobs (`&`) are stopped when the script ends, as closing the terminal would.
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
    return subprocess.run(["bash", "-c", wrapped], cwd=folder, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture
def new_user_folder(tmp_path: Path) -> Path:
    """An empty folder with the project's virtualenv at `.venv`, as after `make demo`."""
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    return tmp_path


def test_the_quickstart_runs_as_written(new_user_folder):
    first, appended = quickstart_blocks()[:2]
    emulator_port, gateway_port = free_port(), free_port()
    result = run(with_free_ports(first, emulator_port, gateway_port), new_user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ChatCompletion(" in result.stdout and "Message(" in result.stdout
    usage = result.stdout.split("Message(", 1)[1]
    assert re.search(r"^alice\s", usage, re.M), usage
    assert "Traceback" not in result.stderr

    then = with_free_ports(appended, emulator_port, gateway_port) + f"""
.venv/bin/tokenbrake emulate --port {emulator_port} &
.venv/bin/tokenbrake serve --port {gateway_port} & sleep 2
.venv/bin/python - <<'EOF'
import os, openai
oa = openai.OpenAI(base_url="http://127.0.0.1:{gateway_port}/v1", api_key=os.environ["TB_KEY"])
print("served by", oa.chat.completions.create(model="auto", messages=[{{"role": "user", "content": "hi"}}]).model)
EOF
.venv/bin/tokenbrake budgets list
"""
    result = run(f"export TB_KEY={new_key(new_user_folder)}\n{then}", new_user_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "served by" in result.stdout
    assert "team:search" in result.stdout and "$50" in result.stdout


def new_key(folder: Path) -> str:
    """A key made as the Quickstart makes one (the first run's lived in its shell only)."""
    made = run(".venv/bin/tokenbrake keys create --name again --team search -q", folder)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()
