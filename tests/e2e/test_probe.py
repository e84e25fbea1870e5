"""`tokenbrake probe` against the gateway in front of the emulator: what a user runs once a
config points at real providers."""

import subprocess
import sys


def probe(gateway, key: str, *models: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokenbrake.cli", "probe", "--url", gateway.url, "--key", key, *models],
                          capture_output=True, text=True, timeout=300)


def test_every_check_passes_for_models_on_each_kind_of_upstream(gateway, api_key):
    done = probe(gateway, api_key, "gpt-4o", "claude-fast", "small")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 * 14 + 5 and all(line.endswith(" ok") for line in lines), done.stdout
    assert {line.split()[0] for line in lines} == {"gpt-4o", "claude-fast", "small", "-"}
    assert sum(" responses " in line for line in lines) == 3 * 6 + 1  # the Responses door's checks
    assert "47 passed, 0 failed" in done.stderr


def test_each_check_of_a_model_whose_upstream_is_down_fails_saying_why(gateway, api_key):
    done = probe(gateway, api_key, "dead")
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if line.startswith("dead ")]
    assert len(lines) == 14, done.stdout
    assert all("FAIL" in line and "could not connect to upstream dead" in line for line in lines), done.stdout
    assert "5 passed, 14 failed" in done.stderr  # the error checks still pass
