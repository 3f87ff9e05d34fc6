"""Stored evaluation results: reading them back, tables of them, and two runs compared.

:func:`tpo.evaluation.evaluate.evaluate` writes one ``evals`` row per model and run and one
``eval_items`` row per question (see :func:`tpo.evaluation.evaluate.save`); this module reads them for
the CLI (``tpo evals``) and the app: results side by side across models and runs, one run's
answers, and :func:`diff` - two runs of one suite question by question, with McNemar's
exact test on the questions only one of them got right.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import pandas as pd

from tpo.evaluation.protocols import m_avg
from tpo.store import Store


def get_eval(store: Store, eval_id: int) -> dict:
    return store.get_evaluation(eval_id)


def list_evals(store: Store, *, suite: str | None = None, job_id: int | None = None,
               protocol: str | None = None, limit: int = 100) -> list[dict]:
    """Stored evaluations, newest first (``protocol``: only those of "tpo" or "lmms-eval")."""
    return store.list_evaluations(suite=suite, job_id=job_id, protocol=protocol, limit=limit)


def newest_eval_id(store: Store) -> int | None:
    """The id of the last evaluation stored (by any job or CLI run), None before the first."""
    return store.newest_evaluation_id()


def eval_items(store: Store, eval_id: int) -> list[dict]:
    return store.evaluation_items(eval_id)


def results_table(evals: Sequence[dict]) -> pd.DataFrame:
    """One row per stored evaluation: model, suite, the protocol that produced its numbers
    ("tpo" or "lmms-eval"), frames, questions, accuracy % overall, MLVU's M-avg % (mean of
    the per-task accuracies, the number MLVU results are published as; a column only when
    an MLVU evaluation is shown) and accuracy % per duration class (one column each, in
    order of appearance)."""
    rows = []
    for e in evals:
        s = e["summary"]
        row = {"eval": e["id"], "model": e["model"], "suite": e["suite"],
               "protocol": protocol_of(e), "frames": e["frames"] or "every",
               "questions": e["n_items"],
               "accuracy %": _pct(e["accuracy"]), "unparsed": e["n_unparsed"]}
        if any(other["suite"] == "mlvu" for other in evals):
            row["M-avg %"] = _pct(m_avg_of(e))
        row.update({f"{k} %": _pct(g["accuracy"]) for k, g in s.get("by_duration", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def protocol_of(evaluation: dict) -> str:
    """The protocol a stored evaluation ran under ("tpo" for rows stored before there was a
    choice)."""
    return evaluation.get("protocol") or "tpo"


def m_avg_of(evaluation: dict) -> float | None:
    """MLVU's M-avg (0..1) of a stored MLVU evaluation, None for other suites; computed from
    the per-task accuracies when the summary predates it."""
    if evaluation["suite"] != "mlvu":
        return None
    summary = evaluation["summary"]
    if "m_avg" in summary:
        return summary["m_avg"]
    return m_avg(summary.get("by_task", {}))


def task_table(evals: Sequence[dict]) -> pd.DataFrame:
    """Accuracy % per task (rows) and evaluation (columns, "#id model")."""
    columns = {f"#{e['id']} {e['model']}": {k: _pct(g["accuracy"])
                                          for k, g in e["summary"].get("by_task", {}).items()}
               for e in evals}
    return pd.DataFrame(columns).rename_axis("task").reset_index() if columns else pd.DataFrame()


def answers_table(items: Sequence[dict]) -> pd.DataFrame:
    """One evaluation's questions with the model's raw answer, the letter read from it and
    the right letter: what to look at when accuracy is surprising."""
    return pd.DataFrame([{
        "item": i["item_id"], "class": i["duration_class"], "task": i["task"],
        "question": i["question"], "right": i["answer"], "read": i["prediction"] or "-",
        "correct": "yes" if i["correct"] else "no",
        "answer": i["response"] if i["response"] is not None
        else f"(skipped: {i['meta'].get('error', 'no answer')})"} for i in items],
        columns=["item", "class", "task", "question", "right", "read", "correct", "answer"])


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for paired right/wrong outcomes: ``b`` questions only
    the first model got right, ``c`` only the second (a binomial test of b vs. c at 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def diff(store: Store, first_id: int, second_id: int) -> dict:
    """Two evaluations of the same suite, question by question: accuracy of each overall, per
    duration class and per task with the difference (second - first, in points), the
    questions only one of them got right, and McNemar's exact p-value on those.

    Questions are matched by item id; ones asked in only one evaluation (another --limit,
    a video missing in one run) are left out and counted in ``unmatched``.
    """
    first, second = get_eval(store, first_id), get_eval(store, second_id)
    if (first["suite"], first["suite_path"]) != (second["suite"], second["suite_path"]):
        raise ValueError(f"evaluations #{first_id} ({first['suite']}) and #{second_id} "
                         f"({second['suite']}) are not of the same suite and files")
    a = {i["item_id"]: i for i in eval_items(store, first_id) if not i["meta"].get("error")}
    b = {i["item_id"]: i for i in eval_items(store, second_id) if not i["meta"].get("error")}
    shared = [k for k in a if k in b]

    def groups(name: Callable[[dict], str]) -> list[dict]:
        """Per group of shared questions: n, each evaluation's accuracy %, the change."""
        out: dict[str, dict] = {}
        for k in shared:
            g = out.setdefault(name(a[k]), {"n": 0, "a": 0, "b": 0})
            g["n"] += 1
            g["a"] += a[k]["correct"]
            g["b"] += b[k]["correct"]
        return [{"group": group, "n": g["n"], "first %": _pct(g["a"] / g["n"]),
                 "second %": _pct(g["b"] / g["n"]),
                 "change": round(100 * (g["b"] - g["a"]) / g["n"], 1)}
                for group, g in out.items()]

    only_first = [k for k in shared if a[k]["correct"] and not b[k]["correct"]]
    only_second = [k for k in shared if b[k]["correct"] and not a[k]["correct"]]
    return {"first": {"id": first_id, "model": first["model"], "protocol": protocol_of(first)},
            "second": {"id": second_id, "model": second["model"],
                       "protocol": protocol_of(second)},
            "n": len(shared), "unmatched": len(a) + len(b) - 2 * len(shared),
            "overall": groups(lambda item: "all"),
            "by_duration": groups(lambda item: item["duration_class"] or "-"),
            "by_task": groups(lambda item: item["task"] or "-"),
            "only_first": only_first, "only_second": only_second,
            "p_value": mcnemar_p(len(only_first), len(only_second))}


def frames_label(frames: int) -> str:
    """How many frames each question saw, in words ("16 frames", "every frame")."""
    return "every frame" if frames == 0 else f"{frames} frames"


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 1)
