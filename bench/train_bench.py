"""DPO training cost of the reference model: LoRA's adapter-disabled base vs a separate copy.

    python bench/train_bench.py [--quick] [--cache data/bench]

Trains TPO (tpo.training.train.train: DPO + alpha * SFT with TRL's DPOTrainer, LoRA on the language
model's projections, the project's defaults otherwise) on one small real dataset, with two
models, each two ways, all in this run:

* tiny      - the offline tiny SmolVLM (tpo.models.tiny.build_tiny_model, ~0.3M parameters,
              64 px frames)
* 256m      - a random-weight model of SmolVLM2-256M's real size (tpo.models.tiny.build_random_model,
              512 px frames, 64 tokens each; built once and cached under --cache/models)

* adapter-off - what tpo.training.train does: ref_model=None with a PEFT policy, so TRL computes the
                reference log-probs with the policy's LoRA adapters disabled (one copy of the
                weights in memory)
* ref-copy    - the same run with an explicit ref_model: a second, frozen copy of the base
                model loaded from the same folder and passed to DPOTrainer beside the LoRA policy
                (TRL 1.16 accepts it and then uses that model, never the adapter-off path)

Both ways go through the very same tpo.training.train.train call: DPOTrainer is wrapped, in the
worker process only, by a subclass that counts the forward passes of the policy's and the
reference's language model, and that for ref-copy loads the copy and passes it as ref_model.

The dataset is built once: a synthetic video of tpo.media.synth (rendered once, cached under
--cache/videos) is ingested into a temporary store, one localized pair per timed event is
saved with save_generation and accepted with tpo.curation.review.review, and tpo.curation.export.export_pairs
writes them (jsonl, FRAMES frames a pair).

Every configuration trains in its own fresh subprocess, so that memory peaks never mix. The
peak is the process's `resource.getrusage(RUSAGE_SELF).ru_maxrss` (on CUDA also
`torch.cuda.max_memory_allocated`). Note: a child's ru_maxrss starts at the peak RSS of the
process that spawned it (Linux carries the old address space's high-water mark across
exec), so this parent never imports torch and the dataset is built in a subprocess too; the
worker's VmHWM (/proc/self/status, the high-water mark of its own address space) is printed
against ru_maxrss as a check.

Prints two tables, per model and way. Speed: seconds to set up (load, LoRA, ref copy,
datasets, trainer), the train() wall time, seconds of the first step, the median and the
fastest of the later ones, the CPU seconds the worker used in them, pairs per second (from
the fastest later step: other processes only ever add time), how many cores other processes
kept busy meanwhile (/proc/stat), forward passes per step (policy / ref-copy language model)
and the first and last loss. Memory: the RSS once training starts,
the peak (ru_maxrss), the largest anonymous and file-backed RSS and the largest PSS seen by
a sampling thread.

On CPU, transformers leaves the fp32 weights mmap-ed from model.safetensors (file pages,
never written under LoRA). The ref copy maps the same file again: RSS counts those pages
twice (~1 GB more for the 256M model once the copy has run a forward), while they are the
same page-cache pages, which PSS counts once. On a GPU each copy is real device memory.

Ratios are against adapter-off of the same model, measured in the same run. Both ways must
give the same step-1 loss (a fresh LoRA equals the base either way); nothing is asserted about
speed or memory. Random weights: the losses mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere

# torch, transformers, TRL and the tpo modules that pull them in are imported in the
# subprocesses only: see the docstring on ru_maxrss.

PRESET = "smolvlm2-256m"
VIDEO = "countdown"  # tpo.media.synth demo video: 60 s, 6 timed events -> 6 localized pairs
FRAMES = 4  # frames per exported pair (per side of the DPO batch: chosen and rejected)
VARIANTS = ("adapter-off", "ref-copy")
LABELS = {PRESET: "256m", "smolvlm2-2.2b": "2.2b"}  # short names of the random presets
# max_steps per model (batch size 1: one pair a step; past the 6 pairs the data repeats). A
# tiny step takes ~0.1 s, so it gets enough steps for a median; a 256M step ~45-60 s on 2 CPU
# cores (chosen + rejected: 8 frames of 512 px through the vision tower, for the policy and
# again for the reference, then the backward pass).
STEPS = {"full": {"tiny": 12, "256m": 3}, "quick": {"tiny": 4, "256m": 2}}
# Cores that other processes may keep busy during a worker's steps before its speed is flagged
# as measured on a shared CPU (2 cores here: 0.25 of a core already slows a step noticeably).
BUSY_OTHERS = 0.25
WORKER_TIMEOUT_S = 1800  # seconds; a 256M worker takes ~2.5 min alone, far longer on a busy CPU
RESULT_TAG = "BENCH-RESULT "


def rss_peak_mib() -> float:
    """This process's ru_maxrss (Linux: KiB) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float | None:
    """CPU seconds all cores of the machine have been busy (or stolen by the hypervisor)
    since boot, from /proc/stat; None where unreadable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def proc_status_mib(field: str) -> float | None:
    """VmRSS / VmHWM of this process from /proc/self/status, in MiB (None where absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def pss_mib() -> float | None:
    """Proportional set size of this process in MiB (/proc/self/smaps_rollup): a page mapped
    twice (the policy's and the ref copy's weights, both mmap-ed from the same
    model.safetensors) counts once, where RSS counts it twice."""
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class MemorySampler:
    """A daemon thread that keeps the largest RssAnon / RssFile (every `every_s`) and PSS
    (every `pss_every_s`: reading smaps_rollup walks the page tables, ~35 ms for 3 GB) of this
    process: what the peak is made of. Anonymous: activations, gradients, optimizer state,
    copied tensors; file: weights still mmap-ed from model.safetensors (never written under
    LoRA)."""

    def __init__(self, every_s: float = 0.02, pss_every_s: float = 0.5):
        import threading

        self.peak = {"RssAnon": 0.0, "RssFile": 0.0, "Pss": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s, pss_every_s),
                                        daemon=True)
        self._thread.start()

    def _sample(self, field: str, value: float | None) -> None:
        if value is not None and value > self.peak[field]:
            self.peak[field] = value

    def _run(self, every_s: float, pss_every_s: float) -> None:
        next_pss = 0.0
        while not self._stop.wait(every_s):
            for field in ("RssAnon", "RssFile"):
                self._sample(field, proc_status_mib(field))
            if time.monotonic() >= next_pss:
                self._sample("Pss", pss_mib())
                next_pss = time.monotonic() + pss_every_s

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._sample("Pss", pss_mib())
        return self.peak


def emit(result: dict) -> None:
    print(RESULT_TAG + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------
# Subprocess 1: the dataset and the models


def prepare(cache: Path, tmp: Path, video_name: str = VIDEO, frames: int = FRAMES,
            models: tuple[str, ...] = ("tiny", PRESET), device: str | None = None) -> None:
    """Render/ingest/accept/export the dataset under tmp (`frames` whole-video frames a
    record), build the tiny model there and each random preset of `models` under cache
    (once; on `device`, in bf16 there); prints the paths as a RESULT line."""
    import torch

    from tpo.curation.export import ExportConfig, export_pairs
    from tpo.media.library import ingest
    from tpo.curation.review import review
    from tpo.store import Store
    from tpo.media.synth import DEMO_SPECS, build_demo_library
    from tpo.models.tiny import build_random_model, build_tiny_model
    from tpo.media.video import open_video

    spec = next(s for s in DEMO_SPECS if s.name == video_name)
    video = build_demo_library(cache / "videos", [spec])[0]
    truth = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))

    start = time.perf_counter()
    store = Store(tmp / "tpo.db")
    video_id = ingest(store, [video], user="bench").added[0]
    with open_video(video) as vid:
        times = vid.times.tolist()
    pairs = []
    for event in truth["events"]:  # one localized pair per event: frames in vs out of it
        inside = [t for t in times if event["start_s"] <= t < event["end_s"]]
        outside = [t for t in times if not event["start_s"] - 1 <= t < event["end_s"] + 1]
        wrong = next(o for o in event["options"] if o != event["answer"])
        pairs.append({
            "kind": "localized", "strategy": "irrelevant", "question": event["question"],
            "prompt": event["question"], "chosen": f"The answer is {event['answer']}.",
            "rejected": f"The answer is {wrong}.", "segment_start": event["start_s"],
            "segment_end": event["end_s"], "chosen_timestamps": inside[::max(1, len(inside) // 8)],
            "rejected_timestamps": outside[::max(1, len(outside) // 8)], "status": "pending",
            "generator": {"model": "bench"}, "filter_verdict": "kept"})
    ids = store.save_generation(video_id, "bench", pairs, params={}, seconds=0)
    for pair_id in ids:
        review(store, pair_id, "accept", user="bench")
    report = export_pairs(store, tmp / "export", ExportConfig(frames=frames))
    store.close()
    data_s = time.perf_counter() - start

    built = {}
    for name in models:
        start = time.perf_counter()
        if name == "tiny":
            built["tiny"] = [str(build_tiny_model(tmp / "tiny", "smolvlm")),
                             time.perf_counter() - start]
            continue
        # the folder bench/generate_bench.py uses for the 256M preset
        folder = cache / "models" / (f"random-{name}" + ("-bf16" if device else ""))
        build_s = 0.0
        if not (folder / "config.json").is_file():
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            build_random_model(partial, name, device=device,
                               dtype=torch.bfloat16 if device else None)
            partial.rename(folder)  # only complete builds are ever reused
            build_s = time.perf_counter() - start
        built[LABELS.get(name, name)] = [str(folder), build_s]
    emit({"video": str(video), "duration_s": truth["duration_s"], "data": str(report.out_dir),
          "n_pairs": report.n_pairs, "data_s": data_s, "frames": frames, "models": built})


# --------------------------------------------------------------------------------------------
# Subprocess 2: one training configuration


def _language_model(model):
    """The language model module (SmolVLM: model.text_model) whose calls are counted."""
    for name, module in model.named_modules():
        if name.endswith(("text_model", "language_model")):
            return module
    raise RuntimeError(f"no language model found in {type(model).__name__}")


def _vision_model(model):
    """The vision tower (SmolVLM: model.vision_model), whose patches are counted."""
    for name, module in model.named_modules():
        if name.endswith(("vision_model", "visual", "vision_tower")):
            return module
    raise RuntimeError(f"no vision tower found in {type(model).__name__}")


def _dims(model) -> dict:
    """Parameter counts and sizes that model FLOPs need: the language model without its
    embedding table (a lookup, no FLOPs) plus the output head; the vision tower; layers and
    widths for the attention-score FLOPs."""
    text, vision = _language_model(model), _vision_model(model)
    embed = text.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings().weight.numel()
    tc, vc = text.config, vision.config
    return {"text_params": sum(p.numel() for p in text.parameters()) - embed + head,
            "vision_params": sum(p.numel() for p in vision.parameters()),
            "text_layers": tc.num_hidden_layers, "text_width": tc.hidden_size,
            "vision_layers": vc.num_hidden_layers, "vision_width": vc.hidden_size}


def model_flops(shapes: list[tuple[str, int, int, bool]], dims: dict) -> float:
    """Model FLOPs of the recorded forwards: 2 * params per token (multiply-add) plus
    4 * layers * width * length^2 per sequence for attention scores and values (PaLM's
    count, no causal halving); a forward with grad is counted 3x (the backward is about
    twice the forward). Gradient-checkpoint recomputation is not counted, as MFU requires."""
    total = 0.0
    for what, batch, length, grad in shapes:
        params, layers, width = (dims[f"{what}_params"], dims[f"{what}_layers"],
                                 dims[f"{what}_width"])
        forward = batch * (2 * params * length + 4 * layers * width * length ** 2)
        total += forward * (3 if grad else 1)
    return total


def worker(job: dict) -> None:
    """Train one configuration with tpo.training.train.train and print its measurements."""
    import torch
    import trl
    from transformers import TrainerCallback

    from tpo.training.train import TrainConfig, train
    from tpo.models.vlm import load_model

    ref_copy = job["variant"] == "ref-copy"
    counts = {"policy": 0, "ref": 0}
    info: dict = {}
    # Every language-model and vision-tower forward: (what, batch, length, with grad), for the
    # model FLOPs behind MFU (flops_per_step below).
    shapes: list[tuple[str, int, int, bool]] = []

    def counter(key):
        def hook(module, args, kwargs):
            counts[key] += 1
            x = kwargs.get("inputs_embeds")
            x = kwargs.get("input_ids") if x is None else x
            x = args[0] if x is None and args else x
            if x is not None:  # (batch, tokens[, hidden])
                shapes.append(("text", x.shape[0], x.shape[1], torch.is_grad_enabled()))
        return hook

    def vision_counter(module, args, kwargs):
        pixels = kwargs.get("pixel_values", args[0] if args else None)  # (frames, 3, H, W)
        if pixels is not None:
            side = module.config.patch_size
            shapes.append(("vision", pixels.shape[0],
                           (pixels.shape[-2] // side) * (pixels.shape[-1] // side),
                           torch.is_grad_enabled()))

    class BenchDPOTrainer(trl.DPOTrainer):
        """TRL's DPOTrainer, counting language-model forwards; ref-copy: with a ref_model."""

        def __init__(self, model=None, ref_model=None, **kwargs):
            assert ref_model is None, "tpo.training.train passes no ref_model"
            _language_model(model).register_forward_pre_hook(counter("policy"), with_kwargs=True)
            _vision_model(model).register_forward_pre_hook(vision_counter, with_kwargs=True)
            info["dims"] = _dims(model)
            if ref_copy:
                start = time.perf_counter()
                ref_model, _ = load_model(job["model"], model.dtype)  # same folder, same weights
                ref_model.requires_grad_(False).eval()
                info["ref_load_s"] = time.perf_counter() - start
                _language_model(ref_model).register_forward_pre_hook(counter("ref"),
                                                                     with_kwargs=True)
                _vision_model(ref_model).register_forward_pre_hook(vision_counter,
                                                                   with_kwargs=True)
            super().__init__(model=model, ref_model=ref_model, **kwargs)
            ref = self.ref_model
            if ref is not None:
                ref = self.accelerator.unwrap_model(ref)
                if not ref_copy:  # a full fine-tune: TRL made its own reference copy
                    _language_model(ref).register_forward_pre_hook(counter("ref"),
                                                                   with_kwargs=True)
                    _vision_model(ref).register_forward_pre_hook(vision_counter,
                                                                 with_kwargs=True)
            info.update(
                policy_type=type(self.model).__name__,
                ref_type=type(ref).__name__ if ref is not None else None,
                ref_is_copy=ref is not None and ref is not model,
                ref_trainable=sum(p.numel() for p in ref.parameters() if p.requires_grad)
                if ref is not None else None,
                trainable=sum(p.numel() for p in self.model.parameters() if p.requires_grad),
                params=sum(p.numel() for p in self.model.parameters()))

    class Clock(TrainerCallback):
        """Wall time and this process's CPU time (user + system, all threads) at the start of
        training and at the end of every optimizer step."""

        def __init__(self):
            self.begin = self.cpu_begin = self.busy_begin = None
            self.steps: list[float] = []
            self.cpu: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin, self.cpu_begin = time.perf_counter(), cpu_s()
            self.busy_begin = machine_busy_s()
            info["rss_start_mib"] = proc_status_mib("VmRSS")
            info["maxrss_start_mib"] = rss_peak_mib()

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(time.perf_counter())
            self.cpu.append(cpu_s())

    trl.DPOTrainer = BenchDPOTrainer  # tpo.training.train imports it from trl when train() runs
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    clock = Clock()
    sampler = MemorySampler()
    config = TrainConfig(model=job["model"], data=job["data"], output_dir=job["out"],
                         learning_rate=1e-3, warmup_steps=0.0, max_steps=job["steps"],
                         cache_dir=job["cache_dir"], lora=job.get("lora", True),
                         max_frames=job.get("max_frames"))
    started = time.perf_counter()
    result = train(config, callbacks=[clock])
    ended = time.perf_counter()
    peaks = sampler.stop()
    assert result.global_step == job["steps"], result
    rows = [json.loads(line) for line in Path(result.metrics_path).read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    step_s = [b - a for a, b in zip([clock.begin, *clock.steps], clock.steps)]
    step_cpu_s = [b - a for a, b in zip([clock.cpu_begin, *clock.cpu], clock.cpu)]
    busy = machine_busy_s()
    # Cores that other processes (and the hypervisor's steal) kept busy, on average, while
    # this worker trained: 0 on an otherwise idle machine.
    others = (None if busy is None or clock.busy_begin is None else
              max(0.0, (busy - clock.busy_begin) - (clock.cpu[-1] - clock.cpu_begin))
              / (clock.steps[-1] - clock.begin))
    emit({**job, **info, "setup_s": clock.begin - started, "train_s": clock.steps[-1] - clock.begin,
          "total_s": ended - started, "step_s": step_s,
          "step_cpu_s": step_cpu_s, "load_avg": os.getloadavg()[0],
          "others_cores": others, "maxrss_mib": rss_peak_mib(),
          "hwm_mib": proc_status_mib("VmHWM"), "anon_peak_mib": peaks["RssAnon"],
          "file_peak_mib": peaks["RssFile"], "pss_peak_mib": peaks["Pss"],
          "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20
          if torch.cuda.is_available() else None,
          "policy_fwd": counts["policy"], "ref_fwd": counts["ref"],
          "flops": model_flops(shapes, info["dims"]),
          "seq_tokens": max((n for what, _, n, _ in shapes if what == "text"), default=0),
          "losses": [r["loss"] for r in rows],
          "device": "cuda" if torch.cuda.is_available() else "cpu",
          "threads": torch.get_num_threads(),
          "versions": {m: __import__(m).__version__
                       for m in ("torch", "transformers", "trl", "peft", "accelerate")}})


# --------------------------------------------------------------------------------------------
# The parent: runs the subprocesses and prints the table


def run_child(args: list[str], label: str) -> dict:
    """Run this script with `args` in a fresh Python; its RESULT line as a dict."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    results = [line[len(RESULT_TAG):] for line in proc.stdout.splitlines()
               if line.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not results:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"{label}: the subprocess failed with exit code {proc.returncode}")
    return json.loads(results[-1])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--cache", type=Path, default=Path("data/bench"))
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # subprocess 1
    # what --prepare builds (bench/gpu_bench.py asks for other sizes)
    parser.add_argument("--video", default=VIDEO, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=FRAMES, help=argparse.SUPPRESS)
    parser.add_argument("--models", default=f"tiny,{PRESET}", help=argparse.SUPPRESS)
    parser.add_argument("--build-device", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # subprocess 2: a JSON job
    args = parser.parse_args()
    cache = args.cache.expanduser().resolve()
    if args.prepare is not None:
        return prepare(cache, args.prepare, args.video, args.frames,
                       tuple(args.models.split(",")), args.build_device)
    if args.worker is not None:
        return worker(json.loads(args.worker))

    steps = STEPS["quick" if args.quick else "full"]
    print(f"python {platform.python_version()} on {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.2f}; steps: {steps} (batch size 1 = 1 pair a step); "
          f"{FRAMES} frames a pair", flush=True)
    bench_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train_bench-") as tmp_name:
        tmp = Path(tmp_name)
        prep = run_child(["--cache", str(cache), "--prepare", str(tmp)], "prepare")
        print(f"video: {prep['video']} ({prep['duration_s']} s); dataset: {prep['n_pairs']} "
              f"accepted pairs exported in {prep['data_s']:.1f} s to {prep['data']}", flush=True)
        results = []
        for label, (folder, build_s) in prep["models"].items():
            built = f"built in {build_s:.1f} s" if build_s else "cached"
            print(f"\n{label}: {folder} ({built}), {steps[label]} steps", flush=True)
            for variant in VARIANTS:
                job = {"label": label, "variant": variant, "model": folder, "data": prep["data"],
                       "steps": steps[label], "out": str(tmp / f"run-{label}-{variant}"),
                       "cache_dir": str(tmp / "hf-datasets")}
                r = run_child(["--cache", str(cache), "--worker", json.dumps(job)],
                              f"{label} {variant}")
                results.append(r)
                print(f"  {variant:<12} {r['total_s']:.1f} s, peak RSS {r['maxrss_mib']:.0f} MiB "
                      f"(load average {os.getloadavg()[0]:.2f})", flush=True)

    first = results[0]
    versions = " · ".join(f"{name} {version}" for name, version in first["versions"].items())
    print(f"\n{versions}; device {first['device']}, torch threads "
          f"{first['threads']}; tpo.training.train defaults (LoRA r=64 on the language model, gradient "
          "checkpointing on, fp32 on CPU), lr 1e-3")
    for r in results:
        if r["variant"] == "ref-copy":
            print(f"{r['label']} ref-copy: TRL kept ref_model = the passed {r['ref_type']} "
                  f"({'a separate object' if r['ref_is_copy'] else 'NOT a copy'}, "
                  f"{r['ref_trainable']} trainable parameters), policy {r['policy_type']}, "
                  f"ref copy loaded in {r['ref_load_s']:.1f} s")
    base: dict[str, dict] = {}  # adapter-off of each model: the baseline of its ratios
    for r in results:
        later = r["step_s"][1:] or r["step_s"]
        r["later_s"], r["best_s"] = median(later), min(later)
        r["later_cpu_s"] = median(r["step_cpu_s"][1:] or r["step_cpu_s"])
        r["pairs_s"] = 1 / r["best_s"]
        base.setdefault(r["label"], r)

    print("\nspeed - setup: train() start to the first step (model load, LoRA, ref copy, "
          "dataset, trainer); train: all steps; step 1: its seconds;\nlater / best: median / "
          "fastest seconds of the other steps; CPU s: median CPU seconds (user + system) of "
          "this process in them;\npairs/s: 1 / best (batch size 1; other processes only ever "
          "add time); x: ratio to adapter-off of the same model; others: cores other\n"
          "processes (and hypervisor steal) kept busy on average during the steps; fwd/step: "
          "language-model forwards of the policy + the ref copy\n")
    print(f"{'model':<6}{'reference':<12}{'params':>8}{'trained':>9}{'setup s':>8}"
          f"{'train s':>8}{'step 1':>7}{'later':>7}{'best':>7}{'CPU s':>7}{'pairs/s':>8}"
          f"{'x':>6}{'others':>7}{'fwd/step':>9}{'loss 1':>8}{'loss N':>8}")
    for r in results:
        b = base[r["label"]]
        fwd = f"{r['policy_fwd'] / r['steps']:g}+{r['ref_fwd'] / r['steps']:g}"
        busy = r["others_cores"] is not None and r["others_cores"] > BUSY_OTHERS
        others = (f"{r['others_cores']:>6.2f}{'*' if busy else ' '}"
                  if r["others_cores"] is not None else f"{'?':>7}")
        print(f"{r['label']:<6}{r['variant']:<12}{r['params'] / 1e6:>7.1f}M"
              f"{r['trainable'] / 1e6:>8.2f}M{r['setup_s']:>8.1f}{r['train_s']:>8.1f}"
              f"{r['step_s'][0]:>7.2f}{r['later_s']:>7.2f}{r['best_s']:>7.2f}"
              f"{r['later_cpu_s']:>7.2f}{r['pairs_s']:>#8.3g}{r['pairs_s'] / b['pairs_s']:>5.2f}x"
              f"{others}"
              f"{fwd:>9}{r['losses'][0]:>8.4f}{r['losses'][-1]:>8.4f}")

    flagged = [f"{r['label']} {r['variant']}" for r in results
               if r["others_cores"] is not None and r["others_cores"] > BUSY_OTHERS]
    if flagged:
        print(f"* other processes kept more than {BUSY_OTHERS} of a core busy during the steps "
              f"of: {', '.join(flagged)}; their times are inflated and their speed ratios not "
              "comparable (run again on a quiet machine)")

    cuda = any(r["cuda_peak_mib"] is not None for r in results)
    print("\nmemory (MiB) - RSS start: when training starts; peak RSS: ru_maxrss of the worker; "
          "anon / file: largest RssAnon / RssFile seen (20 ms samples);\nPSS: largest "
          "proportional set size seen (0.5 s samples; the weights mapped twice count once)"
          + ("; cuda: torch.cuda.max_memory_allocated" if cuda else "") + "\n")
    header = (f"{'model':<6}{'reference':<12}{'RSS start':>10}{'peak RSS':>9}{'x':>6}"
              f"{'+MiB':>6}{'anon':>7}{'file':>7}{'PSS':>7}{'x':>6}")
    print(header + (f"{'cuda':>7}{'x':>6}" if cuda else ""))
    for r in results:
        b = base[r["label"]]
        line = (f"{r['label']:<6}{r['variant']:<12}{r['rss_start_mib']:>10.0f}"
                f"{r['maxrss_mib']:>9.0f}{r['maxrss_mib'] / b['maxrss_mib']:>5.2f}x"
                f"{r['maxrss_mib'] - b['maxrss_mib']:>+6.0f}{r['anon_peak_mib']:>7.0f}"
                f"{r['file_peak_mib']:>7.0f}{r['pss_peak_mib']:>7.0f}"
                f"{r['pss_peak_mib'] / b['pss_peak_mib']:>5.2f}x")
        if cuda:
            line += (f"{r['cuda_peak_mib']:>7.0f}"
                     f"{r['cuda_peak_mib'] / max(b['cuda_peak_mib'], 1e-9):>5.2f}x")
        print(line)

    for r in results:  # the two ways must be the same computation at step 1
        b = base[r["label"]]
        assert abs(r["losses"][0] - b["losses"][0]) <= 1e-4 * max(1.0, abs(b["losses"][0])), (
            f"{r['label']}: step-1 loss {r['losses'][0]} vs {b['losses'][0]}")
    same = all(abs(a - b) <= 1e-4 * max(1.0, abs(b))
               for r in results for a, b in zip(r["losses"], base[r["label"]]["losses"]))
    hwm = all(r["hwm_mib"] is not None and abs(r["hwm_mib"] - r["maxrss_mib"]) < 1
              for r in results)
    print(f"\nstep-1 losses equal per model (a fresh LoRA is the base either way); all logged "
          f"losses equal: {'yes' if same else 'no'}; ru_maxrss == VmHWM in every worker: "
          f"{'yes' if hwm else 'no'}")
    print(f"wall time {time.perf_counter() - bench_start:.0f} s; load average at the end "
          f"{os.getloadavg()[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    main()
