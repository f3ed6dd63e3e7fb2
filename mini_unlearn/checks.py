"""Exercise checkers: compare a learner's function with the package's on small seeded cases.

Every chapter's exercise ends with ``mu.checks.check_<name>(your_function)``. A checker runs both
functions on a few fixed cases and either prints one success line or raises ``AssertionError``
saying which case failed, what was expected and what came back (exactly, or within a tolerance
with the largest difference for numbers). It never reports timings or memory addresses, so its
output is the same on every run.
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable, Sequence

from . import bench as _bench

Case = tuple[str, tuple]  # (a description, the positional arguments)


def _max_difference(expected: Any, got: Any) -> float | None:
    """Largest absolute difference between two numbers / sequences of numbers, or None if not numeric."""
    try:
        import numpy as np
        e = np.asarray(getattr(expected, "detach", lambda: expected)(), dtype=float)
        g = np.asarray(getattr(got, "detach", lambda: got)(), dtype=float)
    except (TypeError, ValueError):
        return None
    if e.shape != g.shape:
        raise AssertionError(f"expected an output of shape {tuple(e.shape)}, got shape {tuple(g.shape)}")
    return float(np.max(np.abs(e - g))) if e.size else 0.0


def compare(name: str, learner: Callable, reference: Callable, cases: Sequence[Case], *,
            atol: float | None = None) -> None:
    """Run ``learner`` and ``reference`` on every case; raise AssertionError at the first difference.

    ``atol=None`` asks for exact equality; a number compares numerically within that tolerance.
    """
    for description, args in cases:
        expected = reference(*args)
        try:
            got = learner(*args)
        except NotImplementedError:
            raise AssertionError(f"{name} is not implemented yet (it raised NotImplementedError)") from None
        if atol is None:
            if got != expected:
                raise AssertionError(f"{name} differs on {description}:\n  expected {expected!r}\n  got      {got!r}")
            continue
        difference = _max_difference(expected, got)
        if difference is None or math.isnan(difference) or difference > atol:
            raise AssertionError(f"{name} differs on {description}: max |difference| = {difference} "
                                 f"(tolerance {atol})\n  expected {expected!r}\n  got      {got!r}")
    print(f"✓ {name} matches mini_unlearn on {len(cases)} cases.")


def _twin_cases(seed: int = 11) -> list[Case]:
    """Image+text MCQ and cloze questions of a small benchmark, each with its person's name."""
    small = _bench.make_benchmark(n_profiles=4, seed=seed, n_utility=1)
    cases = []
    for profile in small.profiles[:2]:
        for question in small.questions[profile.id]:
            if question.modality == _bench.IMAGE_TEXT and question.task in ("mcq", "cloze"):
                cases.append((f"{question.question!r} for {profile.name}", (question.question, profile.name)))
    return cases


def check_text_only_twin(fn: Callable[[str, str], str]) -> None:
    """Chapter 01: ``fn(question, name)`` turns an image+text question into its text-only twin."""
    compare("text_only_twin", fn, _bench.text_only_twin, _twin_cases())


def _label_cases() -> list[Case]:
    """Left-padded rows ``[pad … | prompt | answer]`` with pad id 0, as LlavaProcessor pads them."""
    import torch
    generator = torch.Generator().manual_seed(5)
    cases = []
    for pads, prompts, answers in (([0], [3], [2]), ([2, 0, 1], [3, 4, 2], [1, 2, 4]), ([3, 0], [2, 6], [1, 3])):
        width = max(p + q + a for p, q, a in zip(pads, prompts, answers))
        rows = []
        for p, q, a in zip(pads, prompts, answers):
            p += width - (p + q + a)
            rows.append([0] * p + torch.randint(1, 50, (q + a,), generator=generator).tolist())
        cases.append((f"{len(rows)} rows, prompt lengths {prompts}, answer lengths {answers}",
                      (torch.tensor(rows), torch.tensor(prompts), 0)))
    return cases


def check_answer_only_labels(fn: Callable) -> None:
    """Chapter 02: ``fn(input_ids, prompt_lengths, pad_token_id)`` → labels with -100 except on answers."""
    from .models.train_data import answer_only_labels

    def as_list(f):
        return lambda *args: f(*args).tolist()

    compare("answer_only_labels", as_list(fn), as_list(answer_only_labels), _label_cases())


def _log_likelihood_cases() -> list[Case]:
    """Random logits and tokens; answers of different lengths, the longest filling all but one position."""
    import torch
    generator = torch.Generator().manual_seed(3)
    cases = []
    for batch, length, vocab, answers in ((1, 4, 7, [1]), (3, 6, 11, [1, 3, 5]), (2, 9, 5, [2, 8])):
        logits = torch.randn(batch, length, vocab, generator=generator) * 3
        input_ids = torch.randint(0, vocab, (batch, length), generator=generator)
        cases.append((f"{batch} rows of {length} tokens, answer lengths {answers}",
                      (logits, input_ids, torch.tensor(answers))))
    return cases


def check_answer_log_likelihood(fn: Callable) -> None:
    """Chapter 03: ``fn(logits, input_ids, answer_lengths)`` → log p(answer | prompt) per row."""
    from .evaluation import answer_log_likelihood

    compare("answer_log_likelihood", fn, answer_log_likelihood, _log_likelihood_cases(), atol=1e-4)


def _npo_cases() -> list[Case]:
    """Per-sequence log-likelihoods under the model and the reference; equal, far below, above; several β."""
    import torch
    generator = torch.Generator().manual_seed(7)
    log_p = -torch.rand(5, generator=generator) * 20
    cases = [("model equal to the reference, beta=0.4", (log_p, log_p.clone(), 0.4))]
    for beta in (0.4, 0.1, 2.0):
        ref = -torch.rand(5, generator=generator) * 20
        cases.append((f"5 random sequences, beta={beta}", (log_p, ref, beta)))
    cases.append(("the model already far below the reference, beta=0.4", (log_p - 80.0, log_p, 0.4)))
    return cases


def check_npo_loss(fn: Callable) -> None:
    """Chapter 04: ``fn(log_p, ref_log_p, beta)`` → the NPO loss −(2/β)·mean log σ(−β(log_p − ref_log_p))."""
    from .methods.losses import npo_loss

    def as_float(f):
        return lambda *args: float(f(*args))

    compare("npo_loss", as_float(fn), as_float(npo_loss), _npo_cases(), atol=1e-5)


def _rms_cases() -> list[Case]:
    """Per-sample activations of the two views: random, one view silent, identical views."""
    import torch
    generator = torch.Generator().manual_seed(13)
    cases = []
    for samples, neurons in ((4, 3), (9, 6), (2, 5)):
        multi = torch.randn(samples, neurons, generator=generator)
        text = torch.randn(samples, neurons, generator=generator) * 0.5
        cases.append((f"{samples} samples x {neurons} neurons, eps=1e-6", (multi, text, 1e-6)))
    multi, text = torch.randn(7, 4, generator=generator), torch.randn(6, 4, generator=generator)
    cases.append(("7 multimodal samples against 6 text-only ones (per sample, not raw sums), eps=1e-6",
                  (multi, text, 1e-6)))
    multi = torch.randn(5, 4, generator=generator)
    cases.append(("a silent text-only view (a vision neuron), eps=1e-6", (multi, torch.zeros(5, 4), 1e-6)))
    cases.append(("identical views, eps=0.01", (multi, multi.clone(), 0.01)))
    return cases


def check_importance_rms(fn: Callable) -> None:
    """Chapter 05: ``fn(z_multi, z_text, eps)`` → MANU's I_rms per neuron, from stored activations."""
    from .models.anatomy import NeuronSite
    from .neurons.activations import NeuronStats
    from .neurons.importance import importance_rms

    def reference(z_multi, z_text, eps):
        site = NeuronSite("language", 0, "exercise", z_multi.shape[1], ())
        stats = [NeuronStats(site), NeuronStats(site)]
        stats[0].add(z_multi)
        stats[1].add(z_text)
        return importance_rms(*stats, eps=eps)

    compare("importance_rms", fn, reference, _rms_cases(), atol=1e-6)


def _saliency_cases() -> list[Case]:
    """Squared-gradient dictionaries of two weight tensors: random, with exact zeros, several thresholds."""
    import torch
    generator = torch.Generator().manual_seed(17)

    def saliency(scale):
        return {"fc1.weight": torch.rand(4, 3, generator=generator) * scale, "fc1.bias": torch.rand(4, generator=generator) * scale}
    cases = []
    for threshold in (1.0, 2.0, 0.5):
        cases.append((f"random saliencies, threshold={threshold}, eps=1e-15", (saliency(1.0), saliency(1.0), threshold, 1e-15)))
    forget, preserve = saliency(1.0), saliency(1.0)
    forget["fc1.bias"][:2] = 0.0
    preserve["fc1.bias"][1:3] = 0.0
    cases.append(("zeros in both (0/0 is decided by eps), threshold=1.0, eps=1e-15", (forget, preserve, 1.0, 1e-15)))
    cases.append(("tiny saliencies against a large eps, threshold=1.0, eps=0.1", (saliency(1e-3), saliency(1e-2), 1.0, 0.1)))
    return cases


def check_saliency_mask(fn: Callable) -> None:
    """Chapter 06: ``fn(forget, preserve, threshold, eps)`` → ``{name: bool mask}``, salient where
    ``(F_f + eps) / (F_p + eps) >= threshold``."""
    import torch

    from .neurons.saliency import saliency_mask

    def flat(f):
        def run(forget, preserve, threshold, eps):
            masks = f(forget, preserve, threshold, eps)
            if not isinstance(masks, dict) or set(masks) != set(forget):
                raise AssertionError(f"saliency_mask must return a dict with one mask per weight {sorted(forget)}; "
                                     f"got {type(masks).__name__} {sorted(masks) if isinstance(masks, dict) else ''}")
            if any(torch.as_tensor(m).dtype != torch.bool for m in masks.values()):
                raise AssertionError("each mask must be a boolean tensor (True = salient)")
            return torch.cat([torch.as_tensor(masks[name]).flatten().float() for name in sorted(masks)])
        return run

    compare("saliency_mask", flat(fn), flat(saliency_mask), _saliency_cases(), atol=0)


def _ig_cases() -> list[Case]:
    """Functions of an activation vector with known shapes: linear, quadratic, a small tanh MLP; several m."""
    import torch
    generator = torch.Generator().manual_seed(19)
    w = torch.randn(5, generator=generator, dtype=torch.float64)
    w1 = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    w2 = torch.randn(7, generator=generator, dtype=torch.float64)
    a = torch.randn(5, generator=generator, dtype=torch.float64)
    linear = lambda x: x @ w
    quadratic = lambda x: (x @ w) ** 2
    mlp = lambda x: torch.tanh(x @ w1) @ w2
    return [("f(x) = w·x, m=4", (linear, a, 4)), ("f(x) = (w·x)², m=4", (quadratic, a, 4)),
            ("f(x) = (w·x)², m=50", (quadratic, a, 50)), ("a tanh MLP, m=1", (mlp, a, 1)),
            ("a tanh MLP, m=16", (mlp, a, 16))]


def check_integrated_gradients(fn: Callable) -> None:
    """Chapter 07: ``fn(f, a, m)`` → per-coordinate integrated gradients of ``f`` at ``a`` from 0, with the right
    Riemann sum ``a · (1/m) Σ_{k=1..m} ∇f(k/m · a)``."""
    from .neurons.paths import integrated_gradients
    compare("integrated_gradients", fn, lambda f, a, m: integrated_gradients(f, a, m), _ig_cases(), atol=1e-8)


def _rmisu_cases() -> list[Case]:
    """Hidden states of forget and retain batches (and the input model's), several λ and γ."""
    import torch
    generator = torch.Generator().manual_seed(23)
    cases = []
    for batch, tokens, hidden, lam, gamma in ((2, 3, 4, 5.0, 1.0), (1, 5, 8, 1.0, 0.0), (3, 2, 6, 2.5, 10.0)):
        h_f = torch.randn(batch, tokens, hidden, generator=generator)
        h_f0 = h_f + 0.1 * torch.randn(batch, tokens, hidden, generator=generator)
        h_r = torch.randn(batch, tokens, hidden, generator=generator)
        h_r0 = h_r + 0.3 * torch.randn(batch, tokens, hidden, generator=generator)
        u = torch.rand(hidden, generator=generator)
        u = u / u.norm()
        cases.append((f"{batch}x{tokens}x{hidden} hidden states, lam={lam}, gamma={gamma}",
                       (h_f, h_f0, h_r, h_r0, u, lam, gamma)))
    return cases


def check_rmisu_loss(fn: Callable) -> None:
    """Chapter 08: ``fn(h_forget, h_forget_frozen, h_retain, h_retain_frozen, u, lam, gamma)`` → RMisU's
    representation loss ``mean‖h_f − λ‖h_f^frozen‖u‖² + γ·mean‖h_r − h_r^frozen‖²`` (means over every entry)."""
    from .methods.rmisu import rmisu_loss

    def as_float(f):
        return lambda *args: float(f(*args))

    compare("rmisu_loss", as_float(fn), as_float(rmisu_loss), _rmisu_cases(), atol=1e-5)


def _turn_cases() -> list[Case]:
    """A question with and without the portrait, in three families' chat templates (tiny processors)."""
    from .models.families import FAMILIES
    small = _bench.make_benchmark(n_profiles=2, seed=11, n_utility=1)
    cases = []
    for name in ("llava", "qwen2_5_vl", "idefics3"):
        family = FAMILIES[name]
        processor = family.build_processor(family.tiny_tokenizer(small, vocab_size=300))
        for with_image in (True, False):
            cases.append((f"{name}, {'with' if with_image else 'without'} the portrait",
                          (processor, "Where was Ann Lee born?", with_image, "Ann Lee was born in Dunmere.")))
    return cases


def check_answer_turn(fn: Callable) -> None:
    """Chapter 11: ``fn(processor, text, with_image, answer)`` → the answer turn: what the processor's chat
    template writes after its generation prompt when the conversation goes on with ``answer`` (the
    template's closing tokens included)."""
    from .models.prompts import render_turns
    compare("answer_turn", fn, lambda *args: render_turns(*args)[1], _turn_cases())


def _min_k_cases() -> list[Case]:
    """Answers' token log-probabilities of several lengths, and fractions k where ⌈k·n⌉ ≠ ⌊k·n⌋."""
    import numpy as np
    rng = np.random.default_rng(29)
    cases = []
    for n, k in ((10, 0.2), (7, 0.2), (5, 0.5), (3, 0.1), (12, 1.0), (1, 0.2)):
        log_probs = -rng.exponential(1.5, size=n)
        cases.append((f"{n} tokens, k={k}", (log_probs, k)))
    return cases


def check_min_k_score(fn: Callable) -> None:
    """Chapter 09: ``fn(log_probs, k)`` → Min-K%: the mean of the lowest ``⌈k·n⌉`` of the ``n`` token
    log-probabilities (at least one token)."""
    from .attacks.membership import lowest_mean
    compare("min_k_score", lambda lp, k: float(fn(lp, k)), lowest_mean, _min_k_cases(), atol=1e-9)


def _truth_cases() -> list[Case]:
    """Four options' mean log-likelihoods, the right one at each index in turn."""
    import torch
    generator = torch.Generator().manual_seed(31)
    cases = []
    for correct in (0, 1, 2, 3):
        scores = -torch.rand(4, generator=generator, dtype=torch.float64) * 4
        cases.append((f"correct option {'ABCD'[correct]}", (scores, correct)))
    cases.append(("a model sure of the right option", (torch.tensor([-0.01, -6.0, -5.0, -7.0], dtype=torch.float64), 0)))
    return cases


def check_truth_ratio(fn: Callable) -> None:
    """Chapter 09: ``fn(log_likelihoods, correct)`` → TOFU's truth ratio: the mean over the wrong options of
    ``exp(log p̄(wrong) − log p̄(correct))``."""
    from .attacks.forget_quality import truth_ratio
    compare("truth_ratio", lambda ll, c: float(fn(ll, c)), truth_ratio, _truth_cases(), atol=1e-9)


def _rounded_or_none(value) -> float | None:
    """A float rounded to 12 decimals, or None for NaN: so that "no answer" compares equal to itself."""
    value = float(value)
    return None if math.isnan(value) else round(value, 12)


def _gap_cases() -> list[Case]:
    return [("half of the gap closed", (0.5, 1.0, 0.0)),
            ("all of it, to a never-seen score of 0.25", (0.25, 1.0, 0.25)),
            ("nothing changed", (0.9, 0.9, 0.2)),
            ("past the never-seen score (over-unlearning)", (0.0, 1.0, 0.25)),
            ("a metric that rises when forgetting works", (0.6, 0.2, 0.8)),
            ("anchors 0.02 apart: the metric does not separate them", (0.3, 0.3, 0.28))]


def check_gap_closed(fn: Callable) -> None:
    """Chapter 10: ``fn(value, vanilla, never_seen)`` → the share of the vanilla → never-seen gap closed,
    NaN when the two anchors are less than 0.05 apart."""
    from .attacks.auditing import gap_closed
    compare("gap_closed", lambda *a: _rounded_or_none(fn(*a)), lambda *a: _rounded_or_none(gap_closed(*a)),
            _gap_cases())


def _choose_cases() -> list[Case]:
    nan = float("nan")

    def rows(*triples):
        return ([{"closure": c, "closure_mean": m, "worst_drop": d} for c, m, d in triples],)

    return [("the most forgetting loses 30 points", rows((1.0, 1.0, 30.0), (0.4, 0.5, 1.0), (0.7, 0.8, 4.0))),
            ("a tie on the weakest task: the larger mean", rows((0.0, 0.1, 1.0), (0.0, 0.6, 4.0), (0.0, 0.3, 0.0))),
            ("a tie on both: fewer points lost", rows((0.7, 0.8, 4.0), (0.7, 0.8, 2.0))),
            ("no setting keeps the retain people", rows((1.0, 1.0, 30.0), (0.9, 0.9, 8.0))),
            ("a setting whose closure is undefined", rows((nan, nan, 0.0), (0.1, 0.2, 0.0))),
            ("exactly 5 points lost is kept", rows((0.2, 0.3, 0.0), (0.8, 0.9, 5.0)))]


def check_choose(fn: Callable) -> None:
    """Chapter 10: ``fn(rows)`` → the index of the setting the tuning rule chooses (each row has
    ``closure``, ``closure_mean`` and ``worst_drop``)."""
    from .results.tuning import choose
    compare("choose", lambda rows: int(fn(rows)), choose, _choose_cases())


def _row_cases() -> list[Case]:
    """Batches that do and do not divide evenly among the processes, each process in turn."""
    return [(f"{n} rows, process {r} of {processes}", (n, processes, r))
            for n, processes in ((8, 2), (8, 3), (7, 4), (5, 5), (64, 3)) for r in range(processes)]


def check_row_slice(fn: Callable) -> None:
    """Chapter 11b: ``fn(n_rows, processes, rank)`` → the ``slice`` of rows process ``rank`` computes:
    contiguous, every row exactly once over the processes, shares at most one row apart."""
    from .distributed import row_slice

    def covered(n, processes):
        rows = [i for r in range(processes) for i in range(n)[fn(n, processes, r)]]
        if rows != list(range(n)):
            raise AssertionError(f"row_slice over {processes} processes covers rows {rows} of a {n}-row batch: "
                                 "each row must be computed by exactly one process, in order")
    for n, processes in ((8, 3), (7, 4), (64, 3)):
        try:
            covered(n, processes)
        except NotImplementedError:
            raise AssertionError("row_slice is not implemented yet (it raised NotImplementedError)") from None
    compare("row_slice", fn, row_slice, _row_cases())


def _process_loss_cases() -> list[Case]:
    """Per-process sums of token losses and the whole batch's token count (uneven shares)."""
    return [("2 processes, 30 tokens in all", (12.5, 30, 2)), ("3 processes, 7 tokens in all", (4.0, 7, 3)),
            ("1 process", (9.0, 4, 1)), ("4 processes, 100 tokens", (0.75, 100, 4))]


def check_process_loss(fn: Callable) -> None:
    """Chapter 11b: ``fn(total, count_all, processes)`` → the loss one process backpropagates so that
    DDP's average over the processes is the whole batch's mean (``total``: this process's sum)."""
    from .distributed import process_loss
    shares = ((3.0, 4), (9.5, 11), (0.5, 1))          # three processes' (sum, count): uneven counts
    count_all, mean = sum(c for _, c in shares), sum(t for t, _ in shares) / sum(c for _, c in shares)
    try:
        averaged = sum(float(fn(t, count_all, len(shares))) for t, _ in shares) / len(shares)
    except NotImplementedError:
        raise AssertionError("process_loss is not implemented yet (it raised NotImplementedError)") from None
    if not math.isclose(averaged, mean, rel_tol=1e-12):
        raise AssertionError(f"DDP averages the processes' losses (gradients): with yours that average is "
                             f"{averaged:.6g}, the whole batch's mean is {mean:.6g}. Each process must divide by "
                             "the whole batch's count, and the average divides by the processes again")
    compare("process_loss", lambda *a: float(fn(*a)), process_loss, _process_loss_cases(), atol=1e-12)


__all__ = ["check_answer_log_likelihood", "check_answer_only_labels", "check_answer_turn", "check_choose", "check_gap_closed", "check_importance_rms", "check_integrated_gradients",
           "check_min_k_score", "check_npo_loss", "check_process_loss", "check_row_slice", "check_rmisu_loss", "check_saliency_mask", "check_text_only_twin",
           "check_truth_ratio", "compare"]
