"""Reading the language model's hidden states where it is about to answer (chapter 09).

The linear probe and the logit lens look at the same place: the residual stream of every layer at the
position that predicts the answer's **first token** — for an MCQ the letter, for a cloze question the
first piece of the blanked value. :func:`answer_states` runs each question once, teacher-forced as in
training (canonical portraits), with ``output_hidden_states=True``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import distributed
from ..evaluation.tasks import evaluating
from ..models import question_prompt, target
from ..models.prompts import expected_answer
from ..models.train_data import IGNORE_INDEX, make_batch


@dataclass(frozen=True)
class AnswerStates:
    """``states[layer, i]``: question i's hidden state after ``layer`` blocks (0 = the embeddings), at
    the position that predicts its answer's first token ``first_token[i]``; ``output_rank[i]``: that
    token's rank (0 = top) in the model's real output there.

    Like transformers, the last entry is the state the head reads: after the final norm."""

    states: torch.Tensor          # [layers + 1, questions, width], fp32, on the CPU
    first_token: torch.Tensor     # [questions]
    output_rank: torch.Tensor     # [questions]


def answer_states(vlm, questions, batch_size: int = 32) -> AnswerStates:
    """Every layer's hidden state at the position before each question's answer (see the module doc).

    The questions run sorted, image questions first, ``batch_size`` at a time (the batch where the two kinds
    meet holds both). Under a multi-process launcher, with the model whole on every process, the processes
    share these batches out and every process gets every state (:func:`~mini_unlearn.distributed.split_map`):
    call it on every process."""
    questions = list(questions)
    if not questions:
        raise ValueError("questions is empty: no hidden state to read")
    order = sorted(range(len(questions)), key=lambda i: questions[i].image is None)
    chunks = [[questions[i] for i in order[start:start + batch_size]] for start in range(0, len(order), batch_size)]
    with evaluating(vlm.model) as model:
        def one_batch(chunk):
            samples = [(question_prompt(q), target(expected_answer(q)), None if q.image is None else q.image.load())
                       for q in chunk]
            batch = {k: v.to(vlm.device) for k, v in make_batch(vlm.processor, samples).items()}
            labels = batch.pop("labels")
            output = model(**batch, output_hidden_states=True)
            scored = labels != IGNORE_INDEX
            first = scored.int().argmax(dim=1)                     # the first answer token's column
            rows = torch.arange(len(chunk), device=labels.device)
            wanted = labels[rows, first]
            logits = output.logits[rows, first - 1].float()
            return (torch.stack([h[rows, first - 1].float().cpu() for h in output.hidden_states]), wanted.cpu(),
                    (logits > logits.gather(1, wanted.unsqueeze(1))).sum(dim=1).cpu())

        found = distributed.split_map(one_batch, chunks, split=distributed.holds_whole(model))
    states, firsts, ranks = zip(*found)
    stacked, first_token, output_rank = torch.cat(states, dim=1), torch.cat(firsts), torch.cat(ranks)
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order)] = torch.arange(len(order))     # undo the modality sort: the caller's order
    return AnswerStates(stacked[:, back], first_token[back], output_rank[back])


__all__ = ["AnswerStates", "answer_states"]
