"""Evaluation throughput: questions answered one at a time vs in batches.

    python bench/eval_bench.py [--quick] [--cache data/bench]

Answers the needle-in-a-haystack suite (tpo.evaluation.needle, a small grid rendered once under --cache)
with tpo.evaluation.evaluate.answer_items - the code `tpo eval` runs - at batch sizes 1, 4 and 8, all in
this run, with two models:

* tiny  - the offline tiny SmolVLM (tpo.models.tiny.build_tiny_model)
* 256m  - a random-weight model of SmolVLM2-256M's real size (built once and cached under
          --cache, as bench/generate_bench.py does); skipped with --quick

Prints seconds, questions per second and the time ratio against batch size 1, and whether the
batched answers equal the one-at-a-time answers (greedy decoding; left padding can change a
random model's tokens slightly, so this is reported, not asserted). Nothing is asserted about
speed. Every answer runs to max_new_tokens: random weights do not stop early.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_bench import ensure_random_model  # noqa: E402

from tpo.evaluation.evaluate import EvalConfig, answer_items  # noqa: E402
from tpo.evaluation.needle import NeedleConfig, build_needle_suite  # noqa: E402
from tpo.models.tiny import build_tiny_model  # noqa: E402
from tpo.models.vlm import VLM, ModelConfig  # noqa: E402

BATCH_SIZES = (1, 4, 8)
# (needle grid, frames per question, answer tokens). The 256M model spends ~2 s of CPU per
# 512 px frame on 2 cores, so its grid is small: 8 questions x 4 frames per batch size.
FULL = (NeedleConfig(lengths_s=(30, 60), depths=(0.0, 0.33, 0.67, 1.0)), 4, 8)
QUICK = (NeedleConfig(lengths_s=(30, 60), depths=(0.0, 1.0)), 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model only, 4 questions")
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    args = parser.parse_args()
    needle, frames, tokens = QUICK if args.quick else FULL
    items = build_needle_suite(args.cache / "needle", needle)
    print(f"suite: {len(items)} needle questions ({needle.lengths_s} s x depths {needle.depths}),"
          f" {frames} frames each, max_new_tokens={tokens}; torch threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.2f}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = [("tiny", build_tiny_model(Path(tmp) / "tiny", "smolvlm"))]
        if not args.quick:
            models.append(("256m", ensure_random_model(args.cache)[0]))
        for label, folder in models:
            vlm = VLM.load(ModelConfig(model=str(folder), max_new_tokens=tokens))
            answer_items(vlm, items[:1], EvalConfig(frames=frames, max_new_tokens=tokens))  # warm
            baseline_s, baseline = None, None
            for batch in BATCH_SIZES:
                vlm.config.batch_size = batch  # VLM.replies() batches by its config
                config = EvalConfig(frames=frames, max_new_tokens=tokens, batch_size=batch)
                start = time.perf_counter()
                records = answer_items(vlm, items, config)
                seconds = time.perf_counter() - start
                answers = [r["response"] for r in records]
                baseline_s = baseline_s or seconds
                baseline = baseline or answers
                rows.append((label, batch, seconds, len(items) / seconds, seconds / baseline_s,
                             "yes" if answers == baseline else "no"))
                print(f"  {label} batch {batch}: {seconds:.1f} s", flush=True)
            vlm.close()

    print(f"\n{'model':<6}{'batch':>6}{'seconds':>9}{'questions/s':>13}{'vs batch 1':>12}"
          f"{'same answers':>14}")
    for label, batch, seconds, rate, ratio, same in rows:
        print(f"{label:<6}{batch:>6}{seconds:>9.2f}{rate:>13.2f}{ratio:>11.2f}x{same:>14}")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    main()
