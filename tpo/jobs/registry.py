"""Job kinds: which function runs a kind, and which resources it needs.

A kind is declared next to its function with :func:`job_kind`::

    @job_kind("train", gpu=True)
    def run_job(ctx: JobContext) -> dict: ...

:data:`KINDS` says in which module each kind's function is. Only a worker imports it (see
:func:`load`), for its own job's kind alone: listing or submitting jobs loads no ML library,
and a CPU job's worker never imports torch for a kind it does not run.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

# kind -> "module:function"; the function is declared with @job_kind(kind, ...).
KINDS: Mapping[str, str] = MappingProxyType({
    "compare": "tpo.evaluation.compare:run_job",
    "demo-model": "tpo.models.demo_model:run_job",
    "eval": "tpo.evaluation.evaluate:run_job",
    "export": "tpo.curation.export:run_job",
    "generate": "tpo.generation.generate:run_job",
    "tiny-model": "tpo.models.tiny:run_job",
    "train": "tpo.training.train_job:run_job",
    "selftest": "tpo.jobs.selftest:run_job",
    "selftest-gpu": "tpo.jobs.selftest:run_gpu_job",
})

JobFunction = Callable[[Any], "dict | None"]  # takes a JobContext, returns a JSON-able dict


@dataclass(frozen=True)
class JobKind:
    """A kind of job as its module declares it."""

    name: str
    gpu: bool  # needs the GPU: its jobs wait for a slot (tpo.jobs.scheduler)
    run: JobFunction


def job_kind(name: str, *, gpu: bool) -> Callable[[JobFunction], JobFunction]:
    """Declare the decorated function as the job kind ``name``; ``gpu``: its jobs load a model
    or train, so they take turns on the GPU (on a machine without one, on the CPU)."""

    def declare(function: JobFunction) -> JobFunction:
        function.job_kind = JobKind(name=name, gpu=gpu, run=function)
        return function

    return declare


def check_known(name: str) -> None:
    """Raise ValueError, listing the known kinds, if ``name`` is not one."""
    if name not in KINDS:
        raise ValueError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")


def load(name: str) -> JobKind:
    """Import kind ``name``'s module and return its declaration."""
    check_known(name)
    module_name, _, function_name = KINDS[name].partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    declared = getattr(function, "job_kind", None)
    if not isinstance(declared, JobKind) or declared.name != name:
        raise TypeError(f"{KINDS[name]} is not declared with @job_kind({name!r}, gpu=...)")
    return declared
