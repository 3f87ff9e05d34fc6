"""The header line above the tabs: library and pair counts and the current user."""

from __future__ import annotations

from tpo.store import Store


def header_markdown(store: Store, user: str) -> str:
    c = store.counts()
    unreadable = f", {c['errors']} unreadable" if c["errors"] else ""
    return (f"### TPO Studio\n**{c['videos']} videos** ({c['ready']} ready{unreadable}) · "
            f"pairs: {c['pairs_pending']} pending · {c['pairs_accepted']} accepted · "
            f"{c['pairs_rejected']} rejected · user: `{user}`")
