"""The logit lens (nostalgebraist, 2020): does an intermediate layer still put the forgotten answer high?
(chapter 09)

Take the hidden state of layer ℓ at the position that predicts the answer's first token, apply the
model's own final norm and output head — as if the network stopped at ℓ — and look where the answer's
first token ranks among the vocabulary. A model that unlearned only its last layers (or that learned to
*suppress* the answer late) still ranks it first in the middle layers; a model that never knew it does
not rank it high anywhere.
"""
from __future__ import annotations

import pandas as pd
import torch

from .. import validate
from .readout import answer_states

TOP_K = 5


def lens_parts(model):
    """The final norm and the output head: what turns a hidden state into logits."""
    decoder = model.get_decoder()
    norm = getattr(decoder, "norm", None)
    if norm is None:
        raise ValueError(f"logit lens: {type(decoder).__name__} has no final `norm`; this architecture is not supported")
    return norm, model.get_output_embeddings()


@torch.no_grad()
def answer_ranks(vlm, questions, batch_size: int = 32) -> torch.Tensor:
    """``ranks[layer, i]``: the rank (0 = top) of question i's first answer token in layer's lens logits.

    Rows 0 … L−1 put the state after that many blocks through the final norm and the head; row L is the
    model's real output (transformers hands back the last state already normed).

    Under a multi-process launcher call it on every process: :func:`~.readout.answer_states` shares its
    batches out, and every process gets every rank.
    """
    read = answer_states(vlm, questions, batch_size)
    norm, head = lens_parts(vlm.model)
    dtype = head.weight.dtype
    device = head.weight.device
    ranks = []
    for layer_states in read.states[:-1]:
        logits = head(norm(layer_states.to(device, dtype))).float()
        wanted = logits.gather(1, read.first_token.to(device).unsqueeze(1))
        ranks.append((logits > wanted).sum(dim=1).cpu())
    return torch.stack([*ranks, read.output_rank])


def logit_lens(vlm, questions, *, k: int = TOP_K, batch_size: int = 32) -> pd.DataFrame:
    """One row per layer and modality: the share of questions whose answer's first token is in the lens's
    top ``k`` (``top_k``), and the mean reciprocal rank (``mrr``). Layer 0 is the embeddings.

    Under a multi-process launcher call it on every process: each runs its share of the batches
    (:func:`~.readout.answer_states`), and every process gets the whole frame."""
    validate.positive_int(k, "k", hint="how many top tokens count")
    questions = list(questions)
    ranks = answer_ranks(vlm, questions, batch_size)
    modality = pd.Series([q.modality for q in questions])
    rows = []
    for layer, row in enumerate(ranks):
        for name in sorted(modality.unique()):
            picked = row[torch.tensor((modality == name).to_numpy())].double()
            rows.append({"layer": layer, "modality": name, "top_k": float((picked < k).double().mean()),
                         "mrr": float((1.0 / (picked + 1)).mean())})
    return pd.DataFrame(rows)


__all__ = ["TOP_K", "answer_ranks", "lens_parts", "logit_lens"]
