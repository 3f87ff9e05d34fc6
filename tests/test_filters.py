"""Post-filter rules and the judge's verdict parsing, on real-looking model outputs."""

from __future__ import annotations

import pytest

from tpo.generation.filters import FilterConfig, is_refusal, judge_reason, parse_verdict, rule_reason

Q = "What colour is the circle in the top-left of the frame?"


@pytest.mark.parametrize("question, chosen, rejected, reason", [
    ("None", "Red.", "Blue.", "no question"),
    ('"none."', "Red.", "Blue.", "no question"),
    (Q, "   ", "Blue.", "empty answer: the chosen"),
    (Q, "Red.", "", "empty answer: the rejected"),
    (Q, "I'm sorry, I cannot see a circle.", "Blue.", "refusal: the chosen"),
    (Q, "The circle is red.", "I cannot determine that from the frames.", "refusal: the rejected"),
    (Q, "The circle is red.", "the circle is  red", "near-identical"),
    (Q, "What colour is the circle in the top-left of the frame", "Blue.", "restates question"),
])
def test_rules_drop_with_reason(question, chosen, rejected, reason):
    assert rule_reason(question, chosen, rejected).startswith(reason)


def test_rules_keep_a_real_preference():
    assert rule_reason(Q, "The circle is red.", "There is a blue square in the centre.") is None


def test_truncation_is_a_reason_only_when_enabled():
    kwargs = dict(chosen_truncated=True)
    assert rule_reason(Q, "The circle is red and", "Blue.", **kwargs).startswith("truncated")
    assert rule_reason(Q, "The circle is red and", "Blue.",
                       config=FilterConfig(drop_truncated=False), **kwargs) is None


def test_refusal_only_at_the_start():
    assert is_refusal("I am unable to see the video.")
    assert not is_refusal("The man says he cannot find the key, then opens the drawer.")


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="near_duplicate_ratio"):
        FilterConfig(near_duplicate_ratio=1.5)


def test_parse_verdict_tolerates_formatting():
    reply = "Sure.\n**CORRECT**: YES\nBETTER - no, B is closer\n clear: Yes"
    assert parse_verdict(reply) == {"CORRECT": True, "BETTER": False, "CLEAR": True}


@pytest.mark.parametrize("reply, reason", [
    ("CORRECT: YES\nBETTER: YES\nCLEAR: YES", None),
    ("CORRECT: NO\nBETTER: YES\nCLEAR: YES", "judge: the chosen answer is wrong"),
    ("CORRECT: YES\nBETTER: NO\nCLEAR: YES", "judge: the chosen answer is not better"),
    ("CORRECT: YES\nBETTER: YES\nCLEAR: NO", "judge: the question is ambiguous"),
    ("I think A is fine.", "judge: unreadable verdict"),
])
def test_judge_reason(reply, reason):
    prompts = []

    def chat(prompt: str) -> str:
        prompts.append(prompt)
        return reply

    got = judge_reason(chat, question=Q, chosen="Red.", rejected="Blue.", reference="a red circle")
    assert got == reason if reason is None else got.startswith(reason)
    assert "a red circle" in prompts[0] and Q in prompts[0]
