"""The LLaMA-Factory layout of an export: ShareGPT preference rows and ``dataset_info.json``.

LLaMA-Factory (``llamafactory-cli train`` with ``stage: dpo``) reads a preference dataset in
its "sharegpt" formatting with ``ranking: true`` (its ``data/README.md``, "Preference
Dataset"): the conversation so far in ``conversations`` (here one human turn), the preferred
and the dispreferred answer each as ONE message object in ``chosen`` / ``rejected``, and the
media in ``images`` (or ``videos``), matched in order by the ``<image>`` (``<video>``)
placeholders in the human turn. Its converter (``SharegptDatasetConverter``) drops a row
whose role tags or message count do not fit, and its multimodal plugin refuses a row whose
placeholder count differs from its media count, so both are built from one list here.

Two media modes:

* ``images`` (default, the paper's record): the same whole-video frames as the TRL layouts,
  one ``<image>`` per frame, the time prompt (which says when each frame is) in the text;
* ``video``: the source video's path in ``videos`` and one ``<video>``; LLaMA-Factory then
  samples the frames itself (its ``video_fps`` / ``video_maxlen``), so ``frame_times`` only
  records what the TRL layouts would have used.

Nothing here touches files: :mod:`tpo.curation.export` writes them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DATASET_NAME", "MEDIA", "dataset_info", "to_row"]

DATASET_NAME = "tpo_pairs"  # the key in dataset_info.json: `dataset: tpo_pairs` in a train YAML
MEDIA = ("images", "video")
IMAGE_TAG, VIDEO_TAG = "<image>", "<video>"  # LLaMA-Factory's default placeholders
PROVENANCE = ("pair_id", "kind", "strategy", "segment", "frame_times", "video_sha256", "status")


def to_row(trl_row: dict[str, Any], *, media: str = "images") -> dict[str, Any]:
    """One export row in TRL's layout (:func:`tpo.curation.export` builds it) as a
    LLaMA-Factory ranking row; provenance columns ride along (LLaMA-Factory ignores them)."""
    if media not in MEDIA:
        raise ValueError(f"media must be one of {', '.join(MEDIA)}, got {media!r}")
    content = trl_row["prompt"][0]["content"]
    text = "".join(part["text"] for part in content if part.get("type") == "text")
    row: dict[str, Any] = {}
    if media == "images":
        names = list(trl_row["images_file_names"])
        row["conversations"] = [{"from": "human", "value": IMAGE_TAG * len(names) + text}]
        row["images"] = names
    else:
        row["conversations"] = [{"from": "human", "value": VIDEO_TAG + text}]
        row["videos"] = [trl_row["video"]]
    row["chosen"] = {"from": "gpt", "value": _answer(trl_row["chosen"])}
    row["rejected"] = {"from": "gpt", "value": _answer(trl_row["rejected"])}
    row.update({name: trl_row[name] for name in PROVENANCE})
    return row


def _answer(messages: list[dict]) -> str:
    """The text of TRL's one assistant message ``[{"role": "assistant", "content": [...]}]``."""
    return "".join(part["text"] for part in messages[0]["content"] if part.get("type") == "text")


def dataset_info(file_name: str, *, media: str = "images") -> dict[str, Any]:
    """The ``dataset_info.json`` entry that tells LLaMA-Factory how to read ``file_name``."""
    columns = {"messages": "conversations", "chosen": "chosen", "rejected": "rejected",
               media if media == "images" else "videos": media if media == "images" else "videos"}
    return {DATASET_NAME: {
        "file_name": file_name, "formatting": "sharegpt", "ranking": True, "columns": columns,
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt"},
    }}
