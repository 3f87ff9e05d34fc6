"""Benchmark readers (tpo.evaluation.benchmarks): small copies of each real layout with real videos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from media import make_video

from tpo.evaluation.benchmarks import BenchmarkError, SuiteLoad, load_suite


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """One tiny real video; fixtures copy it wherever a benchmark expects a file."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", duration_s=0.5)


def _put(clip: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, path)
    return path


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- Video-MME ------------------------------------------------------------------------------

VIDEOMME_ROWS = [  # the HF parquet's columns, real-looking values
    {"video_id": "001", "duration": "short", "domain": "Knowledge",
     "sub_category": "Humanity & History", "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
     "videoID": "fFjv93ACGo8", "question_id": "001-1", "task_type": "Counting Problem",
     "question": "How many porcelain jars were discovered?",
     "options": ["A. 4.", "B. 9.", "C. 5.", "D. 13."], "answer": "B"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge",
     "sub_category": "Humanity & History", "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
     "videoID": "fFjv93ACGo8", "question_id": "001-2", "task_type": "Object Recognition",
     "question": "Which item is not discussed?",
     "options": ["A. Inkstone.", "B. Niche.", "C. Jade.", "D. Sacrificial table."],
     "answer": "C"},
    {"video_id": "601", "duration": "long", "domain": "Sports Competition",
     "sub_category": "Football", "url": "https://www.youtube.com/watch?v=missingVid01",
     "videoID": "missingVid01", "question_id": "601-1", "task_type": "Action Reasoning",
     "question": "Why does the referee stop play?",
     "options": ["A. A foul.", "B. Offside.", "C. Injury.", "D. Time."], "answer": "A"},
]


@pytest.fixture
def videomme_root(tmp_path, clip) -> Path:
    """The HF release: videomme/test-00000-of-00001.parquet, videos unzipped into data/."""
    root = tmp_path / "Video-MME"
    (root / "videomme").mkdir(parents=True)
    pd.DataFrame(VIDEOMME_ROWS).to_parquet(root / "videomme" / "test-00000-of-00001.parquet")
    _put(clip, root / "data" / "fFjv93ACGo8.mp4")
    return root


def test_videomme_parquet_from_the_root_folder(videomme_root):
    load = load_suite(f"videomme:{videomme_root}")
    assert isinstance(load, SuiteLoad)
    assert (load.name, load.path) == ("videomme", str(videomme_root.resolve()))
    assert [i.item_id for i in load.items] == ["001-1", "001-2"]
    first = load.items[0]
    assert first.suite == "videomme"
    assert first.question == "How many porcelain jars were discovered?"
    assert first.options == ("4.", "9.", "5.", "13.")  # "A. " prefixes gone
    assert first.answer == "B"
    assert (first.duration_class, first.task) == ("short", "Counting Problem")
    assert first.video == str((videomme_root / "data" / "fFjv93ACGo8.mp4").resolve())
    assert Path(first.video).is_absolute()
    assert first.meta["domain"] == "Knowledge" and first.meta["video_id"] == "001"
    assert load.items[1].options == ("Inkstone.", "Niche.", "Jade.", "Sacrificial table.")
    assert load.items[1].answer == "C"
    missing = videomme_root / "data" / "missingVid01.mp4"
    assert load.missing == [("601-1", str(missing.resolve()))]


def test_videomme_parquet_file_finds_videos_beside_its_folder(videomme_root):
    parquet = videomme_root / "videomme" / "test-00000-of-00001.parquet"
    load = load_suite(f"videomme:{parquet}")
    assert [i.item_id for i in load.items] == ["001-1", "001-2"]
    assert load.items[0].video == str((videomme_root / "data" / "fFjv93ACGo8.mp4").resolve())


@pytest.mark.parametrize("folder", ["videos", "."])
def test_videomme_videos_in_other_folders(tmp_path, clip, folder):
    _write_json(tmp_path / "videomme.json", VIDEOMME_ROWS)
    video = _put(clip, tmp_path / folder / "missingVid01.mp4")
    load = load_suite(f"videomme:{tmp_path}")
    assert [i.item_id for i in load.items] == ["601-1"]
    assert load.items[0].video == str(video.resolve())
    assert [m[0] for m in load.missing] == ["001-1", "001-2"]


def test_videomme_jsonl(tmp_path, clip):
    lines = "\n".join(json.dumps(r) for r in VIDEOMME_ROWS)
    (tmp_path / "test.jsonl").write_text(lines + "\n", encoding="utf-8")
    _put(clip, tmp_path / "data" / "missingVid01.mp4")
    load = load_suite(f"videomme:{tmp_path / 'test.jsonl'}")
    assert [(i.item_id, i.answer, i.duration_class) for i in load.items] == [
        ("601-1", "A", "long")]


def test_videomme_nested_github_json(tmp_path, clip):
    """The GitHub release: one entry per video with its questions; the template spells the
    fields duration_category / video_category / choices."""
    nested = [
        {"video_id": "001", "duration_category": "short", "video_category": "Knowledge",
         "video_subcategory": "Humanity & History",
         "url": "https://www.youtube.com/watch?v=fFjv93ACGo8",
         "questions": [
             {"question_id": "001-1", "task_type": "Object Reasoning",
              "question": "Which statement is not correct?",
              "choices": ["A. Moina Michael first used the poppy.", "B. Poppies grow there.",
                          "C. It became a symbol.", "D. It was written during WW1."],
              "answer": "A"},
             {"question_id": "001-2", "task_type": "Attribute Perception",
              "question": "What is Moina Michael wearing?",
              "choices": ["A. Black shirts.", "B. Blue shirts.", "C. Red skirts.",
                          "D. Brown hat."], "answer": "D"}]},
        {"video_id": "002", "duration": "medium", "domain": "Knowledge",
         "sub_category": "Law", "videoID": "otherVideo02",
         "questions": [
             {"question_id": "002-1", "task_type": "OCR Problems", "question": "Which law?",
              "options": ["A. One.", "B. Two.", "C. Three.", "D. Four."], "answer": "B"}]},
    ]
    file = _write_json(tmp_path / "ann" / "Video-MME.json", nested)
    _put(clip, tmp_path / "ann" / "videos" / "fFjv93ACGo8.mp4")  # id taken from the url
    load = load_suite(f"videomme:{file}")
    assert [(i.item_id, i.answer, i.duration_class, i.task) for i in load.items] == [
        ("001-1", "A", "short", "Object Reasoning"),
        ("001-2", "D", "short", "Attribute Perception")]
    assert load.items[1].options == ("Black shirts.", "Blue shirts.", "Red skirts.", "Brown hat.")
    assert load.items[0].meta["domain"] == "Knowledge"
    missing = tmp_path / "ann" / "data" / "otherVideo02.mp4"  # the first place looked
    assert load.missing == [("002-1", str(missing.resolve()))]


def test_videomme_keeps_option_text_that_only_looks_like_a_prefix(tmp_path, clip):
    rows = [dict(VIDEOMME_ROWS[0], options=["D. Trump speaks.", "B. 9.", "C. 5.", "D. 13."])]
    _write_json(tmp_path / "v.json", rows)
    _put(clip, tmp_path / "data" / "fFjv93ACGo8.mp4")
    assert load_suite(f"videomme:{tmp_path}").items[0].options == (
        "D. Trump speaks.", "9.", "5.", "13.")


# --- MLVU -----------------------------------------------------------------------------------

PLOT_QA = [
    {"video": "movie101_66.mp4", "duration": 246, "question": "What color is the main character?",
     "candidates": ["Yellow", "Red", "Green", "Blue"], "answer": "Green",
     "question_type": "plotQA"},
    {"video": "movie101_66.mp4", "duration": 246, "question": "Who enters first?",
     "candidates": ["A dog", "A cat", "A man"], "answer": "A cat", "question_type": "plotQA"},
]
NEEDLE = [
    {"video": "needle_32.mp4", "duration": 1900.5, "question": "What does the hand do?",
     "candidates": ["Delivers a product", "Shakes a hand", "Takes a card", "Points"],
     "answer": "Points", "question_type": "findNeedle"},
    {"video": "needle_99.mp4", "duration": 90, "question": "What falls?",
     "candidates": ["A cup", "A hat"], "answer": "A hat", "question_type": "findNeedle"},
]
SUMMARY = [{"video": "summary_1.mp4", "duration": 600, "question": "Summarize the video.",
            "answer": "A long story."}]


@pytest.fixture
def mlvu_root(tmp_path, clip) -> Path:
    """The HF download MLVU/MVLU: MLVU/json/<n>_<task>.json, MLVU/video/<n>_<task>/<video>."""
    root = tmp_path / "MVLU" / "MLVU"
    _write_json(root / "json" / "1_plotQA.json", PLOT_QA)
    _write_json(root / "json" / "2_needle.json", NEEDLE)
    _write_json(root / "json" / "9_summary.json", SUMMARY)  # open-ended: skipped
    _put(clip, root / "video" / "1_plotQA" / "movie101_66.mp4")
    _put(clip, root / "video" / "2_needle" / "needle_32.mp4")  # needle_99.mp4 absent
    return root


def test_mlvu_root(mlvu_root):
    load = load_suite(f"mlvu:{mlvu_root}")
    assert [(i.item_id, i.answer, i.task, i.duration_class) for i in load.items] == [
        ("1_plotQA/0", "C", "plotQA", "3-10 min"),
        ("1_plotQA/1", "B", "plotQA", "3-10 min"),
        ("2_needle/0", "D", "findNeedle", ">30 min"),
    ]
    first = load.items[0]
    assert first.suite == "mlvu"
    assert first.question == "What color is the main character?"
    assert first.options == ("Yellow", "Red", "Green", "Blue")
    assert first.video == str((mlvu_root / "video" / "1_plotQA" / "movie101_66.mp4").resolve())
    assert load.missing == [
        ("2_needle/1", str((mlvu_root / "video" / "2_needle" / "needle_99.mp4").resolve()))]


@pytest.mark.parametrize("where", ["download", "json", "file"])
def test_mlvu_other_paths(mlvu_root, where):
    path = {"download": mlvu_root.parent, "json": mlvu_root / "json",
            "file": mlvu_root / "json" / "1_plotQA.json"}[where]
    load = load_suite(f"mlvu:{path}")
    expected = ["1_plotQA/0", "1_plotQA/1"] + (["2_needle/0"] if where != "file" else [])
    assert [i.item_id for i in load.items] == expected
    assert load.items[0].video == str((mlvu_root / "video" / "1_plotQA" / "movie101_66.mp4")
                                      .resolve())


def test_mlvu_duration_buckets(tmp_path, clip):
    rows = [dict(PLOT_QA[0], duration=d) for d in (179, 180, 599, 600, 1799, 1800, 7000)]
    _write_json(tmp_path / "json" / "1_plotQA.json", rows)
    _put(clip, tmp_path / "video" / "1_plotQA" / "movie101_66.mp4")
    assert [i.duration_class for i in load_suite(f"mlvu:{tmp_path}").items] == [
        "<3 min", "3-10 min", "3-10 min", "10-30 min", "10-30 min", ">30 min", ">30 min"]


def test_mlvu_rejects_the_test_set_and_open_ended_files(tmp_path):
    test_set = [{"question_id": "AR_0", "question_type": "anomaly_reco", "video": "a.mp4",
                 "question": "What is unusual?", "candidates": ["x", "y", "z", "w"]}]
    file = _write_json(tmp_path / "test_question.json", test_set)
    with pytest.raises(BenchmarkError, match="test set"):
        load_suite(f"mlvu:{file}")
    summary = _write_json(tmp_path / "json" / "9_summary.json", SUMMARY)
    with pytest.raises(BenchmarkError, match="open-ended"):
        load_suite(f"mlvu:{summary}")


def test_mlvu_answer_not_among_candidates(tmp_path):
    file = _write_json(tmp_path / "json" / "1_plotQA.json", [dict(PLOT_QA[0], answer="Purple")])
    with pytest.raises(BenchmarkError, match="'Purple' is not one of its candidates"):
        load_suite(f"mlvu:{file}")


# --- LongVideoBench -------------------------------------------------------------------------

LVB_ROWS = [
    {"video_id": "86CxyhFV9MI", "id": "86CxyhFV9MI_0", "video_path": "86CxyhFV9MI.mp4",
     "subtitle_path": "86CxyhFV9MI_en.json", "question": "After the man waves, what falls?",
     "candidates": ["a cup", "a hat", "a phone", "a book", "a shoe"], "correct_choice": 1,
     "duration_group": 600, "duration": 523.3, "question_category": "E3E",
     "topic_category": "NP-News-Programs", "level": "L2-Relation",
     "starting_timestamp_for_subtitles": 0},
    {"video_id": "86CxyhFV9MI", "id": "86CxyhFV9MI_1", "video_path": "86CxyhFV9MI.mp4",
     "subtitle_path": "86CxyhFV9MI_en.json", "question": "What color is the car?",
     "candidates": ["red", "blue", "white", "black"], "correct_choice": 3,
     "duration_group": 600, "duration": 523.3, "question_category": "S2A",
     "topic_category": "NP-News-Programs", "level": "L1-Perception",
     "starting_timestamp_for_subtitles": 0},
    {"video_id": "zz", "id": "zz_0", "video_path": "zz.mp4", "question": "Where are they?",
     "candidates": ["a park", "a shop"], "correct_choice": 0, "duration_group": 15,
     "duration": 12.0, "question_category": "SOS", "topic_category": "LC", "level": "L1"},
    {"video_id": "86CxyhFV9MI", "id": "86CxyhFV9MI_2", "video_path": "86CxyhFV9MI.mp4",
     "question": "No answer here?", "candidates": ["x", "y"], "duration_group": 600,
     "question_category": "S2A"},  # no correct_choice: skipped
]


@pytest.fixture
def lvb_root(tmp_path, clip) -> Path:
    root = tmp_path / "LongVideoBench"
    _write_json(root / "lvb_val.json", LVB_ROWS)
    _put(clip, root / "videos" / "86CxyhFV9MI.mp4")  # zz.mp4 absent
    return root


@pytest.mark.parametrize("use_file", [False, True])
def test_longvideobench(lvb_root, use_file):
    path = lvb_root / "lvb_val.json" if use_file else lvb_root
    load = load_suite(f"longvideobench:{path}")
    assert [(i.item_id, i.answer, i.duration_class, i.task) for i in load.items] == [
        ("86CxyhFV9MI_0", "B", "3-10 min", "E3E"), ("86CxyhFV9MI_1", "D", "3-10 min", "S2A")]
    first = load.items[0]
    assert first.suite == "longvideobench"
    assert first.question == "After the man waves, what falls?"
    assert first.options == ("a cup", "a hat", "a phone", "a book", "a shoe")
    assert first.video == str((lvb_root / "videos" / "86CxyhFV9MI.mp4").resolve())
    assert first.meta["topic_category"] == "NP-News-Programs"
    assert load.missing == [("zz_0", str((lvb_root / "videos" / "zz.mp4").resolve()))]


def test_longvideobench_parquet_option_columns(tmp_path, clip):
    rows = [{k: v for k, v in LVB_ROWS[2].items() if k != "candidates"}
            | {"option0": "a park", "option1": "a shop", "option2": "N/A", "option3": "N/A",
               "option4": "N/A"}]
    pd.DataFrame(rows).to_parquet(tmp_path / "validation-00000-of-00001.parquet")
    _put(clip, tmp_path / "videos" / "zz.mp4")
    load = load_suite(f"longvideobench:{tmp_path / 'validation-00000-of-00001.parquet'}")
    assert [(i.options, i.answer, i.duration_class) for i in load.items] == [
        (("a park", "a shop"), "A", "8-15 s")]


def test_longvideobench_rejects_the_test_split(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "correct_choice"} for r in LVB_ROWS]
    file = _write_json(tmp_path / "lvb_test_wo_gt.json", rows)
    with pytest.raises(BenchmarkError, match="correct_choice"):
        load_suite(f"longvideobench:{file}")
    with pytest.raises(BenchmarkError, match="no lvb_val.json.*test split"):
        load_suite(f"longvideobench:{tmp_path}")


# --- errors and limit -----------------------------------------------------------------------

def test_unknown_suite_and_needle():
    with pytest.raises(BenchmarkError, match="unknown benchmark 'mvbench'"):
        load_suite("mvbench:/x")
    with pytest.raises(BenchmarkError, match="tpo.evaluation.needle"):
        load_suite("needle")
    with pytest.raises(BenchmarkError, match="videomme:PATH"):
        load_suite("videomme")
    assert issubclass(BenchmarkError, ValueError)


def test_missing_path(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_suite(f"mlvu:{tmp_path / 'nowhere'}")


def test_folder_without_annotations(tmp_path):
    with pytest.raises(BenchmarkError, match="no annotation file"):
        load_suite(f"videomme:{tmp_path}")
    with pytest.raises(BenchmarkError, match="no json/ folder"):
        load_suite(f"mlvu:{tmp_path}")


def test_wrong_layout_names_the_missing_fields(tmp_path):
    file = _write_json(tmp_path / "ann.json", [{"video_id": "001", "question": "Q?"}])
    with pytest.raises(BenchmarkError, match=r"ann\.json: row 0 lacks options or choices, answer"):
        load_suite(f"videomme:{file}")
    lvb = _write_json(tmp_path / "lvb_val.json", [{"id": "1", "question": "Q?"}])
    with pytest.raises(BenchmarkError, match="lacks candidates or option0, video_path"):
        load_suite(f"longvideobench:{lvb}")
    mlvu = _write_json(tmp_path / "json" / "1_plotQA.json",
                       [{"question": "Q?", "candidates": ["a", "b"], "answer": "a"}])
    with pytest.raises(BenchmarkError, match="lacks video"):
        load_suite(f"mlvu:{mlvu}")


def test_unreadable_file(tmp_path):
    file = tmp_path / "broken.json"
    file.write_text("{not json", encoding="utf-8")
    with pytest.raises(BenchmarkError, match="cannot read .*broken.json"):
        load_suite(f"videomme:{file}")
    obj = _write_json(tmp_path / "obj.json", {"questions": 3})
    with pytest.raises(BenchmarkError, match="expected a list"):
        load_suite(f"videomme:{obj}")


def test_no_items(tmp_path):
    file = _write_json(tmp_path / "empty.json", [])
    with pytest.raises(BenchmarkError, match="no multiple-choice questions in .*empty.json"):
        load_suite(f"videomme:{file}")


def test_bad_answer_letter(tmp_path):
    file = _write_json(tmp_path / "v.json", [dict(VIDEOMME_ROWS[0], answer="F")])
    with pytest.raises(BenchmarkError, match=r"v\.json: .*'F'"):
        load_suite(f"videomme:{file}")


def test_no_video_exists_says_where_they_were_expected(tmp_path, lvb_root):
    shutil.rmtree(lvb_root / "videos")
    with pytest.raises(BenchmarkError, match=r"none of the 3 videos .* looked in .*videos"):
        load_suite(f"longvideobench:{lvb_root}")
    _write_json(tmp_path / "vm" / "v.json", VIDEOMME_ROWS)
    with pytest.raises(BenchmarkError, match=r"none of the 3 videos.*data.*videos"):
        load_suite(f"videomme:{tmp_path / 'vm'}")


def test_limit_keeps_the_first_items_with_videos(mlvu_root):
    load = load_suite(f"mlvu:{mlvu_root}", limit=2)
    assert [i.item_id for i in load.items] == ["1_plotQA/0", "1_plotQA/1"]
    assert [m[0] for m in load.missing] == ["2_needle/1"]  # not cut by limit
    assert load_suite(f"mlvu:{mlvu_root}", limit=0).items == []
    assert len(load_suite(f"mlvu:{mlvu_root}", limit=99).items) == 3
    assert load_suite(f"mlvu:{mlvu_root}", limit=2) == load  # deterministic
    with pytest.raises(BenchmarkError, match="limit"):
        load_suite(f"mlvu:{mlvu_root}", limit=-1)
