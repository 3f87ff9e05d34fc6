"""Tables that say a sentence when they have no rows, instead of showing bare headers.

Gradio's Dataframe has no empty state of its own, so an empty table is hidden and a short
note shown in its place (:func:`noted_table` lays out both, :func:`table_or_note` gives
the updates for a new value).
"""

from __future__ import annotations

from typing import Callable

import gradio as gr
import pandas as pd

from ui.html import note


def is_empty(frame: pd.DataFrame | None) -> bool:
    return frame is None or len(frame) == 0


def table_or_note(frame: pd.DataFrame | None, sentence: str) -> tuple[dict, dict]:
    """Updates for (table, note): the table when ``frame`` has rows, else the sentence."""
    empty = is_empty(frame)
    # (the hidden note is also emptied: a hidden element's old sentence stays in the page)
    return (gr.update(value=frame, visible=not empty),
            gr.update(value=note(sentence) if empty else "", visible=empty))


def noted_table(sentence: str, value: Callable[[], pd.DataFrame] | None = None, *,
                elem_id: str, **dataframe_args) -> tuple[gr.Dataframe, gr.HTML]:
    """A read-only Dataframe (``#elem_id``) and its note (``#elem_id-empty``), laid out in
    the current Blocks. The note shows ``sentence`` until the table gets rows; ``value``,
    when given, fills the table (or the note) each time the page loads."""
    table = gr.Dataframe(interactive=False, visible=False, elem_id=elem_id, **dataframe_args)
    empty_note = gr.HTML(note(sentence), elem_id=f"{elem_id}-empty")
    if value is not None:
        # No triggers: runs when the page loads.
        gr.on(None, lambda: table_or_note(value(), sentence), None, [table, empty_note],
              show_progress="hidden")
    return table, empty_note
