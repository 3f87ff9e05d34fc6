"""Who is acting: the name recorded on reviews and votes."""

from __future__ import annotations

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
