"""The import direction of DESIGN.md ("Layout"), checked on the source with ``ast`` (nothing is imported).

Every ``import`` counts, wherever it stands: at module level, inside a function, under ``TYPE_CHECKING``.
A deferred import still couples two modules; it only hides the coupling from the import system.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gate", "estimators", "retrieval", "calibration")

# What each top-level package may import of ours besides itself.
PACKAGE_DEPENDENCIES = {
    "calibration": set(),
    "retrieval": set(),
    "estimators": {"retrieval"},
    "gate": {"estimators", "retrieval", "calibration"},
}

# Rooms of gate/: "core" is gate/*.py at the top level; every sub-package is a room of its own.
# A room may always import itself; beyond that, what it may import: a room name, or one module by its
# dotted name where the room may use only that module of another.
GATE_ROOM_IMPORTS = {
    # gate/factory.py builds the LLM and the Redis familiarity cache; otherwise the core knows no room
    "core": {"gate.backends.factory", "gate.state.redis_cache"},
    "backends": {"core"},
    "audit": {"core", "gate.state.connection"},  # the audit stream uses the Redis clients and failure policy
    "datasets": set(),
    "state": {"core"},  # shared state on Redis: caches and quotas behind the core's settings and cache contract
    "offline": {"core", "datasets"},  # collecting signals reads the labelled datasets
    # tenants: keys (hashed) -> settings, risk target and quota; no HTTP (the server applies them)
    "tenants": {"core", "state"},
    # the proxy calls the upstream, appends to the audit log, applies tenants and takes from their quotas
    "server": {"core", "backends", "audit", "state", "tenants"},
    "integrations": {"core", "backends", "server"},  # the LiteLLM guardrail applies the proxy's policy and wire format
    # cli may use any room
    "cli": {"core", "backends", "audit", "datasets", "offline", "server", "integrations", "state", "tenants"},
}

# Top-level modules of gate/ that belong to a room: documented import paths that re-export it.
ROOM_OF_MODULE = {
    "gate.litellm_guardrail": "integrations",  # the guardrail's path in LiteLLM configs (docs/litellm_guardrail.md)
}


@dataclass(frozen=True)
class Module:
    """One module of ours: its dotted name, its file, and whether it is a package's ``__init__``."""

    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    """One import statement's edge: the importing module, the module of ours it loads, and where."""

    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} imports {self.target}"


def discover_modules() -> dict[str, Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, path, is_package)
    return modules


MODULES = discover_modules()


def _ours(name: str) -> str | None:
    """The nearest module of ours that importing ``name`` loads (``a.b.C`` -> ``a.b``), or None."""
    while name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name


def _imported_names(module: Module, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join([*base, node.module] if node.module else base)
    else:
        prefix = node.module or ""
    for alias in node.names:
        submodule = f"{prefix}.{alias.name}"
        yield submodule if submodule in MODULES else prefix  # `from pkg import submodule` loads the submodule


def imports_of(module: Module) -> list[Import]:
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported_names(module, node):
                target = _ours(name)
                if target is not None and target != module.name:
                    found.add(Import(module.name, target, module.path, node.lineno))
    return sorted(found, key=lambda edge: (edge.source, edge.line, edge.target))


IMPORTS = [edge for module in MODULES.values() for edge in imports_of(module)]


def package_of(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


def room_of(name: str) -> str:
    """The room of a module of gate/: "core" for gate/*.py and gate itself, else its sub-package."""
    if name in ROOM_OF_MODULE:
        return ROOM_OF_MODULE[name]
    parts = name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not MODULES[name].is_package):
        return "core"
    return parts[1]


def _report(violations: list[str], rule: str) -> str:
    return f"{len(violations)} import(s) break the rule that {rule}:\n  " + "\n  ".join(violations)


def test_the_parser_sees_the_real_imports() -> None:
    """A guard for the guards: the graph holds imports we know exist, of each kind the parser resolves."""
    edges = {(edge.source, edge.target) for edge in IMPORTS}
    assert len(MODULES) > 80
    assert ("gate.cli.main", "gate.cli.options") in edges  # from a.b import name
    assert ("gate.cli.main", "gate.factory") in edges  # inside a function
    assert ("gate.cli.calibrate", "gate.offline.signal_cache") in edges  # under TYPE_CHECKING
    assert ("retrieval", "retrieval.embedders") in edges  # a package's __init__


@pytest.mark.parametrize("package", ["calibration", "retrieval", "estimators"])
def test_libraries_import_only_what_the_layout_allows(package: str) -> None:
    allowed = {package} | PACKAGE_DEPENDENCIES[package]
    violations = [
        f"{edge} (package {package!r} may import only {sorted(allowed)})"
        for edge in IMPORTS
        if package_of(edge.source) == package and package_of(edge.target) not in allowed
    ]
    assert not violations, _report(violations, f"{package} imports only {sorted(allowed)} of ours")


def test_nothing_outside_gate_imports_gate() -> None:
    violations = [
        str(edge) for edge in IMPORTS if package_of(edge.source) != "gate" and package_of(edge.target) == "gate"
    ]
    assert not violations, _report(violations, "estimators, retrieval and calibration never import gate")


def test_every_room_of_gate_is_in_the_table() -> None:
    rooms = {room_of(name) for name in MODULES if package_of(name) == "gate"}
    assert rooms == set(GATE_ROOM_IMPORTS), (
        f"gate/ has the rooms {sorted(rooms)} but GATE_ROOM_IMPORTS lists {sorted(GATE_ROOM_IMPORTS)}: "
        "say what a new room may import"
    )


def test_nothing_imports_the_cli() -> None:
    assert all("cli" not in allowed for room, allowed in GATE_ROOM_IMPORTS.items() if room != "cli")
    violations = [
        str(edge)
        for edge in IMPORTS
        if package_of(edge.target) == "gate" and room_of(edge.target) == "cli" and room_of(edge.source) != "cli"
    ]
    assert not violations, _report(violations, "nothing imports gate.cli")


def test_rooms_of_gate_import_only_what_the_table_allows() -> None:
    violations = []
    for edge in IMPORTS:
        if package_of(edge.source) != "gate" or package_of(edge.target) != "gate":
            continue
        source, target = room_of(edge.source), room_of(edge.target)
        allowed = GATE_ROOM_IMPORTS[source] | {source}
        if target not in allowed and edge.target not in allowed:
            violations.append(f"{edge} (room {source!r} -> {target!r}; {source!r} may import {sorted(allowed)})")
    assert not violations, _report(violations, "rooms of gate/ import only what GATE_ROOM_IMPORTS allows")


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in no particular order, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def test_strongly_connected_components_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert sorted(strongly_connected_components(graph)) == [["a", "b", "c"], ["d"], ["e"]]


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for edge in IMPORTS:
        graph[edge.source].add(edge.target)
    cycles = [component for component in strongly_connected_components(graph) if len(component) > 1]
    violations = []
    for component in cycles:
        members = set(component)
        inside = [str(edge) for edge in IMPORTS if edge.source in members and edge.target in members]
        violations.append(f"cycle among {', '.join(component)}:\n    " + "\n    ".join(inside))
    assert not violations, _report(violations, "no modules import each other in a circle, even deferred")
