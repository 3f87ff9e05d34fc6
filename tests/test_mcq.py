"""MCQItem and reading the chosen letter out of real-looking model answers (tpo.evaluation.mcq)."""

from __future__ import annotations

import pytest

from tpo.evaluation.mcq import MCQ_SUFFIX, MCQItem, match_option, parse_choice

OPTIONS = ["blue square", "green triangle", "red circle", "red"]  # C contains D's text


@pytest.mark.parametrize("text, expected", [
    # a lone letter, however dressed
    ("B", "B"),
    ("B.", "B"),
    ("(B)", "B"),
    ("  C\n", "C"),
    ("**C**", "C"),
    ("`D`", "D"),
    ("<answer>A</answer>", "A"),
    ("b", "B"),  # lower case only counts when it is the whole answer
    ("E", None),  # beyond the 4 options
    # explicit markers
    ("B) red", "B"),  # leading letter beats the option text "red" (D)
    ("Answer: C", "C"),
    ("**Answer:** C", "C"),
    ("The answer is (D).", "D"),
    ("The best answer is: A. the red circle", "A"),  # declared letter beats the text (C)
    ("The correct option is C", "C"),
    ("Option B is correct", "B"),
    ("Best option: (B) green triangle", "B"),
    ("A. blue square", "A"),
    ("C\nBecause the circle appears first.", "C"),
    ("The answer is B, not A.", "B"),
    ("I watched closely and (C) fits.", "C"),
    ("Answer: E", None),  # a declared letter beyond the options
    # the option's own text
    ("red circle", "C"),
    ("Red Circle.", "C"),
    ("red", "D"),  # exact match to D, though C contains it
    ("A red circle appears", "C"),  # "A" is the article, not option A
    ("A blue square appears near the end", "A"),
    ("The shape is a green triangle", "B"),
    ("There is a red circle and a blue square", None),  # two options
    # bare letters
    ("I think B", "B"),
    ("A is correct", "A"),
    ("It could be A or B, but C seems more likely given the timing of the scene", None),
    ("A man walks into the room and sits down", None),  # article, no option text
    # nothing to read
    ("I don't know", None),
    ("", None),
    ("   ", None),
    ("The video does not show enough to decide.", None),
])
def test_parse_choice(text, expected):
    assert parse_choice(text, OPTIONS) == expected


def test_parse_choice_respects_the_number_of_options():
    assert parse_choice("C", ["yes", "no"]) is None
    assert parse_choice("The answer is (B)", ["yes", "no"]) == "B"
    assert parse_choice("E", ["a", "b", "c", "d", "e"]) == "E"
    assert parse_choice("no", ["yes", "no"]) == "B"


def test_parse_choice_tolerates_none_text():
    assert parse_choice(None, OPTIONS) is None  # type: ignore[arg-type]


def _item(**kw) -> MCQItem:
    fields = dict(suite="s", item_id="q1", video="/v.mp4", question="What appears first?",
                  options=["blue square", "green triangle", "red circle", "red"], answer="C")
    return MCQItem(**(fields | kw))


def test_item_keeps_options_as_a_tuple_and_letters():
    item = _item(options=["x", "y", "z"], answer="B")
    assert item.options == ("x", "y", "z")
    assert item.letters == "ABC"


@pytest.mark.parametrize("kw", [
    {"options": ["only one"], "answer": "A"},
    {"options": [], "answer": "A"},
    {"answer": "E"},
    {"answer": "c"},
    {"answer": ""},
    {"answer": "AB"},
])
def test_item_rejects_bad_options_or_answer(kw):
    with pytest.raises(ValueError):
        _item(**kw)


def test_prompt_text():
    assert _item().prompt() == (
        "Select the best answer to the following multiple-choice question based on the video. "
        "Respond with only the letter (A, B, C, or D) of the correct option.\n"
        "What appears first?\n"
        "A. blue square\n"
        "B. green triangle\n"
        "C. red circle\n"
        "D. red\n"
        "The best answer is:")
    assert _item().prompt().endswith(MCQ_SUFFIX)


def test_prompt_answer_round_trip():
    """Whatever letter a model answers in the prompt's own format reads back."""
    item = _item()
    for letter, text in zip(item.letters, item.options):
        assert parse_choice(f"{letter}. {text}", item.options) == letter
        assert parse_choice(text, item.options) == letter


@pytest.mark.parametrize("text, expected", [
    ("Red.", "B"), ("red", "B"), ("  RED ", "B"), ("The red circle.", "C"), ("5, 4, 3.", "D"),
    ("red or blue", None), ("It is red.", None), ("", None), ("B", None), ("purple", None),
])
def test_match_option_grades_open_answers_exactly(text, expected):
    options = ["blue", "red", "the red circle", "5, 4, 3"]
    assert match_option(text, options) == expected
