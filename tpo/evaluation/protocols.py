"""Evaluation protocols: how a benchmark question is asked, how many frames of the video are
picked and how, how the reply is read back into an option letter, and how a suite's accuracy
is summed up.

Two protocols:

* ``tpo`` (the default): our own prompt (:meth:`tpo.evaluation.mcq.MCQItem.prompt`), frames at
  the centres of equal time bins (:meth:`tpo.media.video.Video.uniform`), the strict reader
  :func:`tpo.evaluation.mcq.parse_choice` (an unreadable reply is wrong, never guessed), and
  plain accuracy for every suite.
* ``lmms-eval``: what lmms-eval does for Video-MME, MLVU (dev) and LongVideoBench (val), so
  that a number can be set beside published ones (they come from lmms-eval): its prompt text
  per task, its answer parser per task, its frame sampling (``np.linspace(0, n_frames - 1, N,
  dtype=int)``: the first and the last frame included), and MLVU's headline number as M-avg,
  the mean of the per-task accuracies.

The lmms-eval code reproduced here is that of release v0.4 (tag ``v0.4``, commit b7b4b1d9,
July 2025) of github.com/EvolvingLMMs-Lab/lmms-eval; each function names the file and
function it follows. Video-MME and LongVideoBench read there as in v0.3.0 (the release the
TPO paper's numbers came from); MLVU's ``mlvu_dev`` task (letter answers, M-avg) arrived in
v0.3.2. lmms-eval releases from April 2026 on (#1274) read every letter with a new shared
``extract_mcq_answer`` instead; numbers published before then used the parsers below.

What is still ours under ``lmms-eval``: the model's chat template and the frame-time line
:class:`tpo.models.vlm.VLM` puts before every question (LLaVA-Video's time instruction, which
lmms-eval's ``llava_vid`` adds with ``add_time_instruction=True``), and the frame count, which
lmms-eval leaves to the model's ``max_frames_num`` (32 for llava_onevision, longva, qwen2_vl):
give it with ``--frames``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from tpo.evaluation.mcq import MCQItem, parse_choice

PROTOCOLS = ("tpo", "lmms-eval")
LMMS_EVAL_SUITES = ("videomme", "mlvu", "longvideobench")
LMMS_EVAL_RELEASE = "lmms-eval v0.4 (b7b4b1d9)"


@dataclass(frozen=True)
class Reading:
    """The option letter read from a reply, or None; ``guessed`` when the protocol put a random
    letter in for an unreadable reply (lmms-eval's LongVideoBench)."""

    letter: str | None
    guessed: bool = False


# --- Video-MME ------------------------------------------------------------------------------

# lmms-eval: lmms_eval/tasks/videomme/utils.py::videomme_doc_to_text (the same sentence is used
# without subtitles: "and the subtitles" is in lmms-eval's text even then)
VIDEOMME_OPTION_PROMPT = ("Select the best answer to the following multiple-choice question "
                          "based on the video and the subtitles. Respond with only the letter "
                          "(A, B, C, or D) of the correct option.")
# lmms-eval: lmms_eval/tasks/videomme/videomme.yaml, lmms_eval_specific_kwargs.default.post_prompt
# (the llava_vid model has "The best answer is:" there instead)
VIDEOMME_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."

# lmms-eval: lmms_eval/tasks/videomme/utils.py::extract_characters_regex. Two commas are missing
# in lmms-eval's list, so Python joins those strings: "The best option is" / "The correct
# option is" / "Best answer:" / "Best option:" are never removed on their own. Kept as it is.
_VIDEOMME_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
)


def videomme_prompt(item: MCQItem) -> str:
    """lmms-eval: lmms_eval/tasks/videomme/utils.py::videomme_doc_to_text: instruction,
    question, the options as the dataset writes them ("A. ..."), post prompt."""
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(item.letters, item.options))
    return f"{VIDEOMME_OPTION_PROMPT}\n{item.question}\n{options}\n{VIDEOMME_POST_PROMPT}"


def videomme_extract(reply: str) -> str:
    """lmms-eval: lmms_eval/tasks/videomme/utils.py::extract_characters_regex: remove the answer
    prefixes, then the first capital A-D anywhere in the text; "" when there is none (a reply
    of more than 10 words without one included)."""
    s = reply.strip()
    for prefix in _VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    match = re.search(r"[ABCD]", s)
    return "" if match is None else match[0]


# --- MLVU (dev) -----------------------------------------------------------------------------

# lmms-eval: lmms_eval/tasks/mlvu/mlvu_dev.yaml, lmms_eval_specific_kwargs.default.post_prompt:
# the prompt ends in "(" so that the model goes on with a letter and ")".
MLVU_POST_PROMPT = "\nOnly give the best option.\nBest option: ("
# lmms-eval: lmms_eval/tasks/mlvu/utils.py::mlvu_aggregate_results_dev, TASK_TYPES
MLVU_DEV_TASKS = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")


def mlvu_question(item: MCQItem) -> str:
    """The question as MLVU_dev's ``question`` field has it: the question, then one "(A) ..."
    line per option (the field itself when the file had it, see
    :mod:`tpo.evaluation.benchmarks`; else built the same way, as MLVU's own ``qa_template``)."""
    given = item.meta.get("question_with_options")
    if given:
        return str(given)
    return "\n".join([item.question, *(f"({letter}) {text}"
                                       for letter, text in zip(item.letters, item.options))])


def mlvu_prompt(item: MCQItem) -> str:
    """lmms-eval: lmms_eval/tasks/mlvu/utils.py::mlvu_doc_to_text: pre_prompt ("") + question
    (with its options) + post_prompt."""
    return mlvu_question(item) + MLVU_POST_PROMPT


def mlvu_extract(reply: str) -> str:
    """lmms-eval: lmms_eval/tasks/mlvu/utils.py::extract_characters_regex: the character before
    the first ")" ("B) the man" -> "B"); without a ")", the whole stripped reply (right only
    when it is exactly the letter)."""
    s = reply.strip()
    if ")" in s:
        index = s.index(")")
        return s[index - 1:index]
    return s


def m_avg(by_task: Mapping[str, Mapping]) -> float | None:
    """MLVU's M-avg, 0..1: the mean of the per-task accuracies (each task counts once,
    however many questions it has); None without any task.

    lmms-eval: lmms_eval/tasks/mlvu/utils.py::mlvu_aggregate_results_dev. lmms-eval divides by
    its 7 dev tasks even when some have no question (a task not asked counts as 0 %); here the
    mean is over the tasks asked, which is the same on the whole dev set and fair on a part of
    it (``--limit``)."""
    accuracies = [g["accuracy"] for g in by_task.values() if g.get("n")]
    return sum(accuracies) / len(accuracies) if accuracies else None


# --- LongVideoBench -------------------------------------------------------------------------

# lmms-eval: lmms_eval/tasks/longvideobench/longvideobench_val_v.yaml,
# lmms_eval_specific_kwargs.default.post_prompt
LVB_POST_PROMPT = "Answer with the option's letter from the given choices directly.\n"
# lmms-eval: lmms_eval/tasks/longvideobench/utils.py::parse_multi_choice_response (this list has
# its commas)
_LVB_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is",
    "The correct option is",
    "Best answer:",
    "Best option:",
)


def longvideobench_prompt(item: MCQItem) -> str:
    """lmms-eval: lmms_eval/tasks/longvideobench/utils.py::longvideobench_doc_to_text (the
    ``_v`` task, no interleaved subtitles): question, "A. ..." lines, post prompt."""
    options = "\n".join(". ".join([letter, text]) for letter, text in zip(item.letters,
                                                                         item.options))
    return f"{item.question}\n{options}\n{LVB_POST_PROMPT}"


def longvideobench_extract(reply: str, letters: Sequence[str], seed: str) -> Reading:
    """lmms-eval: lmms_eval/tasks/longvideobench/utils.py::parse_multi_choice_response: remove
    the answer prefixes, then the first capital A-E anywhere; when there is none (or a reply of
    more than 10 words has none) a random option, as the LongVideoBench paper's scorer does.

    lmms-eval draws from Python's global random generator (seeded once per run); here the
    draw is seeded by ``seed`` (the question's id), so a rerun gives the same number."""
    s = reply.strip()
    for prefix in _LVB_PREFIXES:
        s = s.replace(prefix, "")
    # lmms-eval first checks "more than 10 words and no A-E", then "no A-E": both guess.
    match = re.search(r"[ABCDE]", s)
    if match is None:
        return Reading(random.Random(seed).choice(list(letters)), guessed=True)
    return Reading(match[0])


# --- frames ---------------------------------------------------------------------------------

def lmms_eval_frame_indices(n_frames: int, n: int) -> list[int]:
    """Frame indices as lmms-eval's video models pick them: ``n`` evenly spaced from the first
    frame to the last, rounded down (repeats when the video has fewer than ``n`` frames).

    lmms-eval: lmms_eval/models/simple/llava_onevision.py::load_video (the same line is in
    longva.py, llava_vid.py when the video has more than max_frames_num frames at 1 fps, and
    qwen2_vl.py)."""
    if n_frames < 1 or n < 1:
        raise ValueError(f"need a video with frames and n >= 1, got {n_frames} frames, n={n}")
    return np.linspace(0, n_frames - 1, n, dtype=int).tolist()


# --- the protocol's three steps -------------------------------------------------------------

_PROMPTS = {"videomme": videomme_prompt, "mlvu": mlvu_prompt,
            "longvideobench": longvideobench_prompt}


def check(protocol: str, suite: str) -> None:
    """Raise ValueError when ``protocol`` cannot run ``suite``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: use {' or '.join(PROTOCOLS)}")
    if protocol == "lmms-eval" and suite not in LMMS_EVAL_SUITES:
        raise ValueError(f"protocol lmms-eval covers {', '.join(LMMS_EVAL_SUITES)}, not "
                         f"{suite}: use protocol tpo for it")


def prompt(protocol: str, item: MCQItem) -> str:
    """The text the model is asked ``item`` with (after the frames)."""
    if protocol == "lmms-eval":
        check(protocol, item.suite)
        return _PROMPTS[item.suite](item)
    return item.prompt()


def read(protocol: str, item: MCQItem, reply: str) -> Reading:
    """The option letter ``reply`` chose, as the protocol reads it; a letter that is not one
    of the item's options is None (it can never be right)."""
    if protocol != "lmms-eval":
        return Reading(parse_choice(reply, item.options))
    check(protocol, item.suite)
    if item.suite == "longvideobench":
        reading = longvideobench_extract(reply, item.letters, item.item_id)
    else:
        extract = videomme_extract if item.suite == "videomme" else mlvu_extract
        reading = Reading(extract(reply) or None)
    return reading if reading.letter in tuple(item.letters) else Reading(None, reading.guessed)


def frame_indices(protocol: str, video, n: int) -> list[int]:
    """The frames of ``video`` (an open :class:`tpo.media.video.Video`) a question is asked on."""
    if protocol == "lmms-eval":
        return lmms_eval_frame_indices(len(video.times), n)
    return video.uniform(n)
