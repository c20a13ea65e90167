"""The package's shape: layers that import only from below, no cycle, no module named like a
public function, no heavy import until asked for, no DataFrame in attrs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pandas as pd
from helpers import ROOT, SEEDS

import cpts_geo

PACKAGE = ROOT / "cpts_geo"

# Each module's layer; a module may import only from its own layer or lower ones (and, within a
# layer, only from its own subpackage or from a module of a lower rank).
RANKS = {
    "errors": 0, "typing": 0, "_data": 0.1, "_text": 0, "_atomic": 0, "_snapshot": 0,
    "geography": 0.2,
    "_about": 0.2,
    "codes": 1, "membership": 1.1,
    "sources": 2,
    "io": 3,
    "analysis": 4,
    "maps": 5,
    "publishing": 6,
    "cli": 7, "__init__": 8,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        out[".".join(rel.parts)] = path
    return out


def _unit(module: str) -> str:
    """The layer unit of a module: its subpackage, or the top-level module itself."""
    return module.split(".")[0]


def _imports(module: str, path: Path) -> set[str]:
    """Modules of cpts_geo imported by ``module`` (absolute or relative imports)."""
    tree = ast.parse(path.read_text("utf-8"))
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and node.module.startswith("cpts_geo"):
                target = node.module.removeprefix("cpts_geo").lstrip(".")
            else:
                continue
            found.add(target or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cpts_geo."):
                    found.add(alias.name.removeprefix("cpts_geo."))
    return found


def test_layers_import_only_from_below():
    wrong = []
    for module, path in _modules().items():
        rank = RANKS[_unit(module)]
        for target in _imports(module, path):
            t_rank = RANKS[_unit(target)]
            if t_rank > rank:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_import_cycle():
    mods = _modules()
    graph = {m: {t for t in _imports(m, p) if t in mods or f"{t}.__init__" in mods}
             for m, p in mods.items()}
    graph = {m: {t if t in mods else f"{t}.__init__" for t in ts} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.endswith("__init__") and node.startswith(nxt.removesuffix("__init__")):
                continue  # a package's __init__ re-exporting its own modules
            if state.get(nxt) == 1:
                cycles.append([*stack, node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    assert cycles == []


def test_no_module_is_named_like_a_public_function():
    modules = {name.split(".")[-1] for name in _modules()}
    public = {n for n in cpts_geo.__all__ if n[0].islower()}
    assert modules & public == set()


def test_importing_the_package_or_the_cli_loads_no_heavy_library():
    code = ("import sys, cpts_geo, cpts_geo.cli; "
            "print(sorted(m for m in ('folium', 'matplotlib', 'jinja2', 'branca', 'scipy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    # and the map functions are there when asked for
    assert callable(cpts_geo.coverage_map) and callable(cpts_geo.publish)


def test_no_dataframe_in_attrs(isere):
    t = cpts_geo.read_territories(SEEDS)
    frames = [
        t, cpts_geo.coverage(isere, t), cpts_geo.cpts_table(isere, t),
        cpts_geo.find_gaps(isere, t), cpts_geo.find_overlaps(isere, t), isere,
    ]
    for frame in frames:
        assert not any(isinstance(v, pd.DataFrame | pd.Series) for v in frame.attrs.values())


def test_public_functions_are_documented_with_examples():
    missing = []
    for name in cpts_geo.__all__:
        obj = getattr(cpts_geo, name)
        if callable(obj) and not isinstance(obj, type) and name[0].islower():
            doc = obj.__doc__ or ""
            if "Parameters" not in doc and "Examples" not in doc:
                missing.append(name)
    assert missing == []
