"""The HTTP surface (issue 11, items 1, 2 and 12), attacked through the real server over HTTP:

* Gradio's file route serves no file of the data folder: not the SQLite database, its WAL,
  a job's log or an export, by any spelling of the path, logged in or not; a file a handler
  returned (the export zip) reaches the browser that asked, through Gradio's cache; the
  media routes still serve videos and thumbnails.
* With log-ins, an anonymous visitor gets the log-in page and nothing else: no video names,
  user names or model names in the page, its config or its API schema.
* Failed log-ins back off per user name and per client address (429 with Retry-After), on
  an injected clock; the right password is refused while locked; a success clears the count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from media import make_video

from tpo.media.library import ingest
from tpo.media.thumbs import frame_strip
from ui.server import create_server

AUTH = "ana:s3cret,bo:b0pass"
SQLITE_MAGIC = b"SQLite format 3"


class Clock:
    """A clock the test moves by hand: the throttle never needs a real wait."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def own_gradio_cache(tmp_path, monkeypatch):
    # Gradio copies returned files into its cache; keep this test's copies in its own folder.
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))


@pytest.fixture
def library(store, settings, tmp_path):
    """A library with one video whose name must never reach an anonymous visitor, a job log,
    an export, and the database with a live WAL beside it."""
    clip = make_video(tmp_path / "secret_name.mp4", duration_s=2, fps=10)
    ingest(store, [clip])
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    (settings.log_dir / "job-1.log").write_text("job log: secret traceback\n")
    export = settings.data_dir / "exports" / "pairs-1"
    export.mkdir(parents=True)
    (export / "train.jsonl").write_text('{"prompt": "secret export"}\n')
    with store.transaction() as db:
        db["jobs"].insert({"kind": "export", "params": json.dumps({"user": "ana"}),
                           "status": "succeeded",
                           "progress": 1.0, "created_at": "2024-01-01T00:00:00",
                           "updated_at": "2024-01-01T00:00:00",
                           "output": json.dumps({"out_dir": str(export)})})
    assert Path(f"{settings.db_path}-wal").is_file()  # the store keeps the WAL open
    return clip


def log_in(c: TestClient, user: str = "ana", password: str = "s3cret") -> int:
    return c.post("/login", data={"username": user, "password": password}).status_code


def data_files(settings) -> list[Path]:
    return [settings.db_path, Path(f"{settings.db_path}-wal"), settings.log_dir / "job-1.log",
            settings.data_dir / "exports" / "pairs-1" / "train.jsonl"]


def spellings(path: Path) -> list[str]:
    """Every way Gradio's file route can be asked for a server path."""
    relative = Path("..") / Path(*[".."] * 20) / path.relative_to("/")
    return [f"/gradio_api/file={path}", f"/gradio_api/file/{path}",
            f"/gradio_api/file={relative}", f"/gradio_api/file={path.parent}/./{path.name}",
            f"/gradio_api/file={str(path).replace('/', '//')}"]


# -- item 1: Gradio's file route ------------------------------------------------------------


def test_a_logged_in_user_cannot_download_the_database_wal_logs_or_exports(
        store, settings, library):
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as c:
        assert log_in(c) == 200
        for target in data_files(settings):
            for url in spellings(target):
                for method in (c.get, c.head):
                    r = method(url)
                    assert r.status_code == 404, (url, r.status_code)
                    assert SQLITE_MAGIC not in r.content and b"secret" not in r.content


def test_without_log_ins_the_file_route_serves_no_data_file_either(store, settings, library):
    with TestClient(create_server(store, settings)) as c:
        for target in data_files(settings):
            r = c.get(f"/gradio_api/file={target}")
            assert r.status_code == 404 and SQLITE_MAGIC not in r.content


def test_the_file_route_fetches_no_remote_url(store, settings):
    with TestClient(create_server(store, settings)) as c:
        assert c.get("/gradio_api/file=http://169.254.169.254/latest/meta-data").status_code == 404


def test_the_export_zip_reaches_the_browser_that_asked_through_gradios_cache(
        store, settings, library):
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as c:
        assert log_in(c) == 200
        event = c.post("/gradio_api/call/on_export_zip", json={"data": []}).json()["event_id"]
        stream = c.get(f"/gradio_api/call/on_export_zip/{event}").text
        assert "event: complete" in stream, stream
        returned = json.loads(stream.split("data:", 1)[1])[0]
        r = c.get(f"/gradio_api/file={returned['path']}")
        assert r.status_code == 200 and r.content[:2] == b"PK"  # the zip
        # The zip beside the export folder is not served by its own path.
        assert c.get(f"/gradio_api/file={settings.data_dir}/exports/pairs-1.zip").status_code == 404
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as anonymous:
        assert anonymous.get(f"/gradio_api/file={returned['path']}").status_code == 401
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as other:
        assert log_in(other, "bo", "b0pass") == 200  # ana's export is not bo's to download
        event = other.post("/gradio_api/call/on_export_zip", json={"data": []}).json()["event_id"]
        stream = other.get(f"/gradio_api/call/on_export_zip/{event}").text
        assert "event: error" in stream and "No finished export of yours" in stream


def test_the_media_routes_still_serve_videos_and_thumbnails(store, settings, library):
    row = store.get_video(1)
    entries = frame_strip(row["path"], row["sha256"], settings.thumb_dir, n=2, max_side=64)
    thumb = Path(entries[0][0]).relative_to(settings.thumb_dir).as_posix()
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as c:
        assert c.get("/media/video/1").status_code == 401
        assert log_in(c) == 200
        r = c.get("/media/video/1", headers={"Range": "bytes=0-9"})
        assert r.status_code == 206 and r.content == library.read_bytes()[:10]
        r = c.get(f"/media/thumbs/{thumb}")
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"


# -- item 2: nothing of the library for an anonymous visitor ----------------------------------


ANONYMOUS_URLS = ["/", "/?deep_link=x", "/config", "/config/", "/gradio_api/config",
                  "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/runs",
                  "/gradio_api/user", "/gradio_api/token", "/gradio_api/app_id",
                  "/manifest.json", "/gradio_api/startup-events", "/media/video/1"]


@pytest.mark.parametrize("encoding", ["gzip, deflate, br, zstd", "identity"])
def test_an_anonymous_visitor_gets_no_library_data(store, settings, library, encoding):
    with TestClient(create_server(store, settings.with_(auth=AUTH)),
                    headers={"Accept-Encoding": encoding}) as c:
        page = c.get("/")
        assert page.status_code == 200 and "auth_required" in page.text  # the log-in page
        for url in ANONYMOUS_URLS:
            text = c.get(url).text
            for secret in ("secret_name", settings.user, "s3cret", "b0pass", settings.model,
                           "named_endpoints\": {\"/"):
                assert secret not in text, (url, secret)


def test_a_logged_in_user_gets_the_full_page(store, settings, library):
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as c:
        assert log_in(c) == 200
        page = c.get("/").text
        assert "secret_name" in page  # the library and the API schema are back
        info = re.search(r"window\.gradio_api_info = (.*?);</script>", page).group(1)
        assert "/on_export_zip" in info
        assert "/partial_" not in info  # every endpoint is named after its handler


# -- item 12: log-in throttling --------------------------------------------------------------


def test_repeated_wrong_passwords_are_throttled_until_the_back_off_passes(store, settings):
    clock = Clock()
    app = create_server(store, settings.with_(auth=AUTH), clock=clock)
    with TestClient(app) as attacker, TestClient(app, client=("10.0.0.2", 4000)) as other:
        for _ in range(5):
            assert log_in(attacker, password="guess") == 400
        r = attacker.post("/login", data={"username": "ana", "password": "guess"})
        assert r.status_code == 429
        wait = int(r.headers["retry-after"])
        assert wait > 0 and f"try again in {wait} s" in r.json()["detail"]
        # Locked: even the right password is refused, and nothing is learnt from the answer.
        assert log_in(attacker) == 429
        # The lock holds the name from any address ...
        assert log_in(other, password="guess") == 429
        # ... and the address for any name; another user elsewhere logs in as usual.
        assert log_in(attacker, "bo", "b0pass") == 429
        assert log_in(other, "bo", "wrong") == 400
        assert log_in(other, "bo", "b0pass") == 200
        clock.now += wait - 1
        assert log_in(attacker) == 429
        clock.now += 1
        assert log_in(attacker) == 200  # the back-off passed; the success clears the count
        for _ in range(4):
            assert log_in(attacker, password="guess") == 400


def test_the_back_off_doubles_with_each_further_failure(store, settings):
    clock = Clock()
    with TestClient(create_server(store, settings.with_(auth=AUTH), clock=clock)) as c:
        for _ in range(5):
            assert log_in(c, password="x") == 400
        waits = []
        for _ in range(3):
            r = c.post("/login", data={"username": "ana", "password": "x"})
            assert r.status_code == 429
            waits.append(int(r.headers["retry-after"]))
            clock.now += waits[-1]
            assert log_in(c, password="x") == 400  # tried after the back-off: wrong again
        assert waits[1] == 2 * waits[0] and waits[2] == 2 * waits[1]


def test_an_old_streak_of_failures_is_forgiven(store, settings):
    clock = Clock()
    with TestClient(create_server(store, settings.with_(auth=AUTH), clock=clock)) as c:
        for _ in range(4):
            assert log_in(c, password="guess") == 400
        clock.now += 3600
        for _ in range(4):
            assert log_in(c, password="guess") == 400
        assert log_in(c) == 200


def test_each_server_keeps_its_own_counts(store, settings):
    clock = Clock()
    first = create_server(store, settings.with_(auth=AUTH), clock=clock)
    with TestClient(first) as c:
        for _ in range(6):
            log_in(c, password="guess")
        assert log_in(c) == 429
    with TestClient(create_server(store, settings.with_(auth=AUTH), clock=clock)) as c:
        assert log_in(c) == 200


def test_an_oversized_log_in_is_refused(store, settings):
    with TestClient(create_server(store, settings.with_(auth=AUTH))) as c:
        r = c.post("/login", data={"username": "ana", "password": "x" * 100_000})
        assert r.status_code == 413
