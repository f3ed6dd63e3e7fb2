"""Chapter 11 · real VLM families: the exercises' checkers."""
from __future__ import annotations

from collections.abc import Callable

from ... import bench
from .compare import Case, Slip, compare, slips

__all__ = ["check_image_tokens", "check_answer_turn"]


# ---------------------------------------------------------------------------------------------------
# Exercise 11.1 · how many tokens an image becomes

def _grid_cases() -> list[Case]:
    """``image_grid_thw`` as Qwen-VL's image processor returns it, with its merge size."""
    import torch

    def grid(*rows):
        return torch.tensor(rows, dtype=torch.long)

    return [("one 64×64 portrait in the tiny Qwen-VL (8-pixel patches, 2×2 merge)", (grid([1, 8, 8]), 2)),
            ("one 448×448 image in Qwen2.5-VL-3B (14-pixel patches, 2×2 merge)", (grid([1, 32, 32]), 2)),
            ("three images of different sizes in one batch", (grid([1, 16, 16], [1, 50, 72], [1, 4, 4]), 2)),
            ("a vision tower that merges nothing (merge 1)", (grid([1, 6, 4]), 1)),
            ("a 4-frame clip (t = 2: each temporal patch holds 2 frames) and an image", (grid([2, 8, 8], [1, 8, 8]), 2))]


def _tokens_no_merge(grid_thw, merge_size):
    return grid_thw.prod(dim=-1).tolist()


def _tokens_merge_not_squared(grid_thw, merge_size):
    return (grid_thw.prod(dim=-1) // merge_size).tolist()


def _tokens_no_frames(grid_thw, merge_size):
    return (grid_thw[:, 1] * grid_thw[:, 2] // merge_size ** 2).tolist()


def _as_counts(f: Callable) -> Callable:
    """The answer as a list of ints, whether it came as a list or a tensor."""
    def counts(grid_thw, merge_size):
        import torch
        return [int(n) for n in torch.as_tensor(f(grid_thw.clone(), merge_size)).reshape(-1)]
    return counts


@slips(Slip(_tokens_no_merge, "the merge is left out: t·h·w counts patches, and the vision tower merges every "
                              "merge × merge block of patches into ONE token, so divide by merge²"),
       Slip(_tokens_merge_not_squared, "the merge joins a merge × merge block, merge² patches, into one token: "
                                       "divide t·h·w by merge², not by merge"),
       Slip(_tokens_no_frames, "the frames t are left out: the grid is [t, h, w] and all three multiply "
                               "(an image has t = 1, a video more)"))
def check_image_tokens(fn: Callable) -> None:
    """Chapter 11: ``fn(grid_thw, merge_size)`` → for each image (a row ``[t, h, w]`` of patches), how many
    tokens its placeholder expands to: ``t·h·w / merge_size²`` (a list, or a 1-D tensor, of ints)."""
    from ...models.families import image_token_counts
    compare("image_tokens", fn, image_token_counts, _grid_cases(), slips=check_image_tokens.slips, adapt=_as_counts)


# ---------------------------------------------------------------------------------------------------
# Exercise 11.2 · the answer turn

def _turn_cases() -> list[Case]:
    """A question with and without the portrait, in three families' chat templates (tiny processors)."""
    from ...models.families import FAMILIES
    small = bench.make_benchmark(n_profiles=2, seed=11, n_utility=1)
    cases = []
    for name in ("llava", "qwen2_5_vl", "idefics3"):
        family = FAMILIES[name]
        processor = family.build_processor(family.tiny_tokenizer(small, vocab_size=300))
        for with_image in (True, False):
            cases.append((f"{name}, {'with' if with_image else 'without'} the portrait",
                          (processor, "Where was Ann Lee born?", with_image, "Ann Lee was born in Dunmere.")))
    return cases


def _conversation(text, with_image, answer):
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}], {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def _turn_unclosed(processor, text, with_image, answer):
    user, reply = _conversation(text, with_image, answer)
    prompt = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    turn = processor.apply_chat_template(user + [reply], tokenize=False)[len(prompt):]
    return turn[:turn.index(answer) + len(answer)]


def _turn_no_generation_prompt(processor, text, with_image, answer):
    user, reply = _conversation(text, with_image, answer)
    prompt = processor.apply_chat_template(user, tokenize=False)
    return processor.apply_chat_template(user + [reply], tokenize=False)[len(prompt):]


def _turn_whole(processor, text, with_image, answer):
    user, reply = _conversation(text, with_image, answer)
    return processor.apply_chat_template(user + [reply], tokenize=False)


@slips(Slip(_turn_unclosed, "the template's closing tokens are left out (</s>, <|im_end|>\\n, <end_of_utterance>\\n): "
                            "the answer turn is everything the template writes after the prompt, and the closing "
                            "tokens are what teach a model where to stop"),
       Slip(_turn_no_generation_prompt, "the prompt was rendered without add_generation_prompt=True, so the answer "
                                        "turn starts with the assistant's header (ASSISTANT:, <|im_start|>assistant): "
                                        "that header belongs to the prompt"),
       Slip(_turn_whole, "this is the whole conversation: the answer turn is only what it adds to the prompt, "
                         "whole[len(prompt):]"))
def check_answer_turn(fn: Callable) -> None:
    """Chapter 11: ``fn(processor, text, with_image, answer)`` → the answer turn: what the processor's chat
    template writes after its generation prompt when the conversation goes on with ``answer`` (the
    template's closing tokens included)."""
    from ...models.prompts import render_turns
    compare("answer_turn", fn, lambda *args: render_turns(*args)[1], _turn_cases(), slips=check_answer_turn.slips)
