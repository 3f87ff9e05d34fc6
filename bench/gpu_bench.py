"""The prepared GPU run: TPO fine-tuning at real model sizes on CUDA, then the quick experiment.

    python bench/gpu_bench.py [--out DIR] [--steps 6] [--budget-s 540] [--no-experiment]
    python bench/gpu_bench.py --smoke      # the same path on CPU with the tiny model

One command for a lent GPU machine (it never runs in the test suite). All in one run:

1. The dataset: a 90 s synthetic video (tpo.media.synth ``mixed_signals``), one localized pair per
   timed event, accepted and exported as the paper's records: 64 frames uniformly over the
   whole video, the same frames for chosen and rejected (bench/train_bench.py ``prepare``).
2. Random-weight models built from the real configs of SmolVLM2-256M-Video-Instruct and
   SmolVLM2-2.2B-Instruct (``tpo.models.tiny.RANDOM_PRESETS``: the config values are typed in; no hub),
   initialised on the GPU in bf16.
3. Per model, tpo.training.train.train (TRL's DPOTrainer, DPO + SFT, bf16, gradient checkpointing on)
   three ways: LoRA with the reference computed by the policy with its adapters disabled
   (what tpo does), LoRA with a separate frozen reference copy, and the full fine-tune (TRL
   keeps its own reference copy). Each in a fresh process (bench/train_bench.py ``worker``):
   samples/s (1 / median step after the first), peak GPU memory
   (``torch.cuda.max_memory_allocated``), and MFU = model FLOPs per step / step time / the
   GPU's dense bf16 peak. Model FLOPs count every language-model and vision-tower forward
   actually run (2 x parameters per token plus attention scores, a forward with grad 3x);
   gradient-checkpoint recomputation is not counted. The peak is looked up by GPU name
   (PEAK_TFLOPS); an unknown GPU gets no MFU rather than a guessed one.
4. ``tpo experiment --quick`` on CUDA with the demo model, in the time left of --budget-s.

Writes DIR/gpu_bench.json (every measurement), DIR/gpu_bench.md (the tables) and, when the
experiment finished, DIR/experiment.md; DIR defaults to $OUT (the device tool's folder that
comes back) or data/gpu_bench. The random weights make the losses meaningless; only speed and
memory are measured. Packages the GPU machine lacks travel as wheels: run bench/gpu_wheels.sh
here first, then there, as one command:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
      && PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_bench.py --budget-s 540
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_bench  # noqa: E402  (the dataset and the training worker)

ROOT = Path(__file__).resolve().parents[1]
VIDEO = "mixed_signals"  # 90 s: 64 whole-video frames at under 1 frame per second
FRAMES = 64
MODELS = ("smolvlm2-256m", "smolvlm2-2.2b")
# (label, LoRA?, reference): the three ways each model is trained
WAYS = (("lora", True, "adapter-off"), ("lora", True, "ref-copy"), ("full", False, "trl-copy"))
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from NVIDIA's data sheets, by the
# substring of torch.cuda.get_device_name() that identifies the part.
PEAK_TFLOPS = {"H200": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "A100": 312.0,
               "L40S": 362.0, "L4": 121.0}
EXPERIMENT_MIN_S = 120  # the quick experiment is not started with less time left than this


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def percent(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def gpu_name() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.get_device_name()"
                          " if torch.cuda.is_available() else '')"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def summarize(r: dict, peak: float | None) -> dict:
    later = r["step_s"][1:] or r["step_s"]  # step 1 pays for compilation and allocation
    step_s = train_bench.median(later)
    flops_step = r["flops"] / len(r["step_s"])
    return {"model": r["label"], "way": r["way"], "reference": r["variant"],
            "params_m": r["params"] / 1e6, "trainable_m": r["trainable"] / 1e6,
            "seq_tokens": r["seq_tokens"], "step_s": step_s, "samples_s": 1 / step_s,
            "tokens_s": r["seq_tokens"] / step_s, "peak_gib": (r["cuda_peak_mib"] or 0) / 1024,
            "tflops_step": flops_step / 1e12,
            "mfu": flops_step / step_s / (peak * 1e12) if peak else None,
            "fwd_step": f"{r['policy_fwd'] / r['steps']:g}+{r['ref_fwd'] / r['steps']:g}",
            "loss_1": r["losses"][0], "device": r["device"]}


def table(rows: list[dict], peak: float | None) -> str:
    mfu = f"MFU (of {peak:g} TFLOP/s)" if peak else "MFU"
    lines = [f"| model | way | reference | params | trained | tokens/sample | s/step | samples/s "
             f"| tokens/s | peak GPU GiB | TFLOP/step | {mfu} | fwd/step |",
             "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['way']} | {r['reference']} | {r['params_m']:.4g}M "
            f"| {r['trainable_m']:.4g}M | {r['seq_tokens']} | {r['step_s']:.3f} "
            f"| {r['samples_s']:.2f} | {r['tokens_s']:.0f} | {r['peak_gib']:.1f} "
            f"| {r['tflops_step']:.1f} | {percent(r['mfu'])} "
            f"| {r['fwd_step']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("OUT") or ROOT / "data" / "gpu_bench"))
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per way")
    parser.add_argument("--budget-s", type=float, default=540,
                        help="seconds for the whole run; the experiment gets what is left")
    parser.add_argument("--no-experiment", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU check of this script: the tiny model, 8 frames, 2 steps")
    args = parser.parse_args()
    start = time.monotonic()
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = gpu_name()
    if not name and not args.smoke:
        raise SystemExit("no CUDA GPU here: this is the GPU run (use --smoke to check it on CPU)")
    peak = peak_tflops(name) if name else None
    models, frames, steps = (("tiny",), 8, 2) if args.smoke else (MODELS, FRAMES, args.steps)
    print(f"GPU: {name or 'none (smoke run on CPU)'}; peak {peak or '?'} TFLOP/s bf16; "
          f"{frames} frames a sample; {steps} steps per way", flush=True)

    results, rows = [], []
    with tempfile.TemporaryDirectory(prefix="gpu_bench-") as tmp_name:
        tmp = Path(tmp_name)
        cache = out / "cache"
        prep = train_bench.run_child(
            ["--cache", str(cache), "--prepare", str(tmp), "--video", VIDEO, "--frames",
             str(frames), "--models", ",".join(models)]
            + ([] if args.smoke else ["--build-device", "cuda"]), "prepare")
        print(f"dataset: {prep['n_pairs']} pairs, {prep['frames']} frames each over "
              f"{prep['duration_s']} s, in {prep['data_s']:.1f} s", flush=True)
        for label, (folder, build_s) in prep["models"].items():
            print(f"{label}: {folder} (built in {build_s:.1f} s)", flush=True)
            for way, lora, reference in WAYS:
                job = {"label": label, "variant": reference, "way": way, "lora": lora,
                       "model": folder, "data": prep["data"], "steps": steps,
                       "out": str(tmp / f"run-{label}-{way}-{reference}"),
                       "cache_dir": str(tmp / "hf-datasets")}
                try:
                    r = train_bench.run_child(["--cache", str(cache), "--worker", json.dumps(job)],
                                              f"{label} {way} {reference}")
                except SystemExit as err:  # e.g. out of memory: record it, go on
                    print(f"  {way} {reference}: FAILED ({err})", flush=True)
                    results.append({**job, "error": str(err)})
                    continue
                r["way"] = way
                results.append(r)
                rows.append(summarize(r, peak))
                s = rows[-1]
                print(f"  {way:<5}{reference:<12}{s['step_s']:.3f} s/step, "
                      f"{s['peak_gib']:.1f} GiB, MFU {percent(s['mfu'])}",
                      flush=True)
            shutil.rmtree(tmp / "hf-datasets", ignore_errors=True)

    report = [f"# GPU bench: {name or 'CPU smoke run'}", "",
              f"{frames} frames a sample (whole video, same frames for chosen and rejected), "
              f"batch size 1, {steps} steps per way, bf16 on CUDA, gradient checkpointing on; "
              "s/step is the median after step 1.", "", table(rows, peak)]

    experiment = None
    left = args.budget_s - (time.monotonic() - start)
    if args.no_experiment or args.smoke:
        pass
    elif left < EXPERIMENT_MIN_S:
        report += ["", f"`tpo experiment --quick` not run: {left:.0f} s of the budget left."]
    else:
        folder = out / "experiment"
        cmd = [sys.executable, "-m", "tpo.cli", "experiment", "--quick", "--out", str(folder)]
        began = time.monotonic()
        env = {**os.environ, "TPO_DATA_DIR": str(out / "tpo-data"), "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, timeout=left, capture_output=True,
                                  text=True)
            status = "finished" if proc.returncode == 0 else f"exit {proc.returncode}"
            tail = (proc.stdout + proc.stderr)[-3000:]
        except subprocess.TimeoutExpired as err:
            status = f"stopped after {left:.0f} s (resumable: run the same command again)"
            tail = ((err.stdout or b"").decode() if isinstance(err.stdout, bytes)
                    else (err.stdout or ""))[-3000:]
        experiment = {"status": status, "seconds": time.monotonic() - began,
                      "command": " ".join(cmd), "tail": tail}
        md = folder / "report.md"
        if md.is_file():
            shutil.copy(md, out / "experiment.md")
        report += ["", f"`tpo experiment --quick` on CUDA: {status} in "
                   f"{experiment['seconds']:.0f} s" + (" (report: experiment.md)"
                                                      if md.is_file() else "")]
        print(report[-1], flush=True)

    (out / "gpu_bench.json").write_text(json.dumps(
        {"gpu": name, "peak_tflops": peak, "frames": frames, "steps": steps, "rows": rows,
         "raw": results, "experiment": experiment,
         "seconds": time.monotonic() - start}, indent=1))
    (out / "gpu_bench.md").write_text("\n".join(report) + "\n")
    shutil.rmtree(out / "cache" / "videos", ignore_errors=True)
    print("\n" + "\n".join(report) + f"\n\nwritten to {out}", flush=True)


if __name__ == "__main__":
    main()
