"""Serve TPO Studio: a FastAPI app with the Gradio UI at ``/`` and media routes beside it.

Videos are streamed from where they lie by ``/media/video/<id>`` (Starlette's
``FileResponse`` answers HTTP range requests, so the browser can seek in a two-hour file
without Gradio copying it into its cache); thumbnails come from ``/media/thumbs/``. A pair's
thumbnail not cached yet (its address names the video: ``?v=<id>``) is drawn there when first
asked for, so a review action's answer only names its thumbnails; one that cannot be decoded
is answered with a placeholder image.
Everything passes :class:`ui.auth.AccessGuard` first: Gradio's file route serves only its own
cache, an anonymous visitor's page carries no library data, and log-ins are throttled.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

import anyio
import gradio as gr
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from gradio.routes import App as GradioApp

from tpo import jobs
from tpo.config import Settings
from tpo.errors import TPOError
from tpo.media.library import build_demo
from tpo.media.thumbs import frames_at, parse_at_path
from tpo.store import Store, StoreError
from ui import html
from ui.app import build_app
from ui.auth import AccessGuard, LoginThrottle, current_user

log = logging.getLogger(__name__)

# Thumbnails drawn at once: a page's strips ask for dozens together, and the review actions
# (sharing the cores and the worker threads) must not wait behind them.
THUMB_DECODERS = 2
# Shown for a frame that cannot be decoded (a damaged or vanished file), in place of a broken
# image; sent uncached, so a repaired file shows its frames again.
PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="68" viewBox="0 0 120 68">'
    '<rect width="120" height="68" fill="#e5e7eb" stroke="#9ca3af"/>'
    '<text x="60" y="32" font-family="sans-serif" font-size="11" fill="#374151" '
    'text-anchor="middle">frame cannot</text><text x="60" y="46" font-family="sans-serif" '
    'font-size="11" fill="#374151" text-anchor="middle">be decoded</text></svg>')


def create_server(store: Store, settings: Settings,
                  clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """The ASGI app: media routes first, then the Gradio UI mounted at the root.

    With log-ins (``TPO_AUTH``) the media routes answer only a browser logged in to the UI,
    and failed log-ins back off on ``clock`` (seconds; tests pass their own).
    """
    server = FastAPI(title="TPO Studio", docs_url=None, redoc_url=None)
    logins = settings.logins()

    def logged_in(request: Request) -> None:
        if logins and current_user(gradio_app(server), request.scope) is None:
            raise HTTPException(401, "log in to TPO Studio first")

    @server.get("/media/video/{video_id}", dependencies=[Depends(logged_in)])
    def video_file(video_id: int) -> FileResponse:
        try:
            row = store.get_video(video_id)
        except StoreError:
            raise HTTPException(404, f"no video {video_id}")
        if row["status"] != "ready" or not Path(row["path"]).is_file():
            raise HTTPException(404, f"video {video_id} is not playable")
        return FileResponse(row["path"])

    settings.thumb_dir.mkdir(parents=True, exist_ok=True)
    thumbs = StaticFiles(directory=settings.thumb_dir)
    decoders = anyio.CapacityLimiter(THUMB_DECODERS)

    def draw_thumb(path: str, video_id: int) -> bool:
        """Decode the missing thumbnail ``path`` (under the thumbnail folder) of video
        ``video_id``; False when its frame cannot be decoded. 404 for a path that is not one
        of that video's thumbnails."""
        named = parse_at_path(path)
        try:
            row = store.get_video(video_id)
        except StoreError:
            raise HTTPException(404, f"no video {video_id}")
        if named is None or row["sha256"][:16] != named[0]:
            raise HTTPException(404, f"no such thumbnail of video {video_id}")
        _folder, max_side, t = named
        try:
            frames_at(row["path"], row["sha256"], [t], settings.thumb_dir, max_side=max_side)
        except (TPOError, OSError, ValueError, IndexError) as err:
            log.warning("thumbnail %s of video %s: %s", path, video_id, err)
            return False
        return True

    @server.get("/media/thumbs/{path:path}", dependencies=[Depends(logged_in)])
    async def thumb_file(path: str, request: Request, v: int | None = None):
        if v is not None and not (settings.thumb_dir / path).is_file():
            # Drawn on first request (then a static file), at most THUMB_DECODERS at once;
            # waiting for a turn holds no worker thread.
            if not await anyio.to_thread.run_sync(draw_thumb, path, v, limiter=decoders):
                return Response(PLACEHOLDER_SVG, media_type="image/svg+xml",
                                headers={"Cache-Control": "no-store",
                                         "X-TPO-Thumbnail": "placeholder"})
        response = await thumbs.get_response(path, request.scope)
        # A thumbnail's path names its video's hash and its time: its bytes never change, so
        # the browser keeps it (the Curate tab prefetches the next pair's strips).
        response.headers["Cache-Control"] = "private, max-age=86400, immutable"
        return response

    demo = build_app(store, settings)
    # allowed_paths only lets handlers hand these folders' files to Gradio, which copies
    # each one returned into its cache for that browser; AccessGuard keeps Gradio's file
    # route to that cache, so nothing here (nor the database beside it) is served by path.
    returned = [settings.data_dir / "exports", settings.data_dir / "evals"]
    gr.mount_gradio_app(server, demo, path="", css=html.CSS, head=html.HEAD_JS,
                        allowed_paths=[str(p.resolve()) for p in returned],
                        auth=logins or None,
                        # an exception's message (a full disk, a locked database: one line
                        # naming the file) reaches the page; its traceback stays in the log
                        show_error=True)
    server.add_middleware(AccessGuard, ui=gradio_app(server),
                          throttle=LoginThrottle(clock) if logins else None)
    return server


def gradio_app(server: FastAPI) -> GradioApp:
    """The Gradio app mounted in ``server`` (its log-in tokens and cache folder)."""
    return next(r.app for r in server.routes if isinstance(getattr(r, "app", None), GradioApp))


def ensure_demo(store: Store, settings: Settings) -> None:
    """On first start (empty library), render and ingest the demo library, with progress."""
    if not settings.demo_on_start or store.counts()["videos"]:
        return
    print(f"First start: building the demo library in {settings.demo_dir} ...", file=sys.stderr)

    last_decile = [-1]

    def progress(done: int, total: int, _label: str) -> None:
        decile = 10 * done // max(total, 1)  # print every 10 %, not every frame batch
        if decile != last_decile[0]:
            last_decile[0] = decile
            print(f"  rendering demo videos: {10 * decile:3d} %", file=sys.stderr)

    report = build_demo(store, settings.demo_dir, scale=settings.demo_scale,
                        user=settings.user, progress=progress)
    print(f"Demo library: {report.summary()}", file=sys.stderr)


def main(settings: Settings | None = None, host: str | None = None, port: int | None = None) -> None:
    """Open the store, build the demo on first start, and serve until interrupted."""
    settings = settings or Settings.from_env()
    store = Store(settings.db_path)
    for job_id in jobs.recover_orphans(store):
        print(f"job #{job_id} was running when the app stopped: marked failed", file=sys.stderr)
    ensure_demo(store, settings)
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = port or int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    print(f"TPO Studio on http://{host}:{port} (database {settings.db_path})", file=sys.stderr)
    uvicorn.run(create_server(store, settings), host=host, port=port, log_level="warning")
