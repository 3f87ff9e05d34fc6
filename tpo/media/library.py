"""The video library: find video files, ingest them into the store, build the demo library.

Ingest probes each file with :mod:`tpo.media.video` and records it, readable or not: a bad file is
stored with ``status = 'error'`` and its reason, and ingest goes on with the rest. The same
bytes (same SHA-256) are ingested once, wherever they lie.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

from tpo.media import synth, video
from tpo.media.index import file_sha256
from tpo.store import Store, StoreError

# Folders are searched for these; a file named explicitly is always tried, whatever its suffix.
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .flv .wmv .3gp .ogv".split()
)

Progress = Callable[[int, int, str], None]  # (files done, files total, current file)


@dataclass
class IngestReport:
    """What one ingest did, file by file."""

    added: list[int] = field(default_factory=list)      # ids of new readable videos
    updated: list[int] = field(default_factory=list)    # known path, new content: re-probed
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    failed: list[tuple[str, str]] = field(default_factory=list)   # (path, error)

    def summary(self) -> str:
        return (f"added {len(self.added)}, updated {len(self.updated)}, "
                f"skipped {len(self.skipped)}, failed {len(self.failed)}")

    def as_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "failed": [{"path": p, "error": e} for p, e in self.failed],
        }


def find_video_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders (recursively, video suffixes only, sorted); keep files as given.

    Returns ``(files, missing)`` where ``missing`` lists ``(path, reason)`` for paths that
    do not exist.
    """
    files: list[Path] = []
    missing: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            missing.append((str(raw), "no such file or folder"))
    return files, missing


def ingest(store: Store, paths: Iterable[str | Path], *, user: str = "",
           progress: Progress | None = None) -> IngestReport:
    """Ingest files and folders into ``store``; never raises for a bad file."""
    files, missing = find_video_files(paths)
    report = IngestReport(failed=list(missing))
    for i, path in enumerate(files):
        if progress:
            progress(i, len(files), str(path))
        ingest_file(store, path, user=user, report=report)
    if progress:
        progress(len(files), len(files), "")
    return report


def ingest_file(store: Store, path: Path, *, user: str = "", report: IngestReport,
                sha256: str | None = None, record_unreadable: bool = True) -> None:
    """Probe one file and record it in ``store``; the outcome is appended to ``report``.

    ``sha256`` may be passed when the caller has already hashed the file. With
    ``record_unreadable=False`` a file that is no readable video is only reported as failed,
    not recorded as an error row (an upload that is refused is deleted, so a row would
    point at nothing).
    """
    path = path.resolve()
    try:
        sha = sha256 or file_sha256(path)
    except OSError as err:
        report.failed.append((str(path), f"cannot read file: {err.strerror or err}"))
        return
    known = store.find_video(sha256=sha)
    if known is not None:
        report.skipped.append((str(path), f"same content as video #{known['id']} ({known['path']})"))
        return
    row = {"path": str(path), "name": path.name, "sha256": sha, "size_bytes": path.stat().st_size,
           "added_by": user or None, "ground_truth": _ground_truth_beside(path)}
    try:
        info = video.probe(path)
    except video.VideoError as err:
        row.update(status="error", error=err.reason)
        report.failed.append((str(path), err.reason))
        if not record_unreadable:
            return
    else:
        row.update(status="ready", error=None, **_info_columns(info))
    same_path = store.find_video(path=str(path))
    if same_path is not None:  # the file at this path changed since it was ingested
        store.update_video(same_path["id"], row)
        if row["status"] == "ready":
            report.updated.append(same_path["id"])
    else:
        video_id = store.add_video(row)
        if row["status"] == "ready":
            report.added.append(video_id)


def add_uploads(store: Store, files: Iterable[str | Path], upload_dir: Path, *, user: str = "",
                progress: Progress | None = None) -> IngestReport:
    """Copy uploaded files (e.g. from a browser upload's temp folder) into ``upload_dir``
    and ingest them. Content already in the library is not copied again.

    Only videos the library keeps stay in ``upload_dir``: a copy that fails (a full disk)
    is removed with its partial bytes, and so is an upload that is refused (not a readable
    video, the same bytes added meanwhile, a database error); each is reported under
    ``failed`` or ``skipped`` by the uploaded file's name, and the rest go on.
    """
    upload_dir = Path(upload_dir)
    upload_dir.mkdir(parents=True, exist_ok=True)
    report = IngestReport()
    files = [Path(f) for f in files]
    for i, src in enumerate(files):
        if progress:
            progress(i, len(files), str(src))
        try:
            sha = file_sha256(src)
        except OSError as err:
            report.failed.append((src.name, f"cannot read the upload: {err.strerror or err}"))
            continue
        known = store.find_video(sha256=sha)
        if known is not None:
            report.skipped.append((src.name, f"same content as video #{known['id']} ({known['name']})"))
            continue
        _add_upload(store, src, sha, _free_name(upload_dir / src.name), user=user, report=report)
    if progress:
        progress(len(files), len(files), "")
    return report


def _add_upload(store: Store, src: Path, sha: str, dest: Path, *, user: str,
                report: IngestReport) -> None:
    """Copy one upload to ``dest`` and ingest it; ``dest`` is gone unless the library
    keeps it."""
    try:
        shutil.copy2(src, dest)
    except OSError as err:
        _remove(dest)
        report.failed.append((src.name, f"could not be saved to {dest.parent} "
                                        f"({err.strerror or err}); nothing was added"))
        return
    one = IngestReport()
    try:
        ingest_file(store, dest, user=user, report=one, sha256=sha, record_unreadable=False)
    except StoreError as err:
        one.failed.append((str(dest), str(err)))
    except BaseException:
        _remove(dest)
        raise
    if not (one.added or one.updated):
        _remove(dest)
    report.added += one.added
    report.updated += one.updated
    report.skipped += [(src.name, why) for _, why in one.skipped]
    report.failed += [(src.name, why) for _, why in one.failed]


def _remove(path: Path) -> None:
    """Delete a file this module wrote, if it is there; a failure to delete is no news
    worth hiding the first error for."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _free_name(path: Path) -> Path:
    """``path``, or ``stem-2.ext``, ``stem-3.ext``... if a file of that name exists."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _info_columns(info: video.VideoInfo) -> dict:
    d = info.as_dict()
    return {k: d[k] for k in ("duration_s", "fps", "n_frames", "width", "height", "rotation", "codec", "backend")}


def _ground_truth_beside(path: Path) -> dict | None:
    """The synthetic ground truth ``<stem>.json`` next to a video, if it is one."""
    gt = path.with_suffix(".json")
    if not gt.is_file():
        return None
    try:
        data = json.loads(gt.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # some other JSON file; not ours to complain about
    return data if isinstance(data, dict) and isinstance(data.get("events"), list) else None


def demo_specs(scale: float = 1.0) -> list[synth.VideoSpec]:
    """The demo library's specs, durations and event times multiplied by ``scale``."""
    if scale == 1.0:
        return list(synth.DEMO_SPECS)
    return [
        replace(spec, duration_s=spec.duration_s * scale, events=tuple(
            replace(e, start_s=e.start_s * scale, end_s=e.end_s * scale) for e in spec.events))
        for spec in synth.DEMO_SPECS
    ]


def build_demo(store: Store, demo_dir: Path, *, scale: float = 1.0, user: str = "",
               progress: Progress | None = None) -> IngestReport:
    """Render the synthetic demo videos that are missing under ``demo_dir`` and ingest them."""
    specs = demo_specs(scale)

    def on_frames(done: int, total: int) -> None:  # synth counts frames over the library
        if progress:
            progress(done, total, "demo library")

    paths = synth.build_demo_library(demo_dir, specs, progress=on_frames)
    return ingest(store, paths, user=user)
