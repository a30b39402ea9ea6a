"""The package imports one way: no cycle between its modules, counting imports inside
functions too, and no sparsevis import hidden inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

import sparsevis

PACKAGE = Path(sparsevis.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = ["sparsevis", *f.relative_to(PACKAGE).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _graph():
    """{module: {imported package module}} and the imports found inside functions."""
    mods = _modules()

    def owner(name: str) -> str:
        while name not in mods and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in mods else ""

    edges, inner = {m: set() for m in mods}, []
    for m, f in mods.items():
        tree = ast.parse(f.read_text())
        package = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        in_function = {id(x) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for x in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
                source = ".".join(x for x in (base, node.module or "") if x)
                names = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source for a in node.names]
            else:
                continue
            for target in (owner(n) for n in names if n.split(".")[0] == "sparsevis"):
                if target and target != m and not m.startswith(target + "."):   # a package's own parents
                    edges[m].add(target)
                    if id(node) in in_function:
                        inner.append(f"{f.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}")
    return edges, inner


def _cycle(edges: dict) -> list[str] | None:
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_cycle():
    edges, _ = _graph()
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_no_sparsevis_import_inside_a_function():
    _, inner = _graph()
    assert inner == []


def test_the_check_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
