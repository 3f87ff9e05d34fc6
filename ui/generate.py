"""The "Generate pairs" panel of the Library tab: settings, start, live job status, cancel.

Generation runs as a background job (:mod:`tpo.jobs`), so it survives a browser reload; the
panel polls the newest generate job once a second and refreshes the library's pair counts
when a job ends.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr

from tpo.config import Settings
from tpo.configs import widget_args
from tpo.generation.filters import FilterConfig
from tpo.generation.generate import DEFAULT_JUDGE, DEFAULT_WRITER, GenerationRequest, submit
from tpo.models.modelref import registered
from tpo.generation.pairs import GenerationConfig
from tpo.store import Store
from ui.header import header_markdown
from ui.identity import bind
from ui.jobs import JobPanel, Poll
from ui.models import NO_ADAPTER, ModelPicker, model_choices, picked_model, resolve_pick

SCOPES = ["all ready videos", "selected video"]
BUSY_POLL_S = 1.0  # poll interval while a generation runs


def resolve_text_model(text: str | None, empty: str) -> str:
    """A question writer or judge for the job (:func:`tpo.models.textlm.load` spec): a local file or
    folder as an absolute path, anything else (smollm2, self, none, a hub id, a server URL)
    as typed; ``empty`` when nothing is typed. The job checks it and fails with the reason."""
    text = (text or "").strip()
    if not text:
        return empty
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def generation_model(store: Store, model_text: str, tuned_choice: str | None
                     ) -> tuple[str, str | None]:
    """(model, adapter) to load: the fine-tuned run chosen in the panel, else what the model
    box names (a registered run there loads as its base + adapter, like in Compare)."""
    row = picked_model(store, tuned_choice)
    ref = registered(row) if row else resolve_pick(store, model_text)
    return ref.model, ref.adapter


@dataclass(frozen=True)
class GenerateForm:
    """The panel's input components; a handler gets their values as one dict keyed by them."""

    model: gr.Textbox
    tuned: gr.Dropdown
    scope: gr.Radio
    video: gr.State  # the library table's selected video id
    localized: gr.Number
    comprehensive: gr.Number
    strategy: gr.Dropdown
    dense: gr.Number
    sparse: gr.Number
    questions: gr.Dropdown
    max_tokens: gr.Number
    drop_truncated: gr.Checkbox
    force: gr.Checkbox
    writer: gr.Textbox
    judge: gr.Textbox

    def inputs(self) -> set:
        return {getattr(self, f.name) for f in fields(self)}

    def request(self, store: Store, values: dict) -> GenerationRequest:
        """The values typed into the panel as a generation request (ConfigError, a
        ValueError naming the setting, for a bad value)."""
        v = {f.name: values[getattr(self, f.name)] for f in fields(self)}
        if v["scope"] == "selected video" and v["video"] is None:
            raise ValueError("Select a video in the table first, or choose all ready videos.")
        base, adapter = generation_model(store, v["model"], v["tuned"])
        return GenerationRequest(
            model=base, adapter=adapter, force=bool(v["force"]),
            video_ids=[v["video"]] if v["scope"] == "selected video" else None,
            writer=resolve_text_model(v["writer"], DEFAULT_WRITER),
            judge=resolve_text_model(v["judge"], DEFAULT_JUDGE),
            config=GenerationConfig(localized=int(v["localized"]),
                                    comprehensive=int(v["comprehensive"]),
                                    strategy=v["strategy"], dense=int(v["dense"]),
                                    sparse=int(v["sparse"]), questions=v["questions"],
                                    max_new_tokens=int(v["max_tokens"])),
            filters=FilterConfig(drop_truncated=bool(v["drop_truncated"])))


def start_generation(store: Store, settings: Settings, form: GenerateForm, panel: JobPanel,
                     values: dict) -> dict:
    """Generate: the form as one request, queued as a background job; the panel shows it."""
    try:
        request = form.request(store, values)
    except (TypeError, ValueError) as err:
        raise gr.Error(str(err))
    return panel.submitted(submit(store, request, log_dir=settings.log_dir))


def build(store: Store, settings: Settings, selected: gr.State, table: gr.Dataframe,
          header: gr.Markdown, refresh_table, filters: list[gr.components.Component],
          picker: ModelPicker) -> None:
    """Lay out the panel inside the current Blocks and wire it; ``refresh_table(*values)``
    gives the library table's value for the current values of the ``filters`` components
    (so a finished job redraws the table the user is looking at, search included). The
    model box follows the app-wide ``picker``."""
    with gr.Accordion("Generate pairs", open=False, elem_id="generate-panel"):
        with gr.Row():
            model = gr.Textbox(picker.model.value, scale=4, elem_id="generate-model",
                               label="Model: Hugging Face id, local folder or run #id "
                                     "(follows the model picked above)")
            tuned = gr.Dropdown(model_choices(store), value=NO_ADAPTER, scale=2,
                                label="Fine-tuned model (a LoRA run on top of its base)",
                                elem_id="generate-tuned")
        with gr.Row():
            scope = gr.Radio(SCOPES, value=SCOPES[0], label="Videos", elem_id="generate-scope")
            # Defaults, limits and info text come from GenerationConfig's declaration.
            localized = gr.Number(**widget_args(GenerationConfig, "localized"), precision=0,
                                  label="Localized pairs per video")
            comprehensive = gr.Number(**widget_args(GenerationConfig, "comprehensive"),
                                      precision=0, label="Comprehensive pairs per video")
            strategy = gr.Dropdown(**widget_args(GenerationConfig, "strategy"),
                                   label="Localized rejected side")
        with gr.Row():
            dense = gr.Number(**widget_args(GenerationConfig, "dense"), precision=0,
                              label="Dense frames (chosen)")
            sparse = gr.Number(**widget_args(GenerationConfig, "sparse"), precision=0,
                               label="Sparse frames (rejected)")
            questions = gr.Dropdown(**widget_args(GenerationConfig, "questions"),
                                    label="Questions from")
            max_tokens = gr.Number(**widget_args(GenerationConfig, "max_new_tokens"), precision=0,
                                   label="Max new tokens")
            drop_truncated = gr.Checkbox(**widget_args(FilterConfig, "drop_truncated"),
                                         label="Filter out answers cut at the token limit")
            force = gr.Checkbox(False, label="Redo videos already generated")
        with gr.Row():
            writer = gr.Textbox(DEFAULT_WRITER, elem_id="generate-writer",
                                label="Question writer (questions not from ground truth)",
                                info="smollm2 (offline SmolLM2-135M-Instruct), self (the model "
                                     "above), a hub id, folder, .gguf file, or an "
                                     "OpenAI-compatible server URL[#model]")
            judge = gr.Textbox(placeholder="smollm2", elem_id="generate-judge",
                               label="Judge model (optional): checks that the chosen answer is "
                                     "correct and better and the question clear, as in the paper",
                               info="Same forms as the writer; empty: rules only. smollm2 is "
                                    "small and often answers out of format (the pair is then "
                                    "dropped): a bigger model or a server judges better.")
        start = gr.Button("Generate", variant="primary", elem_id="generate-start")
        panel = JobPanel(store, "generate", what="generation", empty="No generation yet.",
                         busy_s=BUSY_POLL_S, elem_prefix="generate")
        panel.status_html()
        panel.cancel_button("Cancel generation")
        with gr.Accordion("Log", open=False):
            panel.log_code(lines=12, tail=40)
    panel.wire(bind(after_poll, store, settings, refresh_table, table, header, filters),
               inputs=filters, outputs=[table, header])

    form = GenerateForm(model=model, tuned=tuned, scope=scope, video=selected,
                        localized=localized, comprehensive=comprehensive, strategy=strategy,
                        dense=dense, sparse=sparse, questions=questions, max_tokens=max_tokens,
                        drop_truncated=drop_truncated, force=force, writer=writer, judge=judge)
    start.click(bind(start_generation, store, settings, form, panel), form.inputs(),
                panel.started)
    picker.follow(model)
    tuned.focus(lambda: gr.update(choices=model_choices(store)), None, tuned)


def after_poll(store: Store, settings: Settings, refresh_table, table: gr.Dataframe,
               header: gr.Markdown, filters: list, poll: Poll, values: dict) -> dict:
    """The panel's extra work per poll: the header lists running jobs, so it follows a
    change of the job at once (its own timer refreshes it otherwise); the library table only
    changes when a job ends (its pair counts), and is redrawn for the filters the user has
    now (search included)."""
    out = {header: header_markdown(store, settings)} if poll.changed else {}
    if poll.ended:
        out[table] = refresh_table(*(values[f] for f in filters))
    return out
