"""LoRA, one way for every caller: wrap a model with peft's adapters, then take them off again.

Knowledge injection with ``lora=`` (:func:`.train.train`), the gradient methods' ``lora_rank``
(:func:`mini_unlearn.methods.loop.low_rank`) and MMUnlearner's masked adapters
(:mod:`mini_unlearn.methods.masked_lora`) all put their adapters on with :func:`add_lora` and end
with :func:`remove_lora`, so the model they hand back is the plain Hugging Face model again.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

LM_LINEAR_LAYERS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters on the language model's linear layers (MLLMU-Bench: r=16, alpha=16, dropout 0.05).

    ``target_modules``: a regular expression that a layer's full name must match, or the layers' names."""

    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    target_modules: str | Sequence[str] = LM_LINEAR_LAYERS


@contextmanager
def quiet_peft():
    """peft calls a transformers method that warns it is deprecated (FutureWarning), and imports bitsandbytes
    when it is installed (the quantization attack's library), which on a CPU with AVX512-BF16 logs at import
    that an optional kernels package is missing: keep both out of notebooks."""
    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def add_lora(model: nn.Module, settings: LoraSettings, *, also: Sequence[str] = ()) -> nn.Module:
    """``model`` wrapped by peft with a LoRA adapter (``"default"``) on the layers ``settings.target_modules``
    names: rank ``settings.r``, update scaled by ``alpha / r``, dropout ``settings.dropout`` on its input.

    Only the adapter's weights are trainable (peft starts ``B`` at 0, so the model is unchanged at
    first). ``also`` names further adapters with the same settings on the same layers, which peft
    leaves frozen. ``model`` itself is modified: pass a copy to keep it. Undo with :func:`remove_lora`."""
    with quiet_peft():
        from peft import LoraConfig, get_peft_model
        targets = settings.target_modules
        config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                            target_modules=targets if isinstance(targets, str) else list(targets))
        peft_model = get_peft_model(model, config)
        for name in also:
            peft_model.add_adapter(name, config)
    return peft_model


def remove_lora(peft_model: nn.Module, *, merge: bool = True) -> nn.Module:
    """The plain model under ``peft_model``: each adapted weight becomes ``W + (alpha / r) · B A`` (``merge``,
    peft's ``merge_and_unload``), or stays ``W`` as it is now (``merge=False``: the caller has already
    folded the update in, as :func:`mini_unlearn.methods.masked_lora.merge_masked_lora` does)."""
    with quiet_peft():
        return peft_model.merge_and_unload() if merge else peft_model.unload()


__all__ = ["LM_LINEAR_LAYERS", "LoraSettings", "add_lora", "quiet_peft", "remove_lora"]
