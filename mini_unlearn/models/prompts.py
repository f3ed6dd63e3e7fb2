"""How a question becomes the text a VLM reads: MLLMU-Bench's prompts, in each model's chat template.

One place for every prompt, so the training data (chapter 02) and the evaluation (chapter 03) can
never drift apart. The course's LLaVA reads MLLMU-Bench's LLaVA style::

    USER: <image>
    {question}
    {task instruction}
    ASSISTANT: {answer}

The image token line is there only for image+text questions. The instructions are MLLMU-Bench's
(``eval.py``): one letter for multiple choice, one sentence for generation, the blank written
``[Blank]`` for cloze.

Every other model is asked in its own chat template (chapter 11). :func:`chat` returns a
:class:`Prompt`: the LLaVA-style string above (what the chapters print), which also remembers its
text and whether it carries an image, and :func:`target` an :class:`Answer` that remembers its text.
:func:`render` writes both again with a processor's ``apply_chat_template``: a Qwen2.5-VL checkpoint
gets ``<|im_start|>user … <|im_end|>``, the course's LLaVA exactly the string above (its template is
written to render it; tested). Plain strings pass through :func:`render` untouched.
"""
from __future__ import annotations

from ..bench.questions import BLANK, IMAGE_TEXT, Question

IMAGE_TOKEN = "<image>"
MCQ_INSTRUCTION = "Just give ONE letter representing the answer directly."
GEN_INSTRUCTION = "Answer the question based on your trained knowledge in one sentence."
CLOZE_INSTRUCTION = "Please ONLY provide the correct answer that should replace the [Blank]."


class Prompt(str):
    """A question as the course's LLaVA reads it, which any processor can render again (:func:`render`)."""

    text: str              # the user's text, without any template
    with_image: bool       # whether the question is asked with the portrait

    def __new__(cls, text: str, with_image: bool):
        image = f"{IMAGE_TOKEN}\n" if with_image else ""
        prompt = super().__new__(cls, f"USER: {image}{text}\nASSISTANT:")
        prompt.text, prompt.with_image = text, bool(with_image)
        return prompt


class Answer(str):
    """An answer as it follows a course prompt (``" B"``), remembering its text (``"B"``)."""

    text: str

    def __new__(cls, text: str):
        answer = super().__new__(cls, f" {text}")
        answer.text = text
        return answer


def chat(text: str, with_image: bool) -> Prompt:
    """The user turn and the start of the assistant's, ready for generation."""
    return Prompt(text, with_image)


def question_text(question: Question, options: dict[str, str] | None = None) -> str:
    """The user's text for one evaluation question (``options`` overrides the question's own order)."""
    if question.task == "mcq":
        options = options if options is not None else question.options
        lines = "\n".join(f"{letter}: {option}" for letter, option in options.items())
        return f"{question.question}\n{lines}\n{MCQ_INSTRUCTION}"
    if question.task == "cloze":
        return f"{question.question.replace(BLANK, '[Blank]')}\n{CLOZE_INSTRUCTION}"
    return f"{question.question}\n{GEN_INSTRUCTION}"


def question_prompt(question: Question, options: dict[str, str] | None = None) -> Prompt:
    """The full prompt of an evaluation question, ending with ``ASSISTANT:``."""
    return chat(question_text(question, options), question.modality == IMAGE_TEXT)


def target(answer: str) -> Answer:
    """The assistant's answer as it follows the prompt (a leading space, as in ``ASSISTANT: B``)."""
    return Answer(answer)


def expected_answer(question: Question) -> str:
    """What a model should answer: an MCQ's correct letter, any other question's answer."""
    return question.correct if question.task == "mcq" else question.answer


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


def render(processor, prompt: str, answer: str | None = None, *, closed: bool = True) -> tuple[str, str | None]:
    """``(prompt, answer turn)`` as ``processor`` asks them.

    A :class:`Prompt` is rendered with the processor's chat template (:func:`render_turns`); its
    answer turn carries the template's closing tokens (``</s>``, ``<|im_end|>\\n``…) unless
    ``closed=False``, which stops it right after the answer's text (what option likelihood scores).
    A plain string is taken as already rendered: it is returned as is, and its answer gets the
    tokenizer's eos when ``closed``.
    """
    if not isinstance(prompt, Prompt):
        if answer is None:
            return str(prompt), None
        return str(prompt), str(answer) + (processor.tokenizer.eos_token if closed else "")
    text = None if answer is None else getattr(answer, "text", str(answer))
    rendered, turn = render_turns(processor, prompt.text, prompt.with_image, text)
    if turn is not None and not closed:
        end = turn.find(text)
        if end < 0:
            raise ValueError(f"the chat template rewrote the answer {text!r} (answer turn {turn!r}); "
                             "cannot tell which tokens are the answer")
        turn = turn[:end + len(text)]
    return rendered, turn
