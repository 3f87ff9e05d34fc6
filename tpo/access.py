"""Who may add videos by a path on the server, and from where; where a shared app may
write (or read) the folders typed into the page.

In a shared app (log-ins: ``TPO_AUTH`` or Hugging Face sign-in) a path typed into the page
names a file on the server, and an ingested file is then streamed to every logged-in browser
by ``/media/video/<id>``. So there, adding by path is only for the users named in
``TPO_ADMINS`` and only below the folders named in ``TPO_LIBRARY_ROOTS``; uploads stay open to
everyone. A single local user (no log-ins) may add any path, as on their own machine.

Folders typed for an export, a training run's output or a training export (read) are, in a
shared app, kept below the app's own folder for them (``data/exports``, ``data/runs``), or,
for admins, also below a library root: otherwise any logged-in user could write into, or
train on, any folder of the server.

The checks live here, not in the UI, so the CLI or any other front end can apply them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tpo.config import Settings
from tpo.errors import TPOError
from tpo.media.library import find_video_files


class AccessError(TPOError, PermissionError):
    """An action this user may not do; the message says why and how to allow it."""


def can_add_by_path(settings: Settings, user: str) -> bool:
    """Whether ``user`` may add videos by server path at all (roots are checked apart)."""
    return not settings.multi_user or user in settings.admin_names()


def check_server_paths(settings: Settings, user: str, paths: Iterable[str | Path]) -> list[Path]:
    """The video files that ``paths`` (files or folders) name, resolved, for
    :func:`tpo.media.library.ingest`.

    In a shared app raises :class:`AccessError` unless ``user`` is an admin and every path,
    and every file found in a folder, resolves (symlinks and ``..`` followed) below a library
    root. Paths that do not exist are passed on, so ingest reports them as missing.
    """
    paths = [Path(p).expanduser() for p in paths]
    if not settings.multi_user:
        return paths
    if user not in settings.admin_names():
        raise AccessError(f"{user} may not add videos by a server path: upload the files "
                          "instead, or ask whoever runs the app to add you to TPO_ADMINS")
    roots = settings.library_root_paths()
    if not roots:
        raise AccessError("adding videos by a server path is off in this shared app: set "
                          "TPO_LIBRARY_ROOTS to the folders it may read (or upload the files)")
    for path in paths:
        _check_under(path, roots)
    # A folder inside a root may still hold a link to a file outside it; ingest stores the
    # resolved path, so that is the one to check.
    files, missing = find_video_files(paths)
    for file in files:
        _check_under(file, roots)
    return [f.resolve() for f in files] + [Path(p) for p, _why in missing]


def _check_under(path: Path, roots: list[Path]) -> None:
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        # The same words whether or not the path exists: nothing is learnt about the server.
        raise AccessError(f"{path} is outside the library folders this app may read "
                          f"({', '.join(str(r) for r in roots)})")


def check_folder(settings: Settings, user: str, folder: str | Path, home: Path, what: str) -> Path:
    """``folder`` resolved, when ``user`` may use it for ``what`` ("the export folder", …).

    A single local user may name any folder. In a shared app it must lie below ``home`` (the
    app's folder for such things, e.g. ``data/exports``); admins may also use folders below
    a library root. Raises :class:`AccessError` otherwise.
    """
    resolved = Path(folder).expanduser().resolve()
    if not settings.multi_user:
        return resolved
    allowed = [home.expanduser().resolve()]
    if user in settings.admin_names():
        allowed += settings.library_root_paths()
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise AccessError(f"{what} must be below {allowed[0]} in this shared app"
                          + (" or a library root" if len(allowed) > 1 else "")
                          + f"; {folder} is not (leave it empty for a new one there)")
    return resolved
