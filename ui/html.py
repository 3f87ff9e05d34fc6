"""Small HTML fragments the tabs render with ``gr.HTML`` (player, frame strip), and the
escaping every tab applies to text from users, files or models before it goes into HTML
(:func:`escape_html`) or Markdown (:func:`escape_md`).

Interactive behaviour (click a thumbnail to seek the player) lives in :data:`HEAD_JS`,
because ``gr.HTML`` runs no ``<script>``; it is passed to the page's ``<head>`` once.
"""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path

from tpo.media.thumbs import format_time

# Characters Markdown gives a meaning to; a backslash makes each one literal.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def escape_html(text: object) -> str:
    """``text`` as HTML text: a file named ``<img onerror=…>.mp4`` shows as its name.
    Also for ``gr.Error`` messages, which Gradio renders as HTML."""
    return escape(str(text))


def escape_md(text: object) -> str:
    """``text`` as literal inline Markdown: no HTML, no links, no emphasis, one line.

    Markdown punctuation is backslash-escaped and ``<``, ``>``, ``&`` and quotes become HTML
    entities (Markdown keeps entities, so the name reads as it is). Line breaks become
    spaces, so a name cannot start a heading or a list. Not for code spans: wrap it in
    ``<code>…</code>`` instead of backticks.
    """
    one_line = " ".join(str(text).splitlines())
    return escape(_MD_SPECIAL.sub(r"\\\1", one_line))


PLAYER_ID = "tpo-player"

CURATE_PLAYER_ID = "tpo-curate-player"

# - A click on an element with data-seek="<seconds>" seeks the player named by its
#   data-player (default: the library's); a click on a timeline bar seeks to that point.
# (The Curate tab's keys and instant review: ui.curate_keys, loaded with that tab.)
HEAD_JS = f"""
<script>
function tpoSeek(playerId, t) {{
  const player = document.getElementById(playerId || '{PLAYER_ID}');
  if (!player) return;
  player.currentTime = t;
  player.pause();
}}
document.addEventListener('click', (ev) => {{
  const el = ev.target.closest('[data-seek]');
  if (el) {{ tpoSeek(el.dataset.player, parseFloat(el.dataset.seek)); return; }}
  const bar = ev.target.closest('[data-timeline]');
  if (bar) {{
    const box = bar.getBoundingClientRect();
    const fraction = (ev.clientX - box.left) / box.width;
    tpoSeek(bar.dataset.player, fraction * parseFloat(bar.dataset.duration));
  }}
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
.tpo-timeline { width: 100%; height: 64px; cursor: pointer; display: block; }
.tpo-timeline .tpo-bar { fill: #8884; }
.tpo-timeline .tpo-event { fill: #8888; }
.tpo-timeline .tpo-segment { fill: #f59e0b99; stroke: #d97706; }
.tpo-timeline .tpo-chosen polygon { fill: #16a34a; }
.tpo-timeline .tpo-rejected polygon { fill: none; stroke: #dc2626; stroke-width: 1.5; }
.tpo-timeline-legend { display: flex; justify-content: space-between; font-size: 12px; opacity: .8; }
.tpo-counters { font-size: 14px; }
#curate-question { font-size: 18px; font-weight: 600; padding: 4px 0; }
#tpo-curate-player { max-height: 340px; }
.tpo-side-title { font-weight: 600; margin-bottom: 2px; }
.tpo-answer { border: 1px solid #8884; border-radius: 8px; padding: 8px 10px; min-height: 90px; }
.tpo-answer-text { white-space: pre-wrap; }
.tpo-cursor { animation: tpo-blink 1s steps(2) infinite; }
@keyframes tpo-blink { 50% { opacity: 0; } }
.tpo-reveal { padding: 6px 0; }
.tpo-progress { height: 8px; background: #8883; border-radius: 4px; margin: 6px 0; overflow: hidden; }
.tpo-progress > div { height: 100%; transition: width .4s; }
.tpo-job-text { font-size: 13px; opacity: .85; }
.tpo-job-error { color: #dc2626; white-space: pre-wrap; margin-top: 4px; }
"""


def player(video_id: int, player_id: str = PLAYER_ID) -> str:
    """A ``<video>`` streaming the library file through the server's range-capable route."""
    return (f'<div class="tpo-player"><video id="{player_id}" controls preload="metadata" '
            f'src="media/video/{int(video_id)}"></video></div>')


def frame_strip(entries: list[tuple[str, float]], thumb_dir: Path, *, player_id: str = PLAYER_ID,
                strip_id: str = "tpo-strip", video_id: int | None = None) -> str:
    """Thumbnails with their times; clicking one seeks the player to that time. With
    ``video_id``, each thumbnail's address names the video, so the thumbnail route can draw
    one not cached yet (:func:`tpo.media.thumbs.at_paths`)."""
    figures = []
    root = os.path.join(str(thumb_dir), "")
    query = f"?v={int(video_id)}" if video_id is not None else ""
    for path, t in entries:
        # Paths built from thumb_dir need no file-system look-up (resolve) each time.
        path = str(path)
        rel = path[len(root):].replace(os.sep, "/") if path.startswith(root) else ""
        if not rel or ".." in rel.split("/"):
            rel = Path(path).resolve().relative_to(Path(thumb_dir).resolve()).as_posix()
        figures.append(
            f'<figure data-seek="{t:.3f}" data-player="{player_id}" data-testid="strip-frame" '
            f'title="seek to {format_time(t)}">'
            f'<img src="media/thumbs/{escape(rel)}{query}" alt="frame at {t:.3f} s">'
            f'<figcaption>{format_time(t)}</figcaption></figure>'
        )
    return f'<div class="tpo-strip" id="{strip_id}">{"".join(figures)}</div>'


def note(text: str) -> str:
    return f'<div class="tpo-empty">{escape(text)}</div>'
