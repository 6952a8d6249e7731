"""The package's shape: no import cycle between its modules, and no module over 600 lines.

Imports are read from the source with :mod:`ast`, wherever they are (top level or inside
a function), except those under ``if TYPE_CHECKING:``, which never run. ``from X import Y``
is an import of ``X.Y`` when that is a module, else of ``X``. Packages do not re-export
names lazily: an import names the module that defines what it takes, so these arrows are
the ones a reader and an IDE see. The layers between packages are import-linter's job
(``pyproject.toml``, ``tests/test_layers.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "geoguess_utils"
MAX_LINES = 600

KNOWN_CYCLES: tuple[frozenset[str], ...] = ()
"""Cycles tolerated for now: none. A new cycle fails, naming its modules."""
"""Cycles present when this test was written, each exactly as found; remove one once it is broken."""


# ----------------------------------------------------------------------------- reading the package


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file under ``package_dir``."""
    root = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a (possibly relative) ``from`` names."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module docstring for the rules)."""
    files = module_files(package_dir)
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in files.items()}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, tree in trees.items():
        is_package = files[name].name == "__init__.py"
        for node in _runtime_imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = _absolute(name, is_package, node.level, node.module)
                targets = []
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in files else source)
            graph[name].update(t for t in targets if t in files)
    return graph


# ----------------------------------------------------------------------------- cycles


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of a directed graph, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    successors = {node: sorted(graph.get(node, ())) for node in nodes}

    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]  # (node, next successor to visit): an explicit stack, no recursion limit
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(successors[node]):
                work.append((node, i + 1))
                child = successors[node][i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(components)


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The groups of modules that import each other (directly or round a loop), and self-imports."""
    return [c for c in strongly_connected(graph) if len(c) > 1 or c[0] in set(graph.get(c[0], ()))]


def long_modules(package_dir: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules with more than ``limit`` lines -> their line count."""
    counts = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in module_files(package_dir).items()
    }
    return {name: n for name, n in counts.items() if n > limit}


# ----------------------------------------------------------------------------- the package itself


def test_no_import_cycle_between_modules():
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the package was read, with its imports
    cycles = import_cycles(graph)
    new = ["  " + " <-> ".join(c) for c in cycles if frozenset(c) not in KNOWN_CYCLES]
    assert not new, "modules that import each other:\n" + "\n".join(new)
    gone = [sorted(c) for c in KNOWN_CYCLES if list(sorted(c)) not in cycles]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_no_module_over_600_lines():
    too_long = long_modules(PACKAGE_DIR)
    assert not too_long, "split these modules (lines): " + ", ".join(f"{m} ({n})" for m, n in sorted(too_long.items()))


# ----------------------------------------------------------------------------- the checks themselves


def test_cycle_finder_on_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}, "g": {"h"}, "h": {"g"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d"], ["e"], ["f"], ["g", "h"]]
    assert import_cycles(graph) == [["a", "b", "c"], ["e"], ["g", "h"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_cycle_finder_on_a_long_chain_has_no_recursion_limit():
    n = 5000
    chain = {f"m{i:04d}": {f"m{i + 1:04d}"} for i in range(n - 1)}
    assert import_cycles(chain) == []
    chain[f"m{n - 1:04d}"] = {"m0000"}
    (cycle,) = import_cycles(chain)
    assert len(cycle) == n


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "toy"


def test_a_toy_package_with_a_cycle_inside_a_function_is_caught(tmp_path):
    package = _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/a.py": "from toy import b\n",
            "toy/b.py": "def later():\n    from .c import thing\n    return thing\n",
            "toy/c.py": "import toy.a\nthing = 1\n",
            "toy/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toy import a\n",
        },
    )
    graph = import_graph(package)
    assert graph["toy.a"] == {"toy.b"} and graph["toy.b"] == {"toy.c"} and graph["toy.c"] == {"toy.a"}
    assert graph["toy.d"] == set()  # annotations only: never imported at run time
    assert import_cycles(graph) == [["toy.a", "toy.b", "toy.c"]]


@pytest.mark.parametrize(
    "package", sorted(p.parent.relative_to(PACKAGE_DIR.parent).as_posix() for p in PACKAGE_DIR.rglob("__init__.py"))
)
def test_importing_a_package_does_nothing(package):
    """A package's ``__init__`` loads neither torch nor Lightning, and defines no lazy ``__getattr__``."""
    import subprocess
    import sys

    name = package.replace("/", ".")
    code = f"import sys, {name}; print(sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", f"importing {name} loads {result.stdout.strip()}"
    init = PACKAGE_DIR.parent / package / "__init__.py"
    assert "__getattr__" not in init.read_text(encoding="utf-8")


def test_relative_imports_from_a_package_init(tmp_path):
    package = _write(
        tmp_path,
        {"toy/__init__.py": "from . import a\n", "toy/a.py": "from . import b\n", "toy/b.py": "from toy import a\n"},
    )
    graph = import_graph(package)
    assert graph == {"toy": {"toy.a"}, "toy.a": {"toy.b"}, "toy.b": {"toy.a"}}
    assert import_cycles(graph) == [["toy.a", "toy.b"]]


def test_a_toy_module_over_the_limit_is_caught(tmp_path):
    package = _write(
        tmp_path,
        {"toy/__init__.py": "", "toy/short.py": "x = 1\n" * MAX_LINES, "toy/long.py": "x = 1\n" * (MAX_LINES + 1)},
    )
    assert long_modules(package) == {"toy.long": MAX_LINES + 1}


@pytest.mark.parametrize(
    ("module", "is_package", "level", "name", "expected"),
    [
        ("p.q.m", False, 1, "n", "p.q.n"),
        ("p.q.m", False, 2, None, "p"),
        ("p.q", True, 1, "n", "p.q.n"),
        ("p.q", True, 2, "r", "p.r"),
        ("p.q.m", False, 0, "x.y", "x.y"),
    ],
)
def test_relative_names_resolve(module, is_package, level, name, expected):
    assert _absolute(module, is_package, level, name) == expected


# ----------------------------------------------------------------------------- private names stay home


def private_imports(package_dir: Path) -> list[str]:
    """``"user -> module._name"`` for each private name one module takes from another of the package."""
    files = module_files(package_dir)
    found = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        modules = {}  # local alias -> package module it names
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in files:
                        modules[alias.asname or alias.name] = target
                    elif node.module in files and alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{name} -> {node.module}.{alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{name} -> {modules[node.value.id]}.{node.attr}")
    return sorted(set(found))


def test_no_private_name_crosses_modules():
    assert private_imports(PACKAGE_DIR) == []


def test_a_private_import_is_caught(tmp_path):
    package = _write(
        tmp_path,
        {
            "toy/__init__.py": "",
            "toy/a.py": "def _helper():\n    pass\n\n\ndef public():\n    pass\n",
            "toy/b.py": "from toy.a import _helper, public\n",
            "toy/c.py": "from toy import a\n\n\ndef f():\n    return a._helper()\n",
        },
    )
    assert private_imports(package) == ["toy.b -> toy.a._helper", "toy.c -> toy.a._helper"]
