"""The import graph of ``src/palaestra``: layers only point down, no cycles, no reaching in.

Palaestra's packages are layered; a package may import only packages below it:

    errors < _config < sandbox < env < model < trajectory < agent < rollout < eval
           < data < train < evolve < web < cli < __main__

(``palaestra/__init__.py``, the curated facade, may import any layer; nothing
inside may import it.) Three rules, checked by parsing every module with
:mod:`ast`, so nothing is imported and the check takes well under a second:

1. **Layers.** No module imports a package above its own.
2. **Public names only across packages.** A module of package A imports from
   package B (B != A) only names B publishes: no ``palaestra.B._private``
   module, no ``_private`` attribute. ``palaestra._config`` and
   ``palaestra.errors`` are modules of the root package, shared by all.
3. **No module cycles.** Module ``m`` importing ``p`` (a package) depends on
   ``p/__init__.py``, so a submodule that imports its own package's
   ``__init__`` (which imports it back to publish its names) is a cycle too.
   (The implicit import of a module's parent packages is not an edge: every
   module would be in a cycle with its package.)

Every import statement counts, wherever it is: at module level, inside a
function (a lazy import is still a dependency, only a later one) and under
``if TYPE_CHECKING:`` (a type a module names is part of its contract; moving
it below, not hiding the import, is the fix).

String entry points (``register("x-v1", "pkg.mod:Cls")``, a provider table's
``"palaestra.data._tiny:tiny_model"``, ``importlib.import_module(name)``) are
registrations, not imports, and are not followed. That is allowed on purpose:
a registry is late-bound, like Gymnasium's ``entry_point`` strings and Python
entry points. The id (``make("shop-v1")``, ``get_model("tiny")``) is the
contract; the module behind it is imported only when that id is used, so
the registry never depends on its code at import time, and a backend may live
wherever its own dependencies do. The ``tiny`` model provider is the example:
the model layer names it, and the text its tokenizer and pretraining need is
built in ``palaestra.data``, above it. A string cannot reach a name the
registry's own code calls; a registration is one line of a table.

There is no allow-list: every violation fails the test; fix it or move the code.
"""

from __future__ import annotations

import ast
import itertools
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "palaestra"

#: Bottom to top. A new top-level package or module must be placed here.
LAYERS: tuple[str, ...] = (
    "errors",
    "_config",
    "sandbox",
    "env",
    "model",
    "trajectory",
    "agent",
    "rollout",
    "eval",
    "data",
    "train",
    "evolve",
    "web",
    "cli",
    "__main__",
)


@dataclass(frozen=True)
class Edge:
    """One import statement: ``importer`` (module) at ``line`` depends on ``target``."""

    importer: str
    path: str
    line: int
    target: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Violation:
    rule: str  # "layer", "private" or "cycle"
    importer: str
    target: str
    where: str  # path:line
    why: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.importer, self.target)

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} -> {self.target} ({self.rule}: {self.why})"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package folder ``root``."""
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def import_edges(root: Path) -> list[Edge]:
    """Every import of a module of the package at ``root`` by a module of it."""
    mods = module_names(root)
    pkg = root.name
    edges: list[Edge] = []
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        rel = str(path.relative_to(root.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == pkg or alias.name.startswith(pkg + "."):
                        edges.append(Edge(mod, rel, node.lineno, alias.name, ()))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if target != pkg and not target.startswith(pkg + "."):
                    continue
                plain: list[str] = []
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in mods:  # ``from pkg import submodule``
                        edges.append(Edge(mod, rel, node.lineno, sub, ()))
                    else:
                        plain.append(alias.name)
                if plain:
                    edges.append(Edge(mod, rel, node.lineno, target, tuple(plain)))
    return edges


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _private_part(module: str, names: Iterable[str]) -> str | None:
    for part in module.split(".")[2:]:
        if part.startswith("_") and part not in ("__init__", "__main__"):
            return part
    return next((n for n in names if n.startswith("_") and n != "*"), None)


def check_layers(edges: Iterable[Edge], layers: Sequence[str]) -> list[Violation]:
    """Rules 1 and 2: imports that point up, or reach into another package's private names."""
    out: list[Violation] = []
    for e in edges:
        a, b = _top(e.importer), _top(e.target)
        if a == b or a == "":  # inside one package, or the root facade
            continue
        where = f"{e.path}:{e.line}"
        for name in (a, b):
            if name and name not in layers:
                out.append(Violation("layer", e.importer, e.target, where, f"{name} has no layer"))
        if b == "":
            out.append(Violation("layer", e.importer, e.target, where, "the root facade is on top"))
        elif a in layers and b in layers and layers.index(b) > layers.index(a):
            out.append(Violation("layer", e.importer, e.target, where, f"{a} is below {b}"))
        private = _private_part(e.target, e.names)
        if b and private is not None:
            out.append(
                Violation("private", e.importer, e.target, where, f"{private} is private to {b}")
            )
    return out


def check_cycles(edges: Iterable[Edge], modules: Iterable[str]) -> list[Violation]:
    """Rule 3: one violation per strongly connected component, showing one cycle through it."""
    known = set(modules)
    graph: dict[str, dict[str, Edge]] = {m: {} for m in known}
    for e in edges:
        if e.target in known and e.target != e.importer:
            graph[e.importer].setdefault(e.target, e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    out: list[Violation] = []
    for comp in components:
        members = set(comp)
        path = [comp[0]]  # walk inside the component until a module repeats
        while True:
            nxt = min(w for w in graph[path[-1]] if w in members)
            if nxt in path:
                path = [*path[path.index(nxt) :], nxt]
                break
            path.append(nxt)
        hops = [graph[a][b] for a, b in itertools.pairwise(path)]
        why = " -> ".join(f"{h.target} ({h.path}:{h.line})" for h in hops)
        where = f"{hops[0].path}:{hops[0].line}"
        out.append(Violation("cycle", path[0], path[1], where, f"{path[0]} -> {why}"))
    return out


def violations(root: Path, layers: Sequence[str]) -> list[Violation]:
    edges = import_edges(root)
    return check_layers(edges, layers) + check_cycles(edges, module_names(root))


def _report(found: Sequence[Violation]) -> str:
    return "\n".join(["", *sorted({str(v) for v in found})])


def test_imports_point_down_and_stay_public_and_acyclic() -> None:
    found = violations(SRC, LAYERS)
    assert not found, f"{len(found)} import(s) break the architecture:" + _report(found)


def test_a_violation_planted_in_a_copy_of_the_tree_is_caught(tmp_path: Path) -> None:
    # The test above on the real layers and package: the two kinds of import this file's
    # old allow-list held, planted again (lazily, as they were), are found and named.
    root = tmp_path / SRC.name
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    planted = {
        "env/families/_refusal_detect.py": "def judge():\n    from palaestra.model import Model\n",
        "cli/view.py": "def serve():\n    from palaestra.web._serve import serve\n",
    }
    for rel, text in planted.items():
        with (root / rel).open("a", encoding="utf-8") as f:
            f.write("\n\n" + text)
    before = {v.key for v in violations(SRC, LAYERS)}
    after = [v for v in violations(root, LAYERS) if v.key not in before]
    assert {v.key for v in after} == {
        ("layer", "palaestra.env.families._refusal_detect", "palaestra.model"),
        ("private", "palaestra.cli.view", "palaestra.web._serve"),
    }, _report(after)
    assert any("(layer: env is below model)" in str(v) for v in after)


def test_every_package_has_a_layer() -> None:
    tops = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    tops |= {p.stem for p in SRC.glob("*.py") if p.name != "__init__.py"}
    unplaced = sorted(tops - set(LAYERS))
    assert not unplaced, f"place these top-level packages and modules in LAYERS: {unplaced}"


# ---- the checker catches what it should ----------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return root / "pkg"


def test_the_checker_catches_planted_violations(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.low import thing\n",
            "pkg/low/__init__.py": "from pkg.low._impl import thing\n",
            "pkg/low/_impl.py": (
                "from typing import TYPE_CHECKING\n"
                "thing = 1\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.high import api\n"  # upward, even for types
            ),
            "pkg/high/__init__.py": "from pkg.high.api import run\n",
            "pkg/high/api.py": (
                "from pkg.low import thing\n"  # fine: down, public
                "def run():\n"
                "    from pkg.low._impl import thing\n"  # private, even lazily
                "    from ..low import _impl\n"  # private module, relative
                "    return thing\n"
            ),
            "pkg/high/a.py": "from . import b\n",
            "pkg/high/b.py": "def f():\n    from pkg.high import a\n",
            "pkg/rogue/__init__.py": "",
        },
    )
    found = violations(root, ("low", "high"))
    lines = {str(v) for v in found}
    assert {v.key for v in found} == {
        ("layer", "pkg.low._impl", "pkg.high.api"),
        ("private", "pkg.high.api", "pkg.low._impl"),
        ("cycle", "pkg.high.a", "pkg.high.b"),
        # the upward import closes a loop: api -> low -> _impl -> api
        ("cycle", "pkg.high.api", "pkg.low"),
    }, _report(found)
    assert "pkg/low/_impl.py:4: pkg.low._impl -> pkg.high.api (layer: low is below high)" in lines
    assert any(s.startswith("pkg/high/api.py:3: ") for s in lines)  # the lazy import, by line
    assert any(s.startswith("pkg/high/api.py:4: ") for s in lines)  # the relative one
    assert any("pkg.high.a -> pkg.high.b (pkg/high/a.py:1) -> pkg.high.a" in s for s in lines)
    # the down, public import is only a hop of the cycle; __init__ re-exports are not reported
    assert [v.rule for v in found if v.where == "pkg/high/api.py:1"] == ["cycle"]
    assert not any(v.where.startswith("pkg/__init__") for v in found)


def test_a_module_importing_its_own_package_is_a_cycle_when_the_package_imports_it(
    tmp_path: Path,
) -> None:
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "from pkg.low.a import x\nfrom pkg.low.c import y\n",
            "pkg/low/a.py": "x = 1\n",
            "pkg/low/b.py": "from pkg.low import x\n",  # not imported by the __init__: fine
            "pkg/low/c.py": "from pkg.low import x\ny = x\n",  # imported by it: a cycle
        },
    )
    found = violations(root, ("low",))
    assert [v.key for v in found] == [("cycle", "pkg.low", "pkg.low.c")], _report(found)
    assert "pkg.low -> pkg.low.c (pkg/low/__init__.py:2) -> pkg.low (pkg/low/c.py:1)" in str(
        found[0]
    )


def test_the_checker_places_unknown_packages(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low/__init__.py": "",
            "pkg/rogue/__init__.py": "from pkg.low import x\n",
            "pkg/low/x.py": "import pkg\n",
        },
    )
    found = {(v.rule, v.importer, v.why) for v in violations(root, ("low",))}
    assert found == {
        ("layer", "pkg.rogue", "rogue has no layer"),
        ("layer", "pkg.low.x", "the root facade is on top"),
    }
