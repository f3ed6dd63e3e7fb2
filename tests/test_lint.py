"""ruff (pinned in the test extra, configured in pyproject.toml) finds nothing in the package, tests or benchmarks."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_is_clean():
    checked = ["mini_unlearn", "tests", "benchmarks", "course.py"]
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *checked], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0, f"ruff check {' '.join(checked)}:\n{found.stdout}{found.stderr}"
