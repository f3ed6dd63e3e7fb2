"""The package's data flow, stated once in ``mini_unlearn/__init__.py``'s docstring, held to here.

The docstring's line ``bench → models → neurons, evaluation → methods → attacks → results → course`` is read
below (:data:`FLOW`): a stage may import only the stages to its left. A new stage must be added to that line.
The course's tooling (``mini_unlearn.course``) is the last stage, on top of the library: nothing outside it
imports it, but for the two places named in ``COURSE_IMPORTERS``, which import it when called, never at
``import mini_unlearn``.
"""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mini_unlearn"


def stated_flow() -> list[set[str]]:
    """The data flow the package's docstring states: its one line of stages joined by arrows, left to right,
    each a set (``neurons, evaluation`` stand side by side)."""
    docstring = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    lines = [line for line in docstring.splitlines() if "→" in line]
    assert len(lines) == 1, f"mini_unlearn's docstring should state the data flow on one line; found {lines}"
    return [{name.strip() for name in level.split(",")} for level in lines[0].split("→")]


FLOW = stated_flow()
# what each stage may import: every stage to its left
ALLOWED = {stage: set().union(*FLOW[:depth]) for depth, level in enumerate(FLOW) for stage in level}
# the course may also use the root module describing the shipped course models (the release the retrain rebuilds)
ALLOWED["course"] |= {"release"}

SHARED_UTILITIES = {"_version", "seeding", "distributed", "text", "validate"}   # stage-free helpers any stage may use
# A utility's end-to-end check runs the stages that use the utility, so it comes after them in the flow. It is
# a leaf: no module of the package imports it (tested below), so no stage depends on what it imports.
UTILITY_CHECKS = {"distributed/check.py": {"bench", "models", "neurons", "methods"},
                  "distributed/sharded_check.py": {"bench", "models", "methods"}}


def imported_stages(path: Path, stage: str) -> set[str]:
    """The stages of mini_unlearn that a module of ``stage`` imports (absolute or relative, from any depth of the
    stage: ``from ..prompts`` in ``models/families/`` stays in ``models``). A file outside the package is read as
    a module at the top of ``stage``."""
    if PACKAGE in path.parents:
        package = dotted(path) if path.name == "__init__.py" else dotted(path).rpartition(".")[0]
    else:
        package = f"mini_unlearn.{stage}" if stage else "mini_unlearn"
    names = (name.split(".") for name in imported_modules(path, package))
    return {parts[1] for parts in names if parts[0] == "mini_unlearn" and len(parts) > 1} - {stage}


def test_every_stage_imports_only_earlier_stages():
    stages = [p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert stages, "no stage packages found"
    for stage_dir in stages:
        if stage_dir.name in SHARED_UTILITIES:
            continue                      # checked below
        assert stage_dir.name in ALLOWED, f"new stage {stage_dir.name}: add it to the data flow in the docstring of mini_unlearn/__init__.py"
        for module in stage_dir.rglob("*.py"):
            extra = imported_stages(module, stage_dir.name) - ALLOWED[stage_dir.name] - SHARED_UTILITIES
            assert not extra, f"{module.relative_to(PACKAGE)} imports {sorted(extra)}, against the data flow"


def test_the_stated_flow_names_every_stage_once():
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} - SHARED_UTILITIES
    named = [stage for level in FLOW for stage in level]
    assert len(named) == len(set(named)), f"a stage stands twice in the stated flow: {named}"
    assert set(named) == stages, (f"the flow in mini_unlearn's docstring names {sorted(set(named))}; the package's "
                                  f"stages are {sorted(stages)}")


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


# ---------------------------------------------------------------------------------------------------
# The course's tooling is on top: the library never imports it

COURSE = "mini_unlearn.course"
# The only modules outside mini_unlearn/course/ that import it, and the functions that do (never at import time):
COURSE_IMPORTERS = {
    # mu.checks, mu.controls, mu.show, mu.show_source: the course's tooling, imported on first use
    "__init__.py": {"__getattr__"},
    # the course's commands of the command line (the application on top): exercises, classroom, retrain
    "cli.py": {"exercises", "classroom_release", "classroom_autograde", "classroom_table", "retrain"},
}


def resolved(name: str, level: int, package: str) -> str:
    """The absolute name of ``name`` imported with ``level`` leading dots from a module of ``package``."""
    if not level:
        return name
    anchor = package.split(".")[:len(package.split(".")) - level + 1]
    return ".".join(anchor + ([name] if name else []))


def course_imports(path: Path, package: str) -> list[tuple[str, str | None]]:
    """``(module, function)`` for each import of :data:`COURSE` in ``path``, a module of ``package``, at any depth:
    absolute or relative import statements, and ``importlib.import_module`` / ``__import__`` of a literal name;
    ``function`` is the innermost function around it (None at module level)."""
    found = []

    def visit(node, function):
        names = []
        if isinstance(node, ast.ImportFrom):
            base = resolved(node.module or "", node.level, package)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            text = node.args[0].value
            dots = len(text) - len(text.lstrip("."))
            names = [resolved(text[dots:], dots, package)]
        found.extend((name, function) for name in names if name == COURSE or name.startswith(COURSE + "."))
        inner = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text()), None)
    return found


def test_nothing_outside_the_course_imports_it():
    course_dir = PACKAGE / "course"
    assert (course_dir / "__init__.py").is_file()
    seen = set()
    for module in sorted(PACKAGE.rglob("*.py")):
        if course_dir in module.parents:
            continue
        where = module.relative_to(PACKAGE).as_posix()
        package = dotted(module) if module.name == "__init__.py" else dotted(module).rpartition(".")[0]
        for name, function in course_imports(module, package):
            assert function in COURSE_IMPORTERS.get(where, set()), (
                f"{where} imports {name}" + (f" in {function}()" if function else " at module level")
                + ": the library must not import the course's tooling (mini_unlearn/course/)")
            seen.add((where, function))
    allowed = {(where, function) for where, functions in COURSE_IMPORTERS.items() for function in functions}
    assert seen == allowed, f"COURSE_IMPORTERS names imports that are gone: {sorted(allowed - seen)}"


def test_the_checker_finds_every_spelling_of_a_course_import(tmp_path):
    module = tmp_path / "bad.py"
    for line, package in [("from .course import checks", "mini_unlearn"), ("from . import course", "mini_unlearn"),
                          ("from ..course.controls import LiveControl", "mini_unlearn.neurons"),
                          ("from ... import course", "mini_unlearn.models.families"),
                          ("import mini_unlearn.course.show", "mini_unlearn.methods"),
                          ("from mini_unlearn import course", "mini_unlearn.results"),
                          ("from mini_unlearn.course.retrain import BAR", "mini_unlearn"),
                          ("importlib.import_module('.course', __name__)", "mini_unlearn"),
                          ("importlib.import_module('mini_unlearn.course.checks')", "mini_unlearn.bench"),
                          ("def f():\n    if True:\n        from .course import show", "mini_unlearn")]:
        module.write_text(line + "\n")
        found = course_imports(module, package)
        assert found, line
        assert {function for _, function in found} == ({"f"} if line.startswith("def") else {None}), line
    module.write_text("from .courses import x\nimport mini_unlearn.coursework\nfrom ..methods import course\n")
    assert course_imports(module, "mini_unlearn.neurons") == []


def test_import_mini_unlearn_leaves_the_course_unimported_until_a_chapter_asks():
    """In a fresh interpreter: the library and its command line import no module of the course; ``mu.checks``
    and the rest of the chapters' names still resolve, and then import it."""
    script = """
import sys
import mini_unlearn as mu
import mini_unlearn.cli
loaded = sorted(m for m in sys.modules if m == "mini_unlearn.course" or m.startswith("mini_unlearn.course."))
assert not loaded, f"import mini_unlearn imported {loaded}"
assert {"checks", "controls", "show", "show_source"} <= set(dir(mu)) and "checks" in mu.__all__
from mini_unlearn import checks
assert checks is mu.checks and checks.__name__ == "mini_unlearn.course.checks"
assert callable(checks.check_forget_and_retain)
assert mu.show_source is mu.course.show.show_source and mu.show.pipeline and mu.controls.pruning_control
assert "mini_unlearn.course" in sys.modules
try:
    mu.no_such_name
except AttributeError as error:
    assert "no_such_name" in str(error)
else:
    raise AssertionError("mu.no_such_name resolved")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
