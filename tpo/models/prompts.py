"""What a video-LM is asked and what it answers, without loading one (no torch here).

:mod:`tpo.models.vlm` runs models on these; :mod:`tpo.generation.pairs`, :mod:`tpo.curation.export` and the app use
them without paying for importing torch and transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tpo.media.video import Frames

CAPTION_PROMPT = "Describe in detail what happens in these frames, in the order it happens."


@dataclass(frozen=True)
class VideoQuestion:
    """One question about one video, asked on the given frames of it."""

    frames: Frames  # decoded (images not None); timestamps in seconds from the video's start
    question: str
    duration_s: float  # of the whole video, which the prompt states


def time_prompt(timestamps: Sequence[float], duration_s: float, question: str) -> str:
    """The text after the frames: where they are in the video (seconds), then the question."""
    times = ", ".join(f"{t:.1f}s" for t in timestamps)
    return (f"The video lasts for {duration_s:.1f} seconds, and {len(timestamps)} frames are "
            f"sampled from it. These frames are located at {times}. Please answer the "
            f"following question related to this video.\n{question}")


@dataclass(frozen=True)
class Reply:
    """One generated answer."""

    text: str
    truncated: bool  # True when generation stopped at max_new_tokens, not at end-of-sequence
