"""Post-filtering of generated preference pairs, before any person sees them.

Rules (cheap, always on) drop pairs that cannot teach a preference: no question, an empty,
truncated or refusing answer, chosen and rejected (nearly) the same, an answer that only
restates the question. An optional judge (a text model; the paper's three checks) drops
pairs whose chosen answer is wrong given the reference caption, is not better than the
rejected one, or whose question is ambiguous. A dropped pair is kept with its reason
(status ``filtered``), so filters can be audited, tuned, and their verdicts undone.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Callable

from pydantic import Field

from tpo.configs import Config

# Phrases with which chat models decline. Matched case-insensitively at the answer's start
# or as a whole short answer, so "I cannot see the oven in this clip, but..." is a refusal
# while an answer that merely mentions "cannot" later on is not.
REFUSAL_PATTERNS = (
    r"i('m| am)? (sorry|unable|not able)",
    r"i can(not|'t)\b",
    r"as an ai\b",
    r"(there is )?no (information|way to (tell|know|determine))",
    r"it is (not possible|impossible) to (tell|determine|know)",
    r"(the )?(video|frames?|images?) (does|do) not (show|contain|provide)",
    r"unknown\.?$",
)
NO_QUESTION = {"", "none", "none.", "n/a", "no question", "no good question"}


class FilterConfig(Config):
    """Thresholds of the rule filters (checked by declaration: a bad value raises
    :class:`tpo.configs.ConfigError`, a ValueError, naming the field)."""

    min_answer_chars: int = Field(2, ge=0, description=(
        "Answers shorter than this (after stripping) count as empty."))
    near_duplicate_ratio: float = Field(0.9, gt=0, le=1, description=(
        "Chosen and rejected at least this similar (difflib ratio, case- and space-insensitive, "
        "0..1) are dropped as near-identical."))
    restatement_ratio: float = Field(0.85, gt=0, le=1, description=(
        "An answer at least this similar to the question only restates it."))
    drop_truncated: bool = Field(True, description=(
        "Drop pairs where an answer stopped at the token limit."))


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def similarity(a: str, b: str) -> float:
    """0..1 similarity of two texts, ignoring case and whitespace runs."""
    return SequenceMatcher(None, _norm(a), _norm(b), autojunk=False).ratio()


def is_refusal(answer: str) -> bool:
    text = _norm(answer)
    return any(re.match(p, text) for p in REFUSAL_PATTERNS)


def is_no_question(question: str | None) -> bool:
    """The question writer's way of saying that no good question exists."""
    return question is None or _norm(question).strip("\"'` ") in NO_QUESTION


def rule_reason(question: str | None, chosen: str, rejected: str, *, chosen_truncated: bool = False,
                rejected_truncated: bool = False, config: FilterConfig = FilterConfig()) -> str | None:
    """Why the rules drop this pair, or ``None`` to keep it. The first failing rule wins."""
    if is_no_question(question):
        return "no question: the writer found no good question for this evidence"
    for side, text, truncated in (("chosen", chosen, chosen_truncated),
                                  ("rejected", rejected, rejected_truncated)):
        if len(text.strip()) < config.min_answer_chars:
            return f"empty answer: the {side} answer is empty"
        if config.drop_truncated and truncated:
            return f"truncated: the {side} answer stopped at the token limit"
        if is_refusal(text):
            return f"refusal: the {side} answer declines to answer"
    ratio = similarity(chosen, rejected)
    if ratio >= config.near_duplicate_ratio:
        return f"near-identical: chosen and rejected are {ratio:.0%} alike"
    ratio = similarity(question, chosen)
    if ratio >= config.restatement_ratio:
        return f"restates question: the chosen answer is {ratio:.0%} like the question"
    return None


# --- the optional judge ----------------------------------------------------------------------

JUDGE_PROMPT = """You check training data for a video question-answering model.
Reference description of the relevant part of the video:
{reference}

Question: {question}
Answer A: {chosen}
Answer B: {rejected}

Answer three checks, each with YES or NO, one per line, exactly in this form:
CORRECT: is answer A correct according to the reference?
BETTER: is answer A better than answer B?
CLEAR: is the question unambiguous and answerable from the reference?"""

_CHECK = re.compile(r"^\W*(CORRECT|BETTER|CLEAR)\W*[:\-]?\s*(YES|NO)\b", re.I | re.M)
JUDGE_REASONS = {
    "CORRECT": "judge: the chosen answer is wrong according to the reference",
    "BETTER": "judge: the chosen answer is not better than the rejected one",
    "CLEAR": "judge: the question is ambiguous",
}


def parse_verdict(text: str) -> dict[str, bool]:
    """``{"CORRECT": bool, "BETTER": bool, "CLEAR": bool}`` from a judge reply; a check the
    judge did not answer is missing from the dict."""
    return {m.group(1).upper(): m.group(2).upper() == "YES" for m in _CHECK.finditer(text)}


def judge_reason(chat: Callable[[str], str], *, question: str, chosen: str, rejected: str,
                 reference: str) -> str | None:
    """Ask a text model (``chat(prompt) -> reply``) the paper's three checks.

    Returns the reason for the first failed check, a reason when the reply cannot be read
    (a judge that does not answer is not trusted to keep the pair), or ``None``.
    """
    reply = chat(JUDGE_PROMPT.format(reference=reference or "(none)", question=question,
                                     chosen=chosen, rejected=rejected))
    verdict = parse_verdict(reply)
    for check in ("CORRECT", "BETTER", "CLEAR"):
        if check not in verdict:
            return f"judge: unreadable verdict ({reply.strip()[:80]!r})"
        if not verdict[check]:
            return JUDGE_REASONS[check]
    return None
