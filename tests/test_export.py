"""Export of reviewed pairs as a TRL preference dataset and import back, on a real encoded
video, a real store and the tiny real model: layouts, frames (the paper's whole-video records
and the per-side departures), datasets loading, one DPO step, round trips, validation of bad
files, the `tpo export` options."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from click.testing import CliRunner
from media import make_video, read_index

from tpo.cli import cli
from tpo.curation.export import COLUMNS, ExportConfig, ExportError, export_pairs
from tpo.models.prompts import time_prompt
from tpo.curation.importer import ImportValidationError, import_file
from tpo.media.library import ingest
from tpo.curation.review import effective, replay, review
from tpo.store import Store
from tpo.media.video import open_video

FPS = 4  # the clip's frame k is at k / FPS s and shows k as bars (media.read_index)
# The 20 s clip's whole-video frames: 20 (one per second), the centres of 20 equal bins.
WHOLE_20 = [k + 0.5 for k in range(20)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 s at 4 fps, 64x48: 80 frames, 0.25 s apart."""
    return make_video(tmp_path_factory.mktemp("export") / "clip.mp4", duration_s=20, fps=FPS,
                      size=(64, 48))


def _pair(kind, strategy, question, chosen, rejected, segment, chosen_t, rejected_t, status):
    """A pair row as tpo.generation.pairs makes it."""
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
        # The paper's record: min(64, 20 s) = 20 frames over the whole video, whatever the
        # pair's sides saw (the edited row is swapped: its frames do not move either).
        assert row["frame_times"] == WHOLE_20
        n = len(row["frame_times"])
        assert n == len(row["images_file_names"]) and all((out / f).is_file()
                                                           for f in row["images_file_names"])
        content = row["prompt"][0]["content"]
        assert content[:n] == [{"type": "image"}] * n and len(content) == n + 1
        assert content[-1]["text"] == time_prompt(WHOLE_20, 20.0, row["question"])
    assert report.n_images == 60
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
    export_pairs(lib.store, out, ExportConfig(frames_from="union", frames=None, max_side=32))
    monkeypatch.chdir(tmp_path.parent)  # frame paths resolve against the folder, not the cwd
    ds = _load(out, tmp_path)
    assert set(ds.column_names) == set(COLUMNS) and len(ds) == 3
    for row in ds:
        assert len(row["images"]) == len(row["frame_times"])
        assert max(row["images"][0].size) == 32
        assert _frames_match(row["images"], row["frame_times"])
        assert row["frame_times"] == sorted(set(row["chosen_timestamps"])
                                            | set(row["rejected_timestamps"]))


@pytest.mark.parametrize("embed", [False, True])
def test_parquet_export_loads_and_imports(lib, tmp_path, embed):
    out = tmp_path / "out"
    report = export_pairs(lib.store, out, ExportConfig(format="parquet", embed_images=embed,
                                                       frames=4))
    if embed:  # one self-contained file
        assert report.data_file.name == "train.parquet" and not (out / "images").exists()
        ds = datasets.load_dataset("parquet", data_files=str(report.data_file), split="train",
                                   cache_dir=str(tmp_path / "hf"))
    else:
        assert report.data_file.name == "metadata.parquet"
        ds = _load(out, tmp_path)
    assert len(ds) == 3 and set(ds.column_names) == set(COLUMNS)
    for row in ds:  # 4 frames over the whole 20 s: the centres of four 5 s bins
        assert row["frame_times"] == [2.5, 7.5, 12.5, 17.5]
        assert _frames_match(row["images"], row["frame_times"])
        assert row["prompt"][0]["content"][-1]["text"] == time_prompt(
            row["frame_times"], 20.0, row["question"])
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

    from tpo.models.vlm import configure_for_frames

    out = tmp_path / "out"
    export_pairs(lib.store, out, ExportConfig(frames=4))
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
    out = export_pairs(store, tmp_path / "out", ExportConfig(frames_from="chosen", frames=5))
    (row,) = _rows(out.data_file)
    assert row["frame_times"] == [2.0, 6.0, 10.0, 14.0, 18.0]  # no side frames: whole video


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


# --------------------------------------------------------------------------------------------
# Frames of a record: the whole video (the paper), per-side departures, frame_times everywhere


def _whole_times_ok(times, duration_s, n):
    """n times, evenly spaced, spanning the whole video (first bin centre to last)."""
    step = duration_s / n
    return (len(times) == n and times[0] == pytest.approx(step / 2)
            and times[-1] == pytest.approx(duration_s - step / 2)
            and np.allclose(np.diff(times), step))


@pytest.mark.parametrize("layout", ["jsonl", "parquet", "embedded", "tpo-json"])
def test_every_layout_carries_the_whole_video_frames_and_their_times(lib, tmp_path, layout):
    fmt = "parquet" if layout == "embedded" else layout
    report = export_pairs(lib.store, tmp_path / "out", ExportConfig(
        format=fmt, embed_images=layout == "embedded", frames=8))
    if layout == "tpo-json":  # no images: the plan, for a loader to decode the same frames
        rows = {int(r["id"]): r for r in json.loads(report.data_file.read_text())}
        for row in rows.values():
            assert row["frame_times"] == [1.25 + 2.5 * k for k in range(8)]
            assert row["duration_s"] == 20.0
    else:
        ds = (datasets.load_dataset("parquet", data_files=str(report.data_file), split="train",
                                    cache_dir=str(tmp_path / "hf")) if layout == "embedded"
              else _load(tmp_path / "out", tmp_path))
        assert "frame_times" in ds.column_names and "frame_timestamps" not in ds.column_names
        rows = {r["pair_id"]: r for r in ds}
        for row in rows.values():
            assert _frames_match(row["images"], row["frame_times"])  # times = the images' own
    local = rows[lib.ids["local"]]  # segment [5, 9): its frames span the whole 20 s anyway
    assert _whole_times_ok(local["frame_times"], 20.0, 8)
    assert local["frame_times"] == rows[lib.ids["whole"]]["frame_times"] \
        == rows[lib.ids["edited"]]["frame_times"]  # one set of frames per video, both sides


def test_whole_frames_are_at_most_one_per_second_and_never_fewer_than_one(store, tmp_path):
    """N = min(frames, floor(seconds)): a 3 s video asked for 64 gives 3; 0.5 s gives 1."""
    ids = {}
    for seconds in (3, 0.5):
        clip = make_video(tmp_path / f"short-{seconds}.mp4", duration_s=seconds, fps=FPS,
                          size=(32, 32))
        video_id = ingest(store, [clip]).added[0]
        with open_video(clip) as vid:
            t = vid.times.tolist()
        (ids[seconds],) = store.save_generation(video_id, "k", [_pair(
            "localized", "irrelevant", f"Short {seconds}?", "A.", "B.", (0.0, seconds / 2),
            t[:1], t[-1:], "pending")], params={}, seconds=0)
        review(store, ids[seconds], "accept", user="ana")
    for frames, expected in ((64, {3: [0.5, 1.5, 2.5], 0.5: [0.25]}),
                             (2, {3: [0.75, 2.25], 0.5: [0.25]})):
        out = export_pairs(store, tmp_path / f"out-{frames}", ExportConfig(frames=frames))
        rows = {r["pair_id"]: r for r in _rows(out.data_file)}
        for seconds, times in expected.items():
            assert rows[ids[seconds]]["frame_times"] == times
            assert len(rows[ids[seconds]]["images_file_names"]) == len(times)


def test_frames_from_chosen_is_the_segment_and_rejected_the_other_side(lib, tmp_path):
    """The departures from the paper stay available: a side's own frames, capped evenly."""
    chosen = {r["pair_id"]: r for r in _rows(export_pairs(
        lib.store, tmp_path / "chosen", ExportConfig(frames_from="chosen")).data_file)}
    local = chosen[lib.ids["local"]]
    assert local["frame_times"] == lib.times[20:36:2]  # the 8 frames of the segment [5, 9)
    assert all(5.0 <= t < 9.0 for t in local["frame_times"])
    assert local["prompt"][0]["content"][-1]["text"] == time_prompt(
        lib.times[20:36:2], 20.0, local["question"])
    capped = _rows(export_pairs(lib.store, tmp_path / "capped", ExportConfig(
        frames_from="rejected", frames=3)).data_file)
    for row in capped:
        assert len(row["frame_times"]) <= 3
        assert set(row["frame_times"]) <= set(row["rejected_timestamps"])
    manifest = json.loads((tmp_path / "capped" / ".tpo-export.json").read_text())
    assert manifest["config"]["frames_from"] == "rejected" and manifest["config"]["frames"] == 3
    assert "departure from the TPO paper" in (tmp_path / "capped" / "README.md").read_text()
    assert "whole video" in (tmp_path / "chosen" / "README.md").read_text()


def test_bad_frame_counts_are_refused():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="frames must be a positive number"):
            ExportConfig(frames=bad)
    with pytest.raises(ValueError, match="frames_from must be one of whole"):
        ExportConfig(frames_from="segment")


def test_reexport_of_an_import_gives_the_same_frames(lib, tmp_path):
    first = export_pairs(lib.store, tmp_path / "out", ExportConfig(frames=6))
    fresh = Store(tmp_path / "fresh.db")
    assert len(import_file(fresh, first.data_file).imported) == 3  # accepted, as exported
    again = export_pairs(fresh, tmp_path / "again", ExportConfig(frames=6))
    times = {r["question"]: r["frame_times"] for r in _rows(first.data_file)}
    assert {r["question"]: r["frame_times"] for r in _rows(again.data_file)} == times


def test_an_older_export_with_frame_timestamps_still_imports(lib, tmp_path):
    rows = _rows(export_pairs(lib.store, tmp_path / "out").data_file)
    old = [{("frame_timestamps" if k == "frame_times" else k): v for k, v in r.items()}
           for r in rows]
    fresh = Store(tmp_path / "fresh.db")
    report = import_file(fresh, _write_jsonl(tmp_path / "old.jsonl", old))
    assert len(report.imported) == 3
    assert _effective_by_question(fresh) == _effective_by_question(lib.store, status="accepted")
    # Checked like the other times, under the name the file uses.
    late = [{**old[0], "frame_timestamps": [1.0, 99.0]}, {**old[1], "frame_timestamps": "x"}]
    with pytest.raises(ImportValidationError) as caught:
        import_file(Store(tmp_path / "other.db"), _write_jsonl(tmp_path / "late.jsonl", late))
    messages = dict(caught.value.errors)
    assert "past the end" in messages[1] and "frame_timestamps must be a list" in messages[2]


def test_export_command_frames_options(lib, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("TPO_DATA_DIR", str(settings.data_dir))

    def run(*args):
        return CliRunner().invoke(cli, ["--db", str(settings.db_path), "export", *map(str, args)])

    for bad in ("0", "-2"):
        refused = run(tmp_path / "bad", "--frames", bad)
        assert refused.exit_code == 2 and "--frames must be at least 1" in refused.output
        assert "Traceback" not in refused.output and not (tmp_path / "bad").exists()
    help_text = " ".join(run("--help").output.split())
    assert "whole" in help_text and "3 s video gives 3 frames" in help_text
    assert "departure from the paper" in help_text
    done = run(tmp_path / "out", "--frames", "5")
    assert done.exit_code == 0, done.output
    assert {tuple(r["frame_times"]) for r in _rows(tmp_path / "out" / "metadata.jsonl")} == \
        {(2.0, 6.0, 10.0, 14.0, 18.0)}
    old_name = run(tmp_path / "old", "--max-frames", "2", "--frames-from", "chosen")
    assert old_name.exit_code == 0, old_name.output
    local = next(r for r in _rows(tmp_path / "old" / "metadata.jsonl")
                 if r["pair_id"] == lib.ids["local"])
    assert len(local["frame_times"]) == 2 and all(5.0 <= t < 9.0 for t in local["frame_times"])
