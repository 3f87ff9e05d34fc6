"""Curating as a team on a real store: splitting the work among reviewers (by count, video,
kind; with overlap), each reviewer's own queue, agreement (percent, Cohen's and Fleiss'
kappa checked against hand-computed values), disagreements and adjudication, progress and
throughput, versioned guidelines, the export of pairs enough reviewers agreed on, and the
CLI for all of it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from media import make_video

from tpo.cli import cli
from tpo.curation import teams
from tpo.curation.review import review, undo
from tpo.media.library import ingest


def make_pairs(store, n, *, kinds=("localized",), video_id=None, name="a.mp4"):
    if video_id is None:
        video_id = store.add_video({"path": f"/v/{name}", "name": name, "sha256": name * 8,
                                    "status": "ready", "duration_s": 60.0})
    rows = [{"kind": kinds[i % len(kinds)], "strategy": "irrelevant", "question": f"Q{i}?",
             "chosen": f"Yes {i}.", "rejected": f"No {i}.", "chosen_timestamps": [1.0],
             "rejected_timestamps": [2.0], "status": "pending", "filter_verdict": "kept"}
            for i in range(n)]
    return store.save_generation(video_id, f"k{name}", rows, params={}, seconds=0)


def shares(store):
    out = {}
    for pair_id in store.queue_ids():
        for reviewer in store.assignees(pair_id):
            out.setdefault(reviewer, []).append(pair_id)
    return out


def test_assign_by_count_splits_in_equal_runs_and_only_new_pairs_later(store):
    ids = make_pairs(store, 10)
    report = teams.assign(store, ["ana", "bo", "cy"], user="lead")
    assert report.per_reviewer == {"ana": 4, "bo": 3, "cy": 3} and report.n_pairs == 10
    assert shares(store) == {"ana": ids[:4], "bo": ids[4:7], "cy": ids[7:]}
    with pytest.raises(teams.AssignError, match="no unassigned pending pairs"):
        teams.assign(store, ["ana", "bo"], user="lead")
    more = make_pairs(store, 2, name="b.mp4")
    assert teams.assign(store, ["dee"], user="lead").per_reviewer == {"dee": 2}
    assert shares(store)["dee"] == more
    # No pair went to two reviewers.
    assert all(len(store.assignees(i)) == 1 for i in ids + more)


def test_assign_by_video_keeps_a_videos_pairs_together(store):
    big = make_pairs(store, 6, name="big.mp4")
    small = make_pairs(store, 4, name="small.mp4")
    other = make_pairs(store, 3, name="other.mp4")
    report = teams.assign(store, ["ana", "bo"], by="video", user="lead")
    got = shares(store)
    assert got["ana"] == big and sorted(got["bo"]) == sorted(small + other)
    assert report.per_reviewer == {"ana": 6, "bo": 7}


def test_assign_by_kind_shares_the_reviewers_out_over_the_kinds(store):
    ids = make_pairs(store, 12, kinds=("localized", "localized", "comprehensive"))
    teams.assign(store, ["ana", "bo", "cy"], by="kind", user="lead")
    kinds = {i: store.get_pair(i)["kind"] for i in ids}
    got = {r: Counter(kinds[i] for i in p) for r, p in shares(store).items()}
    # 8 localized pairs get two reviewers (4 each), 4 comprehensive pairs one.
    assert got == {"ana": Counter(localized=4), "bo": Counter(localized=4),
                   "cy": Counter(comprehensive=4)}


def test_overlap_gives_a_sample_of_pairs_to_k_reviewers_evenly(store):
    ids = make_pairs(store, 20)
    report = teams.assign(store, ["ana", "bo", "cy"], overlap=2, overlap_fraction=0.25,
                          user="lead")
    per_pair = Counter(len(store.assignees(i)) for i in ids)
    assert per_pair == {1: 15, 2: 5} and report.n_overlap == 5
    assert sum(report.per_reviewer.values()) == 25
    assert max(report.per_reviewer.values()) - min(report.per_reviewer.values()) <= 2
    # Each overlap pair is an overlap pair for both of its reviewers.
    assert store.assignment_counts()["ana"]["overlap"] + store.assignment_counts()["bo"][
        "overlap"] + store.assignment_counts()["cy"]["overlap"] == 10
    with pytest.raises(teams.AssignError, match="overlap 4 needs at least 4"):
        teams.assign(store, ["ana", "bo"], overlap=4, overlap_fraction=1, user="lead")
    with pytest.raises(teams.AssignError, match="which share"):
        teams.assign(store, ["ana", "bo"], overlap=2, user="lead")


def test_each_reviewer_gets_next_from_their_own_undecided_share(store):
    ids = make_pairs(store, 6)
    assert teams.next_for(store, "ana") == ids[0]  # no assignments: the pending queue
    teams.assign(store, ["ana", "bo"], overlap=2, overlap_fraction=1.0, user="lead")
    assert store.queue_ids(reviewer="ana") == ids == store.queue_ids(reviewer="bo")
    review(store, ids[0], "accept", user="ana")
    # ana's share moves on; bo still gets the pair ana accepted (overlap: his own decision).
    assert teams.next_for(store, "ana") == ids[1]
    assert teams.next_for(store, "bo") == ids[0]
    assert teams.next_for(store, "ana", after=ids[4]) == ids[5]
    assert teams.next_for(store, "ana", after=ids[5]) == ids[1]  # from the start again
    assert store.queue_count(reviewer="ana") == 5
    undo(store, ids[0], user="ana")  # an undone decision puts the pair back in her share
    assert teams.next_for(store, "ana") == ids[0]
    for pair_id in ids:
        review(store, pair_id, "reject", user="ana")
    assert teams.next_for(store, "ana") is None
    assert teams.unassign(store, ["bo"]) == 6 and store.queue_ids(reviewer="bo") == []


def test_kappas_match_hand_computed_values():
    # Cohen (the textbook 2x2 table): 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no:
    # p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert teams.cohen_kappa(a, b) == pytest.approx(0.4)
    # Fleiss: P_i = 1, 1/3, 1, 1/3 -> P-bar 2/3; 6 of 12 ratings each -> P_e 0.5; kappa 1/3.
    items = [["a"] * 3, ["a", "a", "r"], ["r"] * 3, ["a", "r", "r"]]
    assert teams.fleiss_kappa(items) == pytest.approx(1 / 3)
    assert teams.fleiss_kappa([]) is None and teams.cohen_kappa([], []) is None
    assert teams.cohen_kappa(["y", "y"], ["y", "y"]) == 1.0


def test_agreement_per_reviewer_pair_overall_and_adjudication(store):
    ids = make_pairs(store, 50)
    teams.assign(store, ["ana", "bo"], overlap=2, overlap_fraction=1.0, user="lead")
    plan_a = ["accept"] * 25 + ["reject"] * 25
    plan_b = ["accept"] * 20 + ["reject"] * 5 + ["accept"] * 10 + ["reject"] * 15
    for pair_id, x, y in zip(ids, plan_a, plan_b):
        review(store, pair_id, x, user="ana")
        review(store, pair_id, y, user="bo")
    result = teams.agreement(store)
    (ab,) = result.pairs
    assert (ab["a"], ab["b"], ab["n"], ab["agree"]) == ("ana", "bo", 50, 35)
    assert ab["percent"] == pytest.approx(70.0) and ab["cohen"] == pytest.approx(0.4)
    assert result.n_items == 50 and result.percent == pytest.approx(70.0)
    assert result.disagreements == ids[20:35]
    assert result.rows()[-1][:4] == ["all", "", 50, 70.0]
    # An adjudicator (not assigned to the pair) decides a disagreement: it leaves the queue
    # but stays a disagreement; the adjudicator is no rater.
    review(store, ids[20], "reject", user="lead")
    after = teams.agreement(store)
    assert ids[20] in after.adjudicated and after.open_disagreements == ids[21:35]
    assert after.n_items == 50 and len(after.pairs) == 1


def test_agreement_of_three_reviewers_is_fleiss(store):
    ids = make_pairs(store, 4)
    teams.assign(store, ["ana", "bo", "cy"], overlap=3, overlap_fraction=1.0, user="lead")
    votes = [("accept",) * 3, ("accept", "accept", "reject"), ("reject",) * 3,
             ("accept", "reject", "reject")]
    for pair_id, row in zip(ids, votes):
        for user, action in zip(("ana", "bo", "cy"), row):
            review(store, pair_id, action, user=user)
    result = teams.agreement(store)
    assert result.fleiss == pytest.approx(1 / 3) and result.percent == pytest.approx(200 / 3)
    assert [(p["a"], p["b"], p["n"]) for p in result.pairs] == [
        ("ana", "bo", 4), ("ana", "cy", 4), ("bo", "cy", 4)]
    assert result.disagreements == [ids[1], ids[3]]


def test_progress_counts_shares_and_actions_per_active_hour(store):
    ids = make_pairs(store, 6)
    teams.assign(store, ["ana", "bo"], user="lead")
    for pair_id in ids[:3]:
        review(store, pair_id, "accept", user="ana")
    review(store, ids[3], "swap", user="bo")
    # ana's three actions a minute apart, then one more two hours later (a new session):
    # active time 60 + 120 + 60 s = 240 s for 4 actions: 60 per hour.
    review(store, ids[0], "note", user="ana", note="checked")
    start = datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc)
    stamps = [start, start + timedelta(minutes=1), start + timedelta(minutes=2),
              start + timedelta(hours=2)]
    accepts = [r for i in ids[:3] for r in store.reviews(i) if r["action"] == "accept"]
    for row, stamp in zip(accepts, stamps[:3]):
        store.db.execute("UPDATE reviews SET at = ? WHERE id = ?", [stamp.isoformat(), row["id"]])
    store.db.execute("UPDATE reviews SET at = ? WHERE user = 'ana' AND action = 'note'",
                     [stamps[3].isoformat()])
    store.db.conn.commit()
    rows = {r["reviewer"]: r for r in teams.progress(store, now=stamps[3])}
    assert {k: rows["ana"][k] for k in ("assigned", "done", "left", "actions")} == {
        "assigned": 3, "done": 3, "left": 0, "actions": 4}
    assert rows["ana"]["actions_per_hour"] == pytest.approx(60.0)
    assert rows["ana"]["last_hour"] == 1
    assert (rows["bo"]["assigned"], rows["bo"]["done"], rows["bo"]["actions"]) == (3, 0, 1)


def test_guidelines_are_versioned(store):
    assert store.guidelines() is None
    assert store.set_guidelines("# Rules\nAccept only grounded answers.", user="lead") == 1
    assert store.set_guidelines("# Rules v2", user="ana") == 2
    newest = store.guidelines()
    assert (newest["version"], newest["text"], newest["user"]) == (2, "# Rules v2", "ana")
    assert store.guidelines(1)["text"].startswith("# Rules\n")
    assert [v["version"] for v in store.guideline_versions()] == [2, 1]


# --------------------------------------------------------------------------------------------
# CLI (and export of the pairs enough reviewers agreed on)


@pytest.fixture
def run(settings, monkeypatch):
    monkeypatch.setenv("TPO_DATA_DIR", str(settings.data_dir))

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, ["--db", str(settings.db_path), *map(str, args)],
                                  input=input, catch_exceptions=False)

    return invoke


def test_cli_assign_progress_agreement_guidelines(store, run, tmp_path):
    ids = make_pairs(store, 8)
    assert run("assign").exit_code == 2  # no reviewers named
    out = run("assign", "ana", "bo", "--overlap", "2", "--overlap-fraction", "0.5", "--json")
    report = json.loads(out.output)
    assert out.exit_code == 0 and report["n_overlap"] == 4 and report["n_pairs"] == 8
    again = run("assign", "ana")
    assert again.exit_code == 1 and again.output == "Error: no unassigned pending pairs to assign\n"
    shared = [i for i in ids if len(store.assignees(i)) == 2]
    for pair_id in shared:
        review(store, pair_id, "accept", user="ana")
        review(store, pair_id, "accept" if pair_id != shared[0] else "reject", user="bo")
    table = run("agreement")
    assert table.exit_code == 0 and "ana" in table.output and "75.0" in table.output
    assert run("agreement", "--disagreements").output.strip() == str(shared[0])
    assert json.loads(run("agreement", "--json").output)["n_items"] == 4
    progress = json.loads(run("progress", "--json").output)
    assert [(p["reviewer"], p["done"]) for p in progress] == [("ana", 4), ("bo", 4)]
    assert "per hour" in run("progress").output
    assert run("guidelines").exit_code == 1
    rules = tmp_path / "rules.md"
    rules.write_text("# Review rules\n", encoding="utf-8")
    assert "version 1" in run("guidelines", "--set", rules, "--user", "lead").output
    assert "version 2" in run("guidelines", "--set", "-", input="Be strict.\n").output
    shown = run("guidelines", "--version", "1")
    assert "# Review rules" in shown.output and "v1" in shown.output
    assert run("guidelines", "--history").output.splitlines()[0].startswith("v2")
    bo = store.assignment_counts()["bo"]
    cleared = run("assign", "--clear", "bo")
    assert cleared.exit_code == 0
    assert f"took back {bo['assigned'] - bo['done']} undecided" in cleared.output
    assert store.assignment_counts()["bo"]["assigned"] == bo["done"] == 4


def test_export_only_pairs_with_k_agreeing_reviewers(store, run, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", duration_s=4, fps=4)
    video_id = ingest(store, [clip], user="ana").added[0]
    ids = make_pairs(store, 4, video_id=video_id)
    for pair_id in ids[:3]:
        review(store, pair_id, "accept", user="ana")
    for pair_id in ids[:2]:
        review(store, pair_id, "accept", user="bo")
    review(store, ids[2], "reject", user="bo")
    review(store, ids[2], "accept", user="cy")  # accepted, but only ana and cy agree
    review(store, ids[3], "accept", user="ana")
    out = tmp_path / "agreed"
    result = run("export", out, "--format", "tpo-json", "--min-agree", "2", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "tpo_pairs.json").read_text(encoding="utf-8"))
    assert sorted(int(r["id"]) for r in rows) == ids[:3]
    three = run("export", tmp_path / "three", "--format", "tpo-json", "--min-agree", "3")
    assert three.exit_code == 1 and "no accepted pairs that 3 reviewers" in three.output
    assert run("export", out, "--min-agree", "0").exit_code == 2


def test_regenerating_replaces_assigned_unreviewed_pairs(store):
    ids = make_pairs(store, 4)
    teams.assign(store, ["ana", "bo"], user="lead")
    review(store, ids[0], "accept", user="ana")
    video_id = store.get_pair(ids[0])["video_id"]
    rows = [{"kind": "localized", "question": "New?", "chosen": "Yes.", "rejected": "No.",
             "status": "pending"}]
    new = store.save_generation(video_id, "ka.mp4", rows, params={}, seconds=0, replace=True)
    assert store.queue_ids() == [ids[0], *new]  # the reviewed pair stays, with its share
    assert store.assignment_counts() == {"ana": {"assigned": 1, "done": 1, "overlap": 0}}
