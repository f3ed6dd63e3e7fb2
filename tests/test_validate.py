"""The package's one set of argument validators (``mini_unlearn.validate``), and the one word for the
released code's form of a method: ``"released"``, whose old spellings still work with a FutureWarning."""
import re
import warnings
from pathlib import Path

import pytest
import torch

import mini_unlearn as mu
from mini_unlearn import validate
from mini_unlearn.methods import losses
from mini_unlearn.models.anatomy import NeuronSite
from mini_unlearn.neurons import NeuronStats, importance
from mini_unlearn.results import settings

PACKAGE = Path(mu.__file__).resolve().parent


# -- the validators --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3", None])
def test_positive_int_names_the_argument_and_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match=r"steps must be a positive integer \(gradient steps\); got"):
        validate.positive_int(bad, "steps", hint="gradient steps")
    assert validate.positive_int(3, "steps") == 3
    assert validate.positive_int(0, "few_shot", allow_zero=True) == 0
    with pytest.raises(ValueError, match="few_shot must be a non-negative integer; got -1"):
        validate.positive_int(-1, "few_shot", allow_zero=True)


def test_a_value_of_the_wrong_type_is_a_type_error_and_a_value_error():
    for call in (lambda: validate.positive_int(2.5, "k"), lambda: validate.positive("1", "lr"),
                 lambda: validate.seed(1.5)):
        with pytest.raises(validate.WrongTypeError) as raised:
            call()
        assert isinstance(raised.value, TypeError) and isinstance(raised.value, ValueError)
    with pytest.raises(ValueError) as raised:         # the right type, the wrong value: a ValueError only
        validate.positive_int(0, "k")
    assert not isinstance(raised.value, TypeError)


@pytest.mark.parametrize("bad, finite", [(0, False), (-0.1, False), (float("nan"), False), (True, False),
                                         (float("inf"), True)])
def test_positive_refuses_zero_negatives_nan_and_with_finite_infinity(bad, finite):
    with pytest.raises(ValueError, match="lr must be a positive number"):
        validate.positive(bad, "lr", finite=finite)
    assert validate.positive(0.0, "weight", allow_zero=True) == 0.0
    assert validate.positive(float("inf"), "lr") == float("inf")


def test_seed_takes_any_integer_and_says_what_it_got():
    assert validate.seed(-3) == -3
    with pytest.raises(TypeError, match=r"seed must be an integer; got '0' \(str\)"):
        validate.seed("0")


def test_one_of_lists_the_choices_and_their_meaning():
    assert validate.one_of("mean", "aggregation", ("mean", "last")) == "mean"
    assert validate.one_of("vision", "preset", {"vision": 1, "both": 2}) == "vision"     # a mapping: its keys
    with pytest.raises(ValueError, match=r"aggregation must be one of \('mean', 'last'\) \(per sample\); got 'max'"):
        validate.one_of("max", "aggregation", ("mean", "last"), hint="per sample")


def test_no_hand_copy_of_the_integer_check_is_left_in_the_package():
    copy = re.compile(r"isinstance\((\w+(?:\.\w+)?), bool\) or not isinstance\(\1, \(?int")
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path.name != "validate.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if copy.search(line)]
    assert not found, f"use mini_unlearn.validate (positive_int, positive, seed, is_integer, is_number): {found}"


def test_the_integer_check_finder_sees_a_copy():
    line = "    if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:"
    assert re.search(r"isinstance\((\w+(?:\.\w+)?), bool\) or not isinstance\(\1, \(?int", line)


# -- one word for the released code's form ---------------------------------------------------------

def renamed(make, old, new, says=None):
    """``make(old)`` warns, naming the new spelling (``says``, by default ``'new'``); ``make(new)`` does not;
    returns both results."""
    with pytest.warns(FutureWarning, match=re.escape(says or repr(new))) as caught:
        from_old = make(old)
    assert all(w.filename == __file__ for w in caught), "the warning should point at the caller's line"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_new = make(new)
    return from_old, from_new


def test_manu_official_is_now_released():
    old, new = renamed(lambda v: mu.methods.MANUConfig(variant=v), "official", "released")
    assert old == new and old.variant == "released" and old.batch_size == 4    # the released batch size too
    old, new = renamed(lambda v: mu.methods.make_config("manu", variant=v), "official", "released")
    assert old == new


def test_npo_mllmu_is_now_released():
    old, new = renamed(lambda v: mu.methods.make_config("npo", variant=v), "mllmu", "released")
    assert old == new and old.variant == "released"


def test_kl_min_mllmu_reduction_is_now_released():
    old, new = renamed(lambda v: mu.methods.make_config("kl_min", kl_reduction=v), "mllmu", "released")
    assert old == new and old.kl_reduction == "released"


def test_the_kl_loss_mllmu_reduction_is_now_released():
    torch.manual_seed(0)
    logits, other, labels = torch.randn(2, 3, 5), torch.randn(2, 3, 5), torch.tensor([[1, 2, -100], [0, -100, -100]])
    old, new = renamed(lambda r: losses.kl_to_reference(logits, other, labels, reduction=r), "mllmu", "released")
    assert old.item() == new.item()


def test_the_mmunlearner_boolean_is_now_the_released_word():
    old, new = renamed(lambda v: mu.methods.make_config("mmunlearner", **v), {"mask_retain": False},
                       {"retain_mask": "released"}, says="retain_mask='released'")
    assert old == new and old.retain_mask == "released"
    with pytest.warns(FutureWarning, match="retain_mask='paper'"):
        assert mu.methods.MMUnlearnerConfig(mask_retain=True) == mu.methods.MMUnlearnerConfig()
    with pytest.raises(TypeError, match="mask_retain must be True or False"):
        mu.methods.MMUnlearnerConfig(mask_retain="no")
    with pytest.raises(ValueError, match="retain_mask must be one of"):
        mu.methods.MMUnlearnerConfig(retain_mask=False)


def test_the_cli_still_reads_an_old_spelling():
    with pytest.warns(FutureWarning, match="variant='released'"):
        assert settings.parse_overrides("manu", ["variant=official"]) == {"variant": "official"}


def test_manu_official_scores_are_now_released():
    site = NeuronSite("language", 0, "made.up.down_proj", 3, ())
    torch.manual_seed(0)

    def stats():
        made = NeuronStats(site)
        for batch in torch.randn(6, 3, dtype=torch.float64).split(2):
            made.add(batch)
        return made
    by_set = {s: {view: {site.name: stats()} for view in ("image+text", "text")} for s in ("forget", "retain")}
    old, new = renamed(lambda v: importance.neuron_scores(by_set, v), "official", "released")
    assert torch.equal(old[site.name], new[site.name])
    assert set(importance.SELECTIONS) == set(importance.VARIANTS) == {"paper", "released"}
    assert set(mu.methods.manu.BATCH_SIZES) == {"paper", "released"}


def test_the_old_function_names_warn_and_give_the_same_numbers():
    site = NeuronSite("language", 0, "made.up.down_proj", 2, ())
    stats = NeuronStats(site)
    stats.add(torch.tensor([[1.0, -3.0], [3.0, 0.0], [5.0, 3.0]], dtype=torch.float64))
    with pytest.warns(FutureWarning, match="released_importance"):
        old = mu.neurons.official_importance(stats)
    new = importance.released_importance(stats)
    assert all(torch.equal(old[m], new[m]) for m in new)
    with pytest.warns(FutureWarning, match="released_score"):
        assert torch.equal(mu.neurons.official_score(new, new), importance.released_score(new, new))
    ce, ref_ce = torch.tensor(1.5), torch.tensor(1.0)
    with pytest.warns(FutureWarning, match="npo_loss_released"):
        assert mu.methods.npo_loss_mllmu(ce, ref_ce).item() == losses.npo_loss_released(ce, ref_ce).item()


def test_an_unknown_spelling_is_still_refused():
    for make in (lambda: mu.methods.MANUConfig(variant="mllmu"), lambda: mu.methods.NPOConfig(variant="official"),
                 lambda: mu.methods.make_config("mip_editor", variant="official")):
        with pytest.raises(ValueError, match="variant must be one of"):
            make()


def test_only_the_exercises_checkers_are_named_check():
    """``check_*`` is the prefix of the exercises' checkers (``mu.checks``); the library's argument checks are
    ``require_*`` or live in :mod:`mini_unlearn.validate`."""
    package = Path(mu.__file__).parent
    named = [f"{path.relative_to(package)}:{line}" for path in sorted(package.rglob("*.py"))
             if "course" not in path.relative_to(package).parts
             for line in re.findall(r"^\s*def (check_\w+)", path.read_text(), re.MULTILINE)]
    assert not named, f"library functions named like an exercise checker: {named}"
