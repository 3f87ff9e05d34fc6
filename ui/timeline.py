"""The pair timeline as inline SVG: the whole video, the pair's segment highlighted, and a
tick for every frame each side saw (chosen ▲ above the bar, rejected △ below).

Every tick carries ``data-seek`` (seconds) and ``data-player``, so a click seeks the player
(see ``HEAD_JS`` in :mod:`ui.html`); clicking the bar itself seeks to that point.
"""

from __future__ import annotations

from html import escape

from tpo.media.thumbs import format_time

WIDTH, HEIGHT = 1000, 64  # SVG user units; the element scales to the page width
BAR_Y, BAR_H = 26, 12


def _x(t: float, duration: float) -> float:
    return round(WIDTH * min(max(t / duration, 0.0), 1.0), 2) if duration > 0 else 0.0


def _tick(t: float, duration: float, side: str, player: str) -> str:
    x = _x(t, duration)
    if side == "chosen":  # ▲ pointing at the bar from above
        shape = f'<polygon points="{x - 5},{BAR_Y - 14} {x + 5},{BAR_Y - 14} {x},{BAR_Y - 3}" />'
    else:  # △ below the bar
        shape = f'<polygon points="{x - 5},{BAR_Y + BAR_H + 14} {x + 5},{BAR_Y + BAR_H + 14} {x},{BAR_Y + BAR_H + 3}" />'
    return (f'<g class="tpo-tick tpo-{side}" data-seek="{t:.3f}" data-player="{player}">'
            f'<title>{side} frame at {format_time(t)}</title>{shape}</g>')


def timeline_svg(duration_s: float, *, segment: tuple[float, float] | None,
                 chosen: list[float], rejected: list[float], player: str,
                 events: list[dict] | None = None) -> str:
    """The timeline of one pair; ``events`` (ground truth) are drawn as faint marks."""
    parts = [f'<svg class="tpo-timeline" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" '
             f'data-timeline data-duration="{duration_s:.3f}" data-player="{player}" '
             f'role="img" aria-label="timeline">',
             f'<rect class="tpo-bar" x="0" y="{BAR_Y}" width="{WIDTH}" height="{BAR_H}" rx="3" />']
    for event in events or []:
        x0, x1 = _x(event["start_s"], duration_s), _x(event["end_s"], duration_s)
        parts.append(f'<rect class="tpo-event" x="{x0}" y="{BAR_Y + 3}" width="{max(x1 - x0, 1)}" '
                     f'height="{BAR_H - 6}"><title>{escape(str(event.get("label", "")))} '
                     f'{format_time(event["start_s"])}–{format_time(event["end_s"])}</title></rect>')
    if segment is not None:
        x0, x1 = _x(segment[0], duration_s), _x(segment[1], duration_s)
        parts.append(f'<rect class="tpo-segment" data-testid="timeline-segment" x="{x0}" y="{BAR_Y - 2}" '
                     f'width="{max(x1 - x0, 2)}" height="{BAR_H + 4}" rx="2" '
                     f'data-start="{segment[0]:.3f}" data-end="{segment[1]:.3f}">'
                     f'<title>segment {format_time(segment[0])}–{format_time(segment[1])}</title></rect>')
    parts += [_tick(t, duration_s, "chosen", player) for t in chosen]
    parts += [_tick(t, duration_s, "rejected", player) for t in rejected]
    parts.append("</svg>")
    legend = (f'<div class="tpo-timeline-legend"><span>0:00</span>'
              f'<span>▲ chosen saw {len(chosen)} frames · △ rejected saw {len(rejected)}'
              + (f' · segment {format_time(segment[0])}–{format_time(segment[1])}' if segment else "")
              + f'</span><span>{format_time(duration_s)}</span></div>')
    return "".join(parts) + legend
