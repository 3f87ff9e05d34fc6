"""Multiple-choice questions about videos: the item type every benchmark reader returns, the
prompt a model is asked with, and the option letter read back out of its answer.

Torch-free: the readers (:mod:`tpo.evaluation.benchmarks`, :mod:`tpo.evaluation.needle`), the evaluation and the
app all share these types.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

LETTERS = string.ascii_uppercase  # option i is LETTERS[i]: A, B, C, ...

# The instruction of Video-MME / lmms-eval's multiple-choice prompts ("Respond with only the
# letter"), which instruction-tuned video-LMs were trained to follow.
MCQ_INSTRUCTION = ("Select the best answer to the following multiple-choice question based on "
                   "the video. Respond with only the letter ({letters}) of the correct option.")
MCQ_SUFFIX = "The best answer is:"


@dataclass(frozen=True)
class MCQItem:
    """One multiple-choice question about one video file.

    ``options`` hold the option texts WITHOUT their "A. " prefixes; ``answer`` is the correct
    option's letter. ``duration_class`` and ``task`` are the groups accuracy is broken down
    by (Video-MME: short/medium/long and task_type; MLVU: a duration bucket and the task;
    LongVideoBench: duration_group and question_category; needle: the haystack length).
    ``meta`` holds suite-specific numbers (needle: ``length_s``, ``depth``).
    """

    suite: str
    item_id: str
    video: str
    question: str
    options: tuple[str, ...]
    answer: str
    duration_class: str = ""
    task: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not 2 <= len(self.options) <= len(LETTERS):
            raise ValueError(f"{self.item_id}: need 2..26 options, got {len(self.options)}")
        # a tuple, not the string: "" and "AB" are substrings of "ABCD" but not letters
        if self.answer not in tuple(LETTERS[:len(self.options)]):
            raise ValueError(f"{self.item_id}: answer {self.answer!r} is not one of the "
                             f"option letters {LETTERS[:len(self.options)]}")

    @property
    def letters(self) -> str:
        return LETTERS[:len(self.options)]

    def prompt(self) -> str:
        """The question as the model is asked it: instruction, question, lettered options."""
        letters = ", ".join(self.letters[:-1]) + f", or {self.letters[-1]}"
        lines = [MCQ_INSTRUCTION.format(letters=letters), self.question]
        lines += [f"{letter}. {text}" for letter, text in zip(self.letters, self.options)]
        lines.append(MCQ_SUFFIX)
        return "\n".join(lines)


# --- Reading the chosen letter back out of a model's answer --------------------------------
#
# lmms-eval's Video-MME/MLVU `extract_characters_regex` (and the LongVideoBench variant) strip
# "The answer is"-style prefixes and take the FIRST capital A-D anywhere in the text; the MLVU
# scripts cut the reply at ")" (they prompt "Best option: ("). Taking the first capital letter
# misreads "A red circle appears" as A and "It could be B or C" as B, so the rules below are
# stricter: explicit markers first, then option texts, then a bare letter only when it is the
# only one. Whatever cannot be read unambiguously is None (counted as wrong, never guessed).

_MARKUP = re.compile(r"<[^>]*>|\*\*|__|`+|^#+\s*", re.MULTILINE)  # **C**, `C`, <answer>C</answer>
_LONE = re.compile(r"^\W*([A-Za-z])\W*$")  # "B", "b", "B.", "(B)", "B)" — nothing else
# A letter that cannot run on into a word ("Ask" and "I'm" are not letters).
_L = r"([A-Z])(?![A-Za-z0-9'’])"
_MARKERS = (
    # 1. declared: "The answer is (D).", "Answer: C", "best option: (B", "correct choice is C"
    re.compile(r"(?i:answer|option|choice)(?:\s+is|\s*:)\s*:?\s*(?i:option\s+|choice\s+)?"
               r"[(\[]?\s*" + _L),
    # 2. named: "Option B is correct", "choice (C)"
    re.compile(r"\b(?i:option|choice)\s+[(\[]?" + _L),
    # 3. leading: "B) red", "A. the red circle", "C: ...", "D\nbecause ..."
    re.compile(r"^[(\[]?([A-Z])(?:[.):\]]|\s*(?:\n|$))"),
    # 4. bracketed anywhere: "... so (B)."
    re.compile(r"[(\[]([A-Z])[)\]]"),
)
_BARE = re.compile(r"(?<![A-Za-z0-9'’])" + _L)
# "A" followed by a lower-case word is the article ("A red circle appears") and "I" the
# pronoun, unless that word is one that follows a letter naming an option ("A is correct").
_AFTER_LETTER = {"is", "was", "seems", "because", "since"}


def _norm(text: str) -> str:
    """Lower-case, single-spaced, without surrounding punctuation or quotes."""
    return " ".join(text.lower().split()).strip(" .,;:!?\"'“”‘’")


def _word_use(text: str, match: re.Match) -> bool:
    """True when a bare "A"/"I" is the article/pronoun, not an option letter."""
    if match.group(1) not in "AI":
        return False
    follow = re.match(r"\s+([a-z]+)", text[match.end():])
    return bool(follow) and follow.group(1) not in _AFTER_LETTER


def _one(letters: Sequence[str], valid: str) -> str | None | bool:
    """The single distinct valid letter; None when several (ambiguous); False when none."""
    found = {letter for letter in letters if letter in valid}
    if not found:
        return False
    return found.pop() if len(found) == 1 else None


def parse_choice(text: str, options: Sequence[str]) -> str | None:
    """The option letter a model's free-text ``text`` chose among ``options``, or None.

    Rules, first that applies wins:

    1. The whole reply is one letter, any case, maybe bracketed or punctuated ("b", "(B)",
       "B.", "**C**") -> that letter; None if it is beyond the options ("E" of 4).
    2. The whole reply is one option's text (case, spacing and end punctuation ignored)
       -> that option.
    3. Explicit letter markers, in this order of trust: a declared answer ("The answer is
       (D).", "Answer: C", "The best answer is: A. the red circle"), a named option ("Option B
       is correct"), a leading letter ("B) red"), a bracketed letter anywhere ("(C)"). Only
       upper-case letters count. The first kind found decides; two different letters of
       one kind -> None.
    4. Option texts contained in the reply as whole words; an option whose text lies inside
       another matched option's text yields to the longer one ("red" vs "red circle"); two
       unrelated options -> None. This runs before rule 5 so that "A red circle appears"
       picks the option "red circle" instead of reading the article as option A.
    5. Bare upper-case letters standing alone ("I think B"), skipping the article "A" and
       the pronoun "I" before a lower-case word: exactly one distinct letter -> it.
    Anything else ("I don't know", "", several letters with no marker) -> None.
    """
    valid = LETTERS[:len(options)]
    text = _MARKUP.sub("", text or "").strip()
    if not text:
        return None
    if lone := _LONE.match(text):  # 1
        letter = lone.group(1).upper()
        return letter if letter in valid else None
    said = _norm(text)
    norms = [_norm(option) for option in options]
    for letter, norm in zip(valid, norms):  # 2
        if norm and said == norm:
            return letter
    for marker in _MARKERS:  # 3
        chosen = _one(marker.findall(text), valid)
        if chosen is not False:
            return chosen
    contained = {letter: norm for letter, norm in zip(valid, norms)  # 4
                 if norm and re.search(r"(?<!\w)" + re.escape(norm) + r"(?!\w)", said)}
    outer = [letter for letter, norm in contained.items()
             if not any(norm != other and norm in other for other in contained.values())]
    if len(outer) == 1:
        return outer[0]
    if outer:
        return None
    bare = [m.group(1) for m in _BARE.finditer(text) if not _word_use(text, m)]  # 5
    chosen = _one(bare, valid)
    return chosen or None


_WORDS = re.compile(r"[a-z0-9]+")


def same_words(a: str, b: str) -> bool:
    """True when two texts have the same words, case and punctuation ignored: "Red." and
    "red", "5, 4, 3." and "5, 4, 3"; not "It is red" and "red"."""
    return _WORDS.findall(a.lower()) == _WORDS.findall(b.lower())


def match_option(text: str, options: Sequence[str]) -> str | None:
    """The letter of the option an open (free-text) answer names, or None.

    An answer names an option when its words equal the option's words, case and
    punctuation ignored: "Red." names "red", "The red circle." names "the red circle",
    "5, 4, 3." names "5, 4, 3"; "red or blue" and "It is red" name none (an open answer is
    graded as exactly the answer, never searched for it).
    """
    found = [LETTERS[i] for i, option in enumerate(options) if same_words(text, str(option))]
    return found[0] if len(found) == 1 else None

