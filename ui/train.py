"""The Train tab: start a DPO+SFT fine-tune on the curated pairs as a background job and
watch it live (step, ETA, loss and reward plots, log), cancel it, find the result. A run
saves a checkpoint every N steps (set in the form), so a failed or cancelled run can be
resumed from its output folder ("Resume from the last checkpoint", or "Resume the last run").

The form only collects settings; :mod:`tpo.training.train` (in the job's process) does the work, so
this module never loads torch.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr
import pandas as pd

from tpo import access, jobs
from tpo.config import Settings
from tpo.store import Store
# The run's settings without torch: the job's process builds the TrainConfig (a DPOConfig).
from tpo.training.config import PRESETS, TRAINER_DEFAULTS, TPOArguments, check_options
from tpo.training.train_job import job_params
from ui.html import escape_html, escape_md
from ui.identity import bind, current_user
from ui.jobs import JobPanel, Poll, latest_job
from ui.models import ModelPicker, base_model, resolve_model

# Plots of the live view: (title, metric names drawn in it); one line each.
PLOTS = (("loss (DPO + α·SFT)", ("loss",)),
         ("reward accuracy", ("rewards/accuracies",)),
         ("reward margin", ("rewards/margins",)),
         ("log-prob of chosen", ("logps/chosen",)),
         ("log-prob of rejected", ("logps/rejected",)),
         ("learning rate", ("learning_rate",)))
BUSY_POLL_S = 2.0  # poll interval while a training run is active
DATA_CHOICES = ["accepted pairs now (exported for this run)", "an export folder"]


def data_summary(store: Store) -> str:
    counts = store.pair_counts()
    kinds = ", ".join(f"{counts[k]['accepted']} {k}" for k in sorted(counts) if k != "all")
    n = counts["all"]["accepted"]
    return f"**{n} accepted pairs**" + (f" ({kinds})" if n else ": accept some in Curate first")


def plot_frame(rows: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """One plot's long-format frame (step, value, metric) from metric rows."""
    if rows.empty:
        return pd.DataFrame({"step": [], "value": [], "metric": []})
    part = rows[rows["name"].isin(names)][["step", "value", "name"]]
    return part.rename(columns={"name": "metric"}).dropna()


def metric_frames(store: Store, job_id: int | None) -> list[pd.DataFrame]:
    """One frame per plot, from one read of the run's metrics."""
    rows = pd.DataFrame(jobs.metrics(store, job_id)) if job_id else pd.DataFrame()
    return [plot_frame(rows, names) for _title, names in PLOTS]


def initial_plot(store: Store, k: int) -> pd.DataFrame:
    """The `k`-th plot's data for the latest run, computed when a page loads (reading only
    that plot's metrics: each plot loads on its own)."""
    row = latest_job(store, "train")
    names = PLOTS[k][1]
    rows = pd.DataFrame([m for name in names for m in jobs.metrics(store, row["id"], name)]
                        if row else [])
    return plot_frame(rows, names)


def latest_summary(store: Store) -> str:
    """:func:`summary_markdown` of the newest training run (when a page loads)."""
    return summary_markdown(latest_job(store, "train"))


def summary_markdown(row: dict | None) -> str:
    if row is None or row["status"] != "succeeded":
        return ""
    out = row.get("output") or {}
    lines = [f"**Finished**: <code>{escape_md(out.get('output_dir', '?'))}</code> · "
             f"{escape_md(out.get('global_step', '?'))} steps"
             f" · {escape_md(out.get('world_size', 1))} process(es)"
             + (f" · resumed from <code>{escape_md(Path(out['resumed_from']).name)}</code>"
                if out.get("resumed_from") else "")]
    if out.get("model_id"):
        lines.append(f"Registered as model #{int(out['model_id'])}: selectable wherever a model "
                     "is asked for.")
    if out.get("command"):
        # A fence longer than any run of backticks in the command, so it cannot be closed early.
        longest = max((len(run) for run in re.findall("`+", out["command"])), default=0)
        fence = "`" * max(3, longest + 1)
        lines.append(f"Same run from a terminal:\n{fence}\n{out['command']}\n{fence}")
    return "\n\n".join(lines)


def train_params(store: Store, settings: Settings, *, model_text: str, choice: str,
                 folder: str | None, preset_name: str, beta: float, alpha: float, rate: float,
                 n_epochs: float, steps: int, use_lora: bool, rank: int, frames: int | None,
                 out: str | None, save_every: int | None, resume: bool,
                 user: str | None = None) -> dict:
    """The job parameters the Start button submits (``gr.Error`` for a form that cannot run).

    ``save_every``: a checkpoint every this many steps; ``resume``: continue from the last
    checkpoint in the output folder (which must then be named). ``user`` (default: the
    settings' user): in a shared app, the folders typed must be ones they may use
    (:func:`tpo.access.check_folder`).
    """
    user = user or settings.user
    from_store = choice == DATA_CHOICES[0]
    if from_store and not store.pair_counts()["all"]["accepted"]:
        raise gr.Error("No accepted pairs: accept some in Curate first.")
    if not from_store and not (folder and folder.strip()):
        raise gr.Error("Name an export folder that exists on the server.")
    if resume and not (out and out.strip()):
        raise gr.Error("To resume, name the output folder of the run to continue "
                       "(or press Resume the last run).")
    if save_every is None or int(save_every) < 1:
        raise gr.Error("Save a checkpoint every N steps: N must be at least 1.")
    run_dir = Path(out.strip()) if out and out.strip() else (
        settings.data_dir / "runs" / time.strftime("run-%Y%m%d-%H%M%S"))
    try:
        run_dir = access.check_folder(settings, user, run_dir, settings.data_dir / "runs",
                                      "the output folder")
        if not from_store:
            folder = str(access.check_folder(settings, user, folder, settings.data_dir / "exports",
                                             "the export folder to train on"))
    except access.AccessError as err:
        raise gr.Error(escape_html(err))
    if not from_store and not Path(folder).is_dir():  # asked only once it may be read
        raise gr.Error("Name an export folder that exists on the server.")
    try:
        options = check_options(dict(
            model=resolve_model(model_text), output_dir=str(run_dir.expanduser().resolve()),
            data=None if from_store else str(Path(folder).expanduser().resolve()),
            preset=preset_name, beta=beta, alpha=alpha, learning_rate=rate,
            num_train_epochs=float(n_epochs), max_steps=int(steps), lora=bool(use_lora),
            lora_r=int(rank), max_frames=int(frames) if frames else None,
            save_steps=int(save_every), resume=bool(resume)))
    except (TypeError, ValueError) as err:
        raise gr.Error(escape_html(err))
    return job_params(options, export_from_store=from_store, frames=int(frames) if frames else 64)


def resume_params(row: dict | None) -> dict:
    """The parameters that continue a failed or cancelled run (``row``: its job) from the
    last checkpoint in its output folder, with everything else as it was."""
    if row is None:
        raise gr.Error("No training run yet: start one first.")
    if row["status"] in jobs.ACTIVE_STATUSES:
        raise gr.Error(f"Training run #{int(row['id'])} is still {escape_html(row['status'])}.")
    if row["status"] == "succeeded":
        raise gr.Error(f"Training run #{int(row['id'])} finished: there is nothing to resume. "
                       "To train further, name its output folder, raise Max steps and tick "
                       "Resume from the last checkpoint.")
    params = dict(row["params"])
    params["config"] = {**params["config"], "resume": True, "overwrite": False}
    return params


@dataclass(frozen=True)
class TrainForm:
    """The form's input components; a handler gets their values as one dict keyed by them."""

    model: gr.Textbox
    data_choice: gr.Radio
    data_dir: gr.Textbox
    preset: gr.Dropdown
    beta: gr.Number
    alpha: gr.Number
    lr: gr.Number
    epochs: gr.Number
    max_steps: gr.Number
    lora: gr.Checkbox
    lora_r: gr.Number
    max_frames: gr.Number
    output_dir: gr.Textbox
    save_steps: gr.Number
    resume: gr.Checkbox

    def inputs(self) -> set:
        return {getattr(self, f.name) for f in fields(self)}

    def params(self, store: Store, settings: Settings, values: dict, user: str) -> dict:
        """The job parameters for the values typed into the form (:func:`train_params`)."""
        v = {f.name: values[getattr(self, f.name)] for f in fields(self)}
        return train_params(
            store, settings, model_text=v["model"], choice=v["data_choice"],
            folder=v["data_dir"], preset_name=v["preset"], beta=v["beta"], alpha=v["alpha"],
            rate=v["lr"], n_epochs=v["epochs"], steps=v["max_steps"], use_lora=v["lora"],
            rank=v["lora_r"], frames=v["max_frames"], out=v["output_dir"],
            save_every=v["save_steps"], resume=v["resume"], user=user)


def build(store: Store, settings: Settings, picker: ModelPicker) -> TrainForm:
    """Lay out the tab inside the current Blocks and wire its events; the base model follows
    the app-wide ``picker`` (a picked run: the model it was trained on). Returns the form."""
    # The form starts at TPO's defaults (a dataclass's class attributes are its fields'
    # defaults) and TPO's defaults of the trainer's settings.
    defaults, trainer = TPOArguments, TRAINER_DEFAULTS
    with gr.Row():
        model = gr.Textbox(base_model(store, picker.model.value), elem_id="train-model",
                           label="Base model: Hugging Face id or local folder (follows the "
                                 "model picked above)")
    with gr.Row():
        data_choice = gr.Radio(DATA_CHOICES, value=DATA_CHOICES[0], label="Data", scale=2)
        data_dir = gr.Textbox(label="Export folder (when training from a folder)", scale=2,
                              elem_id="train-data")
        counts = gr.Markdown(bind(data_summary, store), elem_id="train-counts")
    with gr.Row():
        preset = gr.Dropdown(list(PRESETS), value=defaults.preset,
                             label="Preset (the paper's settings; fills the three fields)")
        start_values = PRESETS[defaults.preset]
        beta = gr.Number(start_values["beta"], label="β (DPO)", elem_id="train-beta")
        alpha = gr.Number(start_values["alpha"], minimum=0, label="α (SFT weight; 0: plain DPO)",
                          elem_id="train-alpha")
        lr = gr.Number(start_values["learning_rate"], label="Learning rate", elem_id="train-lr")
    with gr.Row():
        epochs = gr.Number(trainer["num_train_epochs"], label="Epochs")
        max_steps = gr.Number(-1, precision=0, label="Max steps (-1: epochs decide)")
        lora = gr.Checkbox(defaults.lora, label="LoRA (off: full fine-tune)")
        lora_r = gr.Number(defaults.lora_r, precision=0, label="LoRA rank")
        # The paper's records: frames uniform over the whole video (at most 1 per second),
        # the same for chosen and rejected; an export folder's rows are capped to this many.
        max_frames = gr.Number(64, precision=0, minimum=1,
                               label="Frames per sample (whole video, at most 1 per second)")
        output_dir = gr.Textbox(label="Output folder (empty: a new one under data/runs)")
    with gr.Row():
        save_steps = gr.Number(trainer["save_steps"], precision=0, minimum=1,
                               label="Save a checkpoint every N steps", elem_id="train-save-steps")
        resume = gr.Checkbox(False, label="Resume from the last checkpoint in the output folder",
                             elem_id="train-resume")
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        resume_last = gr.Button("Resume the last run (failed or cancelled)",
                                elem_id="train-resume-last")
    panel = JobPanel(store, "train", what="training", empty="No training run yet.",
                     busy_s=BUSY_POLL_S, elem_prefix="train")
    panel.status_html()
    panel.cancel_button("Cancel training")
    plots = []
    for row_plots in (PLOTS[:3], PLOTS[3:]):
        with gr.Row():
            for title, _names in row_plots:
                plots.append(gr.LinePlot(bind(initial_plot, store, len(plots)), x="step",
                                         y="value", title=title, height=220, min_width=220))
    # Filled when the page loads, not at the first poll (up to IDLE_POLL_S later when idle).
    summary = gr.Markdown(bind(latest_summary, store), elem_id="train-summary")
    with gr.Accordion("Log", open=False):
        panel.log_code(lines=14, tail=60)
    seen = gr.State(None)  # the plots' rows and the pair counts at the last poll (after_poll)
    panel.wire(bind(after_poll, store, plots, summary, counts, seen), inputs=[seen],
               outputs=[*plots, summary, counts, seen])

    form = TrainForm(model=model, data_choice=data_choice, data_dir=data_dir, preset=preset,
                     beta=beta, alpha=alpha, lr=lr, epochs=epochs, max_steps=max_steps,
                     lora=lora, lora_r=lora_r, max_frames=max_frames, output_dir=output_dir,
                     save_steps=save_steps, resume=resume)
    start.click(bind(start_training, store, settings, form, panel), form.inputs(),
                panel.started)
    resume_last.click(bind(resume_last_run, store, settings, panel), None, panel.started)
    picker.follow(model, bind(base_model, store))
    preset.change(bind(preset_fields, form), {preset}, [beta, alpha, lr])
    return form


def start_training(store: Store, settings: Settings, form: TrainForm, panel: JobPanel,
                   values: dict, request: gr.Request,
                   profile: gr.OAuthProfile | None = None) -> dict:
    """Start training: the form as job parameters (checked for the signed-in user), queued
    as a background job; the panel shows it."""
    params = form.params(store, settings, values,
                         user=current_user(settings, None, request, profile))
    return panel.submitted(jobs.submit(store, "train", params, log_dir=settings.log_dir))


def resume_last_run(store: Store, settings: Settings, panel: JobPanel) -> dict:
    """Resume the last run (failed or cancelled) from its last checkpoint, as a new job."""
    params = resume_params(latest_job(store, "train"))
    return panel.submitted(jobs.submit(store, "train", params, log_dir=settings.log_dir))


def preset_fields(form: TrainForm, values: dict) -> dict:
    """A preset picked: the three fields it fills (β, α, learning rate)."""
    chosen = PRESETS[values[form.preset]]
    return {form.beta: chosen["beta"], form.alpha: chosen["alpha"],
            form.lr: chosen["learning_rate"]}


def after_poll(store: Store, plots: list, summary: gr.Markdown, counts: gr.Markdown,
               seen: gr.State, poll: Poll, values: dict) -> dict:
    """The panel's extra work per poll: redraw the plots, the summary and the pair counts
    when the run moved on (status, progress, new metrics) or the accepted pairs changed; an
    unchanged page is not re-sent."""
    frames = metric_frames(store, poll.row["id"] if poll.row else None)
    counts_text = data_summary(store)
    now_seen = [sum(len(f) for f in frames), counts_text]
    if not poll.changed and now_seen == values[seen]:
        return {}
    return {**dict(zip(plots, frames)), summary: summary_markdown(poll.row), counts: counts_text,
            seen: now_seen}
