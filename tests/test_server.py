"""The server's media routes (no browser): videos stream with HTTP range requests,
unknown or unreadable videos are 404, thumbnails are served from the cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from media import make_video

from tpo.media.library import ingest
from tpo.media.thumbs import frame_strip
from ui.server import create_server


@pytest.fixture
def client(store, settings, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", duration_s=2, fps=10)
    (tmp_path / "broken.mp4").write_text("not a video")
    ingest(store, [clip, tmp_path / "broken.mp4"])
    with TestClient(create_server(store, settings)) as c:
        yield c, clip


def test_video_is_streamed_in_ranges(client):
    c, clip = client
    whole = clip.read_bytes()
    r = c.get("/media/video/1", headers={"Range": "bytes=10-109"})
    assert r.status_code == 206
    assert r.content == whole[10:110]
    assert r.headers["content-range"] == f"bytes 10-109/{len(whole)}"


def test_unknown_or_unreadable_video_is_404(client):
    c, _ = client
    assert c.get("/media/video/99").status_code == 404
    assert c.get("/media/video/2").status_code == 404  # the broken file


def test_thumbnails_are_served_and_ui_is_mounted(client, store, settings):
    c, clip = client
    row = store.get_video(1)
    entries = frame_strip(row["path"], row["sha256"], settings.thumb_dir, n=3, max_side=64)
    rel = Path(entries[0][0]).relative_to(settings.thumb_dir).as_posix()
    r = c.get(f"/media/thumbs/{rel}")
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"  # a JPEG
    assert c.get("/").status_code == 200


def test_with_log_ins_media_needs_the_ui_login(store, settings, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", duration_s=2, fps=10)
    ingest(store, [clip])
    with TestClient(create_server(store, settings.with_(auth="ana:s3cret"))) as c:
        assert c.get("/media/video/1").status_code == 401
        assert c.post("/login", data={"username": "ana", "password": "wrong"}).status_code >= 400
        assert c.get("/media/video/1").status_code == 401
        assert c.post("/login", data={"username": "ana", "password": "s3cret"}).status_code == 200
        assert c.get("/media/video/1").status_code == 200



def test_on_a_space_with_hf_oauth_reviewers_sign_in_with_hugging_face(store, settings, monkeypatch):
    """The Space's environment switches Hugging Face sign-in on; Gradio then adds its routes
    (the login itself talks to huggingface.co, which these tests cannot reach)."""
    import gradio.oauth

    from tpo.config import Settings

    space_env = {"SPACE_ID": "team/tpo-studio", "OAUTH_CLIENT_ID": "id"}
    assert Settings.from_env(space_env).hf_oauth is True
    assert Settings.from_env({"OAUTH_CLIENT_ID": "id"}).hf_oauth is False  # not a Space
    monkeypatch.setattr(gradio.oauth, "get_space", lambda: "team/tpo-studio")
    for name, value in (("OAUTH_CLIENT_ID", "id"), ("OAUTH_CLIENT_SECRET", "secret"),
                        ("OAUTH_SCOPES", "openid profile"),
                        ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(gradio.oauth, name, value)
    signed = route_paths(create_server(store, settings.with_(hf_oauth=True)))
    assert "/login/huggingface" in signed and "/media/video/{video_id}" in signed
    assert "/login/huggingface" not in route_paths(create_server(store, settings))


def route_paths(app) -> set[str]:
    """Every route path of an ASGI app, through mounts and included routers."""
    paths, todo = set(), list(app.routes)
    while todo:
        route = todo.pop()
        if hasattr(route, "path"):
            paths.add(route.path)
        for inner in (getattr(route, "app", None), getattr(route, "router", None)):
            todo += list(getattr(inner, "routes", []) or [])
    return paths


def test_on_zero_gpu_the_app_says_jobs_get_no_gpu(store, settings):
    """DESIGN §5: on ZeroGPU hardware the app says a fine-tune needs a dedicated GPU."""
    from tpo.config import Settings
    from ui.app import build_app

    assert Settings.from_env({"SPACES_ZERO_GPU": "true"}).zero_gpu is True
    assert Settings.from_env({"SPACES_ZERO_GPU": "false"}).zero_gpu is False
    assert Settings.from_env({}).zero_gpu is False

    def texts(demo) -> str:
        return " ".join(str(c.get("props", {}).get("value", "")) for c in demo.config["components"])

    assert "This Space runs on ZeroGPU" in texts(build_app(store, settings.with_(zero_gpu=True)))
    assert "ZeroGPU" not in texts(build_app(store, settings))
