"""Pairs written straight into a browser test's store, on a demo video, for the Curate tests."""

from __future__ import annotations

from tpo.store import Store


def seed_pairs(app_data, tag: str, n: int = 3, *, end: str = "", **overrides) -> list[int]:
    """``n`` pending localized pairs on the demo video "corner_watch" (not the one the
    generate test inspects), their texts named by ``tag``; ``end`` closes each answer (".":
    a finished sentence); ``overrides`` replace row fields (status, chosen, ...)."""
    store = Store(app_data / "tpo.db")
    video = store.list_videos(search="corner_watch")[0]
    rows = [{"kind": "localized", "strategy": "irrelevant", "question": f"{tag} question {i}?",
             "chosen": f"{tag} chosen {i}{end}", "rejected": f"{tag} rejected {i}{end}",
             "segment_start": 2.0, "segment_end": 5.0,
             "chosen_timestamps": [2.0, 3.0, 4.0], "rejected_timestamps": [0.5, 6.0, 9.0],
             "status": "pending", "filter_verdict": "kept", **overrides} for i in range(n)]
    return store.save_generation(video["id"], f"e2e-{tag}", rows, params={}, seconds=0)
