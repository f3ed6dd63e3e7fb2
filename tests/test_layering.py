"""The package's data flows one way: bench → models → methods → evaluation → attacks → results.

Each stage may import only the stages listed for it in ``ALLOWED`` below: this file is where the layering
is stated. A stage that does not exist yet
is simply not checked; a new stage must be added here.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mini_unlearn"

ALLOWED = {
    "bench": set(),
    "models": {"bench"},
    "neurons": {"bench", "models"},
    "methods": {"bench", "models", "neurons"},
    "evaluation": {"bench", "models"},
    "attacks": {"bench", "models", "neurons", "methods", "evaluation"},   # relearning reuses the loop
    "results": {"bench", "models", "neurons", "methods", "evaluation", "attacks"},   # the last stage: the leaderboard
    # the exercises' checkers compare a learner's function with any stage's
    "checks": {"bench", "models", "neurons", "methods", "evaluation", "attacks", "results"},
}
SHARED_UTILITIES = {"seeding", "distributed", "controls", "text"}   # stage-free helpers any stage may use
# A utility's end-to-end check runs the stages that use the utility, so it comes after them in the flow. It is
# a leaf: no module of the package imports it (tested below), so no stage depends on what it imports.
UTILITY_CHECKS = {"distributed/check.py": {"bench", "models", "neurons", "methods"}}


def imported_stages(path: Path, stage: str) -> set[str]:
    """The stages of mini_unlearn that a module of ``stage`` imports (absolute or relative)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("mini_unlearn"):
                parts = node.module.split(".")[1:] or [a.name for a in node.names]
                found.add(parts[0])
            elif node.level >= 2:   # from .. (leaves the stage)
                found.add((node.module or "").split(".")[0] or next(iter(a.name for a in node.names)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mini_unlearn."):
                    found.add(alias.name.split(".")[1])
    return found - {stage}


def test_every_stage_imports_only_earlier_stages():
    stages = [p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert stages, "no stage packages found"
    for stage_dir in stages:
        if stage_dir.name in SHARED_UTILITIES:
            continue                      # checked below
        assert stage_dir.name in ALLOWED, f"new stage {stage_dir.name}: add it to ALLOWED in {__file__}"
        for module in stage_dir.rglob("*.py"):
            extra = imported_stages(module, stage_dir.name) - ALLOWED[stage_dir.name] - SHARED_UTILITIES
            assert not extra, f"{module.relative_to(PACKAGE)} imports {sorted(extra)}, against the data flow"


def utility_modules() -> list[Path]:
    """Every module of the shared utilities: ``seeding.py``, or each module of the package ``distributed/``."""
    found = []
    for name in sorted(SHARED_UTILITIES):
        module, package = PACKAGE / f"{name}.py", PACKAGE / name
        assert module.is_file() or (package / "__init__.py").is_file(), f"no shared utility {name}"
        found += [module] if module.is_file() else sorted(package.rglob("*.py"))
    return found


def test_the_shared_utilities_import_no_stage():
    modules = utility_modules()
    checks = {module.relative_to(PACKAGE).as_posix() for module in modules} & set(UTILITY_CHECKS)
    assert checks == set(UTILITY_CHECKS), f"no such utility check: {sorted(set(UTILITY_CHECKS) - checks)}"
    for module in modules:
        where = module.relative_to(PACKAGE).as_posix()
        extra = imported_stages(module, "") - SHARED_UTILITIES - UTILITY_CHECKS.get(where, set())
        assert not extra, f"{where} imports {sorted(extra)}: a shared utility must not depend on a stage"


def dotted(path: Path) -> str:
    """``mini_unlearn.distributed.check`` for ``mini_unlearn/distributed/check.py``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module (or name in a module) that ``path``, a module of ``package``, imports, in full."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_nothing_in_the_package_imports_a_utility_check():
    checks = {dotted(PACKAGE / where) for where in UTILITY_CHECKS}
    for module in PACKAGE.rglob("*.py"):
        package = dotted(module) if module.name == "__init__.py" else dotted(module).rpartition(".")[0]
        importers = imported_modules(module, package) & checks
        assert not importers, f"{module.relative_to(PACKAGE)} imports {sorted(importers)}, which runs the stages"


def test_the_checker_catches_an_import_of_a_utility_check(tmp_path):
    module = tmp_path / "bad.py"
    for line in ("from ..distributed import check", "from ..distributed.check import UNLEARNING",
                 "import mini_unlearn.distributed.check", "from . import check"):
        module.write_text(line + "\n")
        package = "mini_unlearn.distributed" if line.startswith("from . ") else "mini_unlearn.methods"
        assert "mini_unlearn.distributed.check" in imported_modules(module, package), line


def test_the_checker_catches_a_backward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from ..models import build\nfrom mini_unlearn.evaluate import tasks\n")
    assert imported_stages(module, "bench") == {"models", "evaluate"}
