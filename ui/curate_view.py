"""What the Curate tab shows of one pair, as the values of its components (:class:`View`),
and the same for the pairs either side of it as one hidden block the browser swaps in at
once on a key press (:func:`prefetch_html`, read by :mod:`ui.curate_keys`).

Also the counters line and the guided empty queue (filtered pairs per reason). Texts from
files, models and people are escaped before they go into HTML or Markdown.
"""

from __future__ import annotations

import json
import os
import re
from html import escape

from tpo.config import Settings
from tpo.curation import review as reviews
from tpo.media.thumbs import at_paths, format_time
from tpo.store import PAIR_STATUSES, Pair, Store, StoreError
from ui import html
from ui.html import escape_md
from ui.timeline import timeline_svg

STRIP_MAX = 16  # thumbnails per side; dense sides (64 frames) show an even subset

# The components of one pair's view, in the order of View.of's tuple (and the fields of
# ui.curate.ViewParts, the components showing them). Indexes 2, 3 and 12 (question, meta,
# originals) are read by tests.
PARTS = ("pair_id", "version", "question", "meta", "timeline", "player", "chosen_title",
         "chosen", "chosen_strip", "rejected", "rejected_title", "rejected_strip", "originals",
         "edit_question", "warning", "note", "caution")
# What the browser swaps in before the server answers: everything but the originals (a
# closed accordion) and the note (typed for the pair being left, sent with its action).
IMG_SRC = re.compile(r'<img src="([^"]+)"')  # a frame strip's thumbnails (already escaped)
PREFETCHED = ("pair_id", "version", "question", "meta", "timeline", "player", "chosen_title",
              "chosen", "chosen_strip", "rejected", "rejected_title", "rejected_strip",
              "edit_question", "warning")


def counters_html(store: Store) -> str:
    """Pairs per status, then per kind (pending / accepted / rejected / filtered), one line."""
    c = store.pair_counts()
    total = c["all"]
    line = " · ".join(f'<b data-count="{s}">{total[s]}</b> {s}' for s in PAIR_STATUSES)
    kinds = " &nbsp; ".join(
        f"{escape(kind)}: " + " / ".join(str(c[kind][s]) for s in PAIR_STATUSES)
        for kind in sorted(k for k in c if k != "all"))
    return (f'<div class="tpo-counters" id="curate-counters">{line}'
            + (f' <span class="tpo-kinds" title="per kind: pending / accepted / rejected / '
               f'filtered">&nbsp; {kinds}</span>' if kinds else "")
            + "</div>")


def _sample(times: list[float], n: int) -> list[float]:
    if len(times) <= n:
        return list(times)
    step = len(times) / n
    return [times[int(i * step + step / 2)] for i in range(n)]


def _side_strip(row: dict, times: list[float], settings: Settings, side: str) -> str:
    # Named, not decoded: a thumbnail not cached yet is drawn by the thumbnail route when the
    # browser first asks for it (ui.server), off the path of a review action's answer; one
    # that cannot be decoded shows there as a placeholder image.
    if not os.path.isfile(row["path"]):
        return html.note(f"Cannot show frames: the file of {row['name']} is missing.")
    entries = at_paths(row["sha256"], _sample(times, STRIP_MAX), settings.thumb_dir)
    return html.frame_strip(entries, settings.thumb_dir, player_id=html.CURATE_PLAYER_ID,
                            strip_id=f"curate-{side}-strip", video_id=row["id"])


def _saw(pair: Pair, side: str, times: list[float]) -> str:
    if pair["kind"] == "localized" and pair["segment_start"] is not None:
        seg = f"{format_time(pair['segment_start'])}–{format_time(pair['segment_end'])}"
        if pair.generated_side(side) == "chosen":
            where = f"the segment {seg}"
        elif pair["strategy"] == "incomplete":
            where = f"a sparse part of {seg}"
        else:
            where = f"the video without {seg}"
    else:
        where = "the whole video"
    return (f'<div class="tpo-side-title"><b>{side.upper()}</b> · '
            f'<span class="tpo-saw">saw {escape(where)} ({len(times)} frames)</span></div>')


def _meta(pair: Pair, row: dict, position: str) -> str:
    last = (f" · last change by {escape(pair['last_user'])}" if pair.get("last_user") else "")
    reason = (f'<div class="tpo-filter-reason">Filter: <i>{escape(pair["filter_reason"])}</i></div>'
              if pair["filter_reason"] else "")
    return (f'<div class="tpo-meta"><b>Pair #{pair["id"]}</b> · {escape(position)} · '
            f'{escape(pair["kind"])} · {escape(pair["strategy"])} · video #{row["id"]} '
            f'{escape(row["name"])} · <b data-status="{escape(pair["status"])}">'
            f'{escape(pair["status"])}</b> · version {pair["version"]}{last}{reason}</div>')


def warning_html(pair: Pair, text: str | None, confirmed: bool = False) -> str:
    """The warning shown before accepting a pair whose chosen answer is empty or cut off
    (``text``: :func:`tpo.curation.review.answer_warning`); empty when there is none.
    ``confirmed``: the reviewer pressed Accept once and was warned, so the next one accepts."""
    if not text:
        return ""
    then = ("Press Accept again to accept it anyway." if confirmed
            else "Accept asks once more before accepting it.")
    return (f'<div class="tpo-warning" data-warning="{escape(text)}" data-pair="{pair["id"]}"'
            f'{" data-confirmed" if confirmed else ""}>⚠️ {escape(text)}. {then}</div>')


def _originals(pair: dict) -> str:
    lines = []
    for label, column in (("question", "question"), ("chosen", "chosen"), ("rejected", "rejected")):
        if pair.get(f"edited_{column}"):
            lines.append(f"- generated {label}: {escape_md(pair[column])}")
    if pair.get("swapped"):
        lines.append("- chosen and rejected were swapped by a reviewer")
    if not lines:
        return "No edits: the texts are as generated."
    return "\n".join(lines)


class View:
    """Everything the tab shows for one pair, in the order of :data:`PARTS`."""

    @staticmethod
    def empty(message: str) -> tuple:
        return (None, None, html.note(message), *[""] * (len(PARTS) - 4), None)

    @staticmethod
    def parts(store: Store, settings: Settings, pair_id: int, position: str,
              confirmed: bool = False) -> dict:
        """The view of one pair as ``{part: value}`` (two reads: the pair and its video)."""
        pair = store.get_pair(pair_id)
        row = store.get_video(pair["video_id"])
        view = pair.effective()
        segment = ((pair["segment_start"], pair["segment_end"])
                   if pair["segment_start"] is not None else None)
        events = (row.get("ground_truth") or {}).get("events")
        playable = row["status"] == "ready"
        warning = reviews.answer_warning(pair)
        return {
            "pair_id": pair["id"], "version": pair["version"],
            "question": (f'<div id="curate-question" data-pair-id="{pair["id"]}" '
                         f'data-version="{pair["version"]}">{escape(view["question"])}</div>'),
            "meta": _meta(pair, row, position),
            "timeline": timeline_svg(row["duration_s"] or 0.0, segment=segment,
                                     chosen=view["chosen_timestamps"],
                                     rejected=view["rejected_timestamps"],
                                     player=html.CURATE_PLAYER_ID, events=events),
            "player": (html.player(row["id"], html.CURATE_PLAYER_ID) if playable
                       else html.note("Video unreadable.")),
            "chosen_title": _saw(pair, "chosen", view["chosen_timestamps"]),
            "chosen": view["chosen"],
            "chosen_strip": (_side_strip(row, view["chosen_timestamps"], settings, "chosen")
                             if playable else ""),
            "rejected": view["rejected"],
            "rejected_title": _saw(pair, "rejected", view["rejected_timestamps"]),
            "rejected_strip": (_side_strip(row, view["rejected_timestamps"], settings, "rejected")
                               if playable else ""),
            "originals": _originals(pair),
            "edit_question": view["question"],
            "warning": warning_html(pair, warning, confirmed),
            "note": pair.get("note") or "",
            # What Accept must warn about first, for the action handler: (pair, version, text)
            "caution": ([pair["id"], pair["version"], warning] if warning and not confirmed
                        else None),
        }

    @staticmethod
    def of(store: Store, settings: Settings, pair_id: int, position: str,
           confirmed: bool = False) -> tuple:
        parts = View.parts(store, settings, pair_id, position, confirmed)
        return tuple(parts[name] for name in PARTS)


def position_text(pos: int, total: int) -> str:
    return f"{pos + 1} of {total}"


def prefetch_html(store: Store, settings: Settings, ids: list[int], pos: int) -> str:
    """The views of the pairs before and after position ``pos`` of the queue, each as JSON
    in an attribute (the browser shows one at once on N/P/A/R, before the server answers),
    and their thumbnails as hidden images, so the browser has them cached by then (asking
    for them is also what has the server draw those not cached yet, after this answer)."""
    blocks, images = [], []
    for direction, at in (("next", pos + 1), ("prev", pos - 1)):
        if not 0 <= at < len(ids):
            continue
        try:
            parts = View.parts(store, settings, ids[at], position_text(at, len(ids)))
        except StoreError:  # deleted since the queue was loaded: shown when reached
            continue
        view = {name: parts[name] for name in PREFETCHED}
        view["position"] = at
        blocks.append(f'<div data-dir="{direction}" data-pair="{parts["pair_id"]}" '
                      f'data-view="{escape(json.dumps(view), quote=True)}"></div>')
        for strip in (parts["chosen_strip"], parts["rejected_strip"]):
            images += IMG_SRC.findall(strip)
    imgs = "".join(f'<img src="{src}" alt="" loading="eager">' for src in dict.fromkeys(images))
    current = ids[pos] if 0 <= pos < len(ids) else ""
    return (f'<div class="tpo-prefetch" data-from="{current}">{"".join(blocks)}'
            f'<div hidden>{imgs}</div></div>')


def guide_html(reasons: dict[str, int]) -> str:
    """An empty queue that is not the end of the work: how many pairs the generation's
    filters set aside, per reason (the buttons beside it show or restore them)."""
    total = sum(reasons.values())
    items = "".join(f'<li data-reason="{escape(r)}"><b>{n}</b> {escape(r)}</li>'
                    for r, n in reasons.items())
    return (f'<div class="tpo-guide" id="curate-guide-text" data-filtered="{total}">'
            f'<b>Nothing pending here, but {total} filtered pair{"s" if total != 1 else ""} '
            f'{"were" if total != 1 else "was"} set aside by the generation filters:</b>'
            f'<ul>{items}</ul>Show them to review them one by one, or restore them all '
            f'to the pending queue (each restore is recorded under your name).</div>')
