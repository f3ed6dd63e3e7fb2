"""How a question becomes the text a VLM reads, in MLLMU-Bench's LLaVA prompt style.

One place for every prompt, so the training data (chapter 02) and the evaluation (chapter 03) can
never drift apart::

    USER: <image>
    {question}
    {task instruction}
    ASSISTANT: {answer}

The image token line is there only for image+text questions. The instructions are MLLMU-Bench's
(``eval.py``): one letter for multiple choice, one sentence for generation, the blank written
``[Blank]`` for cloze.
"""
from __future__ import annotations

from ..bench.questions import BLANK, IMAGE_TEXT, Question

IMAGE_TOKEN = "<image>"
MCQ_INSTRUCTION = "Just give ONE letter representing the answer directly."
GEN_INSTRUCTION = "Answer the question based on your trained knowledge in one sentence."
CLOZE_INSTRUCTION = "Please ONLY provide the correct answer that should replace the [Blank]."


def chat(text: str, with_image: bool) -> str:
    """The user turn and the start of the assistant's, ready for generation."""
    image = f"{IMAGE_TOKEN}\n" if with_image else ""
    return f"USER: {image}{text}\nASSISTANT:"


def question_text(question: Question, options: dict[str, str] | None = None) -> str:
    """The user's text for one evaluation question (``options`` overrides the question's own order)."""
    if question.task == "mcq":
        options = options if options is not None else question.options
        lines = "\n".join(f"{letter}: {option}" for letter, option in options.items())
        return f"{question.question}\n{lines}\n{MCQ_INSTRUCTION}"
    if question.task == "cloze":
        return f"{question.question.replace(BLANK, '[Blank]')}\n{CLOZE_INSTRUCTION}"
    return f"{question.question}\n{GEN_INSTRUCTION}"


def question_prompt(question: Question, options: dict[str, str] | None = None) -> str:
    """The full prompt of an evaluation question, ending with ``ASSISTANT:``."""
    return chat(question_text(question, options), question.modality == IMAGE_TEXT)


def target(answer: str) -> str:
    """The assistant's answer as it follows the prompt (a leading space, as in ``ASSISTANT: B``)."""
    return f" {answer}"


def render_turns(processor, text: str, with_image: bool, answer: str | None = None) -> tuple[str, str | None]:
    """One question in the processor's own chat template (any family, :mod:`.families`).

    Returns the user turn, ready for generation, and — given ``answer`` — the answer turn exactly as
    the template continues it (its closing tokens included), so ``prompt + answer_turn`` is the whole
    conversation. For the course's LLaVA that is ``chat(text, with_image)`` and ``target(answer) + eos``.
    """
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
    user = [{"role": "user", "content": content}]
    prompt = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    if answer is None:
        return prompt, None
    reply = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
    whole = processor.apply_chat_template(user + [reply], tokenize=False)
    if not whole.startswith(prompt):
        raise ValueError("the processor's chat template does not continue its generation prompt with the answer "
                         f"(prompt {prompt[-40:]!r}, conversation {whole[-60:]!r}); mini_unlearn scores the "
                         "answer as the text that follows the generation prompt")
    return prompt, whole[len(prompt):]
