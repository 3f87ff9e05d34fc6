"""Pair generation throughput: decoding each video once vs re-decoding frames for every answer.

    python bench/generate_bench.py [--quick] [--cache data/bench]

Generates the preference pairs of one synthetic demo-like video (tpo.media.synth, rendered once and
cached under --cache; its ground-truth questions are used, so no captions or question writing)
with two models, each two ways, all in this run:

* tiny   - the offline tiny SmolVLM (tpo.models.tiny.build_tiny_model, ~0.2M parameters, 64 px frames)
* 256m   - a random-weight model of SmolVLM2-256M's real size (tpo.models.tiny.build_random_model,
           512 px frames, 64 tokens each; built once and cached under --cache)

* real   - tpo.generation.pairs.generate_for_video: plans every pair, decodes the union of their frames
           once and answers on those
* naive  - the same call with the model wrapped so that each answer first opens the video and
           decodes its own frames again (what a pipeline without frame reuse does). The
           library's one union decode still runs and is counted too; the re-decoded frames
           are checked pixel-identical to the reused ones.

Prints, per model and path, seconds spent decoding, re-decoding and generating, the total
wall time, pairs per minute and the time ratio against the real path. Both paths must give the
same pairs (greedy decoding); nothing is asserted about speed. Random weights answer nonsense
(empty text for the 256M model: its ids lie past the small tokenizer), and almost never stop
before max_new_tokens, so every answer costs the full token budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from tpo.generation.pairs import GenerationConfig, generate_for_video  # noqa: E402
from tpo.media.synth import DEMO_SPECS, build_demo_library  # noqa: E402
from tpo.models.tiny import build_random_model, build_tiny_model  # noqa: E402
from tpo.media.video import open_video  # noqa: E402
from tpo.models.vlm import VLM, ModelConfig, VideoQuestion  # noqa: E402

PRESET = "smolvlm2-256m"
# (demo video, pair settings, answer length in tokens). The 256M model spends ~2 s of CPU per
# 512 px frame (vision encoder + prefill, 2 cores), so frames seen are kept low: the full run
# answers 8 prompts on 72 frames per path, the quick one 4 prompts on 18 frames.
FULL = ("corner_watch", dict(localized=2, comprehensive=2, segment_frames=8, dense=16,
                             sparse=4), 16)
QUICK = ("countdown", dict(localized=1, comprehensive=1, segment_frames=4, dense=8,
                           sparse=2), 8)


class RedecodingModel:
    """A VLM whose replies() re-reads each item's frames from the file before answering.

    Each answer opens (indexes) the video and decodes that item's frame indices, as if no
    frames were shared; the seconds spent add up in ``decode_s``. Everything else (caption,
    chat, model_id) is the wrapped VLM's.
    """

    def __init__(self, vlm: VLM, path: Path, max_side: int):
        self.vlm, self.path, self.max_side = vlm, path, max_side
        self.decode_s = 0.0  # seconds re-decoding, over all replies() calls

    def __getattr__(self, name):
        return getattr(self.vlm, name)

    def replies(self, items: list[VideoQuestion]):
        start = time.perf_counter()
        fresh = []
        for item in items:
            with open_video(self.path) as vid:
                frames = vid.frames(item.frames.indices, max_side=self.max_side)
            fresh.append(VideoQuestion(frames, item.question, item.duration_s))
        self.decode_s += time.perf_counter() - start
        for old, new in zip(items, fresh):  # untimed: the model sees the very same pixels
            assert all(np.array_equal(a, b) for a, b in zip(old.frames.images, new.frames.images))
        return self.vlm.replies(fresh)


def ensure_video(cache: Path, name: str) -> Path:
    """The demo spec `name` rendered under cache/videos (reused when already there)."""
    spec = next(s for s in DEMO_SPECS if s.name == name)
    return build_demo_library(cache / "videos", [spec])[0]


def ensure_random_model(cache: Path) -> tuple[Path, float]:
    """(folder, build seconds; 0 when cached) of the real-size random model under cache."""
    folder = cache / "models" / f"random-{PRESET}"
    if (folder / "model.safetensors").is_file():
        return folder, 0.0
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    start = time.perf_counter()
    build_random_model(partial, PRESET)
    partial.rename(folder)  # only complete builds are ever reused
    return folder, time.perf_counter() - start


def run(model, path: Path, config: GenerationConfig, truth: dict) -> tuple[list[dict], float]:
    """(pair rows, wall seconds) of one generate_for_video call."""
    start = time.perf_counter()
    rows = generate_for_video(model, str(path), config, ground_truth=truth)
    return rows, time.perf_counter() - start


def texts(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["question"], r["chosen"], r["rejected"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter video, fewer frames")
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    video_name, pair_settings, max_new_tokens = QUICK if args.quick else FULL

    path = ensure_video(args.cache, video_name)
    truth = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    config = GenerationConfig(**pair_settings)
    with open_video(path) as vid:  # also warms the OS file cache for both paths
        info = vid.info
        warm_frames = vid.frames([0], max_side=config.max_side)
    print(f"video: {path} ({info.duration_s:.0f} s, {info.width}x{info.height}, {info.fps:g} fps, "
          f"{info.n_frames} frames, keyframe every {truth['gop']}, {info.backend})")
    print(f"pairs: {pair_settings}, questions from ground truth; answers: greedy, "
          f"max_new_tokens={max_new_tokens}, batch_size={ModelConfig.batch_size}; "
          f"torch threads: {torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}",
          flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        tiny_dir = build_tiny_model(Path(tmp) / "tiny", "smolvlm")
        models = [("tiny", tiny_dir, time.perf_counter() - start),
                  ("256m", *ensure_random_model(args.cache))]
        for label, folder, build_s in models:
            vlm = VLM.load(ModelConfig(model=str(folder), max_new_tokens=max_new_tokens))
            n_params = sum(p.numel() for p in vlm.model.parameters())
            built = f"built in {build_s:.1f} s" if build_s else "cached"
            print(f"\n{label}: {n_params / 1e6:.1f}M parameters on {vlm.device}, {built}, "
                  f"{folder}", flush=True)
            # one answer before timing: lazy initialisation, kernel selection
            vlm.replies([VideoQuestion(warm_frames, "Warm up.", info.duration_s)])

            real_rows, real_s = run(vlm, path, config, truth)
            print(f"  real:  {real_s:.1f} s", flush=True)
            naive = RedecodingModel(vlm, path, config.max_side)
            naive_rows, naive_s = run(naive, path, config, truth)
            print(f"  naive: {naive_s:.1f} s", flush=True)
            assert texts(real_rows) == texts(naive_rows), f"{label}: the paths gave other pairs"

            for name, pairs, total_s, redecode_s in (("real", real_rows, real_s, 0.0),
                                                     ("naive", naive_rows, naive_s,
                                                      naive.decode_s)):
                timing = pairs[0]["generator"]["timing"]  # seconds per stage of this call
                rows.append((label, name, timing["decode_s"], redecode_s,
                             timing["answer_s"] - redecode_s, total_s, len(pairs),
                             total_s / real_s))
            vlm.close()

    print("\ndecode: the one union decode of generate_for_video; re-decode: naive path only, "
          "opening the file and decoding per answer;\ngenerate: processor + model.generate; "
          "total: wall time of the generate_for_video call\n")
    print(f"{'model':<6}{'path':<7}{'decode s':>9}{'re-decode s':>12}{'generate s':>11}"
          f"{'total s':>9}{'pairs':>6}{'pairs/min':>10}{'vs real':>9}")
    for label, name, decode_s, redecode_s, generate_s, total_s, n, ratio in rows:
        print(f"{label:<6}{name:<7}{decode_s:>9.2f}{redecode_s:>12.2f}{generate_s:>11.2f}"
              f"{total_s:>9.2f}{n:>6}{60 * n / total_s:>10.1f}{ratio:>8.2f}x")
    print("\nboth paths gave the same pairs; re-decoded frames were pixel-identical; load "
          f"average at the end {os.getloadavg()[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    main()
