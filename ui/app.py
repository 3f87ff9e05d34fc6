"""Assemble the TPO Studio Blocks: header, the app-wide model picker, and the tabs in the
order of the work; and how many requests of each event run at once (:func:`set_concurrency`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import gradio as gr

from tpo.config import Settings
from tpo.store import Store
from tpo.models.textlm import hub_unreachable
from ui import compare, curate, evaluate, library, team, train
from ui.header import header_markdown, whoami
from ui.identity import bind
from ui.models import ModelPicker


HEADER_EVERY_S = 10.0  # how often the page header refreshes its counts and running jobs

# On ZeroGPU a long fine-tune needs dedicated hardware; say so, do not fail.
ZERO_GPU_NOTE = (
    "⚠️ **This Space runs on ZeroGPU.** ZeroGPU lends a GPU only inside a single request for "
    "a short time; TPO Studio's generation, training, comparison and evaluation run as "
    "background jobs, which get no GPU here and run on the CPU (fine with the offline demo "
    "model, very slow with a real one). For real models, and for any fine-tune, duplicate "
    "this Space and choose a dedicated GPU under *Settings → Space hardware*.")


# Events that check what exists and then write (start a job unless one runs, resume the last
# run, add a video unless its hash is known, assign the unassigned pairs): two at once could
# both pass the check, so each stays one request at a time. Named by the elem_id of the
# component that triggers them; the model picker's events (which may install the offline
# model as a job) are kept serial where it is built and wired below.
SERIAL_TRIGGERS = ("generate-start", "export-start", "train-start", "train-resume-last",
                   "compare-ask", "compare-ask-all", "compare-upload", "eval-run",
                   "library-add", "library-upload", "team-assign", "team-unassign")


ANALYTICS_EVERY = 1000  # events between two rebuilds of Gradio's queue summary (see below)


def set_concurrency(demo: gr.Blocks, settings: Settings) -> None:
    """Let ``settings.concurrency`` requests of each event run at once (Gradio's default is
    one: 20 reviewers' accepts would wait in one line), except :data:`SERIAL_TRIGGERS`' events
    and those already limited. Handlers run on worker threads; the store gives each thread its
    own connection and every action is one ``BEGIN IMMEDIATE`` transaction with a version
    check, so concurrent reviews of one pair end in a :class:`tpo.store.ConflictError`."""
    demo.queue(default_concurrency_limit=settings.concurrency)
    # After every event Gradio rebuilds a pandas summary of up to 10,000 past events (its
    # monitoring page's numbers; GRADIO_ANALYTICS_CACHE_FREQUENCY, default every event). With
    # 20 reviewers that was ~10 of an accept's ~30 ms of server CPU, growing with the events
    # kept: rebuild it every ANALYTICS_EVERY events instead.
    # (Gradio's own spelling; tests/test_concurrent_review.py fails if it changes.)
    demo._queue.ANAYLTICS_CACHE_FREQUENCY = max(
        ANALYTICS_EVERY, getattr(demo._queue, "ANAYLTICS_CACHE_FREQUENCY", 1))
    ids = {block._id for block in demo.blocks.values()
           if getattr(block, "elem_id", None) in SERIAL_TRIGGERS}
    for fn in demo.fns.values():
        if any(target[0] in ids for target in fn.targets):
            fn.concurrency_limit = 1


@contextmanager
def serial_events(demo: gr.Blocks) -> Iterator[None]:
    """The events wired inside the block run one request at a time."""
    before = set(demo.fns)
    yield
    for key in set(demo.fns) - before:
        demo.fns[key].concurrency_limit = 1


def build_app(store: Store, settings: Settings,
              hub_check: Callable[[], str | None] = hub_unreachable) -> gr.Blocks:
    """The whole interface over one store; nothing here holds state between requests.
    ``hub_check`` is asked once, here: why the Hugging Face Hub cannot be reached, or None
    (tests pass their own)."""
    with gr.Blocks(title="TPO Studio") as demo:
        header = gr.Markdown(bind(header_markdown, store, settings), elem_id="tpo-header")
        # Its own timer, not every action: it counts the library and lists the running jobs.
        gr.Timer(HEADER_EVERY_S).tick(bind(header_markdown, store, settings), None, header,
                                      show_progress="hidden")
        if settings.multi_user:  # each browser its own name, known only from its request
            me = gr.Markdown(elem_id="tpo-whoami")

            def on_load(request: gr.Request, profile: gr.OAuthProfile | None = None) -> str:
                # (the annotations make Gradio pass this browser's request and sign-in)
                return whoami(settings, request, profile)

            demo.load(on_load, None, me)
        if settings.zero_gpu:
            gr.Markdown(ZERO_GPU_NOTE, elem_id="zero-gpu-note")
        with serial_events(demo):  # a pick may install the offline model (a job), once
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
        # The library table's events share one queue (TABLE_QUEUE), one at a time: the
        # lowest limit of the events sharing a queue is the queue's.
        demo.load(videos.show, videos.filters, videos.table, concurrency_id=library.TABLE_QUEUE,
                  concurrency_limit=1)
        with serial_events(demo):
            picker.wire(demo)
    set_concurrency(demo, settings)
    return demo
