"""Frame-strip thumbnails: the frames uniform sampling picks, small, cached on disk."""

from __future__ import annotations

import os

import pytest
from media import make_video
from PIL import Image

from tpo import video
from tpo.thumbs import format_time, frame_strip


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
