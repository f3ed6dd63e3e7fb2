"""No module of mini_unlearn imports itself back, at any depth.

A static scan (``ast``) of every module builds the graph of imports between the package's modules —
at module level and inside functions alike, so an import moved into a function to dodge a cycle still
counts — and the test asserts that the graph has no cycle. An edge goes to the module an import names:

* ``import a.b`` and ``from a import b`` (``b`` a module) go to ``a.b``; ``from a.b import name`` goes
  to ``a.b`` alone (a package's ``__init__`` when ``a.b`` is a package), never to every submodule of it;
* relative imports are resolved against the importing module's package; ``from . import x`` goes to ``x``.

So a package's ``__init__`` that imports its submodules and a submodule that imports a sibling with
``from .sibling import f`` form no cycle: neither goes back through the ``__init__``.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mini_unlearn"


def module_files(package: Path) -> dict[str, Path]:
    """Every module of ``package`` by dotted name; a package is its ``__init__.py``."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the scanned package that module ``name`` (at ``path``) imports, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(target: str) -> str | None:       # the module itself, or the package holding the name
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else known(base))
    return found - {None, name}


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = module_files(package)
    return {name: imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (a depth-first search)."""
    state = {}                                    # module -> "open" (on the current path) or "done"
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and "mini_unlearn.models.vlm" in graph      # the scan found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


def test_the_scan_finds_a_cycle_hidden_inside_a_function(tmp_path):
    package = write(tmp_path, {
        "pkg/__init__.py": "from . import a, b\n",
        "pkg/a.py": "from .b import g\n\ndef f():\n    return g()\n",
        "pkg/b.py": "def g():\n    from .a import f      # dodges the cycle at run time\n    return f\n",
    })
    assert find_cycle(import_graph(package)) == ["pkg.a", "pkg.b", "pkg.a"]


def test_the_scan_resolves_each_kind_of_import(tmp_path):
    package = write(tmp_path, {
        "pkg/__init__.py": "from .sub import thing\nfrom . import c\n",
        "pkg/c.py": "import os\n",
        "pkg/sub/__init__.py": "from .deep import thing\n",
        "pkg/sub/deep.py": "from ..c import name\nfrom . import sibling\n\ndef f():\n    from pkg.sub import thing\n",
        "pkg/sub/sibling.py": "import pkg.c\nfrom .. import c\n",
    })
    graph = import_graph(package)
    assert graph["pkg"] == {"pkg.sub", "pkg.c"}                      # an __init__ importing its submodules
    assert graph["pkg.c"] == set()                                  # nothing outside the package
    assert graph["pkg.sub"] == {"pkg.sub.deep"}
    assert graph["pkg.sub.deep"] == {"pkg.c", "pkg.sub.sibling", "pkg.sub"}   # a name from a package: its __init__
    assert graph["pkg.sub.sibling"] == {"pkg.c"}
    # a submodule importing a sibling is no cycle with the __init__ that imports both...
    assert find_cycle({"pkg": {"pkg.a", "pkg.b"}, "pkg.a": {"pkg.b"}, "pkg.b": set()}) is None
    # ...but a submodule taking a name from its own package's __init__ is one
    assert find_cycle(graph) == ["pkg.sub", "pkg.sub.deep", "pkg.sub"]
