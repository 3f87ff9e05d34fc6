"""`tpo export --format llamafactory`: LLaMA-Factory's sharegpt preference layout, checked
field by field against its documented format (``data/README.md``, "Preference Dataset" in
sharegpt format, and its converter's rules: one human turn, ``chosen`` / ``rejected`` as one
gpt message object each, one ``<image>`` per image), on a real clip and a real store.

LLaMA-Factory 0.9.5 does not install beside this project's pins (it needs datasets <= 4,
transformers <= 5.6, trl <= 0.24, gradio <= 5.50), so its loader is not run here;
``bench/llamafactory_check.py`` runs its own parser and converter on an export where it can
be put on the path.
"""

from __future__ import annotations

import json

import datasets
import pytest
from click.testing import CliRunner
from test_export import clip, lib  # noqa: F401  (fixtures: a clip with reviewed pairs)

from tpo.cli import cli
from tpo.curation.export import ExportConfig, export_pairs
from tpo.curation.llamafactory import DATASET_NAME

WHOLE_20 = [k + 0.5 for k in range(20)]  # the 20 s clip's whole-video frame times (s)


def _data(out):
    info = json.loads((out / "dataset_info.json").read_text())
    return info, json.loads((out / info[DATASET_NAME]["file_name"]).read_text())


def test_images_layout_matches_the_documented_sharegpt_preference_format(lib, tmp_path):
    out = tmp_path / "lf"
    report = export_pairs(lib.store, out, ExportConfig(format="llamafactory"))
    info, rows = _data(out)
    assert info == {DATASET_NAME: {
        "file_name": "tpo_pairs_sharegpt.json", "formatting": "sharegpt", "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
                    "images": "images"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt"}}}
    assert report.n_pairs == 3 and len(rows) == 3
    assert (out / "dataset_info.json") in report.files
    by_id = {r["pair_id"]: r for r in rows}
    for row in rows:
        # One human turn (an odd count, as the converter wants for ranking data).
        assert [m["from"] for m in row["conversations"]] == ["human"]
        text = row["conversations"][0]["value"]
        # The paper's record: the whole video's frames, one placeholder per image, in order.
        assert row["frame_times"] == pytest.approx(WHOLE_20)
        assert len(row["images"]) == 20 and text.startswith("<image>" * 20)
        assert text.count("<image>") == len(row["images"])
        assert "20.0 seconds" in text  # the time prompt says when each frame is
        assert set(row["chosen"]) == set(row["rejected"]) == {"from", "value"}
        assert row["chosen"]["from"] == row["rejected"]["from"] == "gpt"
        assert all((out / name).is_file() for name in row["images"])
        assert "videos" not in row
    edited = by_id[lib.ids["edited"]]  # edited, then swapped by the reviewer: exported as seen
    assert edited["conversations"][0]["value"].endswith("Edited question?")
    assert edited["chosen"]["value"] == "Generated rejected."
    assert edited["rejected"]["value"] == "Edited chosen."
    local = by_id[lib.ids["local"]]
    assert (local["kind"], local["segment"]) == ("localized", [5.0, 9.0])
    # datasets (what LLaMA-Factory loads a JSON file with) reads every row and column.
    ds = datasets.load_dataset("json", data_files=str(out / "tpo_pairs_sharegpt.json"),
                               split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 3 and {"conversations", "chosen", "rejected", "images"} <= set(
        ds.column_names)
    assert "dataset_info.json" in (out / "README.md").read_text()


def test_video_mode_names_the_video_and_writes_no_frames(lib, tmp_path):
    out = tmp_path / "lf-video"
    report = export_pairs(lib.store, out, ExportConfig(format="llamafactory", media="video"))
    info, rows = _data(out)
    assert info[DATASET_NAME]["columns"]["videos"] == "videos"
    assert "images" not in info[DATASET_NAME]["columns"]
    assert report.n_images == 0 and not (out / "images").exists()
    for row in rows:
        assert row["videos"] == [str(lib.clip)] and "images" not in row
        assert row["conversations"][0]["value"].startswith("<video>")
        assert row["conversations"][0]["value"].count("<video>") == 1


def test_media_video_is_refused_for_other_formats():
    with pytest.raises(ValueError, match="media video only applies to the llamafactory format"):
        ExportConfig(format="jsonl", media="video")
    with pytest.raises(ValueError, match="media must be one of images, video"):
        ExportConfig(format="llamafactory", media="frames")


def test_cli_exports_the_llamafactory_layout(lib, tmp_path):
    out = tmp_path / "cli-lf"
    result = CliRunner().invoke(cli, ["--db", str(lib.store.path), "export", str(out),
                                      "--format", "llamafactory", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_pairs"] == 3
    assert (out / "dataset_info.json").is_file()
    bad = CliRunner().invoke(cli, ["--db", str(lib.store.path), "export", str(tmp_path / "x"),
                                   "--media", "video"])
    assert bad.exit_code == 2 and "media video only applies" in bad.output
