"""The report of ``tpo experiment``: ``OUT/report.json``, ``OUT/report.md`` and the needle
heatmaps, built from the experiment's state and the evaluations it stored.

What it holds: accuracy of the base model, the TPO fine-tune and each ablation per suite
(needle, synthetic) and pooled over both; McNemar's exact p against the base per suite and
pooled (:func:`tpo.evaluation.eval_results.diff`, :func:`~tpo.evaluation.eval_results.mcnemar_p`: the questions
only one of the two models got right); accuracy per video length, per needle depth and per
question type; the pairs per kind (generated, kept / filtered by the post-filter, accepted,
trained on); the time of every stage; every setting with the model paths; the training and
held-out video lists; and the leak checks the stages ran.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from tpo.evaluation import eval_results as er
from tpo.evaluation.experiment import SUITES, ExperimentConfig, Stage, variant_name
from tpo.store import Store, now
from tpo.media.synth import write_atomically

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def _pct(correct: int, n: int) -> float | None:
    return None if not n else round(100 * correct / n, 1)


def _groups(items: list[dict], key, order) -> dict[str, dict]:
    """{group: {"n", "correct"}} of scored items, groups sorted by ``order(item)``."""
    out: dict[str, dict] = {}
    first: dict[str, float] = {}
    for item in items:
        if item["meta"].get("error"):
            continue
        g = out.setdefault(key(item), {"n": 0, "correct": 0})
        g["n"] += 1
        g["correct"] += int(item["correct"])
        first.setdefault(key(item), order(item))
    return {k: out[k] for k in sorted(out, key=lambda k: first[k])}


def _breakdown(items_by_variant: dict[str, list[dict]], key, order) -> list[dict]:
    """Rows of {"group", "n", "<variant> %"...}: one row per group, a column per variant."""
    groups = {v: _groups(items, key, order) for v, items in items_by_variant.items()}
    names = list(dict.fromkeys(g for per in groups.values() for g in per))
    rows = []
    for name in names:
        row = {"group": name, "n": next(per[name]["n"] for per in groups.values() if name in per)}
        for variant, per in groups.items():
            g = per.get(name)
            row[variant] = _pct(g["correct"], g["n"]) if g else None
        rows.append(row)
    return rows


def _heatmap(out: Path, variant: str, label: str, items: list[dict], frames: int) -> str | None:
    from tpo.evaluation.needle import heatmap_png, needle_grid

    scored = [{"length_s": i["meta"]["length_s"], "depth": i["meta"]["depth"],
               "correct": i["correct"]} for i in items if not i["meta"].get("error")]
    if not scored:
        return None
    path = heatmap_png(needle_grid(scored), out / f"needle_{variant}.png",
                       title=f"{label}: {frames} frames")
    return path.name


def build(out: Path, store: Store, config: ExperimentConfig, state: dict,
          plan: list[Stage]) -> dict:
    """The report as a dict (see the module docstring); draws the heatmaps into ``out``."""
    done = state["stages"]
    outputs = {name: record["outputs"] for name, record in done.items()}
    variants = ["base", "tpo", *config.ablations]
    results, items, skipped = [], {s: {} for s in SUITES}, {}
    for variant in variants:
        evals = {s: outputs.get(f"eval:{variant}:{s}") for s in SUITES}
        if any(e is None for e in evals.values()):
            continue  # not evaluated yet (an interrupted run writes no report)
        if any(e.get("skipped") for e in evals.values()):
            skipped[variant] = outputs.get(f"train:{variant}", {}).get("skipped", "skipped")
            continue
        row = {"variant": variant, "name": variant_name(variant), "suites": {}}
        for suite, e in evals.items():
            stored = er.get_eval(store, e["eval_id"])
            row["model"] = stored["model"]
            row["suites"][suite] = {"eval_id": e["eval_id"], "accuracy %": _pct(
                stored["n_correct"], stored["n_items"]), "correct": stored["n_correct"],
                "n": stored["n_items"], "unparsed": stored["n_unparsed"]}
            items[suite][variant] = er.eval_items(store, e["eval_id"])
        n = sum(s["n"] for s in row["suites"].values())
        correct = sum(s["correct"] for s in row["suites"].values())
        row["pooled"] = {"accuracy %": _pct(correct, n), "correct": correct, "n": n}
        if variant != "base" and "base" in items["needle"]:
            row["vs_base"] = _versus_base(store, outputs, variant)
        results.append(row)
    heatmaps = {}
    for row in results:
        name = _heatmap(out, row["variant"], row["model"], items["needle"][row["variant"]],
                        config.frames)
        if name:
            heatmaps[row["variant"]] = name
    by_length = {s: _breakdown(items[s], lambda i: i["duration_class"] or "-",
                               lambda i: i["meta"].get("length_s", 0)) for s in SUITES}
    by_depth = _breakdown(items["needle"], lambda i: f"{100 * i['meta']['depth']:.0f}%",
                          lambda i: i["meta"]["depth"])
    by_task = {s: _breakdown(items[s], lambda i: i["task"] or "-", lambda i: 0) for s in SUITES}
    render = outputs.get("render", {})
    return {
        "name": config.name, "written_at": now(), "out_dir": str(out),
        "models": _models(outputs, variants),
        "results": results, "skipped": skipped,
        "by_length": by_length, "by_needle_depth": by_depth, "by_task": by_task,
        "heatmaps": heatmaps,
        "pairs": outputs.get("accept", {}).get("counts"),
        "training": {v: {k: o[k] for k in ("pairs", "by_kind", "steps", "final_loss",
                                           "train_runtime_s", "settings") if k in o}
                     for v in variants
                     if (o := outputs.get(f"train:{v}")) and not o.get("skipped")},
        "stages": [{"stage": s.name, "title": s.title, "seconds": done[s.name]["seconds"],
                    "summary": done[s.name]["outputs"].get("summary", "")}
                   for s in plan if s.name in done],
        "videos": {"train": render.get("train", []), "heldout": render.get("heldout", [])},
        "checks": {"split": render.get("checks"),
                   "library": {"heldout_in_library":
                               outputs.get("ingest", {}).get("heldout_in_library")},
                   "training_rows": outputs.get("export", {}).get("checks")},
        "config": json.loads(json.dumps(asdict(config))),
    }


def _models(outputs: dict, variants: list[str]) -> dict:
    models = {"base": outputs.get("model", {}).get("ref")}
    for v in variants[1:]:
        o = outputs.get(f"train:{v}") or {}
        if o.get("ref"):
            models[v] = {**o["ref"], "model_id": o["model_id"], "output_dir": o["output_dir"]}
    return models


def _versus_base(store: Store, outputs: dict, variant: str) -> dict:
    """Per suite and pooled: McNemar's exact p of the variant against the base."""
    out, only_base, only_this = {}, 0, 0
    for suite in SUITES:
        d = er.diff(store, outputs[f"eval:base:{suite}"]["eval_id"],
                    outputs[f"eval:{variant}:{suite}"]["eval_id"])
        out[suite] = {"p": d["p_value"], "only_base": len(d["only_first"]),
                      "only_this": len(d["only_second"]), "n": d["n"],
                      "change_points": d["overall"][0]["change"] if d["overall"] else None}
        only_base += len(d["only_first"])
        only_this += len(d["only_second"])
    out["pooled"] = {"p": er.mcnemar_p(only_base, only_this), "only_base": only_base,
                     "only_this": only_this}
    return out


# --- Markdown ------------------------------------------------------------------------------


def _cell(value) -> str:
    return "–" if value is None else f"{value:g}"


def _p(value) -> str:
    return "–" if value is None else f"{value:.3g}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(report: dict) -> str:
    """``report.md``: the results first, then the breakdowns, pairs, split, stages, settings."""
    config, results = report["config"], report["results"]
    names = {r["variant"]: r["name"] for r in results}
    parts = [f"# Experiment `{report['name']}`: does TPO help?\n",
             f"Base model `{(report['models'].get('base') or {}).get('model')}`; "
             f"{config['frames']} frames per question and training record; written "
             f"{report['written_at']}.\n",
             *(["**Validation run** (`--validate`): the synthetic suite is validation videos "
                "from the training seed range (never used for pairs), not the held-out videos; "
                "use it to choose fine-tune settings.\n"] if config.get("validate") else []),
             "## Accuracy\n"]
    rows = []
    for r in results:
        vs = r.get("vs_base", {})
        rows.append([f"{r['name']} ({r['model']})",
                     *(f"{_cell(r['suites'][s]['accuracy %'])}% ({r['suites'][s]['correct']}/"
                       f"{r['suites'][s]['n']})" for s in SUITES),
                     f"{_cell(r['pooled']['accuracy %'])}% ({r['pooled']['correct']}/"
                     f"{r['pooled']['n']})",
                     *(_p(vs.get(s, {}).get("p")) for s in (*SUITES, "pooled"))])
    parts.append(_table(["model", *SUITES, "both", *(f"p {s}" for s in SUITES), "p pooled"],
                        rows))
    parts.append("p: McNemar's exact test against the base on the questions only one of the "
                 "two got right.\n")
    for variant, why in report["skipped"].items():
        parts.append(f"- {variant}: skipped ({why})\n")
    for title, data in (("per video length (synthetic)", report["by_length"]["synthetic"]),
                        ("per haystack length (needle)", report["by_length"]["needle"]),
                        ("per needle depth", report["by_needle_depth"]),
                        ("per question type (synthetic)", report["by_task"]["synthetic"])):
        if data:
            parts.append(f"\n### Accuracy % {title}\n")
            parts.append(_table(["group", "questions", *(names[v] for v in names)],
                                [[d["group"], d["n"], *(_cell(d.get(v)) for v in names)]
                                 for d in data]))
    if report["heatmaps"]:
        parts.append("\n### Needle in a haystack\n")
        parts += [f"![{names[v]}]({path})\n" for v, path in report["heatmaps"].items()]
    if report["pairs"]:
        parts.append("\n## Pairs\n")
        kinds = ("localized", "comprehensive")
        parts.append(_table(["kind", "generated", "kept by the post-filter", "filtered",
                             "accepted", "trained on"],
                            [[k, *(report["pairs"][k][c] for c in
                                   ("generated", "kept", "filtered", "accepted", "used"))]
                             for k in kinds]))
        reasons = report["pairs"].get("filter_reasons") or {}
        if reasons:
            parts.append("Filtered: " + ", ".join(f"{n} {r}" for r, n in reasons.items()) + "\n")
    if report["training"]:
        parts.append("\n## Training\n")
        parts.append(_table(["model", "pairs", "steps", "final loss", "time (s)"],
                            [[variant_name(v), t.get("pairs"), t.get("steps"),
                              _cell(None if t.get("final_loss") is None
                                    else round(t["final_loss"], 4)), t.get("train_runtime_s")]
                             for v, t in report["training"].items()]))
    parts.append("\n## Data split\n")
    parts.append("Training videos are ingested into the library; held-out videos (a disjoint "
                 "seed range, their own folder) never are. Checks: "
                 f"`{json.dumps(report['checks'])}`\n")
    for split in ("train", "heldout"):
        videos = report["videos"][split]
        parts.append(f"\n{split} ({len(videos)}):\n\n")
        parts.append(_table(["video", "seed", "length (s)", "events"],
                            [[v["name"], v["seed"], _cell(v["length_s"]), v["events"]]
                             for v in videos]))
    parts.append("\n## Stages\n")
    parts.append(_table(["stage", "time (s)", "result"],
                        [[s["title"], s["seconds"], s["summary"]] for s in report["stages"]]))
    parts.append("\n## Settings\n\n```json\n" + json.dumps(
        {"config": config, "models": report["models"]}, indent=1) + "\n```\n")
    return "\n".join(parts)


def write(out: Path, store: Store, config: ExperimentConfig, state: dict,
          plan: list[Stage]) -> dict:
    """Build the report and write ``report.json`` and ``report.md`` into ``out``."""
    report = build(out, store, config, state, plan)
    text = json.dumps(report, indent=1, default=str)
    write_atomically(out / REPORT_JSON, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    md = markdown(report)
    write_atomically(out / REPORT_MD, lambda tmp: tmp.write_text(md, encoding="utf-8"))
    return report
