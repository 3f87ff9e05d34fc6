"""Driving the app's tabs as Gradio does, without a browser: a tab built in a page of its own,
the handler wired to an event, and a call with the arguments Gradio gives it (one dict of
input values keyed by component, then the request, sign-in and select event it fills in by
type hint)."""

from __future__ import annotations

from dataclasses import fields

import gradio as gr
from gradio.helpers import special_args

from tpo.store import Store
from ui import curate, library
from ui.models import ModelPicker

NO_HUB = "no network in the tests"


def build_tab(store: Store, settings, tab_module):
    """One tab in a page of its own (with the app-wide model picker it follows): the page and
    what the tab's build returns."""
    with gr.Blocks() as demo:
        picker = ModelPicker.build(store, settings, NO_HUB)
        if tab_module is library:
            built = library.build(store, settings, gr.Markdown(), picker)
        else:
            built = tab_module.build(store, settings, picker)
        picker.wire(demo)
    return demo, built


def wired(demo: gr.Blocks, elem_id: str, event: str = "click"):
    """The function the page runs for ``event`` on the component with ``elem_id``."""
    for fn in demo.fns.values():
        for block_id, name in fn.targets:
            block = demo.blocks.get(block_id)
            if name == event and getattr(block, "elem_id", None) == elem_id:
                return fn.fn
    raise LookupError(f"no {event} handler on #{elem_id}")


def call_as_gradio(fn, values: dict | None, user: str | None, event_data=None):
    """Call ``fn`` with the arguments Gradio gives it: the values dict (None: an event with
    no inputs), then the parameters it fills by type hint (this browser's request, its
    sign-in, the select event)."""
    inputs = [] if values is None else [values]
    args, *_ = special_args(fn, inputs, request=gr.Request(username=user),
                            event_data=event_data)
    return fn(*args)


def login(name: str | None) -> gr.Request:
    return gr.Request(username=name)


def curate_tab(store, settings) -> curate.CurateTab:
    """The Curate tab's components, laid out in a Blocks of their own."""
    with gr.Blocks():
        return curate.build(store, settings)


def components(tab: curate.CurateTab) -> list:
    """Every component the tab's handlers read or set."""
    out = []
    for f in fields(tab):
        value = getattr(tab, f.name)
        out += ([getattr(value, g.name) for g in fields(value)]
                if isinstance(value, (curate.FilterBoxes, curate.ViewParts)) else [value])
    return out


def page_values(tab: curate.CurateTab, **named) -> dict:
    """What the browser holds when the page opens, keyed by component; ``named``: fields of
    the tab or of its filters set to other values (``search="Q1"``, ``share=...``)."""
    values = {c: getattr(c, "value", None) for c in components(tab)}
    for name, value in named.items():
        part = getattr(tab.filters, name, None) or getattr(tab, name)
        values[part] = value
    return values


def shown(values: dict, out: dict) -> dict:
    """``values`` after the browser applied a handler's updates (a property update, such as
    new choices or visibility, changes no value)."""
    return {**values, **{c: v for c, v in out.items()
                         if not (isinstance(v, dict) and v.get("__type__") == "update")}}
