"""Code versions computed from the source, not listed by hand.

A stage's code version is the hash of its *import closure*: every sparsevis module its entry
module reaches through ``import`` statements (at module level or inside functions), each hashed
over its normalised source, i.e. its abstract syntax tree without docstrings. Comments,
docstrings and formatting therefore do not count; a change to any statement of any module the
stage can run does, and a module the stage never imports cannot change its version.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from sparsevis.fileio import stable_hash

PACKAGE = "sparsevis"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The source file of ``sparsevis.x.y`` (``x/y.py`` or ``x/y/__init__.py``), None if it is
    not a module of the package (e.g. a name imported from a module)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def _parsed(path: Path, module: str, mtime_ns: int) -> tuple[str, tuple[str, ...]]:
    """(normalised-source hash, imported sparsevis module names) of one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            imports.append(source)
            imports += [f"{source}.{a.name}" for a in node.names]
    digest = hashlib.sha256(ast.dump(_strip_docstrings(tree), include_attributes=False).encode()).hexdigest()
    return digest, tuple(i for i in imports if i.split(".")[0] == PACKAGE)


def _parents(module: str) -> list[str]:
    """Importing ``sparsevis.a.b`` runs ``sparsevis/__init__`` and ``sparsevis/a/__init__`` too."""
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def closure(*entries: str, skip: tuple[str, ...] = (), package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """{module: normalised-source hash} of every package module that ``entries`` reach, not
    going through the modules named in ``skip`` (unless they are entries): e.g. a registry
    that imports every track, when the stage uses one."""
    seen: dict[str, str] = {}
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or (module in skip and module not in entries):
            continue
        path = module_path(module, package_dir)
        if path is None:
            if module in entries:
                raise ValueError(f"{module!r} is not a module of {package_dir}")
            continue
        digest, imports = _parsed(path, module, path.stat().st_mtime_ns)
        seen[module] = digest
        todo += [m for m in (*imports, *_parents(module)) if m not in seen]
    return dict(sorted(seen.items()))


def code_version(*entries: str, skip: tuple[str, ...] = (), package_dir: Path = PACKAGE_DIR) -> str:
    """The code version of the stage whose entry modules are ``entries`` (12 hex digits)."""
    return stable_hash(closure(*entries, skip=skip, package_dir=package_dir))
