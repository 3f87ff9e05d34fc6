"""Assemble the TPO Studio Blocks: header, the app-wide model picker, and the tabs in the
order of the work."""

from __future__ import annotations

from typing import Callable

import gradio as gr

from tpo.config import Settings
from tpo.store import Store
from tpo.models.textlm import hub_unreachable
from ui import compare, curate, evaluate, library, team, train
from ui.header import header_markdown, whoami
from ui.models import ModelPicker


HEADER_EVERY_S = 10.0  # how often the page header refreshes its counts and running jobs

# On ZeroGPU a long fine-tune needs dedicated hardware; say so, do not fail.
ZERO_GPU_NOTE = (
    "⚠️ **This Space runs on ZeroGPU.** ZeroGPU lends a GPU only inside a single request for "
    "a short time; TPO Studio's generation, training, comparison and evaluation run as "
    "background jobs, which get no GPU here and run on the CPU (fine with the offline demo "
    "model, very slow with a real one). For real models, and for any fine-tune, duplicate "
    "this Space and choose a dedicated GPU under *Settings → Space hardware*.")


def build_app(store: Store, settings: Settings,
              hub_check: Callable[[], str | None] = hub_unreachable) -> gr.Blocks:
    """The whole interface over one store; nothing here holds state between requests.
    ``hub_check`` is asked once, here: why the Hugging Face Hub cannot be reached, or None
    (tests pass their own)."""
    with gr.Blocks(title="TPO Studio") as demo:
        header = gr.Markdown(lambda: header_markdown(store, settings), elem_id="tpo-header")

        def refresh_header() -> str:
            return header_markdown(store, settings)

        # Its own timer, not every action: it counts the library and lists the running jobs.
        gr.Timer(HEADER_EVERY_S).tick(refresh_header, None, header, show_progress="hidden")
        if settings.multi_user:  # each browser its own name, known only from its request
            me = gr.Markdown(elem_id="tpo-whoami")

            def on_load(request: gr.Request, profile: gr.OAuthProfile | None = None) -> str:
                # (the annotations make Gradio pass this browser's request and sign-in)
                return whoami(settings, request, profile)

            demo.load(on_load, None, me)
        if settings.zero_gpu:
            gr.Markdown(ZERO_GPU_NOTE, elem_id="zero-gpu-note")
        picker = ModelPicker.build(store, settings, hub_check())
        with gr.Tabs():
            with gr.Tab("Library", id="library"):
                videos = library.build(store, settings, header, picker)
            with gr.Tab("Curate", id="curate", elem_id="tab-curate"):
                curate.build(store, settings)
            with gr.Tab("Team", id="team", elem_id="tab-team"):
                team.build(store, settings)
            with gr.Tab("Train", id="train", elem_id="tab-train"):
                train.build(store, settings, picker)
            with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
                compare.build(store, settings, picker)
            with gr.Tab("Evaluate", id="evaluate", elem_id="tab-evaluate"):
                evaluate.build(store, settings, picker)
        demo.load(videos.show, videos.filters, videos.table, concurrency_id=library.TABLE_QUEUE)
        picker.wire(demo)
    return demo
