"""The Evaluate tab: run a multiple-choice evaluation (a local
Video-MME / MLVU / LongVideoBench file, or the needle suite) as a background job, under our
protocol or lmms-eval's, and show the stored results: accuracy per model and duration class
(with the protocol that produced each number, and MLVU's M-avg), per task, and needle heatmaps.

The work happens in an ``eval`` job (:mod:`tpo.evaluation.evaluate`); this module only collects the
settings, polls the job once a second and reads results from the store. :func:`build` lays the
section out and wires it; the handlers are the module's functions, each given the values of
its inputs as one dict keyed by component and returning updates keyed by component.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import gradio as gr
import pandas as pd

from tpo.evaluation import eval_results as er
from tpo.evaluation import evaluate as ev
from tpo import jobs
from tpo.config import Settings
from tpo.configs import widget_args
from tpo.models.modelref import resolve
from tpo.store import Store, StoreError
from ui.identity import bind
from ui.jobs import JobPanel, Poll, latest_job
from ui.library import selected_row
from ui.models import ModelPicker
from ui.tables import noted_table, table_or_note

BUSY_POLL_S = 1.0  # poll interval while an evaluation runs
NO_EVALS = "No evaluations stored yet: run one above."
NO_TASKS = "No accuracy per task yet: it shows once an evaluation run has finished."
SUITE_HELP = {
    "needle": "Synthetic haystack videos with one needle event at increasing depth (no files "
              "needed; rendered on first use).",
    "videomme": "Video-MME: the folder with videomme/test-*.parquet (or its JSON) and data/*.mp4.",
    "mlvu": "MLVU dev: the folder with json/ and video/, or lmms-eval's MLVU_dev annotations "
            "(.parquet/.json) with the videos by their video_name.",
    "longvideobench": "LongVideoBench: the folder with lvb_val.json (or validation-*.parquet) "
                      "and videos/.",
    "synthetic": "Synthetic videos: a folder of videos rendered by TPO Studio, each with its "
                 ".json ground truth (e.g. an experiment's heldout/ folder).",
}


def results_frame(store: Store) -> pd.DataFrame:
    table = er.results_table(er.list_evals(store))
    return table if not table.empty else pd.DataFrame(
        columns=["eval", "model", "suite", "protocol", "frames", "questions", "accuracy %",
                 "unparsed"])


def job_evals(store: Store, row: dict | None) -> list[dict]:
    """The stored evaluations of a job (oldest first), or [] while it runs."""
    if row is None or row["status"] != "succeeded":
        return []
    return sorted(er.list_evals(store, job_id=row["id"]), key=lambda e: e["id"])


def heatmaps(evals: list[dict]) -> list[tuple[str, str]]:
    return [(e["heatmap_path"], f"#{e['id']} {e['model']}: {100 * (e['accuracy'] or 0):.1f}%")
            for e in evals if e.get("heatmap_path")]


def diff_markdown(d: dict) -> str:
    """The headline of two evaluations compared: change overall, flips, McNemar's p."""
    if not d["n"]:
        return "These evaluations share no question."
    first, second, (overall,) = d["first"], d["second"], d["overall"]
    return (f"**#{second['id']} {second['model']}** vs **#{first['id']} {first['model']}**: "
            f"{overall['second %']}% vs {overall['first %']}% on {d['n']} shared questions "
            f"(**{overall['change']:+.1f} points**); only the second right on "
            f"{len(d['only_second'])}, only the first on {len(d['only_first'])} · McNemar "
            f"exact p = {d['p_value']:.3g}"
            + (f" · {d['unmatched']} questions asked in one only" if d["unmatched"] else "")
            + (f" · protocols differ ({first['protocol']}, {second['protocol']})"
               if first["protocol"] != second["protocol"] else ""))


def diff_frame(d: dict) -> pd.DataFrame:
    """Overall, per duration class and per task rows, each with both accuracies and the change."""
    rows = [{"by": "overall", **r} for r in d["overall"]]
    rows += [{"by": "duration", **r} for r in d["by_duration"]]
    rows += [{"by": "task", **r} for r in d["by_task"]]
    return pd.DataFrame(rows)


def parse_numbers(text: str, what: str) -> tuple[float, ...] | None:
    try:
        return ev.float_list((text or "").replace(";", ","))
    except ValueError:
        raise gr.Error(f"{what}: numbers separated by commas, e.g. 30, 60, 120")


def last_run_tasks(store: Store) -> pd.DataFrame:
    """Accuracy per task of the newest evaluation job (empty while it runs)."""
    return er.task_table(job_evals(store, latest_job(store, "eval")))


def last_run_heatmaps(store: Store) -> list[tuple[str, str]]:
    """The needle heatmaps of the newest evaluation job (none while it runs)."""
    return heatmaps(job_evals(store, latest_job(store, "eval")))


@dataclass(frozen=True)
class EvalForm:
    """The settings of an evaluation run; a handler gets their values as one dict keyed by them."""

    models: gr.Textbox  # one model per line
    suite: gr.Dropdown
    path: gr.Textbox
    protocol: gr.Dropdown
    frames: gr.Number
    limit: gr.Number  # 0: every question
    lengths: gr.Textbox  # needle haystack lengths (s), comma-separated
    depths: gr.Textbox  # needle depths (0..1), comma-separated

    def inputs(self) -> set:
        return {getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EvalView:
    """What shows stored evaluations: the results table, one evaluation's answers, and two
    evaluations compared question by question."""

    results: gr.Dataframe
    answers_note: gr.Markdown
    answers: gr.Dataframe
    first: gr.Number
    second: gr.Number
    diff_summary: gr.Markdown
    diff_table: gr.Dataframe


def start_evaluation(store: Store, settings: Settings, form: EvalForm, panel: JobPanel,
                     values: dict) -> dict:
    """Run evaluation: the form checked (gr.Error naming what is wrong) and queued as an
    ``eval`` job; the panel shows it."""
    v = {f.name: values[getattr(form, f.name)] for f in fields(form)}
    lines = [line.strip() for line in (v["models"] or "").splitlines() if line.strip()]
    if not lines:
        raise gr.Error("Name at least one model.")
    suite = v["suite"]
    spec = "needle" if suite == "needle" else f"{suite}:{(v['path'] or '').strip()}"
    try:
        config = ev.EvalConfig(
            suite=spec, frames=(ev.EvalConfig.model_fields["frames"].default
                                if v["frames"] is None else int(v["frames"])),
            limit=int(v["limit"]) if v["limit"] else None,
            protocol=v["protocol"] or ev.EvalConfig.model_fields["protocol"].default,
            needle_lengths=parse_numbers(v["lengths"], "Haystack lengths"),
            needle_depths=parse_numbers(v["depths"], "Depths"))
        if config.suite_name == "needle":
            config.needle_config()  # its checks now, not in the job
        refs = [resolve(store, line) for line in lines]
    except (ValueError, StoreError) as err:
        raise gr.Error(str(err))
    params = ev.job_params(refs, config, cache_dir=settings.data_dir / "needle",
                           out_dir=settings.data_dir / "evals")
    return panel.submitted(jobs.submit(store, "eval", params, log_dir=settings.log_dir))


def compare_evaluations(store: Store, view: EvalView, values: dict) -> dict:
    """Compare question by question: the headline and the table of changes (shown when it
    has rows); gr.Error for a missing or unknown number or evaluations of other suites."""
    first_id, second_id = values[view.first], values[view.second]
    if first_id is None or second_id is None:
        raise gr.Error("Give two evaluation numbers (or select two rows of the table).")
    try:
        d = er.diff(store, int(first_id), int(second_id))
    except (StoreError, ValueError) as err:
        raise gr.Error(str(err))
    frame = diff_frame(d)
    return {view.diff_summary: diff_markdown(d),
            view.diff_table: gr.update(value=frame, visible=not frame.empty)}


def select_evaluation(store: Store, view: EvalView, values: dict, evt: gr.SelectData) -> dict:
    """A row of the results table selected: that evaluation's headline and every answer;
    its number goes to "with evaluation #", the one there before to "Compare evaluation #"
    (select the base model's evaluation, then the fine-tuned one's)."""
    eval_id = int(selected_row(evt, values[view.results])["eval"])
    try:
        row = er.get_eval(store, eval_id)
    except StoreError as err:
        raise gr.Error(str(err))
    items = er.eval_items(store, eval_id)
    m_avg = er.m_avg_of(row)
    note = (f"**Eval #{eval_id}**: {row['model']} on {row['suite']}, "
            f"{er.frames_label(row['frames'])}: {row['n_correct']} of {row['n_items']} "
            f"correct, {row['n_unparsed']} answers with no readable letter"
            + (f", M-avg {100 * m_avg:.1f}%" if m_avg is not None else "")
            + f" (protocol {er.protocol_of(row)})")
    table = er.answers_table(items)
    return {view.answers_note: note,
            view.answers: gr.update(value=table, visible=not table.empty),
            view.first: values[view.second], view.second: eval_id}


def build(store: Store, settings: Settings, picker: ModelPicker) -> None:
    """Lay out the section inside the current Blocks and wire its events; the list of
    models starts as the app-wide ``picker``'s one model (and follows it)."""
    with gr.Accordion("Evaluate: multiple-choice accuracy on a benchmark or the needle suite",
                      open=True, elem_id="eval-panel"):
        models = gr.Textbox(picker.model.value, lines=2, elem_id="eval-models",
                            label="Models, one per line: hub id, local folder or run #id "
                                  "(starts as the model picked above; add lines to compare)")
        with gr.Row():
            suite = gr.Dropdown(list(ev.SUITES), value="needle", label="Suite", scale=1,
                                elem_id="eval-suite")
            path = gr.Textbox(label="Benchmark annotation file or folder (on the server)",
                              scale=3, elem_id="eval-path")
            protocol = gr.Dropdown(**widget_args(ev.EvalConfig, "protocol"), label="Protocol",
                                   scale=1, elem_id="eval-protocol")
        suite_help = gr.Markdown(SUITE_HELP["needle"])
        with gr.Row():
            frames = gr.Number(**widget_args(ev.EvalConfig, "frames"), precision=0,
                               label="Frames per question (needle: 0 = every frame)")
            limit = gr.Number(0, precision=0, minimum=0, label="Questions (0: all)")
            lengths = gr.Textbox("30, 60, 120, 240", label="Needle: haystack lengths (s)",
                                 elem_id="eval-lengths")
            depths = gr.Textbox("0, 0.25, 0.5, 0.75, 1", label="Needle: depths (0..1)",
                                elem_id="eval-depths")
        panel = JobPanel(store, "eval", what="evaluation", empty="No evaluation yet.",
                         busy_s=BUSY_POLL_S, elem_prefix="eval")
        with gr.Row():
            run = gr.Button("Run evaluation", variant="primary", elem_id="eval-run")
            panel.cancel_button("Cancel", scale=0)
        panel.status_html()
        results = noted_table(NO_EVALS, bind(results_frame, store),
                              label="Stored evaluations (newest first): the protocol each ran "
                                    "under, accuracy overall (MLVU: also M-avg) and per "
                                    "duration class", elem_id="eval-results")
        # Task table and heatmaps of the last run: filled when the page loads, then by polls.
        tasks = noted_table(NO_TASKS, bind(last_run_tasks, store),
                            label="Accuracy % per task (last evaluation run)",
                            elem_id="eval-tasks")
        answers_note = gr.Markdown("Select an evaluation in the table above to see its answers.",
                                   elem_id="eval-answers-note")
        # Hidden until an evaluation is selected: the note above says what to do.
        answers = gr.Dataframe(interactive=False, wrap=True, max_height=400, visible=False,
                               elem_id="eval-answers")
        with gr.Row():
            first = gr.Number(None, precision=0, label="Compare evaluation #", scale=1,
                              elem_id="eval-first")
            second = gr.Number(None, precision=0, label="with evaluation #", scale=1,
                               elem_id="eval-second")
            compare_evals = gr.Button("Compare question by question", scale=1,
                                      elem_id="eval-diff")
        gr.Markdown("Selecting rows in the table fills these in turn (e.g. the base model's "
                    "evaluation, then the fine-tuned one's).")
        diff_summary = gr.Markdown(elem_id="eval-diff-summary")
        diff_table = gr.Dataframe(interactive=False, visible=False, elem_id="eval-diff-table")
        gallery = gr.Gallery(bind(last_run_heatmaps, store),
                             label="Needle in a haystack: accuracy by haystack length (x) and "
                                   "needle depth (y)", columns=2, height=540, object_fit="contain",
                             elem_id="eval-heatmaps")
    newest = gr.State(None)  # the newest stored evaluation's id at the last poll
    panel.wire(bind(after_poll, store, results, tasks, gallery, newest), inputs=[newest],
               outputs=[*results, *tasks, gallery, newest])

    form = EvalForm(models=models, suite=suite, path=path, protocol=protocol, frames=frames,
                    limit=limit, lengths=lengths, depths=depths)
    view = EvalView(results=results[0], answers_note=answers_note, answers=answers, first=first,
                    second=second, diff_summary=diff_summary, diff_table=diff_table)
    results[0].select(bind(select_evaluation, store, view),
                      {results[0], second}, [answers_note, answers, first, second])
    compare_evals.click(bind(compare_evaluations, store, view), {first, second},
                        [diff_summary, diff_table])
    suite.change(lambda name: SUITE_HELP[name], suite, suite_help)  # a lookup, no work
    run.click(bind(start_evaluation, store, settings, form, panel), form.inputs(),
              panel.started)
    picker.follow(models)


def after_poll(store: Store, results: tuple, tasks: tuple, gallery: gr.Gallery,
               newest: gr.State, poll: Poll, values: dict) -> dict:
    """The panel's extra work per poll: the results when an evaluation is stored (by this
    page's job, another page's or `tpo eval`); the task table and heatmaps when this kind of
    job ends. ``results`` and ``tasks``: (table, its note when empty)."""
    newest_id = er.newest_eval_id(store)
    out = {}
    if values[newest] != newest_id:
        out.update(zip(results, table_or_note(results_frame(store), NO_EVALS)))
        out[newest] = newest_id
    if poll.ended or (poll.first and poll.finished):
        evals = job_evals(store, poll.row)
        out.update(zip(tasks, table_or_note(er.task_table(evals), NO_TASKS)))
        out[gallery] = heatmaps(evals)
    return out
