"""Turn an EvalItem into the instruction a model reads, and score its answer."""
from __future__ import annotations

import string

from comet_cli.eval.metrics import choice_accuracy, exact_match, rouge, token_f1
from comet_cli.eval.tasks import EvalItem


def build_prompt(item: EvalItem) -> str:
    """The instruction that follows the document: the question, and for mc items
    the options as "A. ...", one per line, then how to answer."""
    if item.metric != "mc":
        return item.question
    lines = [item.question]
    lines += [f"{string.ascii_uppercase[i]}. {text}" for i, text in enumerate(item.options or ())]
    if item.multi_answer:
        lines.append(
            "One or more options may be correct. "
            "Answer with the letters of all correct options only."
        )
    else:
        lines.append("Answer with the letter only.")
    return "\n".join(lines)


def score_item(item: EvalItem, prediction: str) -> dict[str, float]:
    """Score `prediction` by the item's metric.

    rouge -> rouge1, rouge2, rougeL; f1 -> f1, em; mc -> accuracy; em -> em.
    """
    if item.metric == "rouge":
        return rouge(prediction, item.references)
    if item.metric == "f1":
        return {
            "f1": token_f1(prediction, item.references),
            "em": exact_match(prediction, item.references),
        }
    if item.metric == "mc":
        accuracy = choice_accuracy(
            prediction, item.references, item.options, multi=item.multi_answer
        )
        return {"accuracy": accuracy}
    return {"em": exact_match(prediction, item.references)}
