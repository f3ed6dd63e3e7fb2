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
        assert stage_dir.name in ALLOWED, f"new stage {stage_dir.name}: add it to ALLOWED in {__file__}"
        for module in stage_dir.rglob("*.py"):
            extra = imported_stages(module, stage_dir.name) - ALLOWED[stage_dir.name] - SHARED_UTILITIES
            assert not extra, f"{module.relative_to(PACKAGE)} imports {sorted(extra)}, against the data flow"


def test_the_checker_catches_a_backward_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("from ..models import build\nfrom mini_unlearn.evaluate import tasks\n")
    assert imported_stages(module, "bench") == {"models", "evaluate"}
