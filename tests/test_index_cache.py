"""The packet-index cache on disk, wired: inside ``decoding(index_dir=...)`` (every ``tpo``
command runs in one, ``DATA/cache/index``) a video's index is written under its content hash,
and a new process - opening the video, or drawing its thumbnails - reads it instead of
demuxing the file again; the frames are the same with and without the cache; two processes
writing at once and a corrupt file are both harmless."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from media import make_video, read_index

from tpo.cli import cli
from tpo.media import video
from tpo.media.index import IndexCache, file_sha256

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh Python: open the video (or draw its thumbnails) inside decoding(index_dir)
# and print how the process-wide cache got the index, and the frames' indices and a checksum.
CHILD = """
import json, sys
from pathlib import Path
from tpo.media import thumbs, video
from tpo.media.index import DEFAULT_INDEX_CACHE
what, path, folder = sys.argv[1:4]
with video.decoding(index_dir=folder):
    if what == "thumbs":
        thumbs.frame_strip(path, "0" * 16, Path(folder).parent / "thumbs", n=3, max_side=32)
        out = {}
    else:
        with video.open_video(path) as vid:
            frames = vid.sample(5)
        out = {"indices": frames.indices, "sum": int(sum(int(im.sum()) for im in frames.images))}
print(json.dumps({**out, "stats": DEFAULT_INDEX_CACHE.stats,
                  "hashed": DEFAULT_INDEX_CACHE.hashed}))
"""


def in_new_process(what: str, path: Path, folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, what, str(path), str(folder)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("index_clip") / "clip.mp4", duration_s=3, fps=10,
                      size=(64, 48), gop=10)


def test_a_new_process_reads_the_index_another_wrote(clip, tmp_path):
    folder = tmp_path / "cache" / "index"
    first = in_new_process("open", clip, folder)
    assert first["stats"] == {"memory_hits": 0, "disk_hits": 0, "built": 1}  # one scan
    assert first["hashed"] == 1
    (entry,) = folder.glob("index-v1-*.npz")
    assert entry.name == f"index-v1-{file_sha256(str(clip))}.npz"  # the content hash
    again = in_new_process("open", clip, folder)
    assert again["stats"] == {"memory_hits": 0, "disk_hits": 1, "built": 0}  # no scan
    assert again["hashed"] == 0  # nor a read of the whole file: its hash is known
    assert (again["indices"], again["sum"]) == (first["indices"], first["sum"])
    thumbs = in_new_process("thumbs", clip, folder)  # a thumbnail in a new process too
    assert thumbs["stats"] == {"memory_hits": 0, "disk_hits": 1, "built": 0}


def test_frames_are_the_same_with_and_without_the_cache(clip, tmp_path):
    folder = tmp_path / "index"
    IndexCache(folder).get(clip)  # written by "another process"
    cached = IndexCache(folder)
    with video.open_video(clip, index_cache=cached) as vid:
        with_cache = vid.sample(7)
    assert cached.stats["disk_hits"] == 1 and cached.stats["built"] == 0
    with video.open_video(clip, index_cache=IndexCache()) as vid:
        without = vid.sample(7)
        times = vid.times.tolist()
    assert with_cache.indices == without.indices and with_cache.timestamps == without.timestamps
    assert [read_index(im) for im in with_cache.images] == with_cache.indices
    assert all(np.array_equal(a, b) for a, b in zip(with_cache.images, without.images))
    assert IndexCache(folder).get(clip).times.tolist() == times


def test_decoding_block_routes_the_default_cache_to_its_folder(clip, tmp_path):
    copy = Path(shutil.copy(clip, tmp_path / "fresh copy.mp4"))  # not in memory yet
    folder = tmp_path / "index"
    with video.decoding(index_dir=folder) as inside:
        assert video.current_decoding() == inside and inside.index_dir == folder
        with video.open_video(copy) as vid:
            n = vid.info.n_frames
    assert video.current_decoding().index_dir is None  # back outside the block
    (entry,) = folder.glob("*.npz")
    assert len(IndexCache(folder).get(copy).pts) == n == 30


def test_a_copy_is_found_by_content_and_a_changed_file_is_hashed_again(clip, tmp_path):
    folder = tmp_path / "index"
    path = Path(shutil.copy(clip, tmp_path / "a.mp4"))
    first = IndexCache(folder)
    first.get(path)
    assert first.hashed == 1
    copy = IndexCache(folder)
    copy.get(shutil.copy(path, tmp_path / "b.mp4"))  # another file, the same content
    assert (copy.hashed, copy.stats["disk_hits"], copy.stats["built"]) == (1, 1, 0)
    make_video(path, duration_s=2, fps=10, size=(64, 48))  # replaced in place: 20 frames
    changed = IndexCache(folder)
    assert len(changed.get(path).pts) == 20
    assert (changed.hashed, changed.stats["built"]) == (1, 1)


def test_a_truncated_cache_file_is_ignored_and_rewritten(clip, tmp_path):
    folder = tmp_path / "index"
    IndexCache(folder).get(clip)
    (entry,) = folder.glob("*.npz")
    whole = entry.read_bytes()
    entry.write_bytes(whole[: len(whole) // 2])  # a zip cut short: not "not an npz"
    cache = IndexCache(folder)
    assert len(cache.get(clip).pts) == 30
    assert cache.stats == {"memory_hits": 0, "disk_hits": 0, "built": 1}
    assert entry.read_bytes() != whole[: len(whole) // 2]
    again = IndexCache(folder)
    again.get(clip)
    assert again.stats["disk_hits"] == 1


def test_writers_at_once_leave_one_whole_file(clip, tmp_path):
    folder = tmp_path / "index"
    start, errors = threading.Barrier(6), []

    def open_it():
        try:
            start.wait()
            IndexCache(folder).get(clip)  # each a cache of its own, as in another process
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.name for p in folder.glob("*.npz")] == [f"index-v1-{file_sha256(str(clip))}.npz"]
    assert [p for p in folder.rglob("*") if ".tmp" in p.name] == []  # every rename done
    reader = IndexCache(folder)
    assert len(reader.get(clip).pts) == 30 and reader.stats["disk_hits"] == 1


def test_every_command_caches_indexes_under_the_data_folder(clip, tmp_path, settings):
    copy = shutil.copy(clip, tmp_path / "ingested.mp4")
    result = CliRunner().invoke(cli, ["--db", str(settings.db_path), "ingest", str(copy)],
                                env={"TPO_DATA_DIR": str(settings.data_dir)})
    assert result.exit_code == 0, result.output
    folder = settings.data_dir / "cache" / "index"
    assert [p.name for p in folder.glob("*.npz")] == [f"index-v1-{file_sha256(copy)}.npz"]
    assert video.current_decoding().index_dir is None  # the command's block has ended


def test_a_job_worker_caches_indexes_beside_the_database(clip, tmp_path, store):
    from tpo import jobs

    copy = shutil.copy(clip, tmp_path / "in_a_job.mp4")
    job_id = jobs.submit(store, "selftest", {"open_video": str(copy)}, log_dir=tmp_path / "logs")
    job = jobs.wait(store, job_id, timeout_s=120)
    assert job["status"] == "succeeded", job
    folder = store.path.parent / "cache" / "index"
    assert job["output"]["index_dir"] == str(folder)
    assert [p.name for p in folder.glob("*.npz")] == [f"index-v1-{file_sha256(copy)}.npz"]
