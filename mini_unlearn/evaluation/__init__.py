"""``mini_unlearn.evaluation`` — measuring what a model knows (chapter 03).

>>> import mini_unlearn as mu
>>> report = mu.evaluate(vlm, bench, ratio=0.05)      # mu.evaluate is mu.evaluation.evaluate
>>> report.score("forget", "image+text", "mcq_letter")

The subpackage is called ``evaluation`` so that ``mu.evaluate`` can be the function: a module and a
function cannot share one name on the package.
"""
from . import clear
from .clear import (CLEAR_TASKS, ClearReport, answer_probability, clear_forget_quality, clear_truth_ratios,
                    evaluate_clear, model_utility, name_options, rouge_recall, truth_ratio_score)
from .comparison import CELLS, mark_goals, score_table
from .report import GOALS, Report
from .suite import evaluate, evaluate_questions
from .tasks import (MAX_NEW_TOKENS, answer_log_likelihood, METRIC, NORMALIZE, TASKS, cloze_correct, letter_of, option_log_likelihoods,
                    predict, predict_by_likelihood, predict_letters, predict_text, rouge, rouge_l, score)

__all__ = ["CELLS", "GOALS", "answer_log_likelihood", "MAX_NEW_TOKENS", "METRIC", "NORMALIZE", "Report", "TASKS", "cloze_correct", "evaluate",
           "evaluate_questions", "letter_of", "mark_goals", "option_log_likelihoods", "predict", "predict_by_likelihood",
           "predict_letters", "predict_text", "rouge", "rouge_l", "score", "score_table"]
__all__ += ["CLEAR_TASKS", "ClearReport", "answer_probability", "clear", "clear_forget_quality", "clear_truth_ratios",
            "evaluate_clear", "model_utility", "name_options", "rouge_recall", "truth_ratio_score"]   # CLEAR (ch. 12)
