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
