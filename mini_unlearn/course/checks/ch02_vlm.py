"""Chapter 02 · the vision-language model: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from .compare import Case, Slip, as_list, compare, slips

__all__ = ["check_answer_only_labels", "check_position_ids", "check_question_prompt"]


# -- 2.1 · the prompt ---------------------------------------------------------------------------------
def _prompt_cases(seed: int = 11) -> list[Case]:
    """One question of every task in both modalities, about two people of a small benchmark."""
    from ... import bench
    small = bench.make_benchmark(n_profiles=4, seed=seed, n_utility=1)
    cases = []
    for profile, fact in ((small.profiles[0], "birthplace"), (small.profiles[1], "occupation")):
        for question in small.questions[profile.id]:
            if question.fact == fact:
                cases.append((f"the {question.task} question {question.question!r} ({question.modality})", (question,)))
    return cases


def _prompt_blank_kept(question):
    from ...bench import IMAGE_TEXT
    from ...models.prompts import CLOZE_INSTRUCTION, GEN_INSTRUCTION, MCQ_INSTRUCTION
    if question.task == "mcq":
        lines = "\n".join(f"{letter}: {option}" for letter, option in question.options.items())
        text = f"{question.question}\n{lines}\n{MCQ_INSTRUCTION}"
    elif question.task == "cloze":
        text = f"{question.question}\n{CLOZE_INSTRUCTION}"
    else:
        text = f"{question.question}\n{GEN_INSTRUCTION}"
    image = "<image>\n" if question.modality == IMAGE_TEXT else ""
    return f"USER: {image}{text}\nASSISTANT:"


def _prompt_image_always(question):
    from ...models.prompts import question_text
    return f"USER: <image>\n{question_text(question)}\nASSISTANT:"


@slips(Slip(_prompt_image_always, "every prompt got the \"<image>\" line; only an image+text question shows the "
                                  "portrait, a text-only question has no image token"),
       Slip(_prompt_blank_kept, "the cloze blank is still \"__\"; MLLMU-Bench's instruction speaks of a [Blank], "
                                "so write the blank as \"[Blank]\""))
def check_question_prompt(fn: Callable) -> None:
    """Chapter 02: ``fn(question)`` → the LLaVA-style prompt ``"USER: …\\nASSISTANT:"`` of an evaluation question."""
    from ...models.prompts import question_prompt

    compare("question_prompt", fn, question_prompt, _prompt_cases(), slips=check_question_prompt.slips)


# -- 2.2 · positions that skip the left padding --------------------------------------------------------
def _position_cases() -> list[Case]:
    """Attention masks of left-padded batches: one row, rows with and without pads, a row of one token."""
    import torch

    def masks(pads, width):
        return torch.tensor([[0] * p + [1] * (width - p) for p in pads])

    return [("one row without padding", (masks([0], 5),)),
            ("2 rows, the second with 3 pads", (masks([0, 3], 7),)),
            ("4 rows with 2, 0, 5 and 1 pads", (masks([2, 0, 5, 1], 6),)),
            ("3 rows, one a single token after 7 pads", (masks([7, 4, 0], 8),))]


def _positions_plain(attention_mask):
    import torch
    return torch.arange(attention_mask.shape[1]).expand_as(attention_mask)


def _positions_unclamped(attention_mask):
    return attention_mask.long().cumsum(dim=1) - 1


def _positions_from_one(attention_mask):
    return attention_mask.long().cumsum(dim=1)


@slips(Slip(_positions_plain, "the positions count the pads: 0, 1, 2, … from the row's first column; a "
                              "left-padded row's first REAL token must be at position 0"),
       Slip(_positions_unclamped, "the pads got position -1: clamp them to 0 (their position is never read, but "
                                  "a position embedding has no row -1)"),
       Slip(_positions_from_one, "the first real token is at position 1; count from 0 (subtract 1 from the "
                                 "running count)"))
def check_position_ids(fn: Callable) -> None:
    """Chapter 02: ``fn(attention_mask)`` → positions 0, 1, 2, … from each row's first real token; 0 on the pads."""
    from ...models.train_data import position_ids

    compare("position_ids", fn, position_ids, _position_cases(), slips=check_position_ids.slips, adapt=as_list)


# -- 2.3 · score only the answer -----------------------------------------------------------------------
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


def _labels_ignoring_pads(input_ids, prompt_lengths, pad_token_id):
    import torch
    labels = input_ids.clone()
    labels[torch.arange(input_ids.shape[1])[None, :] < prompt_lengths[:, None]] = -100
    return labels


def _labels_prompt_kept(input_ids, prompt_lengths, pad_token_id):
    return input_ids.masked_fill(input_ids == pad_token_id, -100)


def _labels_one_too_many(input_ids, prompt_lengths, pad_token_id):
    import torch
    start = (input_ids == pad_token_id).sum(dim=1) + prompt_lengths
    labels = input_ids.clone()
    labels[torch.arange(input_ids.shape[1])[None, :] <= start[:, None]] = -100
    return labels


@slips(Slip(_labels_ignoring_pads, "the answer is taken to start at prompt_length, as if the rows were padded on "
                                   "the right; they are LEFT-padded, so it starts at n_pads + prompt_length"),
       Slip(_labels_prompt_kept, "only the pads became -100: the prompt tokens must be -100 too, so that "
                                 "training scores the answer alone"),
       Slip(_labels_one_too_many, "the first answer token became -100 as well (an off-by-one: <= where < "
                                  "belongs); the answer starts AT n_pads + prompt_length"))
def check_answer_only_labels(fn: Callable) -> None:
    """Chapter 02: ``fn(input_ids, prompt_lengths, pad_token_id)`` → labels with -100 except on answers."""
    from ...models.train_data import answer_only_labels

    compare("answer_only_labels", fn, answer_only_labels, _label_cases(),
            slips=check_answer_only_labels.slips, adapt=as_list)
