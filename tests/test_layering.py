"""The package layout is the architecture: these tests keep it true.

Layers, bottom to top (docs/architecture.md draws them):

    core                                  errors, checks, ranking, persistence, registry
    encoders | index | recommenders       libraries, each imports only core
    engine                                the facade: catalog, building, serving, personalising
    evaluation                            protocols, comparisons, datasets, plots (scripts and tests use it)
    service                               the HTTP API and web gallery over an engine (never evaluation)
    cli                                   the `shopvec` command: every sub-command, on top of everything

Every import counts, deferred ones inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "core": {"core"},
    "encoders": {"core", "encoders"},
    "index": {"core", "index"},
    "recommenders": {"core", "recommenders"},
    "engine": {"core", "encoders", "index", "recommenders", "engine"},
    "evaluation": {"core", "encoders", "index", "recommenders", "engine", "evaluation"},
    "service": {"core", "encoders", "index", "recommenders", "engine", "service"},
    "cli": {"core", "encoders", "index", "recommenders", "engine", "evaluation", "service", "cli", "benchmarks"},
}
PRODUCT = ("core", "encoders", "index", "recommenders", "engine", "service", "cli")
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for package in ALLOWED for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [alias.name for alias in node.names]
            # `from . import x` imports the module `package.x`
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            out += [(m, [], node.lineno) for m in submodules] or [(base, names, node.lineno)]
    return out


MODULES = package_modules()


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong = []
    for name, path in MODULES.items():
        top = name.split(".")[0]
        for imported, _, line in imports_of(path, name):
            target = imported.split(".")[0]
            if target in ALLOWED and target not in ALLOWED[top]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({top}) imports {imported}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_circle() -> None:
    graph = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported, _, _ in imports_of(path, name):
            # importing a package means its __init__; importing a module means that module
            if imported in MODULES and imported != name:
                graph[name].add(imported)
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of nodes (first repeated last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("folder", [*ALLOWED, "scripts", "benchmarks"])
def test_no_private_name_crosses_a_module(folder: str) -> None:
    crossing = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        imported_names = set()
        for imported, names, line in imports_of(path, name):
            if imported.split(".")[0] not in ALLOWED:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            crossing += [f"{path.relative_to(ROOT)}:{line} imports {imported}.{n}" for n in private]
            imported_names.update(names)
        for node in ast.walk(tree):  # Imported._private
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported_names
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                crossing.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not crossing, "private names used across modules:\n" + "\n".join(crossing)


def test_product_files_stay_small() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, f"files over {MAX_LINES} lines (split them by concept):\n" + "\n".join(long)
