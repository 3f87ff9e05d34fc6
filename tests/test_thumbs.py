"""Frame-strip thumbnails: the frames uniform sampling picks, small, cached on disk."""

from __future__ import annotations

import os

import numpy as np
import pytest
from media import make_video
from PIL import Image

from tpo.media import video
from tpo.media.thumbs import format_time, frame_strip, frames_at


def test_strip_matches_uniform_sampling_and_is_cached(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", duration_s=4, fps=10, size=(320, 240))
    entries = frame_strip(clip, "ab" * 32, tmp_path / "thumbs", n=6, max_side=80)
    assert [t for _, t in entries] == video.sample(clip, 6, decode=False).timestamps
    assert max(Image.open(entries[0][0]).size) == 80
    stamps = [os.stat(p).st_mtime_ns for p, _ in entries]
    again = frame_strip(clip, "ab" * 32, tmp_path / "thumbs", n=6, max_side=80)
    assert again == entries
    assert [os.stat(p).st_mtime_ns for p, _ in again] == stamps  # not decoded again


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (75, "1:15"), (3725, "1:02:05"),
                                           (12.5, "0:12.5"), (59.96, "0:59.9")])
def test_format_time(seconds, text):
    assert format_time(seconds) == text


def test_frames_at_recorded_timestamps_are_the_right_frames(tmp_path):
    from media import read_index

    clip = make_video(tmp_path / "clip.mp4", duration_s=4, fps=10, size=(64, 48))
    times = [0.3, 1.0, 3.9]
    entries = frames_at(clip, "cd" * 32, times, tmp_path / "thumbs", max_side=64)
    assert [t for _, t in entries] == times
    # Each thumbnail is the frame shown at its time (frame k at k / 10 s draws its index).
    assert [read_index(np.asarray(Image.open(p).convert("RGB"))) for p, _ in entries] == [3, 10, 39]
    stamp = os.stat(entries[0][0]).st_mtime_ns
    frames_at(clip, "cd" * 32, times, tmp_path / "thumbs", max_side=64)
    assert os.stat(entries[0][0]).st_mtime_ns == stamp
