"""The house rules the README's Architecture section states, checked on the source (no imports run).

* ``ccm_core`` imports no Streamlit (and nothing from ``ui``, ``pages`` or ``bench``).
* No import circle among the core's modules, counting imports inside functions (a circle hidden behind
  a function-level import is still a circle).
* No module takes another module's private (``_name``) attribute: what is shared has a public name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("ccm_core", "ui", "bench")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _modules(*packages: str) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if "migrations" not in p.parts:
                out[_module_name(p)] = p
    return out


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement brings in (``from . import x`` counts as ``pkg.x``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = _imported(m, p, node)
                # "from pkg import mod" is an edge to pkg.mod when that is a module, else to pkg
                targets = {n for n in names[1:] if n in mods} if isinstance(node, ast.ImportFrom) else set()
                if isinstance(node, ast.ImportFrom) and not targets and names[0] in mods:
                    targets = {names[0]}
                if isinstance(node, ast.Import):
                    targets = {n for n in names if n in mods}
                edges[m] |= targets - {m}
    return edges


def _circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_core_imports_no_streamlit_and_nothing_app_side():
    bad = []
    for m, p in _modules("ccm_core").items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _imported(m, p, node)[:1] if isinstance(node, ast.ImportFrom) else _imported(m, p, node):
                    if name.split(".")[0] in ("streamlit", "ui", "pages", "bench"):
                        bad.append(f"{m}: imports {name}")
    assert bad == []


def test_no_import_circle_in_the_core():
    circles = _circles(_edges(_modules("ccm_core")))
    assert circles == [], "import circles (function-level imports count): " + "; ".join(
        " <-> ".join(sorted(c)) for c in circles
    )


def test_the_circle_checker_sees_a_function_level_circle(tmp_path):
    """The checker itself: two modules importing each other, one inside a function, form a circle."""
    mods = {"pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py"}
    mods["pkg.a"].write_text("from . import b\n")
    mods["pkg.b"].write_text("def f():\n    from . import a\n    return a\n")
    assert _circles(_edges(mods)) == [frozenset(mods)]


def test_no_private_name_is_taken_across_modules():
    """``other._helper`` or ``from other import _helper`` in runtime code: give the helper a public home."""
    files = [p for pkg in FIRST_PARTY for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts]
    files += sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    bad = []
    for p in files:
        tree = ast.parse(p.read_text())
        first_party_names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                internal = node.level > 0 or (node.module or "").split(".")[0] in FIRST_PARTY
                for a in node.names:
                    if internal and a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{p.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}")
                    if internal:
                        first_party_names.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in FIRST_PARTY:
                        first_party_names.add(a.asname or a.name.split(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in first_party_names
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{p.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert bad == []
