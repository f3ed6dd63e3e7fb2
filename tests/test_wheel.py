"""The package as a user installs it: built as a wheel, installed outside the checkout, it loads the
course models cold and trains nothing.

benchmarks/installed_wheel.py builds the distributions (sdist from the git-tracked files, the wheel
from the unpacked sdist, offline) and installs the wheel into a fresh venv in a temporary folder that
borrows the course venv's third-party packages but not its editable ``mini_unlearn`` (the import
check below rules it out); that script also runs every chapter from the wheel. ``twine check``
(from the tools venv course.py installs) checks both distributions' metadata.
"""
import importlib.util
import json
import time
import tomllib
from pathlib import Path

import pytest

from tools import tool_path

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
spec = importlib.util.spec_from_file_location("installed_wheel", ROOT / "benchmarks" / "installed_wheel.py")
installed_wheel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(installed_wheel)
SHIPPED = sorted(p.name for p in (ROOT / "mini_unlearn" / "data" / "models").iterdir() if p.is_dir())

# What a learner's first cell and a researcher's script do: load the course models, read the results.
LOAD = """
import json, sys, time
t0 = time.perf_counter()
import mini_unlearn as mu
bench = mu.bench.make_benchmark(n_profiles=40, seed=0)
t1 = time.perf_counter()
for key in (mu.models.vanilla_key(bench), mu.models.retain_only_key(bench, 0.05)):
    if mu.models.shipped.find_shipped(key) is None:   # vanilla() would train for a quarter of an hour
        sys.exit(f"no shipped model for {key['kind']} in the installed package")
vanilla = mu.models.vanilla(bench, preset="tiny", seed=0)
retain_only = mu.models.retain_only(bench, 0.05, preset="tiny", seed=0)
t2 = time.perf_counter()
folder = mu.models.shipped.find_shipped(vanilla.card["cache_key"])
board = mu.results.load(mu.results.course_results("leaderboard"))
from mini_unlearn.distributed import check   # chapter 11b runs it under torchrun -m from the package
assert (mu.results.course_results("scale") / "cpu.json").is_file()
print(json.dumps({"package": mu.__file__, "version": mu.__version__, "shipped": str(folder),
                  "kinds": [vanilla.card["kind"], retain_only.card["kind"]], "records": len(board.records),
                  "import_and_bench_s": t1 - t0, "load_s": t2 - t1}))
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``{"sdist": path, "wheel": path, "seconds": build time}``, built from the checkout."""
    return installed_wheel.build_distributions(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory):
    """A fresh venv outside the checkout with the wheel installed: ``(python, seconds to install)``."""
    return installed_wheel.install_wheel(dist["wheel"], tmp_path_factory.mktemp("user"))


def test_the_distributions_pass_twine_check(dist):
    out = installed_wheel.run([tool_path("twine"), "check", "--strict", dist["sdist"], dist["wheel"]])
    assert out.count("PASSED") == 2, out


def test_the_wheel_carries_the_code_the_models_the_results_and_the_licences(dist):
    import zipfile
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    assert dist["wheel"].name == f"mini_unlearn-{VERSION}-py3-none-any.whl"
    for model in SHIPPED:
        for file in ("config.json", "model.safetensors", "mini_unlearn.json", "tokenizer.json"):
            assert f"mini_unlearn/data/models/{model}/{file}" in names, f"the wheel lacks {model}/{file}"
    for folder in ("leaderboard", "tuning", "audit", "localisation", "scale"):
        assert any(n.startswith(f"mini_unlearn/data/results/{folder}/") for n in names), folder
    licences = {Path(n).name for n in names if "/licenses/" in n}
    assert licences == {"LICENSE", "LICENSE-CC-BY-4.0.txt"}, licences
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "benchmarks/"))]


def test_an_installed_wheel_loads_the_course_models_cold_without_training(dist, installed, tmp_path):
    python, install_seconds = installed
    cache = tmp_path / "cache"          # where training would write: it must stay empty
    env = installed_wheel.user_environment(cache)
    t0 = time.perf_counter()
    seen = json.loads(installed_wheel.run([python, "-c", LOAD], cwd=tmp_path, env=env).strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    site = Path(python).parents[1]
    assert Path(seen["package"]).is_relative_to(site), f"imported {seen['package']}, not the installed wheel"
    assert Path(seen["shipped"]).is_relative_to(site / "lib") and Path(seen["shipped"]).name in SHIPPED
    assert seen["version"] == VERSION and seen["kinds"] == ["vanilla", "retain_only"] and seen["records"] > 0
    assert not cache.exists() or not any(cache.rglob("*")), "the installed package trained (it wrote to the cache)"
    print(f"\nsdist and wheel built in {dist['seconds']:.1f} s ({dist['wheel'].stat().st_size / 2**20:.1f} MiB wheel); "
          f"install {install_seconds:.1f} s; import + benchmark {seen['import_and_bench_s']:.1f} s; "
          f"both models loaded in {seen['load_s']:.1f} s; whole script {wall:.1f} s")
    assert seen["load_s"] < 60, f"loading took {seen['load_s']:.0f} s: is it training?"


def test_the_installed_command_runs(installed):
    python, _ = installed
    out = installed_wheel.run([Path(python).parent / "mini-unlearn", "--help"])
    assert "run" in out and "report" in out
