"""The app-wide model choice: one picker under the header that every tab follows.

The pick is a model reference as :mod:`tpo.models.modelref` reads it: a Hugging Face id, a local
folder, or a registered fine-tuned run (``#3 name``). Generate's model, Train's base,
Compare's first model and Evaluate's list follow it (a tab's box may still be edited for
one run). The pick is kept in the browser (``gr.BrowserState``: its localStorage), one entry
per user, so a reload or a later visit starts from the last pick. When the Hub cannot be
reached at start, the picker says so once and a first visit starts from the offline demo
model, which installs without a network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradio as gr

from tpo import jobs
from tpo.config import Settings
from tpo.models.demo_model import DEFAULT_FOLDER, is_demo_model
from tpo.models.modelref import ModelRef, find_registered, registered, resolve
from tpo.store import Store, StoreError
from ui.identity import bind, current_user

NO_ADAPTER = "(none: the base model above)"
DEMO_INSTALL_TIMEOUT_S = 300
STORAGE_KEY = "tpo-model-pick"
# The pick is not private; a fixed key keeps it readable after a restart (Gradio's default,
# a new random key per start, would forget every browser's pick whenever the app restarts).
STORAGE_SECRET = "tpo-studio-model-pick"
DEMO_INFO = ("Using the offline demo model: a small SmolVLM trained on synthetic videos like the "
             "demo library's. On short clips it names colours and counts well above chance, "
             "digits and order hardly; on long videos it does worse - the gap TPO is meant "
             "to close.")


def model_choices(store: Store) -> list[str]:
    """Registered fine-tuned models as "#id name", for the dropdowns that pick one."""
    return [NO_ADAPTER] + [f"#{m['id']} {m['name']}" for m in store.list_models()]


def picked_model(store: Store, choice: str | None) -> dict | None:
    """The models row a "#id name" choice names, or None for the base model (or a run
    deleted since the list was shown)."""
    if not choice or choice == NO_ADAPTER:
        return None
    try:
        return find_registered(store, choice)
    except StoreError:
        return None


def resolve_model(text: str) -> str:
    """A local folder as an absolute path (the job runs elsewhere), else the hub id as typed."""
    text = text.strip()
    if not text:
        raise gr.Error("Name a model: a Hugging Face id or a local folder.")
    path = Path(text).expanduser()
    return str(path.resolve()) if path.is_dir() else text


def resolve_pick(store: Store, text: str | None) -> ModelRef:
    """What a model box names (a registered run included), or ``gr.Error`` saying why not."""
    try:
        return resolve(store, text or "")
    except (StoreError, ValueError) as err:
        raise gr.Error(str(err))


def base_model(store: Store, pick: str) -> str:
    """Train's base for a pick: the model a registered run loads on (a LoRA run's base, a
    full fine-tune's own folder); anything else as picked."""
    row = picked_model(store, pick) if pick.strip().startswith("#") else None
    return registered(row).model if row else pick


def demo_folder(settings: Settings) -> Path:
    return (settings.models_dir / DEFAULT_FOLDER).resolve()


def install_offline_model(store: Store, settings: Settings, progress: gr.Progress) -> str:
    """The offline demo model's folder, installed (as a job: it needs torch) on first use."""
    path = demo_folder(settings)
    if not is_demo_model(path):
        progress(0.1, desc="installing the offline demo model")
        # A page's load and a click (or two pages) may ask at once: one job writes the folder.
        running = [j for j in jobs.list_jobs(store, kind="demo-model", status=jobs.ACTIVE_STATUSES)
                   if j["params"].get("out") == str(path)]
        job_id = running[0]["id"] if running else jobs.submit(
            store, "demo-model", {"out": str(path)}, log_dir=settings.log_dir)
        row = jobs.wait(store, job_id, timeout_s=DEMO_INSTALL_TIMEOUT_S)
        if row["status"] != "succeeded":
            raise gr.Error(f"Could not install the demo model: {row['error'] or row['status']}")
    return str(path)


def use_offline_model(store: Store, settings: Settings,
                      progress: gr.Progress = gr.Progress()) -> str:
    """:func:`install_offline_model`, saying what the model is."""
    path = install_offline_model(store, settings, progress)
    gr.Info(DEMO_INFO)
    return path


def hub_note(hub_problem: str | None) -> str:
    """The picker's one note when the Hub could not be asked at start ("" when it could)."""
    if not hub_problem:
        return ""
    return ("The Hugging Face Hub cannot be reached: using the offline demo model "
            f"({hub_problem}).")


def default_pick(settings: Settings, hub_problem: str | None) -> str:
    """A first visit's pick: the configured hub model, or the offline one without a Hub."""
    return str(demo_folder(settings)) if hub_problem else settings.model


def initial_pick(settings: Settings, hub_problem: str | None) -> str:
    """The picker's value before a page's load restores it: :func:`default_pick`, or nothing
    while the offline model it names is not installed yet (the load installs it; a box
    naming a missing folder would be taken for a hub id if used first)."""
    pick = default_pick(settings, hub_problem)
    return "" if hub_problem and not is_demo_model(pick) else pick


def recall(stored: dict | None, user: str) -> str | None:
    """This user's pick kept in the browser, if any (``stored``: user -> pick)."""
    pick = (stored or {}).get(user) if isinstance(stored, dict) else None
    return pick if isinstance(pick, str) and pick.strip() else None


def remember(stored: dict | None, user: str, pick: str) -> dict:
    """The browser's entry with this user's pick set (other users' picks kept)."""
    return {**(stored if isinstance(stored, dict) else {}), user: pick}


def restored_pick(store: Store, settings: Settings, hub_problem: str | None,
                  stored: dict | None, user: str, progress: gr.Progress) -> str:
    """The pick a page starts with: the user's last one (unless it names a run deleted
    since), else :func:`default_pick`; the offline demo model is installed when it is the
    pick and missing (a new data folder, a first visit without a Hub)."""
    pick = recall(stored, user)
    if pick and pick.strip().startswith("#") and picked_model(store, pick) is None:
        pick = None
    pick = pick or default_pick(settings, hub_problem)
    if Path(pick) == demo_folder(settings):
        return install_offline_model(store, settings, progress)
    return pick


def picker_user(settings: Settings, request: gr.Request | None,
                profile: gr.OAuthProfile | None = None) -> str:
    """Whose pick the browser keeps ("" before a Space's sign-in)."""
    try:
        return current_user(settings, None, request, profile)
    except gr.Error:
        return ""


def follow_values(pick: str, stored: dict | None, user: str,
                  followers: list[tuple[gr.components.Component, Callable[[str], str]]],
                  stored_box: gr.BrowserState) -> dict:
    """The tabs' model boxes for a new pick, and the browser's entry with it kept."""
    out = {box: value_of(pick) for box, value_of in followers}
    out[stored_box] = remember(stored, user, pick)
    return out


@dataclass
class ModelPicker:
    """The picker's components; tabs register their model boxes with :meth:`follow`, and
    :meth:`wire` (after every tab is built) connects the page load and the pick to them."""

    store: Store
    settings: Settings
    hub_problem: str | None
    model: gr.Textbox
    runs: gr.Dropdown
    use_demo: gr.Button
    note: gr.Markdown
    stored: gr.BrowserState
    followers: list = field(default_factory=list)  # (component, pick -> its value)

    @classmethod
    def build(cls, store: Store, settings: Settings, hub_problem: str | None) -> ModelPicker:
        """Lay out the picker inside the current Blocks. ``hub_problem``: why the Hub could
        not be asked at start (:func:`tpo.models.textlm.hub_unreachable`), or None."""
        with gr.Row(elem_id="model-picker"):
            model = gr.Textbox(initial_pick(settings, hub_problem), scale=4,
                               placeholder="installing the offline demo model…",
                               label="Model for every tab: Hugging Face id, local folder or "
                                     "fine-tuned run #id", elem_id="model-pick")
            runs = gr.Dropdown(model_choices(store)[1:], value=None, scale=2,
                               label="…or a fine-tuned run", elem_id="model-runs")
            use_demo = gr.Button("Use the offline demo model", scale=1, elem_id="model-use-demo")
        note = gr.Markdown(hub_note(hub_problem), visible=bool(hub_problem), elem_id="model-note")
        stored = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=STORAGE_SECRET)
        picker = cls(store, settings, hub_problem, model, runs, use_demo, note, stored)

        use_demo.click(bind(use_offline_model, store, settings), None, model)
        runs.focus(bind(refreshed_runs, store), None, runs)
        runs.change(lambda choice: choice or gr.update(), runs, model)
        return picker

    def follow(self, box: gr.components.Component,
               value_of: Callable[[str], str] = lambda pick: pick) -> None:
        """Let ``box`` take ``value_of(pick)`` whenever the pick changes."""
        self.followers.append((box, value_of))

    def wire(self, demo: gr.Blocks) -> None:
        """Restore the pick when a page loads; pass every pick on to the tabs and keep it."""
        demo.load(bind(on_page_load, self), {self.stored}, [self.model, self.stored])
        self.model.change(bind(on_pick, self), {self.model, self.stored},
                          [box for box, _ in self.followers] + [self.stored],
                          show_progress="hidden")


# Handlers (bound to the picker in ModelPicker.build / wire; inputs as one dict keyed by
# component)


def refreshed_runs(store: Store) -> dict:
    """The fine-tuned runs, read again when the list opens (a run may have finished)."""
    return gr.update(choices=model_choices(store)[1:])


def on_page_load(picker: ModelPicker, values: dict, request: gr.Request,
                 profile: gr.OAuthProfile | None = None, progress=gr.Progress()) -> dict:
    """A page opens: this user's last pick (or the default), kept in the browser at once,
    so a first visit's default stays its pick even if the Hub comes back."""
    stored = values[picker.stored]
    user = picker_user(picker.settings, request, profile)
    pick = restored_pick(picker.store, picker.settings, picker.hub_problem, stored, user,
                         progress)
    return {picker.model: pick, picker.stored: remember(stored, user, pick)}


def on_pick(picker: ModelPicker, values: dict, request: gr.Request,
            profile: gr.OAuthProfile | None = None) -> dict:
    """A new pick: every tab's model box follows, and the browser keeps it."""
    user = picker_user(picker.settings, request, profile)
    return follow_values(values[picker.model], values[picker.stored], user, picker.followers,
                         picker.stored)
