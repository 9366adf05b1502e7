"""The shape of the tree, checked: no import cycle between the project's
modules (counting imports under ``TYPE_CHECKING`` and inside functions, since
both are how a cycle hides), no function longer than 60 lines, no module
longer than 500 lines (400 in the zmq driver), and no two test modules with
the same file name (pytest imports them by basename)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Folders holding top-level packages or modules, and the package roots within.
SOURCE_ROOTS = [
    ROOT,  # rpccore/, benchmarks/, examples/
    *sorted((ROOT / "drivers").glob("*")),
    *sorted((ROOT / "matchmakers").glob("*")),
]
TOP_LEVEL = {"rpccore", "benchmarks", "examples"}
SKIP_PARTS = {".tox", "build", "_build", ".git", "__pycache__", "docs", "tests", "shared"}

MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500
MAX_ZMQ_MODULE_LINES = 400


def _python_files() -> Iterator[tuple[str, Path]]:
    """Yield (dotted module name, path) for every project module."""
    seen: set[Path] = set()
    for root in SOURCE_ROOTS:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if SKIP_PARTS.intersection(rel.parts) or path in seen:
                continue
            if root == ROOT and rel.parts[0] not in TOP_LEVEL:
                continue
            if any(part.startswith(".") for part in rel.parts):
                continue
            if rel.parts[0].endswith(".egg-info") or rel.name == "setup.py":
                continue
            seen.add(path)
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _modules() -> dict[str, Path]:
    return dict(_python_files())


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every project module that ``module`` imports, wherever the import is."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def add(name: str) -> None:
        # The module itself, or the closest enclosing package that exists.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                add(full if full in known else target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def _package_edges_ignored(module: str, target: str) -> bool:
    # A package's __init__ re-exporting its submodules, and a submodule
    # importing a sibling through the package, is not a design cycle; an
    # import of the package __init__ from its own submodule is.
    return target.startswith(module + ".")


def test_no_import_cycles() -> None:
    known = _modules()
    graph = {
        name: {t for t in _imports(name, path, known) if not _package_edges_ignored(name, t)}
        for name, path in known.items()
    }
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_can_fail() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _long_functions(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"


def _all_python() -> list[Path]:
    paths = [p for _, p in _python_files()]
    paths += sorted((ROOT / "tests").rglob("*.py"))
    return [p for p in paths if not SKIP_PARTS.difference({"tests"}).intersection(p.parts)]


def test_no_function_over_60_lines() -> None:
    long = [entry for path in _all_python() for entry in _long_functions(path)]
    assert not long, "functions over 60 lines:\n" + "\n".join(long)


def test_module_sizes() -> None:
    too_long = []
    for path in _all_python():
        lines = len(path.read_text().splitlines())
        rel = path.relative_to(ROOT)
        limit = MAX_ZMQ_MODULE_LINES if rel.parts[:2] == ("drivers", "zmq") else MAX_MODULE_LINES
        if lines > limit:
            too_long.append(f"{rel}: {lines} lines (limit {limit})")
    assert not too_long, "modules over their limit:\n" + "\n".join(too_long)


def test_test_modules_have_unique_basenames() -> None:
    names: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    duplicates = {name: where for name, where in names.items() if len(where) > 1}
    assert not duplicates, f"test modules sharing a basename: {duplicates}"


def test_the_tree_was_found() -> None:
    known = _modules()
    for name in ("rpccore.rpc", "rpccore_zmq.driver", "rpccore_rabbit.driver",
                 "rpccore_qpid.driver", "rpccore_nats.driver", "benchmarks.run"):
        assert name in known, name
