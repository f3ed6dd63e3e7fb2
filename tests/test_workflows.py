"""The GitHub workflows cannot run here: actionlint checks them, and these tests check they run what the
README says and build what course.py builds.

- `.github/workflows/test.yml` runs the README's test command on every push and pull request, with the
  venv cached under a key made of the files course.py's install stamps hash;
- `.github/workflows/book.yml` runs the README's book command with `--no-execute` (the same jupyter-book
  arguments tests/test_book_offline.py builds with), uploads the folder it builds into with
  actions/upload-pages-artifact and deploys it with actions/deploy-pages.
"""
import re
from pathlib import Path

import pytest
import yaml

from tools import actionlint, course_py

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
TEST_WORKFLOW = WORKFLOWS / "test.yml"
BOOK_WORKFLOW = WORKFLOWS / "book.yml"


def load(path):
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean True
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow):
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def uses(workflow, action):
    """The steps of `workflow` that use `action` (any version)."""
    return [step for step in steps(workflow) if step.get("uses", "").split("@")[0] == action]


def runs(workflow):
    return [line.strip() for step in steps(workflow) for line in step.get("run", "").splitlines() if line.strip()]


def readme_commands():
    """The commands of the README's "Two commands" block, comments dropped."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def readme_command(word):
    [command] = [c for c in readme_commands() if c.split()[-1] == word]
    return command


def test_the_readme_gives_the_two_commands_the_workflows_run():
    assert readme_commands() == ["python3 course.py test", "python3 course.py book"]


def test_actionlint_finds_nothing_in_the_workflows():
    assert sorted(p.name for p in WORKFLOWS.glob("*.y*ml")) == ["book.yml", "test.yml"]
    findings = actionlint([TEST_WORKFLOW, BOOK_WORKFLOW])
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                                     for f in findings)


def test_actionlint_flags_a_broken_workflow(tmp_path):
    """The check above can fail: a misspelt key, an unknown permission, a wrong context name are found."""
    broken = {
        "test.yml": (TEST_WORKFLOW, "runs-on:", "run-on:", '"runs-on" section is missing'),
        "book.yml": (BOOK_WORKFLOW, "id-token: write", "id-tokens: write", 'unknown permission scope "id-tokens"'),
        "url.yml": (BOOK_WORKFLOW, "steps.deployment.outputs", "step.deployment.outputs", 'undefined variable "step"'),
    }
    for name, (source, old, new, message) in broken.items():
        text = source.read_text()
        assert old in text
        (tmp_path / name).write_text(text.replace(old, new, 1))
        findings = actionlint([tmp_path / name])
        assert any(message in f["message"] for f in findings), (name, findings)


def test_actionlint_rejects_an_empty_list_of_files():
    with pytest.raises(ValueError, match="paths"):
        actionlint([])


def test_the_test_workflow_runs_the_readme_test_command_on_push_and_pull_request():
    workflow = load(TEST_WORKFLOW)
    assert {"push", "pull_request"} <= set(workflow["on"])
    [job] = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and 10 <= job["timeout-minutes"] <= 120
    command = readme_command("test")
    ran = runs(workflow)
    if command not in ran:
        # through .ci/run, which runs the command itself (tests/test_course_setup.py checks its lines)
        assert "bash .ci/run" in ran, ran
        ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
        assert command in ci_lines and ci_lines[-1] == command


def test_the_book_workflow_builds_what_course_py_builds_and_deploys_it_to_pages():
    course = course_py()
    workflow = load(BOOK_WORKFLOW)
    assert workflow["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in workflow["on"]
    assert workflow["concurrency"]["group"] == "pages"
    assert f"{readme_command('book')} --no-execute" in runs(workflow)

    [upload] = uses(workflow, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == course.BOOK_HTML == "_build/html"

    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert upload in build["steps"] and deploy["needs"] == "build"
    [step] = [s for s in deploy["steps"] if s.get("uses", "").startswith("actions/deploy-pages@")]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"] == {"name": "github-pages", "url": f"${{{{ steps.{step['id']}.outputs.page_url }}}}"}


def test_both_workflows_cache_the_venv_under_the_files_course_py_stamps():
    course = course_py()
    stamped = {*course.STAMP_FILES, *course.TOOLS_STAMP_FILES}
    assert stamped == {"pyproject.toml", "constraints.txt", "tools-constraints.txt"}
    for path in (TEST_WORKFLOW, BOOK_WORKFLOW):
        workflow = load(path)
        [python] = uses(workflow, "actions/setup-python")
        # the version constraints.txt was frozen with
        assert f"Python {python['with']['python-version']} venv" in (ROOT / "constraints.txt").read_text()
        [cache] = uses(workflow, "actions/cache")
        assert cache["with"]["path"] == str(course.VENV.relative_to(course.ROOT)) == ".venv"
        key = cache["with"]["key"]
        hashed = re.fullmatch(r".*\$\{\{ hashFiles\(([^)]*)\) \}\}", key).group(1)
        assert {name.strip(" '\"") for name in hashed.split(",")} == stamped, (path.name, key)
        # the venv points at the runner's Python: another patch release must not restore it
        assert f"steps.{python['id']}.outputs.python-version" in key, key
