"""The package's rooms keep their layers: each imports only rooms below its own.

The rooms, lowest first, are listed in `LAYERS`; rooms on one line are peers and do not import
each other. Three rules, checked on every import of the package (module level, in functions
and under TYPE_CHECKING alike, read with `ast`):

- a module imports no room above its own, nor a peer room;
- only the pipeline's assembly (`gateway/pipeline.py`) imports `stages/`;
- runtime code imports neither `tools/` (the emulator, the demo, the probe) nor `evaluation/`.

`test_an_upward_import_is_caught` breaks the layers of a small package on purpose, so this
test is shown to fail when they are crossed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tokenbrake

# Lowest first. "" is the package root: the core types, the config, the scope grammar and a few
# primitives, which every room may use.
LAYERS: list[tuple[str, ...]] = [
    ("",),
    ("wire",),
    ("storage",),
    ("limits",),
    ("journal", "changes", "loops", "router"),
    ("settlement",),
    ("upstream",),
    ("routing",),
    ("admission",),
    ("foresight",),
    ("stages",),
    ("gateway",),
    ("dashboard",),
    ("server",),
    ("tools", "evaluation"),
    ("cli",),
]
ASSEMBLY = "gateway.pipeline"
OFFLINE = ("tools", "evaluation")  # never imported by what serves requests


def room_of(module: str) -> str:
    """`wire.translate.streams` -> `wire`; `core` -> `` (the root); `cli` -> `cli`."""
    head = module.split(".")[0]
    return head if head == "cli" or "." in module or _is_room(head) else ""


def _is_room(name: str) -> bool:
    return any(name in rooms for rooms in LAYERS[1:])


def rank(room: str) -> int:
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def module_name(package_dir: Path, path: Path) -> str:
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(package_dir: Path, module: str, path: Path) -> set[str]:
    """The package modules `path` imports, without the package's name (`wire.sse`): for
    `from a import b`, `a.b` where b is a module, else `a`."""
    package = package_dir.name
    found: set[str] = set()
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([package, *here[:len(here) - node.level + 1], *([base] if base else [])])
            names = [_module_or_package(package_dir, base, alias.name) for alias in node.names]
        else:
            continue
        found.update(n[len(package) + 1:] for n in names if n.startswith(package + "."))
    return found


def _module_or_package(package_dir: Path, base: str, name: str) -> str:
    folder = package_dir.parent.joinpath(*base.split("."), name)
    return f"{base}.{name}" if folder.is_dir() or folder.with_suffix(".py").exists() else base


def crossings(package_dir: Path) -> list[str]:
    """Every import in the package that breaks one of the three rules, as a sentence."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        module = module_name(package_dir, path)
        room = room_of(module)
        for target in sorted(imports_of(package_dir, module, path)):
            problems.extend(_broken(module, room, target))
    return problems


def _broken(module: str, room: str, target: str) -> list[str]:
    to = room_of(target)
    if to == room:
        return []
    found = []
    if to == "stages" and module != ASSEMBLY:
        found.append(f"{module} imports {target}: only {ASSEMBLY} may import a stage")
    if to in OFFLINE and room not in OFFLINE and room != "cli":
        found.append(f"{module} imports {target}: runtime code does not import {to}/")
    if rank(to) > rank(room):
        found.append(f"{module} ({room or 'root'}) imports {target} ({to}), a room above its own")
    elif rank(to) == rank(room):
        found.append(f"{module} ({room}) imports {target} ({to}), a peer room")
    return found


def test_no_room_imports_a_room_above_its_own():
    assert crossings(Path(tokenbrake.__file__).parent) == []


def test_every_package_folder_is_a_room_in_the_layers():
    package_dir = Path(tokenbrake.__file__).parent
    folders = {p.parent.relative_to(package_dir).parts[0] for p in package_dir.glob("*/__init__.py")}
    assert folders == {room for rooms in LAYERS[1:] for room in rooms if room != "cli"}


def test_each_room_says_what_it_is_for_and_what_it_may_import():
    package_dir = Path(tokenbrake.__file__).parent
    for init in package_dir.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc and len(doc) > 80, f"{init}: say what the room is for and which rooms it may import"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_is_caught(tmp_path):
    package = _package(tmp_path, {
        "wire/__init__.py": "", "server/__init__.py": "",
        "wire/errors.py": "from pkg.server import app\n",  # wire is below server
        "server/app.py": "from pkg.wire import errors\n",  # allowed: downward
    })
    assert crossings(package) == ["wire.errors (wire) imports server.app (server), a room above its own"]


def test_a_stage_imported_outside_the_assembly_is_caught(tmp_path):
    package = _package(tmp_path, {
        "stages/__init__.py": "", "stages/caps.py": "", "server/__init__.py": "", "gateway/__init__.py": "",
        "server/admin.py": "from pkg.stages.caps import RequestCaps\n",
        "gateway/pipeline.py": "from pkg.stages import caps\n",
    })
    assert crossings(package) == ["server.admin imports stages.caps: only gateway.pipeline may import a stage"]


def test_runtime_code_importing_the_emulator_is_caught(tmp_path):
    package = _package(tmp_path, {
        "tools/__init__.py": "", "tools/emulator.py": "", "upstream/__init__.py": "",
        "upstream/call.py": "def f():\n    from ..tools import emulator\n",  # relative, inside a function
        "cli.py": "from pkg.tools import emulator\n",  # the CLI may
    })
    assert crossings(package) == [
        "upstream.call imports tools.emulator: runtime code does not import tools/",
        "upstream.call (upstream) imports tools.emulator (tools), a room above its own",
    ]


def test_a_peer_room_import_is_caught(tmp_path):
    package = _package(tmp_path, {
        "loops/__init__.py": "", "journal/__init__.py": "",
        "loops/detector.py": "import pkg.journal.records\n",
    })
    assert crossings(package) == ["loops.detector (loops) imports journal.records (journal), a peer room"]
