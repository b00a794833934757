"""No import cycles in chalicelib/ or runner/: the graph of module-to-module imports (top-level
and inside functions alike, read with `ast`) is acyclic, and every module imports on its own in
a fresh interpreter."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("chalicelib", "runner")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((Path(ROOT) / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules `name` imports (`from p import m` counts as p.m when that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    # Imports under `if TYPE_CHECKING:` never run: a type named in an annotation is not an
    # import-order dependency (a job kind is handed the run that calls it, and both name each
    # other's type). Every other import counts, at module level or inside a function.
    type_only = {id(n) for node in ast.walk(tree)
                 if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
                 for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    # A package's own __init__ runs before any of its modules: not an edge of the cycle check.
    return {t for t in out if not name.startswith(t + ".")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path of module names, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_import_graph_has_no_cycles() -> None:
    # GIVEN every module of chalicelib/ and runner/ and the modules each one imports
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    # THEN the graph is acyclic
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.slow  # one interpreter per module: ~100 s on two busy cores
def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    # GIVEN a fresh interpreter per module WHEN it imports only that module THEN it loads
    names = sorted(_modules())
    probe = ("import importlib, subprocess, sys\n"
             "bad = []\n"
             "for name in sys.argv[1:]:\n"
             "    r = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True,"
             " text=True)\n"
             "    bad += [f'{name}: {r.stderr.strip().splitlines()[-1]}'] if r.returncode else []\n"
             "print('\\n'.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", probe, *names], cwd=ROOT, env={**os.environ},
                         capture_output=True, text=True, timeout=600, check=True)
    assert out.stdout.strip() == ""
