"""Export of reviewed pairs as a TRL preference dataset and import back, on a real encoded
video, a real store and the tiny real model: layouts, frames, datasets loading, one DPO step,
round trips, validation of bad files."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from media import make_video, read_index

from tpo.export import COLUMNS, ExportConfig, ExportError, export_pairs
from tpo.importer import ImportValidationError, import_file
from tpo.library import ingest
from tpo.review import effective, replay, review
from tpo.store import Store
from tpo.video import open_video

FPS = 4  # the clip's frame k is at k / FPS s and shows k as bars (media.read_index)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 s at 4 fps, 64x48: 80 frames, 0.25 s apart."""
    return make_video(tmp_path_factory.mktemp("export") / "clip.mp4", duration_s=20, fps=FPS,
                      size=(64, 48))


def _pair(kind, strategy, question, chosen, rejected, segment, chosen_t, rejected_t, status):
    """A pair row as tpo.pairs makes it."""
    return {"kind": kind, "strategy": strategy, "question": question, "chosen": chosen,
            "rejected": rejected, "segment_start": segment[0] if segment else None,
            "segment_end": segment[1] if segment else None, "chosen_timestamps": chosen_t,
            "rejected_timestamps": rejected_t, "prompt": question, "status": status,
            "generator": {"model": "tiny", "seed": 0}, "filter_verdict": "kept"}


@pytest.fixture
def lib(store, clip):
    """The clip with five pairs: three accepted (one edited and swapped), one pending, one
    rejected. Timestamps are the clip's real frame times."""
    video_id = ingest(store, [clip], user="ana").added[0]
    with open_video(clip) as vid:
        t = vid.times.tolist()
    rows = [
        _pair("localized", "irrelevant", "What is drawn at 5 s?", "Bars.", "Nothing.", (5.0, 9.0),
              t[20:36:2], t[0:20:4] + t[36:80:8], "accepted"),
        _pair("comprehensive", "dense-sparse", "Summarize the video.", "Counting bars.",
              "A dog.", None, t[::4], t[::20], "accepted"),
        _pair("localized", "incomplete", "Still pending?", "Yes.", "No.", (1.0, 4.0),
              t[4:16:2], t[4:16:6], "pending"),
        _pair("localized", "irrelevant", "Generated question?", "Generated chosen.",
              "Generated rejected.", (12.0, 15.0), t[48:60:3], t[0:48:12], "pending"),
        _pair("comprehensive", "dense-sparse", "Rejected pair?", "A.", "B.", None, t[::8],
              t[::40], "rejected"),
    ]
    ids = store.save_generation(video_id, "k", rows, params={}, seconds=0)
    # The reviewer fixes the question and the chosen answer, then prefers the other side.
    review(store, ids[3], "edit", user="bo", question="Edited question?", chosen="Edited chosen.")
    review(store, ids[3], "swap", user="bo")
    review(store, ids[3], "accept", user="bo")
    return SimpleNamespace(store=store, clip=clip, video_id=video_id, times=t,
                           ids=dict(zip(("local", "whole", "pending", "edited", "rejected"), ids)))


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _load(out, tmp_path, **kwargs):
    return datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf"), **kwargs)


def _frames_match(images, timestamps):
    """Each image is the clip's frame at its timestamp (read back from the drawn index)."""
    return [read_index(np.asarray(im.convert("RGB"))) for im in images] == \
        [round(t * FPS) for t in timestamps]


def test_jsonl_export_holds_accepted_pairs_as_reviewed(lib, tmp_path):
    out = tmp_path / "out"
    calls = []
    report = export_pairs(lib.store, out, progress=lambda *a: calls.append(a))
    assert report.n_pairs == 3 and report.by_kind == {"localized": 2, "comprehensive": 1}
    assert report.data_file == out / "metadata.jsonl" and not report.skipped
    assert (out / "README.md").is_file() and (out / ".tpo-export.json").is_file()
    assert calls[-1][:2] == (3, 3)
    in_file = _rows(out / "metadata.jsonl")
    # Rows with a segment first (column types of a JSON file are inferred from its start).
    assert [r["pair_id"] for r in in_file] == [lib.ids[k] for k in ("local", "edited", "whole")]
    rows = {r["pair_id"]: r for r in in_file}
    for row in rows.values():
        n = len(row["frame_timestamps"])
        assert n == len(row["images_file_names"]) and all((out / f).is_file()
                                                           for f in row["images_file_names"])
        content = row["prompt"][0]["content"]
        assert content[:n] == [{"type": "image"}] * n and len(content) == n + 1
        assert set(row["frame_timestamps"]) <= set(row["chosen_timestamps"])  # chosen's evidence
        assert content[-1]["text"].startswith(f"The video lasts for 20.0 seconds, and {n} frames")
        assert content[-1]["text"].endswith("\n" + row["question"])
    assert report.n_images == sum(len(r["frame_timestamps"]) for r in rows.values())
    # 20 dense frames are capped to 16 evenly spaced ones; the segment's 8 frames stay.
    assert len(rows[lib.ids["whole"]]["frame_timestamps"]) == 16
    assert rows[lib.ids["local"]]["frame_timestamps"] == lib.times[20:36:2]
    assert rows[lib.ids["local"]]["segment"] == [5.0, 9.0]
    assert rows[lib.ids["whole"]]["segment"] is None

    edited = rows[lib.ids["edited"]]  # swapped: the generated rejected side is chosen now
    assert edited["chosen"] == [{"role": "assistant",
                                 "content": [{"type": "text", "text": "Generated rejected."}]}]
    assert edited["rejected"][0]["content"][0]["text"] == "Edited chosen."
    assert edited["question"] == "Edited question?"
    assert edited["chosen_timestamps"] == lib.times[0:48:12]
    assert (edited["question_original"], edited["chosen_original"], edited["rejected_original"]) \
        == ("Generated question?", "Generated rejected.", "Generated chosen.")
    assert edited["edited"] is True and edited["swapped"] is True
    assert json.loads(edited["generator"]) == {"model": "tiny", "seed": 0}
    readme = (out / "README.md").read_text()
    assert "3 accepted pairs" in readme and "| localized | irrelevant | 2 |" in readme
    assert "load_dataset(" in readme


def test_jsonl_export_loads_with_datasets_as_images(lib, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_pairs(lib.store, out, ExportConfig(frames_from="union", max_frames=None, max_side=32))
    monkeypatch.chdir(tmp_path.parent)  # frame paths resolve against the folder, not the cwd
    ds = _load(out, tmp_path)
    assert set(ds.column_names) == set(COLUMNS) and len(ds) == 3
    for row in ds:
        assert len(row["images"]) == len(row["frame_timestamps"])
        assert max(row["images"][0].size) == 32
        assert _frames_match(row["images"], row["frame_timestamps"])
        assert row["frame_timestamps"] == sorted(set(row["chosen_timestamps"])
                                                 | set(row["rejected_timestamps"]))


@pytest.mark.parametrize("embed", [False, True])
def test_parquet_export_loads_and_imports(lib, tmp_path, embed):
    out = tmp_path / "out"
    report = export_pairs(lib.store, out, ExportConfig(format="parquet", embed_images=embed,
                                                       max_frames=4))
    if embed:  # one self-contained file
        assert report.data_file.name == "train.parquet" and not (out / "images").exists()
        ds = datasets.load_dataset("parquet", data_files=str(report.data_file), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    else:
        assert report.data_file.name == "metadata.parquet"
        ds = _load(out, tmp_path)
    assert len(ds) == 3 and set(ds.column_names) == set(COLUMNS)
    for row in ds:
        assert len(row["images"]) == len(row["frame_timestamps"]) <= 4
        assert _frames_match(row["images"], row["frame_timestamps"])
    edited = next(r for r in ds if r["pair_id"] == lib.ids["edited"])
    assert edited["chosen"][0]["content"][0]["text"] == "Generated rejected." and edited["swapped"]

    fresh = Store(tmp_path / "fresh.db")
    imported = import_file(fresh, report.data_file)
    assert len(imported.imported) == 3
    assert _effective_by_question(fresh) == _effective_by_question(lib.store, status="accepted")


def test_export_through_one_dpo_step_on_the_tiny_model(lib, tmp_path, tiny_smolvlm_dir):
    """The exported dataset is what TRL's DPOTrainer takes: a finite DPO+SFT loss, LoRA moves."""
    import time

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer

    from tpo.vlm import configure_for_frames

    out = tmp_path / "out"
    export_pairs(lib.store, out, ExportConfig(max_frames=4))
    ds = _load(out, tmp_path)
    processor = AutoProcessor.from_pretrained(tiny_smolvlm_dir)
    configure_for_frames(processor)
    model = AutoModelForImageTextToText.from_pretrained(tiny_smolvlm_dir)
    args = DPOConfig(output_dir=str(tmp_path / "run"), loss_type=["sigmoid", "sft"],
                     loss_weights=[1.0, 0.5], beta=0.3, learning_rate=1e-3, max_length=None,
                     bf16=False, use_cpu=True, max_steps=1, per_device_train_batch_size=1,
                     logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True)
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=processor,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 1 and math.isfinite(logged[0]["loss"])
    # A fresh LoRA equals the reference, so the DPO part is ln 2; the SFT term comes on top.
    assert logged[0]["loss"] > math.log(2)
    changed = [n for n, p in trainer.model.named_parameters()
               if n in lora and not torch.equal(p.detach(), lora[n])]
    assert changed, "no LoRA weight changed"
    assert seconds < 60
    print(f"DPO step: loss {logged[0]['loss']:.3f}, {seconds:.2f} s, "
          f"{len(changed)}/{len(lora)} LoRA tensors changed")


def _effective_by_question(store, status=None):
    """What training sees of each pair, plus what the pair is, keyed by question."""
    out = {}
    for pair in store.list_pairs(status=status):
        eff = effective(pair)
        out[eff["question"]] = {**eff, "kind": pair["kind"], "strategy": pair["strategy"],
                                "segment": (pair["segment_start"], pair["segment_end"]),
                                "status": pair["status"]}
    return out


def test_jsonl_round_trip_into_a_fresh_store(lib, tmp_path):
    report = export_pairs(lib.store, tmp_path / "out")
    fresh = Store(tmp_path / "fresh.db")
    imported = import_file(fresh, report.data_file, user="carla")
    assert len(imported.imported) == 3 and len(imported.videos_ingested) == 1  # the clip
    assert _effective_by_question(fresh) == _effective_by_question(lib.store, status="accepted")
    # The generated texts stay the originals; the reviewer's state is one audited review.
    pair = next(p for p in fresh.list_pairs() if p["question"] == "Generated question?")
    assert (pair["chosen"], pair["rejected"], pair["swapped"]) == \
        ("Generated chosen.", "Generated rejected.", 1)
    assert pair["edited_chosen"] == "Edited chosen."
    assert pair["edited_question"] == "Edited question?"
    reviews = fresh.reviews(pair["id"])
    assert [(r["user"], r["action"]) for r in reviews] == [("carla", "import")]
    assert replay(fresh, pair["id"]) == {k: pair[k] for k in replay(fresh, pair["id"])}

    again = import_file(fresh, report.data_file)
    assert again.imported == [] and again.already_imported == 3
    assert len(fresh.list_pairs()) == 3


def test_tpo_json_round_trip(lib, tmp_path):
    report = export_pairs(lib.store, tmp_path / "out", ExportConfig(format="tpo-json"))
    assert report.data_file.name == "tpo_pairs.json" and report.n_images == 0
    items = json.loads(report.data_file.read_text())
    assert {"id", "video", "prompt", "chosen", "rejected"} <= set(items[0])
    assert {i["prompt"] for i in items} == {"What is drawn at 5 s?", "Summarize the video.",
                                            "Edited question?"}
    fresh = Store(tmp_path / "fresh.db")
    ingest(fresh, [lib.clip])  # the video is already in this library
    imported = import_file(fresh, report.data_file)
    assert len(imported.imported) == 3 and imported.videos_ingested == []
    assert _effective_by_question(fresh) == _effective_by_question(lib.store, status="accepted")


def test_plain_tpo_json_without_kind_or_times_imports_and_exports(store, clip, tmp_path):
    """A TPO / LLaVA-Hound file: relative video paths, no kind, no timestamps."""
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "clip.mp4").write_bytes(clip.read_bytes())
    path = tmp_path / "tpo.json"
    path.write_text(json.dumps([{"id": "v1", "video": "videos/clip.mp4", "prompt": "What?",
                                 "chosen": "Bars.", "rejected": "Dogs."}]))
    report = import_file(store, path)
    (pair,) = store.list_pairs()
    assert report.imported == [pair["id"]] and pair["kind"] == "comprehensive"
    assert pair["status"] == "pending" and pair["generator"]["imported_from"]["id"] == "v1"
    review(store, pair["id"], "accept", user="ana")
    out = export_pairs(store, tmp_path / "out", ExportConfig(max_frames=5))
    (row,) = _rows(out.data_file)
    assert len(row["frame_timestamps"]) == 5  # no recorded frames: evenly over the video


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_file_reports_lines_and_imports_nothing_unless_skip_bad(lib, tmp_path):
    good = _rows(export_pairs(lib.store, tmp_path / "out").data_file)
    missing_field = {k: v for k, v in good[1].items() if k != "chosen"}
    unknown_kind = {**good[2], "kind": "panoramic"}
    no_video = {**good[0], "video": str(tmp_path / "gone.mp4"), "video_sha256": None}
    path = _write_jsonl(tmp_path / "bad.jsonl",
                        [good[0], missing_field, unknown_kind, no_video, good[2]])
    fresh = Store(tmp_path / "fresh.db")
    with pytest.raises(ImportValidationError) as caught:
        import_file(fresh, path)
    assert [n for n, _ in caught.value.errors] == [2, 3, 4]
    messages = dict(caught.value.errors)
    assert "chosen" in messages[2] and "panoramic" in messages[3] and "gone.mp4" in messages[4]
    assert fresh.list_pairs() == [] and fresh.list_videos() == []  # nothing, not even the video

    report = import_file(fresh, path, skip_bad=True)
    assert len(report.imported) == 2 and [n for n, _ in report.skipped] == [2, 3, 4]
    again = import_file(fresh, path, skip_bad=True)
    assert again.imported == [] and again.already_imported == 2
    assert len(fresh.list_pairs()) == 2


def test_bad_json_lines_and_times_past_the_end(lib, tmp_path):
    good = _rows(export_pairs(lib.store, tmp_path / "out").data_file)[0]
    late = {**good, "chosen_timestamps": [5.0, 99.0]}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps(late) + "\n[1, 2]\n")
    with pytest.raises(ImportValidationError) as caught:
        import_file(lib.store, path)
    assert [n for n, _ in caught.value.errors] == [2, 3, 4]
    assert "past the end" in dict(caught.value.errors)[3]


def test_export_folder_rules(lib, tmp_path):
    with pytest.raises(ExportError, match="no pending"):
        export_pairs(Store(tmp_path / "empty.db"), tmp_path / "x", ExportConfig(status="pending"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_pairs(lib.store, foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    out = tmp_path / "out"
    export_pairs(lib.store, out)
    report = export_pairs(lib.store, out, ExportConfig(format="tpo-json"))  # replaces it
    assert sorted(p.name for p in out.iterdir()) == [".tpo-export.json", "README.md",
                                                     "tpo_pairs.json"]
    assert report.n_pairs == 3
    with pytest.raises(ValueError, match="embed_images"):
        ExportConfig(format="jsonl", embed_images=True)


def test_pairs_of_a_vanished_video_are_skipped_and_reported(store, clip, tmp_path):
    other = make_video(tmp_path / "other.mp4", duration_s=2, fps=FPS)
    ids = {}
    for path in (clip, other):
        video_id = ingest(store, [path]).added[0]
        with open_video(path) as vid:
            t = vid.times.tolist()
        ids[path.name] = store.save_generation(video_id, "k", [_pair(
            "comprehensive", "dense-sparse", f"About {path.name}?", "A.", "B.", None, t[::2],
            t[::4], "accepted")], params={}, seconds=0)[0]
    other.unlink()
    report = export_pairs(store, tmp_path / "out")
    assert report.n_pairs == 1 and [p for p, _ in report.skipped] == [ids["other.mp4"]]
    assert "no such file" in report.skipped[0][1]
