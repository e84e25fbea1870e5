"""The in-process store's state on disk: one JSON file, replaced atomically.

A snapshot is written to a temporary file in the same directory, flushed to disk, then
renamed over the old one, so a crash mid-write leaves the previous snapshot whole. The file
is created mode 600: it names teams, keys and users.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

VERSION = 1


def save(path: Path, state: dict[str, Any]) -> None:
    data = json.dumps({"version": VERSION, **state}, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def load(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is no snapshot yet."""
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    if state.get("version") != VERSION:
        raise ValueError(f"{path}: limits snapshot version {state.get('version')!r}, expected {VERSION}")
    return state


def _sync_directory(folder: Path) -> None:
    """Makes the rename itself durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
