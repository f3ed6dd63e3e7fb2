"""The committed data/ sample is what the course benchmark regenerates, on this machine too."""
import io
import json
from pathlib import Path

from PIL import Image

from mini_unlearn.bench import make_benchmark
from mini_unlearn.bench.sample import sample_contents

DATA = Path(__file__).resolve().parent.parent / "data"


def test_committed_sample_matches_the_regenerated_benchmark():
    expected = sample_contents(make_benchmark(n_profiles=40, seed=0))
    committed = {str(p.relative_to(DATA)) for p in DATA.rglob("*")
                 if p.is_file() and p.name != "README.md"}
    assert committed == set(expected), "data/ is stale: run `mini-unlearn sample data/`"
    assert json.loads((DATA / "profiles.json").read_text()) == json.loads(expected["profiles.json"])
    for name, data in expected.items():
        if name.endswith(".png"):   # compare pixels, not PNG bytes (zlib builds may differ)
            assert Image.open(DATA / name).tobytes() == Image.open(io.BytesIO(data)).tobytes(), name
