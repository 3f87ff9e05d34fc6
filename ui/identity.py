"""Who is acting: the name recorded on reviews and votes, and :func:`bind` for the handlers
that need it."""

from __future__ import annotations

import inspect
import typing
from functools import partial, wraps
from typing import Callable

import gradio as gr

from tpo.config import Settings


def current_user(settings: Settings, typed: str | None, request: gr.Request | None,
                 profile: gr.OAuthProfile | None) -> str:
    """Hugging Face sign-in (on a Space with hf_oauth), else the TPO_AUTH log-in, else the
    name typed in the page, else TPO_USER."""
    if settings.hf_oauth:
        if profile is None:
            raise gr.Error("Sign in with Hugging Face first (the Sign in button).")
        return profile.username
    name = getattr(request, "username", None) if request is not None else None
    return name or (typed or "").strip() or settings.user


def bind(fn: Callable, *args) -> Callable:
    """``functools.partial(fn, *args)`` as a plain function that keeps ``fn``'s type hints.

    Gradio fills the parameters typed ``gr.Request``, ``gr.OAuthProfile`` or ``gr.SelectData``
    itself, found by their type hints, and it reads no hints through a ``partial``: a handler
    bound with ``partial`` would get None for the request and act as the default user. The
    hints are resolved here, so a name that cannot be resolved fails when the app is built.
    The handler keeps ``fn``'s name too, so the app's API endpoints are named after their
    handlers (``/on_export_zip``), where a partial's would be ``/partial_32``."""
    bound = partial(fn, *args)
    signature = inspect.signature(bound)
    hints = typing.get_type_hints(fn)

    @wraps(fn)
    def handler(*rest, **kwargs):
        return bound(*rest, **kwargs)

    handler.__signature__ = signature
    handler.__annotations__ = {name: hint for name, hint in hints.items()
                               if name in signature.parameters or name == "return"}
    return handler
