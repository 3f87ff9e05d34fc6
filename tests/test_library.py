"""Ingest into a real store: readable and bad files, duplicates, folders, uploads, demo."""

from __future__ import annotations

import shutil

import pytest
from media import make_bad_files, make_video

from tpo.media import library, synth
from tpo.media.library import build_demo, ingest


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two good clips and every kind of bad file, in one folder tree."""
    root = tmp_path_factory.mktemp("clips")
    make_video(root / "a.mp4", duration_s=2, fps=10)
    (root / "nested").mkdir()
    make_video(root / "nested" / "b.webm", duration_s=1, fps=10, codec="libvpx-vp9")
    bad = make_bad_files(root / "bad")
    return root, bad


def test_ingest_folder_records_good_and_bad_files(store, clips):
    root, bad = clips
    report = ingest(store, [root], user="ana")
    unreadable = [k for k in bad if k not in ("non_ascii", "one_frame")]
    # a.mp4, b.webm, non-ASCII name and one-frame video are readable; the rest are not.
    # Files without a video suffix (the .m4a, the .png) are not picked up from a folder.
    picked_bad = [k for k in unreadable if bad[k].suffix in library.VIDEO_EXTENSIONS]
    assert len(report.added) == 4
    assert len(report.failed) == len(picked_bad)
    rows = {r["name"]: r for r in store.list_videos()}
    assert rows["a.mp4"]["status"] == "ready" and rows["a.mp4"]["added_by"] == "ana"
    assert rows["a.mp4"]["duration_s"] == pytest.approx(2.0, abs=0.11)
    assert rows["b.webm"]["codec"] == "vp9"
    assert rows[bad["non_ascii"].name]["status"] == "ready"
    for kind in picked_bad:
        row = rows[bad[kind].name]
        assert row["status"] == "error" and row["error"], kind


def test_same_content_is_ingested_once(store, clips, tmp_path):
    root, _ = clips
    first = ingest(store, [root / "a.mp4"])
    copy = shutil.copy(root / "a.mp4", tmp_path / "copy_of_a.mp4")
    again = ingest(store, [root / "a.mp4", copy])
    assert len(first.added) == 1
    assert again.added == [] and len(again.skipped) == 2
    assert "same content as video #" in again.skipped[0][1]
    assert len(store.list_videos()) == 1


def test_explicit_non_video_file_fails_clearly_and_rest_goes_on(store, clips):
    root, bad = clips
    report = ingest(store, [bad["audio_only"], "/no/such/file.mp4", root / "a.mp4"])
    assert len(report.added) == 1
    reasons = dict(report.failed)
    assert reasons["/no/such/file.mp4"] == "no such file or folder"
    assert "video stream" in reasons[str(bad["audio_only"].resolve())]


def test_changed_file_at_known_path_is_re_probed(store, tmp_path):
    path = make_video(tmp_path / "clip.mp4", duration_s=1, fps=10)
    (video_id,) = ingest(store, [path]).added
    make_video(path, duration_s=3, fps=10)
    report = ingest(store, [path])
    assert report.updated == [video_id]
    assert store.get_video(video_id)["duration_s"] == pytest.approx(3.0, abs=0.11)


def test_uploads_are_copied_and_renamed_on_clash(store, clips, tmp_path):
    root, _ = clips
    upload_dir = tmp_path / "uploads"
    (upload_dir).mkdir()
    (upload_dir / "a.mp4").write_bytes(b"an older, different file")
    report = library.add_uploads(store, [root / "a.mp4"], upload_dir)
    (video_id,) = report.added
    assert store.get_video(video_id)["path"] == str((upload_dir / "a-2.mp4").resolve())
    again = library.add_uploads(store, [root / "a.mp4"], upload_dir)
    assert again.added == [] and len(again.skipped) == 1
    assert sorted(p.name for p in upload_dir.iterdir()) == ["a-2.mp4", "a.mp4"]


def test_build_demo_renders_ingests_and_keeps_ground_truth(store, tmp_path):
    report = build_demo(store, tmp_path / "demo", scale=0.05)
    assert len(report.added) == len(synth.DEMO_SPECS)
    row = store.list_videos(search="countdown")[0]
    spec = next(s for s in synth.DEMO_SPECS if s.name == "countdown")
    assert row["duration_s"] == pytest.approx(spec.duration_s * 0.05, abs=0.2)
    assert len(row["ground_truth"]["events"]) == len(spec.events)
    # A second build renders nothing new and ingests nothing twice.
    assert build_demo(store, tmp_path / "demo", scale=0.05).added == []
    assert len(store.list_videos()) == len(synth.DEMO_SPECS)
