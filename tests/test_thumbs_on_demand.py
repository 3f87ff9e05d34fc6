"""A pair's frame thumbnails are named by the Curate view without decoding and drawn by the
thumbnail route when the browser first asks for them (then served as cached files).

Protects: rendering a pair (and the neighbours prefetched with a review action's answer)
decodes nothing; the route draws the right frame, caches it and serves it as an immutable
file after; a frame that cannot be decoded is a placeholder image, not a broken page; paths
that are not a thumbnail of the video named are 404; several requests drawing the same
thumbnail at once leave one whole JPEG and no temporary files.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from media import make_video, read_index
from PIL import Image

from tpo.media.library import ingest
from tpo.media.thumbs import at_paths, frames_at, parse_at_path
from ui.curate_view import IMG_SRC, View, prefetch_html
from ui.server import create_server


def jpegs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.jpg")) if folder.exists() else []


def add_pairs(store, video_id: int, chosen: list[float], rejected: list[float], n: int = 1):
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"Q{i}?",
             "chosen": f"chosen {i}.", "rejected": f"rejected {i}.", "segment_start": 0.0,
             "segment_end": 1.0, "chosen_timestamps": chosen, "rejected_timestamps": rejected,
             "status": "pending", "filter_verdict": "kept", "filter_reason": None}
            for i in range(n)]
    return store.save_generation(video_id, "k", rows, params={}, seconds=0)


@pytest.fixture
def clip_id(store, tmp_path) -> int:
    """A 3 fps clip (frame k at k/3 s: times a file name rounds up or down), ingested."""
    clip = make_video(tmp_path / "clip.mp4", duration_s=3, fps=3, size=(96, 72))
    return ingest(store, [clip]).added[0]


def strip_sources(parts: dict) -> list[str]:
    return [src for side in ("chosen_strip", "rejected_strip")
            for src in IMG_SRC.findall(parts[side])]


def test_at_paths_name_what_frames_at_writes_without_decoding(tmp_path):
    clip = make_video(tmp_path / "clip.mp4", duration_s=2, fps=10)
    named = at_paths("ef" * 32, [0.2, 1.5], tmp_path / "thumbs")
    assert jpegs(tmp_path / "thumbs") == []
    assert frames_at(clip, "ef" * 32, [0.2, 1.5], tmp_path / "thumbs") == named
    assert [Path(p) for p, _ in named] == jpegs(tmp_path / "thumbs")
    rel = Path(named[1][0]).relative_to(tmp_path / "thumbs").as_posix()
    assert parse_at_path(rel) == ("ef" * 8, 120, 1.5)
    for other in ("../tpo.db", "efef/at_px120/x.jpg", "efef/n8_px160/000001.500.jpg",
                  "efef/at_px99999/000001.500.jpg", "efef/at_px4/000001.500.jpg"):
        assert parse_at_path(other) is None, other


def test_view_and_prefetch_decode_nothing_then_the_route_draws_each_frame(store, settings,
                                                                          clip_id):
    chosen, rejected = [1 / 3, 2 / 3, 5 / 3], [0.0, 7 / 3]
    ids = add_pairs(store, clip_id, chosen, rejected, n=2)
    parts = View.parts(store, settings, ids[0], "1 of 2")
    prefetched = prefetch_html(store, settings, ids, 0)
    assert jpegs(settings.thumb_dir) == []  # named only: nothing decoded in the request
    sources = strip_sources(parts)
    assert len(sources) == 5 and all(s.endswith(f"?v={clip_id}") for s in sources)
    assert all(f'src="{s}"' in prefetched for s in sources)  # the next pair: same frames

    with TestClient(create_server(store, settings)) as c:
        frames = []
        for src in sources:
            r = c.get("/" + src)
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            assert "immutable" in r.headers["cache-control"]
            frames.append(read_index(np.asarray(Image.open(BytesIO(r.content)).convert("RGB"))))
        # 2/3 s is "000000.667" in its file name, past the frame's time: still frame 2.
        assert frames == [1, 2, 5, 0, 7]
        cached = jpegs(settings.thumb_dir)
        assert len(cached) == 5
        stamps = [p.stat().st_mtime_ns for p in cached]
        again = c.get("/" + sources[1])
        file = settings.thumb_dir / sources[1].split("?")[0].removeprefix("media/thumbs/")
        assert again.status_code == 200 and again.content == file.read_bytes()
        assert [p.stat().st_mtime_ns for p in jpegs(settings.thumb_dir)] == stamps


def test_a_frame_that_cannot_be_decoded_is_a_placeholder(store, settings, clip_id):
    (pair_id,) = add_pairs(store, clip_id, [1 / 3], [2.0])
    Path(store.get_video(clip_id)["path"]).write_bytes(b"not a video any more")
    parts = View.parts(store, settings, pair_id, "1 of 1")
    sources = strip_sources(parts)
    assert len(sources) == 2  # the page shows the strip; each frame becomes a placeholder
    with TestClient(create_server(store, settings)) as c:
        r = c.get("/" + sources[0])
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
        assert b"cannot" in r.content and r.headers["cache-control"] == "no-store"
        assert r.headers["x-tpo-thumbnail"] == "placeholder"
    assert jpegs(settings.thumb_dir) == []


def test_a_missing_video_file_says_so_instead_of_a_strip(store, settings, clip_id):
    (pair_id,) = add_pairs(store, clip_id, [1 / 3], [2.0])
    Path(store.get_video(clip_id)["path"]).unlink()
    parts = View.parts(store, settings, pair_id, "1 of 1")
    assert "Cannot show frames" in parts["chosen_strip"] and "<img" not in parts["chosen_strip"]


def test_only_a_thumbnail_of_the_video_named_is_drawn(store, settings, clip_id, tmp_path):
    other = ingest(store, [make_video(tmp_path / "other.mp4", duration_s=1, fps=5)]).added[0]
    (pair_id,) = add_pairs(store, clip_id, [1 / 3], [2.0])
    src = strip_sources(View.parts(store, settings, pair_id, "1 of 1"))[0]
    path = src.split("?")[0]
    with TestClient(create_server(store, settings)) as c:
        assert c.get(f"/{path}?v={other}").status_code == 404  # another video's hash
        assert c.get(f"/{path}?v=999").status_code == 404  # no such video
        assert c.get(f"/{path}").status_code == 404  # no video named: a plain static file
        big = path.replace("at_px120", "at_px9999")
        assert c.get(f"/{big}?v={clip_id}").status_code == 404  # not a size the app draws
        assert c.get(f"/media/thumbs/../tpo.db?v={clip_id}").status_code == 404
    assert jpegs(settings.thumb_dir) == []


def test_concurrent_draws_of_one_thumbnail_leave_one_whole_jpeg(store, settings, clip_id):
    row = store.get_video(clip_id)
    barrier = threading.Barrier(8)

    def draw(_):
        barrier.wait()
        return frames_at(row["path"], row["sha256"], [2 / 3], settings.thumb_dir)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(draw, range(8)))
    assert len({tuple(r) for r in results}) == 1
    (path,) = jpegs(settings.thumb_dir)
    assert read_index(np.asarray(Image.open(path).convert("RGB"))) == 2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left

    # The same through the app: several browsers asking for one missing thumbnail at once.
    path.unlink()
    (pair_id,) = add_pairs(store, clip_id, [2 / 3], [2.0])
    src = strip_sources(View.parts(store, settings, pair_id, "1 of 1"))[0]
    with TestClient(create_server(store, settings)) as c:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: c.get("/" + src), range(6)))
    assert all(r.status_code == 200 for r in answers)
    assert len({r.content for r in answers}) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]
