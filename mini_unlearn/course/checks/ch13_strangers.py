"""Chapter 13 · Beyond the papers: make them strangers — the exercise's checker."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips

__all__ = ["check_answer_match_loss", "check_matched_tokens"]


# -- the answer term (exercise 13.1) ---------------------------------------------------------------------

def _answer_cases() -> list[Case]:
    """Logits at a few aligned positions: random, the model already answering like the stranger, a confident
    stranger, one position, a wide vocabulary."""
    import torch
    generator = torch.Generator().manual_seed(13)

    def logits(positions, vocabulary, scale=1.0):
        return torch.randn(positions, vocabulary, generator=generator) * scale

    same = logits(4, 6)
    return [("4 positions, a vocabulary of 6", (logits(4, 6), logits(4, 6))),
            ("the model already answers like the stranger (the floor)", (same, same.clone())),
            ("a confident stranger, an unsure model", (logits(3, 5, 0.3), logits(3, 5, 6.0))),
            ("one position", (logits(1, 8), logits(1, 8))),
            ("10 positions, a vocabulary of 50", (logits(10, 50, 2.0), logits(10, 50, 2.0)))]


def _reversed(logits, stranger_logits):
    import torch
    p, q = torch.log_softmax(logits.float(), -1), torch.log_softmax(stranger_logits.float(), -1)
    return float((p.exp() * (p - q)).sum(-1).mean())


def _vocabulary_mean(logits, stranger_logits):
    import torch
    p, q = torch.log_softmax(logits.float(), -1), torch.log_softmax(stranger_logits.float(), -1)
    return float((q.exp() * (q - p)).mean())


def _cross_entropy(logits, stranger_logits):
    import torch
    p, q = torch.log_softmax(logits.float(), -1), torch.log_softmax(stranger_logits.float(), -1)
    return float(-(q.exp() * p).sum(-1).mean())


@slips(Slip(_reversed, "the KL is the wrong way round: the stranger's distribution p₀ is the target, so the sum is "
                       "Σ p₀ · (log p₀ − log p_θ), weighted by the stranger's probabilities"),
       Slip(_vocabulary_mean, "the KL sums over the vocabulary at each position, then averages over the positions; "
                              "this averages over the vocabulary too"),
       Slip(_cross_entropy, "this is the cross-entropy −Σ p₀ log p_θ: it lacks the stranger's own entropy "
                            "(+Σ p₀ log p₀), so it is not 0 when the model answers exactly like the stranger"))
def check_answer_match_loss(fn: Callable) -> None:
    """Chapter 13: ``fn(logits, stranger_logits)`` → ``KL(p₀ ‖ p_θ)``: at each aligned position (a row of the two
    ``[positions, vocabulary]`` tensors) the sum over the vocabulary of p₀·(log p₀ − log p_θ), p₀ the softmax
    of the stranger's logits and p_θ of the model's; then the mean over the positions."""
    from ...methods.stranger import answer_match_loss

    compare("answer_match_loss", fn, answer_match_loss, _answer_cases(), atol=1e-5,
            slips=check_answer_match_loss.slips, adapt=as_float)


# -- where the two sequences line up (exercise 13.2) ------------------------------------------------------

def _matched_cases() -> list[Case]:
    """Token ids of a forget sequence and its stranger twin: a name in the question and the answer, names of
    different lengths, a portrait question naming the face, identical sequences, a name at the very end."""
    return [("a name in the question and the answer, by name",
             ([1, 2, 8, 8, 3, 4, 8, 8, 5, 6], [1, 2, 9, 3, 4, 9, 5, 6], 5, 4, False)),
            ("the same, by portrait (the answer's first name piece counts)",
             ([1, 2, 8, 8, 3, 4, 8, 8, 5, 6], [1, 2, 9, 3, 4, 9, 5, 6], 5, 4, True)),
            ("a longer stranger name", ([7, 1, 8, 3, 4, 8, 5], [7, 1, 9, 9, 9, 3, 4, 9, 9, 9, 5], 4, 6, False)),
            ("a portrait question: the face's name is the answer",
             ([7, 7, 7, 2, 3, 4, 8, 8, 6], [7, 7, 7, 2, 3, 4, 9, 9, 9, 6], 4, 4, True)),
            ("identical sequences (a portrait question about a fact)",
             ([7, 7, 2, 3, 4, 5, 6], [7, 7, 2, 3, 4, 5, 6], 3, 3, True)),
            ("the name ends the answer", ([1, 8, 2, 3, 8], [1, 9, 9, 2, 3, 9, 9], 3, 4, False))]


def _every_name_piece(tokens, other, answer, other_answer, *, portrait):
    import difflib

    from ...methods.stranger import matched_tokens
    states, predictions = matched_tokens(tokens, other, answer, other_answer, portrait=portrait)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, tokens, other, autojunk=False).get_opcodes():
        if tag != "equal" and i2 > i1 and j2 > j1:      # every piece of the name, paired in order
            states += [(i, min(j1 + i - i1, j2 - 1)) for i in range(i1, i2 - 1)]
    return sorted(states), predictions


def _copies_counted(tokens, other, answer, other_answer, *, portrait):
    from ...methods.stranger import matched_tokens
    return matched_tokens(tokens, other, answer, other_answer, portrait=True)


def _positions_not_predictions(tokens, other, answer, other_answer, *, portrait):
    from ...methods.stranger import matched_tokens
    states, predictions = matched_tokens(tokens, other, answer, other_answer, portrait=portrait)
    return states, [(i + 1, j + 1) for i, j in predictions]


def _adapt_matched(f: Callable) -> Callable:
    def run(tokens, other, answer, other_answer, portrait):
        states, predictions = f(tokens, other, answer, other_answer, portrait=portrait)
        return [list(map(tuple, states)), list(map(tuple, predictions))]
    return run


@slips(Slip(_every_name_piece, "only the LAST piece of a differing stretch (the name) has its hidden state "
                               "compared; two names of different lengths have no other natural pairing"),
       Slip(_copies_counted, "by name (portrait=False) the first piece of a name in the answer is a copy of the "
                             "question's: its prediction is compared only on a portrait question"),
       Slip(_positions_not_predictions, "a prediction is made one position BEFORE the token it predicts: pair "
                                        "(i − 1, j − 1) for answer tokens i and j"))
def check_matched_tokens(fn: Callable) -> None:
    """Chapter 13: ``fn(tokens, other, answer, other_answer, portrait=...)`` → ``(states, predictions)``, lists of
    index pairs from a ``difflib.SequenceMatcher(None, tokens, other, autojunk=False)`` diff: ``states`` every
    equal pair and the last pair of each differing stretch; ``predictions`` ``(i − 1, j − 1)`` for each equal
    pair inside both answers, and on a portrait question the first pair of a differing stretch inside both."""
    from ...methods.stranger import matched_tokens

    compare("matched_tokens", _adapt_matched(fn), _adapt_matched(matched_tokens), _matched_cases(),
            slips=[Slip(_adapt_matched(slip.fn), slip.says) for slip in check_matched_tokens.slips])
