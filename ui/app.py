"""Assemble the TPO Studio Blocks: header and tabs, in the order of the work."""

from __future__ import annotations

import gradio as gr

from tpo.config import Settings
from tpo.store import Store
from ui import compare, curate, library, train
from ui.header import header_markdown


def build_app(store: Store, settings: Settings) -> gr.Blocks:
    """The whole interface over one store; nothing here holds state between requests."""
    with gr.Blocks(title="TPO Studio") as demo:
        header = gr.Markdown(lambda: header_markdown(store, settings.user), elem_id="tpo-header")
        with gr.Tabs():
            with gr.Tab("Library", id="library"):
                library.build(store, settings, header)
            with gr.Tab("Curate", id="curate", elem_id="tab-curate"):
                curate.build(store, settings, header)
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                train.build(store, settings)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                compare.build(store, settings)
    return demo
