"""Faults and hostile input end in one clear line, and change nothing they should not.

Protects:
* database faults (issue 11 item 6): a full disk, a folder or file that cannot be opened,
  a write lock held by another process, a truncated, damaged or non-SQLite file - each gives
  the CLI one line naming the file and what to do, exit status 1, no traceback; a damaged
  file is never written to (its sha256 is unchanged), and the app refuses to start on it;
* search (item 9): ``%`` and ``_`` in a search are characters, not LIKE wildcards;
* hostile imports (item 10): JSON nested 200,000 deep and texts over ``MAX_TEXT_CHARS`` are
  refused with a clear message and nothing is imported;
* uploads (item 11): a copy that fails (full disk) or an upload that is refused (not a
  video, same bytes) leaves nothing behind in the uploads folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from media import make_video

from tpo.media import library
from tpo.cli import cli
from tpo.curation.importer import MAX_TEXT_CHARS
from tpo.store.schema import SCHEMA_VERSION
from tpo.store import DatabaseCorruptError, DatabaseFullError, Store

REPO = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_pairs(store: Store, questions=("Q1?", "Q2?", "Q3?"), *, path="/v/a.mp4",
               reasons=None) -> list[int]:
    n = len(store.list_videos())
    video_id = store.add_video({"path": path, "name": Path(path).name,
                                "sha256": f"{n:064x}", "status": "ready", "duration_s": 60.0})
    rows = [{"kind": "comprehensive", "question": q, "chosen": f"chosen {i}",
             "rejected": f"rejected {i}", "status": "pending", "filter_verdict": "kept",
             "filter_reason": (reasons or {}).get(i)} for i, q in enumerate(questions)]
    return store.save_generation(video_id, "k", rows, params={}, seconds=0)


@pytest.fixture
def tpo(tmp_path, monkeypatch):
    """``tpo ARGS`` in-process (``--db`` first when given); an exception escaping the CLI
    would fail the test (catch_exceptions=False)."""
    monkeypatch.setenv("TPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TPO_DB", raising=False)

    def invoke(*args, db: Path | None = None, env: dict | None = None):
        argv = (["--db", str(db)] if db else []) + [str(a) for a in args]
        return CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)

    return invoke


def one_error_line(result) -> str:
    """The CLI failed with exit status 1 and printed exactly one line, an ``Error:`` line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def filled_db(tmp_path: Path) -> Path:
    """A closed database with three pairs (its WAL checkpointed into the file)."""
    db = tmp_path / "tpo.db"
    store = Store(db)
    make_pairs(store)
    store.close()
    assert not Path(f"{db}-wal").exists()
    return db


def damage_table(db: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage (header and size stay valid)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)


# -- item 6: database faults ---------------------------------------------------------------


def test_full_disk_is_one_line_and_the_pair_is_unchanged(tpo, tmp_path, monkeypatch):
    db = filled_db(tmp_path)
    # SQLITE_FULL for real: the connection may not grow the file past its present size,
    # which SQLite reports exactly as it reports a full disk.
    connect = Store._connect

    def full_disk(self):
        conn = connect(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(Store, "_connect", full_disk)
    line = one_error_line(tpo("review", 1, "--edit-question", "x" * 50_000, db=db))
    assert str(db) in line and "disk is full" in line and "free some space" in line
    store = Store(db)
    with pytest.raises(DatabaseFullError):  # what the app's handlers get (a StoreError)
        store.update_pair(1, {"edited_question": "y" * 50_000}, user="u", action="edit",
                          expected_version=1)
    store.close()
    monkeypatch.undo()
    assert Store(db).get_pair(1)["edited_question"] is None


def test_a_folder_that_cannot_hold_the_database_is_one_line(tpo, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    line = one_error_line(tpo("videos", db=a_file / "tpo.db"))
    assert f"{a_file}/tpo.db" in line and "cannot be created" in line


def test_unable_to_open_the_database_file_is_one_line(tpo, tmp_path):
    # A folder where the file should be: SQLite's own "unable to open database file".
    # (TPO_DB, since --db itself refuses a folder.)
    folder = tmp_path / "db-is-a-folder"
    folder.mkdir()
    line = one_error_line(tpo("videos", env={"TPO_DB": str(folder)}))
    assert str(folder) in line and "unable to open database file" in line


@contextmanager
def read_only_folder(folder: Path, prepare=None):
    """``folder`` made read-only after ``prepare(folder)`` ran in it. Root ignores permission
    bits, so as root the folder is a tmpfs mounted read-only (a real read-only file system);
    where root may not mount (some containers), an immutable folder (``chattr +i``)."""
    folder.mkdir()
    if os.geteuid() != 0:
        if prepare:
            prepare(folder)
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    run = partial(subprocess.run, capture_output=True)
    if run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)]).returncode == 0:
        try:
            if prepare:
                prepare(folder)
            assert run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
            yield folder
        finally:
            run(["umount", "-l", str(folder)])
        return
    if prepare:
        prepare(folder)
    if run(["chattr", "+i", str(folder)]).returncode != 0:
        pytest.skip("as root, neither a read-only mount nor chattr +i is allowed here")
    try:
        yield folder
    finally:
        run(["chattr", "-i", str(folder)])


def test_a_new_database_in_a_read_only_folder_is_one_line(tpo, tmp_path):
    with read_only_folder(tmp_path / "ro") as folder:
        line = one_error_line(tpo("videos", db=folder / "tpo.db"))
        assert not (folder / "tpo.db").exists()
    assert str(folder / "tpo.db") in line


def test_a_database_on_a_read_only_file_system_is_one_line_and_unchanged(tpo, tmp_path):
    def fill(folder: Path) -> None:
        store = Store(folder / "tpo.db")
        make_pairs(store, ["Q1?"])
        store.close()  # (an open file keeps the mount busy: it could not turn read-only)

    with read_only_folder(tmp_path / "ro", fill) as folder:
        before = sha256(folder / "tpo.db")
        line = one_error_line(tpo("review", 1, "--accept", db=folder / "tpo.db"))
        assert str(folder / "tpo.db") in line
        assert sha256(folder / "tpo.db") == before


def test_the_app_in_a_read_only_data_folder_says_so_in_one_line(tmp_path):
    with read_only_folder(tmp_path / "ro") as folder:
        env = {**os.environ, "TPO_DATA_DIR": str(folder), "TPO_DEMO": "0",
               "GRADIO_SERVER_PORT": "1"}
        env.pop("TPO_DB", None)
        done = subprocess.run([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("TPO Studio cannot start: ") and str(folder) in last


def test_a_lock_held_by_another_process_is_one_line_after_the_busy_timeout(tpo, tmp_path,
                                                                           monkeypatch):
    db = filled_db(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "conn.execute('BEGIN EXCLUSIVE')\n"
         "conn.execute(\"UPDATE pairs SET note = 'held' WHERE id = 1\")\n"
         "print('locked', flush=True)\n"
         "time.sleep(60)\n", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr("tpo.store.faults.DEFAULT_BUSY_TIMEOUT_S", 0.5)
        start = time.monotonic()
        line = one_error_line(tpo("review", 1, "--accept", db=db))
        assert time.monotonic() - start < 10  # not the old 30 s wait
    finally:
        holder.kill()
        holder.wait()
    assert str(db) in line and "locked by another process (waited 0.5 s)" in line
    assert "try again" in line
    assert Store(db).get_pair(1)["status"] == "pending"


def test_a_truncated_file_is_refused_and_left_as_it_is(tpo, tmp_path):
    db = filled_db(tmp_path)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    before = sha256(db)
    for args in (("videos",), ("review", 1, "--accept")):
        line = one_error_line(tpo(*args, db=db))
        assert str(db) in line and "damaged (truncated" in line and "backup" in line
    assert sha256(db) == before
    assert not Path(f"{db}-wal").exists()  # SQLite never opened it


@pytest.mark.parametrize("content", [b"just some notes\n" * 20, os.urandom(8192),
                                     b"SQLite format 3\x00 and then it stops"])
def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_is(tpo, tmp_path, content):
    db = tmp_path / "notes.db"
    db.write_bytes(content)
    before = sha256(db)
    line = one_error_line(tpo("pairs", db=db))
    assert str(db) in line and "not an SQLite database" in line
    assert sha256(db) == before


def test_a_damaged_page_found_in_the_middle_of_work_stops_every_write(tpo, tmp_path):
    db = filled_db(tmp_path)
    damage_table(db, "pairs")
    before = sha256(db)
    line = one_error_line(tpo("pairs", db=db))
    assert str(db) in line and "damaged" in line and "malformed" in line
    one_error_line(tpo("review", 1, "--accept", db=db))

    store = Store(db)  # the header is fine: opening works, reading the table does not
    with pytest.raises(DatabaseCorruptError):
        store.list_pairs()
    with pytest.raises(DatabaseCorruptError, match="damaged"):  # refused before any SQL
        with store.transaction() as conn:
            conn.execute("INSERT INTO metrics (job_id) VALUES (1)")
    store.close()
    assert sha256(db) == before


def test_no_migration_runs_on_a_damaged_file(tmp_path):
    import sqlite3

    db = filled_db(tmp_path)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")  # a migration is due
    conn.close()
    damage_table(db, "pairs")
    before = sha256(db)
    with pytest.raises(DatabaseCorruptError, match="damaged"):
        Store(db)
    assert sha256(db) == before


def test_the_app_refuses_to_start_on_a_damaged_database_with_one_line(tmp_path):
    db = tmp_path / "tpo.db"
    db.write_text("not a database\n" * 10)
    env = {**os.environ, "TPO_DB": str(db), "TPO_DATA_DIR": str(tmp_path / "data"),
           "TPO_DEMO": "0", "GRADIO_SERVER_PORT": "1"}
    done = subprocess.run([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("TPO Studio cannot start: database ") and str(db) in lines[-1]
    assert "not an SQLite database" in lines[-1]


# -- item 9: % and _ are characters --------------------------------------------------------


def test_search_percent_and_underscore_match_literally(store, tpo, settings):
    make_pairs(store, ["Is it 100% red?", "Which snake_case name?", "Plain question?",
                       r"A back\slash?"], reasons={0: "too_short", 2: "too short"})
    make_pairs(store, ["Other?"], path="/v/50%_off.mp4")
    make_pairs(store, ["Other?"], path="/v/50 of.mp4")

    def questions(**kw):
        return [p["question"] for p in store.list_pairs(**kw)]

    assert questions(search="%") == ["Is it 100% red?"]
    assert questions(search="_") == ["Which snake_case name?"]
    assert questions(search="e_c") == ["Which snake_case name?"]
    assert questions(search="\\") == [r"A back\slash?"]
    assert questions(search="100%") == ["Is it 100% red?"]
    assert [p["filter_reason"] for p in store.list_pairs(reason="_")] == ["too_short"]
    assert [v["name"] for v in store.list_videos(search="%")] == ["50%_off.mp4"]
    assert [v["name"] for v in store.list_videos(search="0_")] == []
    assert [v["name"] for v in store.list_videos(search="%_")] == ["50%_off.mp4"]

    store.close()
    result = tpo("pairs", "--search", "%", "--json", db=settings.db_path)
    assert result.exit_code == 0
    assert [p["question"] for p in json.loads(result.stdout)] == ["Is it 100% red?"]
    result = tpo("videos", "--search", "_", "--json", db=settings.db_path)
    assert [v["name"] for v in json.loads(result.stdout)] == ["50%_off.mp4"]


# -- item 10: hostile imports --------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("faults") / "clip.mp4", duration_s=2, fps=10)


def good_row(clip: Path, **changes) -> dict:
    return {"video": str(clip), "kind": "comprehensive", "prompt": "What happens?",
            "chosen": "A ball rolls.", "rejected": "Nothing.", **changes}


def pair_count(db: Path) -> int:
    store = Store(db)
    try:
        return len(store.list_pairs())
    finally:
        store.close()


def import_fails(tpo, db: Path, path: Path, message: str) -> None:
    """`tpo import` exits 1 with the clear message, no traceback, and imports nothing."""
    before = pair_count(db)
    result = tpo("import", path, db=db)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert message in result.output and "nothing imported" in result.output
    assert len(result.output) < 2000  # the hostile text is not echoed back
    assert pair_count(db) == before


def test_json_nested_200000_deep_is_refused(tpo, tmp_path, clip):
    db = filled_db(tmp_path)
    deep = "[" * 200_000 + "]" * 200_000
    jsonl = tmp_path / "deep.jsonl"
    jsonl.write_text(json.dumps(good_row(clip)) + "\n" + deep + "\n")
    import_fails(tpo, db, jsonl, f"{jsonl}:2: file nesting too deep")
    tpo_json = tmp_path / "deep.json"
    tpo_json.write_text(deep)
    import_fails(tpo, db, tpo_json, f"{tpo_json}: file nesting too deep")
    # Deep enough to slip past the parser but not a pair: a bad row, not a crash later.
    nested = tmp_path / "nested.jsonl"
    nested.write_text(json.dumps(good_row(clip, generator="[" * 900 + "]" * 900)) + "\n")
    import_fails(tpo, db, nested, "nested deeper than")


def test_texts_over_the_limit_are_refused(tpo, tmp_path, clip):
    db = filled_db(tmp_path)
    for field in ("prompt", "chosen", "rejected", "question_original"):
        path = tmp_path / f"long-{field}.jsonl"
        rows = [good_row(clip), good_row(clip, **{field: "x" * 5_000_000})]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        import_fails(tpo, db, path, f"is 5,000,000 characters, longer than the limit of "
                                    f"{MAX_TEXT_CHARS:,}")
    at_limit = tmp_path / "at-limit.jsonl"
    at_limit.write_text(json.dumps(good_row(clip, chosen="y" * MAX_TEXT_CHARS)) + "\n")
    result = tpo("import", at_limit, db=db)
    assert result.exit_code == 0 and "imported 1 pairs" in result.output


# -- item 11: failed uploads leave nothing behind ------------------------------------------


def test_refused_uploads_leave_nothing_in_the_upload_folder(store, settings, tmp_path, clip):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    notes = incoming / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    first = incoming / "first.mp4"
    shutil.copyfile(clip, first)
    twin = incoming / "twin.mp4"
    shutil.copyfile(clip, twin)

    report = library.add_uploads(store, [notes, first, twin], settings.upload_dir)
    assert [name for name, _ in report.failed] == ["notes.mp4"]
    assert [name for name, _ in report.skipped] == ["twin.mp4"]
    assert len(report.added) == 1
    assert sorted(p.name for p in settings.upload_dir.iterdir()) == ["first.mp4"]
    assert [v["name"] for v in store.list_videos()] == ["first.mp4"]  # no error row either


def test_bytes_added_meanwhile_leave_no_copy(store, settings, tmp_path, clip, monkeypatch):
    # Another upload of the same bytes lands between the duplicate check and the ingest.
    other = tmp_path / "other.mp4"
    shutil.copyfile(clip, other)
    copy = shutil.copy2

    def copy_while_another_upload_lands(src, dst):
        library.ingest(store, [other])
        return copy(src, dst)

    monkeypatch.setattr(library.shutil, "copy2", copy_while_another_upload_lands)
    report = library.add_uploads(store, [clip], settings.upload_dir)
    assert report.added == [] and [n for n, _ in report.skipped] == ["clip.mp4"]
    assert list(settings.upload_dir.iterdir()) == []


def test_a_copy_that_fails_half_way_leaves_no_partial_file(store, settings, tmp_path, clip,
                                                           monkeypatch):
    def disk_full_half_way(src, dst):
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(library.shutil, "copy2", disk_full_half_way)
    report = library.add_uploads(store, [clip], settings.upload_dir)
    ((name, message),) = report.failed
    assert name == "clip.mp4"
    assert "No space left on device" in message and "nothing was added" in message
    assert str(settings.upload_dir) in message
    assert list(settings.upload_dir.iterdir()) == []
    assert store.list_videos() == []


def test_a_database_fault_in_any_app_handler_is_a_clear_message(store, settings, tmp_path,
                                                                 monkeypatch):
    """Through the real app over HTTP: a handler that does not catch database errors itself
    (adding a file by path) meets a full disk; the browser gets the one-line message (the
    server mounts Gradio with show_error, so an exception's message, never its traceback,
    reaches the page)."""
    from fastapi.testclient import TestClient

    from ui.server import create_server

    deep = tmp_path.joinpath(*["d" * 190] * 18)  # a 3.4 kB path: its row needs a new page
    deep.mkdir(parents=True)
    clip = make_video(deep / "clip.mp4", duration_s=1, fps=4)
    connect = Store._connect

    def full_disk(self):
        conn = connect(self)
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        return conn

    with TestClient(create_server(store, settings)) as c:
        store.close()  # this thread's connection: the next one opens on the "full disk"
        monkeypatch.setattr(Store, "_connect", full_disk)
        # Gradio orders a handler's set of inputs as the page made them: search, status, path.
        event = c.post("/gradio_api/call/add_by_path",
                       json={"data": ["", "all", str(clip)]}).json()["event_id"]
        stream = c.get(f"/gradio_api/call/add_by_path/{event}").text
    assert "event: error" in stream, stream
    message = json.loads(stream.split("data:", 1)[1])["error"]
    assert str(settings.db_path) in message and "disk is full" in message, message
    monkeypatch.undo()
    assert store.counts()["videos"] == 0  # nothing half-added
