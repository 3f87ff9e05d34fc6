"""Review actions at team scale, at once: threads reviewing one real SQLite file through
:func:`tpo.curation.review.review` (each thread its own connection), and reviewers' browser
sessions accepting pairs through the real app over HTTP (uvicorn, Gradio's own client) while
the app runs several review events at once (``TPO_CONCURRENCY``).

Asserted: no action fails except as a :class:`tpo.store.ConflictError` (the pair changed
since the reviewer saw it); of reviewers saving the same version exactly one wins; every
answered action is in the audit trail (none lost); each pair's version counts its actions and
its review rows replay to its state; the counters (kept by triggers) equal a count of the
pairs; events that start jobs or add videos stay one request at a time.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from collections import Counter

import pytest
from media import make_video

from bench.curate_bench import CurateSession
from tpo.curation import review as reviews
from tpo.curation.review import replay, review, undo
from tpo.media.library import ingest
from tpo.store import PAIR_STATUSES, ConflictError, Store

THREADS = 8
BARRIER_TIMEOUT_S = 60  # only a deadlock or a serialised event ever waits this long


def pair_row(i: int, status: str = "pending") -> dict:
    return {"kind": ("localized", "comprehensive")[i % 2], "strategy": "irrelevant",
            "question": f"What moves in scene {i}?", "chosen": f"The red ball ({i}).",
            "rejected": f"Nothing ({i}).", "segment_start": 0.2, "segment_end": 1.0,
            "chosen_timestamps": [0.3, 0.6], "rejected_timestamps": [1.2], "status": status,
            "filter_verdict": "dropped" if status == "filtered" else "kept",
            "filter_reason": "truncated: cut off" if status == "filtered" else None,
            "generator": {"model": "tiny", "config": {"max_new_tokens": 64}}}


def add_pairs(store: Store, n: int, name: str = "a.mp4", video_id: int | None = None) -> list[int]:
    if video_id is None:
        video_id = store.add_video({"path": f"/v/{name}", "name": name, "sha256": name * 8,
                                    "status": "ready", "duration_s": 2.0})
    return store.save_generation(video_id, "k", [pair_row(i) for i in range(n)], params={},
                                 seconds=0)


def counted(store: Store) -> dict:
    """The counters recomputed from the pairs themselves (what the triggers must keep)."""
    out: dict = {"all": dict.fromkeys(PAIR_STATUSES, 0)}
    for kind, status, n in store.db.execute(
            "SELECT kind, status, COUNT(*) FROM pairs GROUP BY kind, status"):
        out.setdefault(kind, dict.fromkeys(PAIR_STATUSES, 0))[status] = n
        out["all"][status] += n
    return out


def assert_consistent(store: Store, pair_ids) -> None:
    """Every pair's review rows replay to its state, its version counting them; the
    counters equal the pairs."""
    for pair_id in pair_ids:
        pair = store.get_pair(pair_id)
        state = replay(store, pair_id)
        assert state["version"] == pair["version"] == 1 + len(store.reviews(pair_id))
        assert {k: state[k] for k in ("status", "swapped", "note")} == {
            k: pair[k] for k in ("status", "swapped", "note")}
    assert store.pair_counts() == counted(store)


def run_threads(n: int, work) -> list[BaseException]:
    """Run ``work(i, barrier)`` on ``n`` threads; the exceptions they raised."""
    barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT_S)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            work(i, barrier)
        except BaseException as err:  # noqa: BLE001 - every failure is reported by the test
            errors.append(err)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# --------------------------------------------------------------------------------------------
# Threads on one store file


def test_reviewers_saving_the_same_version_at_once_one_wins_the_rest_conflict(store):
    contested = add_pairs(store, 12)
    outcomes: list[tuple[int, str, int]] = []  # (pair, user, version) of each save that won
    conflicts: Counter = Counter()
    lock = threading.Lock()

    def work(i: int, barrier: threading.Barrier) -> None:
        user = f"r{i}"
        for pair_id in contested:
            barrier.wait()  # every thread saves this pair's version 1 at the same moment
            action = ("accept", "reject", "swap")[(i + pair_id) % 3]
            try:
                pair = review(store, pair_id, action, user=user, expected_version=1,
                              note=f"{user} was here")
            except ConflictError as err:
                assert err.current["version"] == 2  # it shows the winner's version
                with lock:
                    conflicts[pair_id] += 1
                continue
            with lock:
                outcomes.append((pair_id, user, pair["version"]))

    assert run_threads(THREADS, work) == []
    won = Counter(pair_id for pair_id, _, _ in outcomes)
    assert won == Counter({pair_id: 1 for pair_id in contested})
    assert conflicts == Counter({pair_id: THREADS - 1 for pair_id in contested})
    for pair_id, user, version in outcomes:
        pair = store.get_pair(pair_id)
        assert (version, pair["version"], pair["last_user"]) == (2, 2, user)
        assert pair["note"] == f"{user} was here"
    assert_consistent(store, contested)


def test_many_actions_by_many_threads_lose_nothing(store):
    """Each thread works through its own pairs and a shared set, with the version it last
    saw (a conflict reloads the pair and tries again), then undoes some of its actions: the
    audit trail holds every action answered, nothing else."""
    own = {i: add_pairs(store, 6, name=f"own{i}.mp4") for i in range(THREADS)}
    shared = add_pairs(store, 4, name="shared.mp4")
    answered: Counter = Counter()  # user -> actions that returned
    lock = threading.Lock()

    def work(i: int, barrier: threading.Barrier) -> None:
        user = f"r{i}"
        barrier.wait()
        done = 0
        for round_ in range(3):
            for pair_id in own[i] + shared:
                action = ("accept", "reject", "swap", "note")[(round_ + pair_id + i) % 4]
                seen = store.get_pair(pair_id)["version"]
                while True:
                    try:
                        review(store, pair_id, action, user=user, expected_version=seen,
                               note=f"{user}/{round_}" if action == "note" else None)
                        done += 1
                        break
                    except ConflictError as err:  # someone saved first: reload, retry
                        seen = err.current["version"]
        for pair_id in own[i][:2]:  # undo the last action on two own pairs
            undo(store, pair_id, user=user)
            done += 1
        with lock:
            answered[user] += done

    assert run_threads(THREADS, work) == []
    trail = Counter(user for user, times in store.review_times().items() for _ in times)
    assert trail == answered
    assert_consistent(store, [p for ids in own.values() for p in ids] + shared)


def test_counters_follow_every_kind_of_write(store):
    ids = add_pairs(store, 10)
    video = store.get_pair(ids[0])["video_id"]
    store.save_generation(video, "f", [pair_row(i, "filtered") for i in range(10, 16)],
                          params={}, seconds=0)
    assert store.pair_counts() == counted(store)
    review(store, ids[0], "accept", user="ana")
    review(store, ids[0], "accept", user="bo")  # accepted again: no change of status
    review(store, ids[1], "reject", user="ana")
    review(store, ids[2], "swap", user="ana")  # no change of status
    undo(store, ids[1], user="ana")
    reviews.restore_all(store, user="ana", reason="truncated")
    assert store.pair_counts()["all"] == {"pending": 15, "accepted": 1, "rejected": 0,
                                          "filtered": 0}
    # Generating again with --force deletes the run's pending pairs: the counters follow.
    store.save_generation(video, "k", [pair_row(99)], params={}, seconds=0, replace=True)
    store.db.execute("UPDATE pairs SET kind = 'comprehensive' WHERE id = ?", [ids[0]])
    assert store.pair_counts() == counted(store)
    assert store.pair_counts()["all"]["accepted"] == 1


def test_an_older_file_gets_its_counters_from_its_pairs(tmp_path):
    import sqlite_utils

    from tpo.store.schema import SCHEMA_VERSION, STEPS

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    for step in STEPS[:-1]:
        step(db)
    db.execute(f"PRAGMA user_version = {len(STEPS) - 1}")
    db.conn.commit()
    db.close()
    old = Store(path)  # migrates: nothing to count yet
    add_pairs(old, 5)
    old.close()
    store = Store(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert store.pair_counts() == counted(store)
        assert store.pair_counts()["all"]["pending"] == 5
    finally:
        store.close()


# --------------------------------------------------------------------------------------------
# The real app over HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(store, settings, tmp_path):
    """The real app (``ui.server.create_server``) under uvicorn on a free port, in this
    process (so a test can watch its handlers); yields its URL."""
    import uvicorn

    from ui.server import create_server

    settings = settings.with_(demo_on_start=False, concurrency=4)
    server = uvicorn.Server(uvicorn.Config(create_server(store, settings), host="127.0.0.1",
                                           port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}/"
    server.should_exit = True
    thread.join(timeout=30)


def test_reviewers_accept_at_once_over_http_and_nothing_is_lost(served, store, tmp_path,
                                                                 monkeypatch):
    clips = [make_video(tmp_path / f"clip{i}.mp4", duration_s=2 + i, fps=10) for i in range(2)]
    videos = ingest(store, clips).added
    for video_id in videos:
        add_pairs(store, 12, video_id=video_id)
    names = {v: f"#{v} {store.get_video(v)['name']}" for v in videos}
    # Two reviewers per video: each pair of them works through the same queue, so some
    # accepts find the pair changed since (shown as "Not saved", never an error).
    sessions = [CurateSession(served, f"rev{i}", names[videos[i % 2]]) for i in range(4)]
    for s in sessions:
        s.open()

    # The first accept of every session waits inside review() until all four are there:
    # only an app that runs these events at once gets past it.
    inside = threading.Barrier(len(sessions), timeout=BARRIER_TIMEOUT_S)
    real_review, waited = reviews.review, set()

    def held_review(store_, pair_id, action, *, user, **kwargs):
        if user not in waited:
            waited.add(user)
            inside.wait()
        return real_review(store_, pair_id, action, user=user, **kwargs)

    monkeypatch.setattr(reviews, "review", held_review)
    answers: dict[str, list[str]] = {s.user: [] for s in sessions}

    def work(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        for _ in range(6):
            answers[sessions[i].user].append(sessions[i].act())

    assert run_threads(len(sessions), work) == []
    saved = {user: sum("→ accepted" in m for m in msgs) for user, msgs in answers.items()}
    for user, msgs in answers.items():
        assert all("→ accepted" in m or "Not saved" in m for m in msgs), msgs
    trail = store.review_times()
    assert {user: len(trail.get(user, [])) for user in answers} == saved  # none lost
    assert sum(saved.values()) > 0
    assert_consistent(store, store.queue_ids())


def test_review_events_run_at_once_and_job_starts_one_at_a_time(store, settings):
    from ui.app import ANALYTICS_EVERY, SERIAL_TRIGGERS, build_app

    demo = build_app(store, settings.with_(concurrency=6), hub_check=lambda: None)
    assert demo._queue.default_concurrency_limit == 6
    # Gradio's per-event summary of past events is rebuilt every ANALYTICS_EVERY events, by
    # the attribute Gradio itself reads (a rename in Gradio would make the setting a no-op).
    from gradio.queueing import Queue

    assert "self.ANAYLTICS_CACHE_FREQUENCY" in inspect.getsource(Queue.compute_analytics_summary)
    assert demo._queue.ANAYLTICS_CACHE_FREQUENCY == ANALYTICS_EVERY
    by_elem = {getattr(b, "elem_id", None): b._id for b in demo.blocks.values()}

    def limits(elem_id: str) -> set:
        return {fn.concurrency_limit for fn in demo.fns.values()
                if any(t[0] == by_elem[elem_id] for t in fn.targets)}

    for elem_id in ("curate-accept", "curate-reject", "curate-undo", "curate-load"):
        assert limits(elem_id) == {"default"}, elem_id  # the app's default: 6 at once
    for elem_id in SERIAL_TRIGGERS:
        assert elem_id in by_elem, f"{elem_id} is no longer on the page"
        assert limits(elem_id) == {1}, elem_id
    assert limits("model-use-demo") == {1}
