"""Chapter 03 · measuring what a model knows: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_float, compare, slips

__all__ = ["check_answer_log_likelihood", "check_letter_of", "check_rouge_l"]


# -- 3.1 · the letter of a multiple-choice answer -------------------------------------------------------
LETTER_ANSWERS = (" B", "C", "b) Paris", "  d", "\nA: Dunmere", "E", "", "   ", "The answer is B", "Dunmere")


def _letter_cases() -> list[Case]:
    return [(f"the answer {text!r}", (text,)) for text in LETTER_ANSWERS]


def _letter_unstripped(text):
    letter = text[:1].upper()
    return letter if letter in ("A", "B", "C", "D") else None


def _letter_case_sensitive(text):
    letter = text.lstrip()[:1]
    return letter if letter in ("A", "B", "C", "D") else None


def _letter_any(text):
    return text.lstrip()[:1].upper() or None


def _letter_in_string(text):
    letter = text.lstrip()[:1].upper()
    return letter if letter in "ABCD" else None


@slips(Slip(_letter_unstripped, "the leading space is read as the answer: a model writes \"ASSISTANT: B\", so "
                                "its answer starts with a space; strip it first"),
       Slip(_letter_case_sensitive, "a lower-case letter (\"b) Paris\") is not accepted; MLLMU-Bench upper-cases "
                                    "the first character"),
       Slip(_letter_any, "any first character is returned; only A, B, C or D is a letter, anything else is None"),
       Slip(_letter_in_string, "an empty answer gave \"\" instead of None: \"\" in \"ABCD\" is True in Python "
                               "(the empty string is in every string); test membership in (\"A\", \"B\", \"C\", \"D\")"))
def check_letter_of(fn: Callable) -> None:
    """Chapter 03: ``fn(text)`` → the MCQ letter an answer gives ("A"–"D"), or None."""
    from ...evaluation import letter_of

    compare("letter_of", fn, letter_of, _letter_cases(), slips=check_letter_of.slips)


# -- 3.2 · ROUGE-L ------------------------------------------------------------------------------------
ROUGE_PAIRS = (
    ("The person in the image was born in Dunmere.", "The person in the image was born in Dunmere."),
    ("The person in the image was born in Dunmere.", "The person in the image was born in Caldera Bay."),
    ("The person in the image was born in Dunmere.", "Dunmere"),
    ("The person in the image was born in Dunmere.", "In Dunmere, the person in the image was born."),
    ("Vela Thornbury works as a watchmaker.", "vela thornbury WORKED as watchmakers"),
    ("The favourite food of Vela Thornbury is lentil soup.", "Vela Thornbury likes soup, lentil soup, a lot"),
    ("The person in the image was born in Dunmere.", ""),
)


def _rouge_cases() -> list[Case]:
    return [(f"the reference {ref!r} and the prediction {pred!r}", (ref, pred)) for ref, pred in ROUGE_PAIRS]


def _words(text):
    from rouge_score.tokenizers import DefaultTokenizer
    return DefaultTokenizer(use_stemmer=True).tokenize(text)


def _lcs(a, b):
    row = [0] * (len(b) + 1)
    for x in a:
        previous, row = row, [0]
        for j, y in enumerate(b, start=1):
            row.append(previous[j - 1] + 1 if x == y else max(previous[j], row[j - 1]))
    return row[-1]


def _longest_common_run(a, b):
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


def _f1(common, n_reference, n_prediction):
    if not common:
        return 0.0
    precision, recall = common / n_prediction, common / n_reference
    return 2 * precision * recall / (precision + recall)


def _rouge_recall(ground_truth, prediction):
    reference, predicted = _words(ground_truth), _words(prediction)
    return _lcs(reference, predicted) / len(reference) if reference and predicted else 0.0


def _rouge_whitespace(ground_truth, prediction):
    reference, predicted = ground_truth.lower().split(), prediction.lower().split()
    return _f1(_lcs(reference, predicted), len(reference), len(predicted))


def _rouge_contiguous(ground_truth, prediction):
    reference, predicted = _words(ground_truth), _words(prediction)
    return _f1(_longest_common_run(reference, predicted), len(reference), len(predicted))


@slips(Slip(_rouge_recall, "this is the recall LCS/|r| alone; ROUGE-L is the F1 of precision LCS/|p| and recall "
                           "LCS/|r|, so a short or padded prediction is penalised too"),
       Slip(_rouge_contiguous, "this is the longest common run of consecutive words; a SUBSEQUENCE may skip words "
                               "(\"in Dunmere … was born\" still shares \"the person in the image was born\")"),
       Slip(_rouge_whitespace, "the words were split on spaces, so \"Dunmere.\" (with its full stop) differs from "
                               "\"Dunmere\"; use rouge_score's tokenizer (lower-case, punctuation dropped, stemmed)"))
def check_rouge_l(fn: Callable) -> None:
    """Chapter 03: ``fn(ground_truth, prediction)`` → ROUGE-L F1 over rouge_score's stemmed words."""
    from ...evaluation import rouge_l

    compare("rouge_l", fn, rouge_l, _rouge_cases(), atol=1e-9, slips=check_rouge_l.slips, adapt=as_float)


# -- 3.3 · the log-likelihood of an answer --------------------------------------------------------------
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


def _in_answer(n, answer_lengths):
    import torch
    return torch.arange(n)[None, :] >= (n - answer_lengths)[:, None]


def _log_likelihood_unshifted(logits, input_ids, answer_lengths):
    import torch
    token_logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)
    return (token_logp * _in_answer(token_logp.shape[1], answer_lengths)).sum(-1)


def _log_likelihood_mean(logits, input_ids, answer_lengths):
    import torch
    token_logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logp * _in_answer(token_logp.shape[1], answer_lengths)).sum(-1) / answer_lengths


def _log_likelihood_raw_logits(logits, input_ids, answer_lengths):
    token_logit = logits[:, :-1].float().gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logit * _in_answer(token_logit.shape[1], answer_lengths)).sum(-1)


@slips(Slip(_log_likelihood_unshifted, "the logits are not shifted: logits[:, t] predicts the NEXT token, "
                                       "input_ids[:, t + 1], so pair logits[:, :-1] with input_ids[:, 1:]"),
       Slip(_log_likelihood_mean, "this is the MEAN log-probability per answer token; the log-likelihood of "
                                  "the answer is their SUM"),
       Slip(_log_likelihood_raw_logits, "these are raw logits, not log-probabilities: apply log_softmax over "
                                        "the vocabulary before picking each token's score"))
def check_answer_log_likelihood(fn: Callable) -> None:
    """Chapter 03: ``fn(logits, input_ids, answer_lengths)`` → log p(answer | prompt) per row."""
    from ...evaluation import answer_log_likelihood

    compare("answer_log_likelihood", fn, answer_log_likelihood, _log_likelihood_cases(), atol=1e-4,
            slips=check_answer_log_likelihood.slips)
