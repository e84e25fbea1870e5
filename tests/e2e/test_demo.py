"""`tokenbrake demo`, as a new user runs it: no keys, no network, done within a minute, and
every scene does what it says."""

from __future__ import annotations

import re
import subprocess
import sys
import time


def test_demo_runs_offline_within_a_minute_and_every_scene_plays():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tokenbrake.cli", "demo"], capture_output=True, text=True,
                          timeout=90, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    elapsed = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < 60
    # the gateway scene: both front doors, a refused model, a failing upstream
    assert "PermissionDeniedError: Error code: 403" in out
    assert "InternalServerError: Error code: 502" in out
    # admission: the input cap names the count and the cap
    assert re.search(r"This request has \d+ input tokens, more than the 4000 allowed", out)
    # the budget downgrades to local, clamps, then refuses naming the budget
    assert "served by gpt-4o" in out and "(downgraded by budget team:research)" in out
    assert "(max_tokens clamped to what is left)" in out
    assert re.search(r"RateLimitError: Error code: 429 - Budget team:research \(day\)", out)
    # the ledger: the research team's spend stayed within its $0.04
    # sessions: the looping agent is stopped, with what six hours of it would have cost
    assert "stopped by loop detection (repeated_tool_call" in out
    assert re.search(r"six hours of it would have cost \$[\d,.]+", out)
    # routing: easy prompts served locally, hard ones by frontier, and the saving printed
    assert re.search(r"score 0\.\d+ → local", out) and re.search(r"score 0\.\d+ → frontier", out)
    assert re.search(r"Served locally: \d+ of \d+ calls", out)
    research = re.search(r"^\s+research\s+\d+\s+\d+\s+\d+\s+\d+\s+\$(\d+\.\d+)", out, re.M)
    assert research and 0.03 < float(research.group(1)) <= 0.04
