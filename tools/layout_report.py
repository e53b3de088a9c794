#!/usr/bin/env python
"""The shape of the package code: import cycles, module sizes, function sizes, late imports.

    python -m tools.layout_report [--check] [--root .] [--packages ptycho ptycho_torch]

Reads the sources as text (nothing is imported) and prints:

- the import cycles between project modules (every ``import`` counts, at module level or
  inside a function, since a late import hides an edge rather than removing it);
- the modules over ``--max-module-lines`` lines, largest first;
- the functions whose body (from the first statement after the docstring) is over
  ``--max-function-lines`` lines;
- the project imports made inside functions, per module (imports of the optional
  third-party packages are not project imports).

``--check`` exits 1 when any figure is over its limit (cycles > 0, a module or function over
its size, a project import inside a function), 0 otherwise.
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    modules: dict[str, int] = field(default_factory=dict)           # module -> lines
    functions: list[tuple[int, str]] = field(default_factory=list)  # (body lines, where)
    edges: dict[str, set[str]] = field(default_factory=dict)        # module -> imported
    late: dict[str, int] = field(default_factory=dict)              # module -> late imports
    cycles: list[list[str]] = field(default_factory=list)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = name.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Project modules an import statement reaches (``from a import b`` may name a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:  # ``from m import x``: the submodule m.x when there is one, else m itself
        mod = _resolve(node, name, is_package)
        names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
    out = set()
    for n in names:
        while n and n not in known:
            n = n.rpartition(".")[0]
        if n:
            out.add(n)
    return out


def _body_lines(fn) -> int:
    body = fn.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str) and len(body) > 1):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def build(root: Path, packages: list[str]) -> Report:
    files = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    known = set(files)
    r = Report()
    for name, path in files.items():
        src = path.read_text()
        tree = ast.parse(src)
        r.modules[name] = len(src.splitlines())
        r.edges[name] = set()
        is_package = path.name == "__init__.py"
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                r.functions.append((_body_lines(node), f"{name}.{node.name}"))
                in_function.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _targets(node, name, is_package, known) - {name}
                r.edges[name] |= targets
                if targets and id(node) in in_function:
                    r.late[name] = r.late.get(name, 0) + 1
    r.cycles = find_cycles(r.edges)
    return r


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    p.add_argument("--packages", nargs="+", default=["ptycho", "ptycho_torch"])
    p.add_argument("--max-module-lines", type=int, default=350)
    p.add_argument("--max-function-lines", type=int, default=60)
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    sys.setrecursionlimit(10000)
    r = build(Path(a.root), a.packages)
    big = sorted(((n, m) for m, n in r.modules.items() if n > a.max_module_lines), reverse=True)
    long = sorted((f for f in r.functions if f[0] > a.max_function_lines), reverse=True)
    print(f"modules: {len(r.modules)}; import cycles: {len(r.cycles)}")
    for c in r.cycles:
        print("  cycle: " + " <-> ".join(c))
    print(f"modules over {a.max_module_lines} lines: {len(big)}")
    for n, m in big:
        print(f"  {n:5d}  {m}")
    print(f"function bodies over {a.max_function_lines} lines: {len(long)}")
    for n, f in long:
        print(f"  {n:5d}  {f}")
    total = sum(r.late.values())
    print(f"project imports inside functions: {total}")
    for m, n in sorted(r.late.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:5d}  {m}")
    over = bool(r.cycles or big or long or total)
    return 1 if (a.check and over) else 0


if __name__ == "__main__":
    sys.exit(main())
