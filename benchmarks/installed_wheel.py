"""The package as a user installs it: build the wheel, install it outside the checkout, run the chapters.

    .venv/bin/python benchmarks/installed_wheel.py            # every chapter's nbval, from the wheel
    .venv/bin/python benchmarks/installed_wheel.py 10 11b     # some chapters

The distributions are built as ``python -m build`` builds them (the sdist from the files git tracks,
then the wheel from the unpacked sdist, so a file the sdist forgets is missing from the wheel too),
offline and without build isolation. The wheel goes into a fresh virtual environment in a temporary
folder; it borrows the course venv's third-party packages through a ``.pth`` line (installing torch
again would take minutes and the network), which does not bring the course venv's editable
``mini_unlearn`` along (a ``.pth`` file is read only in a site folder, not in a folder it adds).
The chapters are copied into another temporary folder and checked there with nbval, with an empty
``$MINI_UNLEARN_CACHE``: what a learner who ran ``pip install`` (Colab's first cell) gets. It prints
the timings and whether anything was written to the cache (training would). tests/test_wheel.py
uses the same functions to build, install and load the models.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, **kwargs) -> str:
    """Run ``cmd``; its stdout, or an AssertionError with the command and the end of its output."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def build_distributions(out: Path, root: Path = ROOT) -> dict:
    """``{"sdist": path, "wheel": path, "seconds": build time}``, built in ``out`` from ``root``'s files
    as git sees them (a clone has no egg-info from earlier builds, whose file lists setuptools reuses)."""
    clone = out / "clone"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root)
    for name in filter(None, listed.split("\0")):
        if (root / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, clone / name)
    t0 = time.perf_counter()
    name = run([sys.executable, "-c", f"from setuptools import build_meta as b; print(b.build_sdist({str(out)!r}))"],
               cwd=clone).strip().splitlines()[-1]
    sdist = out / name
    with tarfile.open(sdist) as archive:
        archive.extractall(out / "unpacked", filter="data")
    source = next((out / "unpacked").iterdir())
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", out, source])
    return {"sdist": sdist, "wheel": next(out.glob("*.whl")), "seconds": time.perf_counter() - t0}


def install_wheel(wheel: Path, home: Path) -> tuple[Path, float]:
    """A fresh venv ``home/venv`` with ``wheel`` installed: ``(its python, seconds to make it)``."""
    venv = home / "venv"
    t0 = time.perf_counter()
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    target = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (target / "course_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--ignore-installed", "-q", wheel])
    return python, time.perf_counter() - t0


def user_environment(cache: Path) -> dict:
    """The environment of a user's process: no course variables, no checkout on the path, ``cache``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINI_UNLEARN", "PYTHONPATH"))}
    env.update(MINI_UNLEARN_CACHE=str(cache), PYTHONNOUSERSITE="1", OMP_WAIT_POLICY="PASSIVE")
    return env


def main(chapters: list[str]) -> int:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    if chapters:
        notebooks = [p for p in notebooks if p.name.split("_")[0] in chapters]
        if not notebooks:
            sys.exit(f"chapters: none of {chapters} names a chapter (e.g. 01, 10, 11b)")
    with tempfile.TemporaryDirectory(prefix="mini_unlearn-wheel-") as tmp:
        tmp = Path(tmp)
        (tmp / "dist").mkdir()
        built = build_distributions(tmp / "dist")
        python, install_seconds = install_wheel(built["wheel"], tmp)
        print(f"{built['wheel'].name}: {built['wheel'].stat().st_size / 2**20:.1f} MiB, built in "
              f"{built['seconds']:.1f} s, installed in {install_seconds:.1f} s")
        chapters_dir = tmp / "chapters"
        chapters_dir.mkdir()
        for path in [*notebooks, ROOT / "notebooks" / "conftest.py", ROOT / "notebooks" / "nbval_sanitize.cfg"]:
            shutil.copy2(path, chapters_dir / path.name)
        env = user_environment(tmp / "cache")
        print(run([python, "-c", "import mini_unlearn as mu; print('imported', mu.__file__, mu.__version__)"],
                  env=env).strip())
        t0 = time.perf_counter()
        code = subprocess.call([str(python), "-m", "pytest", ".", "--nbval", "--nbval-current-env",
                                "--nbval-sanitize-with", "nbval_sanitize.cfg", "-p", "no:cacheprovider",
                                "-n", "2", "--dist", "loadfile", "-q"], cwd=chapters_dir, env=env)
        cached = [p for p in (tmp / "cache").rglob("*")] if (tmp / "cache").exists() else []
        print(f"{len(notebooks)} chapters from the installed wheel: {'passed' if code == 0 else 'FAILED'} in "
              f"{time.perf_counter() - t0:.0f} s; files written to the cache (training would): {len(cached)}")
        return code or (1 if cached else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
