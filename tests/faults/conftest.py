"""The fault tests' own emulator: one per test (not the suite's shared one), so its journal of
the calls that reached the upstream is matched against one test's ledger only."""

import pytest

from tokenbrake.tools.launch import ChildServer


@pytest.fixture
def emulator():
    server = ChildServer(["emulate"], quiet=True)
    yield server
    server.stop()
