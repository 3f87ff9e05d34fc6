"""Small HTML fragments the tabs render with ``gr.HTML`` (player, frame strip).

Interactive behaviour (click a thumbnail to seek the player) lives in :data:`HEAD_JS`,
because ``gr.HTML`` runs no ``<script>``; it is passed to the page's ``<head>`` once.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from tpo.thumbs import format_time

PLAYER_ID = "tpo-player"

# Click on any element with data-seek="<seconds>" to seek the library player there.
HEAD_JS = f"""
<script>
document.addEventListener('click', (ev) => {{
  const el = ev.target.closest('[data-seek]');
  if (!el) return;
  const player = document.getElementById('{PLAYER_ID}');
  if (!player) return;
  player.currentTime = parseFloat(el.dataset.seek);
  player.pause();
}});
</script>
"""

CSS = """
.tpo-strip { display: flex; gap: 6px; overflow-x: auto; padding: 4px 0; }
.tpo-strip figure { margin: 0; cursor: pointer; text-align: center; flex: 0 0 auto; }
.tpo-strip img { display: block; height: 72px; border-radius: 4px; border: 1px solid #8884; }
.tpo-strip figcaption { font-size: 12px; font-variant-numeric: tabular-nums; opacity: .8; }
.tpo-player video { width: 100%; max-height: 420px; background: #000; border-radius: 6px; }
.tpo-empty { opacity: .7; padding: 8px 0; }
.tpo-progress { height: 8px; background: #8883; border-radius: 4px; margin: 6px 0; overflow: hidden; }
.tpo-progress > div { height: 100%; transition: width .4s; }
.tpo-job-text { font-size: 13px; opacity: .85; }
.tpo-job-error { color: #dc2626; white-space: pre-wrap; margin-top: 4px; }
"""


def player(video_id: int) -> str:
    """A ``<video>`` streaming the library file through the server's range-capable route."""
    return (f'<div class="tpo-player"><video id="{PLAYER_ID}" controls preload="metadata" '
            f'src="media/video/{int(video_id)}"></video></div>')


def frame_strip(entries: list[tuple[str, float]], thumb_dir: Path) -> str:
    """Thumbnails with their times; clicking one seeks the player to that time."""
    figures = []
    for path, t in entries:
        rel = Path(path).resolve().relative_to(Path(thumb_dir).resolve()).as_posix()
        figures.append(
            f'<figure data-seek="{t:.3f}" data-testid="strip-frame" title="seek to {format_time(t)}">'
            f'<img src="media/thumbs/{escape(rel)}" alt="frame at {t:.3f} s">'
            f'<figcaption>{format_time(t)}</figcaption></figure>'
        )
    return f'<div class="tpo-strip" id="tpo-strip">{"".join(figures)}</div>'


def note(text: str) -> str:
    return f'<div class="tpo-empty">{escape(text)}</div>'
