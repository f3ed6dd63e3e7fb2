"""How long the benchmark takes to make: faces, names, questions and portraits (prints figures).

    .venv/bin/python benchmarks/bench_benchmark_generation.py

Speed targets live here, not in the tests: a slow shared machine must not fail CI.
"""
import random
import time

from mini_unlearn.bench import make_benchmark, render_portrait
from mini_unlearn.bench.portraits import sample_faces


def timed(label, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label:<42} {time.perf_counter() - start:7.3f} s")
    return result


if __name__ == "__main__":
    timed("sample_faces(600)", lambda: sample_faces(600, random.Random(0)))
    for n in (40, 500):
        bench = timed(f"make_benchmark(n_profiles={n})", lambda n=n: make_benchmark(n_profiles=n, seed=0))
        render_portrait.cache_clear()
        timed(f"render {n + 10} canonical portraits (cold cache)",
              lambda bench=bench: [q.image.load() for qs in bench.questions.values() for q in qs[:1]])
        timed("render the test views of forget 15%",
              lambda bench=bench: [q.image.load() for q in bench.split("test", 0.15).select(task="gen", modality="image+text")])
