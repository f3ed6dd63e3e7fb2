"""The course's tokenizer, shared by every family: a byte-level BPE trained on the benchmark's own text.

A family's tiny model (:mod:`.families`) and the course's LLaVA presets (:mod:`.families.llava`) read with
it; only the special tokens differ (each family's image placeholder and markers).
"""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..bench import Benchmark
from .prompts import IMAGE_TOKEN, chat, question_text, target

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def tokenizer_corpus(bench: Benchmark) -> list[str]:
    """Every text a model of this benchmark will read or write: prompts, answers, training pairs.

    The holdout people (chapter 09) are left out: nothing of theirs is seen, not even by the tokenizer."""
    texts = []
    for person in bench.profiles + bench.utility_profiles:
        for q in bench.questions[person.id]:
            texts += [chat(question_text(q), with_image=False), target(q.answer)]
            if q.task == "mcq":   # the answer letter: " A" … " D" must each be ONE token (the first generated)
                texts.append(target(q.correct))
    for pair in bench.train_pairs() + bench.background_pairs():
        texts += [chat(pair.question, with_image=False), target(pair.answer)]
    return texts + [target(text) for text in bench.scored_texts()]


def build_tokenizer(bench: Benchmark, vocab_size: int, special_tokens: tuple[str, ...] = (IMAGE_TOKEN,),
                    named_tokens: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on the benchmark's text (decodes back to the exact string).

    ``special_tokens`` are kept whole (the image placeholder and a family's markers, :mod:`.families`);
    ``named_tokens`` become tokenizer attributes (default: ``image_token`` = ``<image>``)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, *special_tokens],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(tokenizer_corpus(bench), trainer=trainer)
    named = {"image_token": IMAGE_TOKEN} if named_tokens is None else named_tokens
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   extra_special_tokens=named, padding_side="left")
