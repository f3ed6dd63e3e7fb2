"""The committed localisation table (benchmarks/localisation.py) is what the current code computes."""
from pathlib import Path

import pandas as pd
import pytest

import mini_unlearn as mu
from mini_unlearn import release
from mini_unlearn.methods.manu import BATCH_SIZES, manu_statistics

RESULTS = Path(__file__).resolve().parents[1] / "mini_unlearn" / "data" / "results" / "localisation" / "localisation.csv"


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(RESULTS)


def test_every_localiser_of_the_package_is_scored_in_both_towers(table):
    names = set(table["localiser"])
    for wanted in ("planted (oracle)", "MANU paper", "MANU released", "MMUnlearner saliency mask",
                   "MIP-Editor paths (paper)", "MIP-Editor paths (released)", "point-wise attribution",
                   "random (MANU's 2 %)", *(f"MANU {v}: {m} only" for v in ("paper", "released")
                                           for m in ("abs", "freq", "var", "rms"))):
        assert wanted in names, wanted
        assert set(table.loc[table["localiser"] == wanted, "tower"]) == {"vision", "language"}, wanted
    oracle = table[table["localiser"] == "planted (oracle)"]
    assert (oracle["precision"] == 1).all() and (oracle["recall"] == 1).all()


def test_the_committed_manu_rows_are_what_the_code_computes(table):
    bench = release.course_benchmark()
    vlm = mu.models.planted(bench, device="cpu", progress=False)
    truth = mu.models.planted_neurons(vlm)
    towers = mu.neurons.site_towers(vlm.model)
    # the released code's rows as the method runs them: per-batch statistics of 4 samples a batch, and
    # int(α·N) neurons with every tie at the threshold (mu.unlearn(..., method="manu", variant="released"))
    stats = manu_statistics(vlm, bench, release.COURSE_RATIO, batch_size=BATCH_SIZES["released"])
    scores = mu.neurons.neuron_scores(stats, "released")
    found = mu.neurons.select_released(scores, 0.02, "per_tower", towers)
    live = mu.neurons.neuron_precision_recall(vlm, found, truth).set_index("tower")
    committed = table[table["localiser"] == "MANU released"].set_index("tower")
    for tower in ("vision", "language"):
        assert live.loc[tower, "hits"] == committed.loc[tower, "hits"]
        assert live.loc[tower, "found"] == committed.loc[tower, "found"]
