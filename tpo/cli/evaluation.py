"""``tpo eval``, ``tpo evals``, ``tpo experiment``, ``tpo leaderboard``: measuring models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from tpo.configs import click_option
from tpo.evaluation.evaluate import EvalConfig
from tpo.evaluation.experiment import config_fields as experiment_fields  # torch-free
from tpo.store import StoreError

from tpo.cli.common import Context, backend_option, floats


def _eval_option(name: str, **overrides):
    """A ``tpo eval`` option declared by :class:`tpo.evaluation.evaluate.EvalConfig`'s field."""
    return click_option(EvalConfig, name, **overrides)


@click.command("eval")
@click.option("--model", "models", multiple=True, required=True,
              help="Model to evaluate (repeatable): hub id, local folder, or registered run #ID.")
@_eval_option("suite", required=True, default=None, show_default=False, metavar="SUITE")
@_eval_option("frames")
@_eval_option("limit")
@_eval_option("max_new_tokens")
@_eval_option("answers")
@_eval_option("protocol")
@click.option("--needle-lengths", default=None, metavar="S,S,...",
              help="Needle suite: haystack lengths in seconds [default 30,60,120,240].")
@click.option("--needle-depths", default=None, metavar="D,D,...",
              help="Needle suite: needle depths in [0, 1] [default 0,0.25,0.5,0.75,1].")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (one per GPU; on the CPU over gloo) that share the questions "
                   "under accelerate launch; answered batches are kept, so a rerun after a "
                   "crash asks only the rest.")
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the stored results as JSON.")
@click.pass_obj
def eval_cmd(obj: Context, models: tuple[str, ...], suite: str, frames: int, limit: int | None,
             max_new_tokens: int, answers: str, protocol: str, needle_lengths: str | None,
             needle_depths: str | None, num_processes: int, as_json: bool) -> None:
    """Multiple-choice accuracy of one or more models on a benchmark or the needle suite.

    Results are stored (the app's Evaluate tab shows them next to earlier runs); the
    needle suite also writes a length x depth heatmap PNG. --protocol lmms-eval asks and
    scores Video-MME, MLVU and LongVideoBench as lmms-eval does (its prompts, answer parsers
    and frame sampling; MLVU's M-avg), for numbers comparable with published ones.
    --num-processes N shares the questions among N processes (same result as one).
    """
    from tpo.evaluation import eval_results as er
    from tpo.evaluation import evaluate as ev
    from tpo.models.modelref import resolve

    try:
        config = ev.EvalConfig(suite=suite, frames=frames, limit=limit,
                               max_new_tokens=max_new_tokens, answers=answers,
                               protocol=protocol,
                               needle_lengths=floats(needle_lengths, "--needle-lengths"),
                               needle_depths=floats(needle_depths, "--needle-depths"))
        if config.suite_name == "needle":
            config.needle_config()  # its own checks, before any model loads
        elif needle_lengths or needle_depths:
            raise ValueError("--needle-lengths and --needle-depths apply to --suite needle only")
        refs = [resolve(obj.store, m) for m in models]
    except (ValueError, StoreError) as err:
        raise click.UsageError(str(err))
    bar = tqdm(total=1.0, desc="evaluating", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")

    def progress(fraction: float, text: str) -> None:
        bar.set_postfix_str(text[-60:], refresh=False)
        bar.update(round(fraction, 4) - bar.n)

    from tpo.evaluation.shard import ShardError, evaluate_sharded
    from tpo.models.vlm import ModelLoadError
    from tpo.media.video import VideoError

    data = obj.settings.data_dir
    try:
        with bar:
            if num_processes > 1:
                ids = evaluate_sharded(obj.store, refs, config, num_processes,
                                       cache_dir=data / "needle", out_dir=data / "evals",
                                       progress=progress)
            else:
                ids = ev.evaluate(obj.store, refs, config, cache_dir=data / "needle",
                                  out_dir=data / "evals", progress=progress)
    except (ModelLoadError, VideoError, ValueError, ShardError) as err:
        raise click.ClickException(str(err))
    evals = [er.get_eval(obj.store, i) for i in ids]
    if as_json:
        click.echo(json.dumps(evals, indent=2, default=str))
        return
    click.echo(er.results_table(evals).to_string(index=False))
    tasks = er.task_table(evals)
    if len(tasks) > 1:
        click.echo("\naccuracy % per task\n" + tasks.to_string(index=False))
    for e in evals:
        if e["summary"].get("errors"):
            click.echo(f"eval #{e['id']}: {len(e['summary']['errors'])} question(s) skipped, "
                       "their video could not be read", err=True)
        if e["summary"].get("missing"):
            click.echo(f"eval #{e['id']}: {len(e['summary']['missing'])} question(s) not asked, "
                       "their video file is missing", err=True)
        if e["heatmap_path"]:
            click.echo(f"heatmap ({e['model']}): {e['heatmap_path']}")


@click.command("evals")
@click.argument("eval_ids", type=int, nargs=-1, metavar="[ID [ID2]]")
@click.option("--suite", type=click.Choice(["needle", "videomme", "mlvu", "longvideobench",
                                           "synthetic"]),
              help="Only evaluations of this suite.")
@click.option("--protocol", type=click.Choice(["tpo", "lmms-eval"]),
              help="Only evaluations this protocol produced.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def evals_cmd(obj: Context, eval_ids: tuple[int, ...], suite: str | None, protocol: str | None,
              as_json: bool) -> None:
    """Stored evaluations (from `tpo eval` and the app); with ID, one evaluation's answers;
    with ID ID2, the two compared question by question (e.g. base vs. fine-tuned)."""
    import pandas as pd

    from tpo.evaluation import eval_results as er

    if len(eval_ids) > 2:
        raise click.UsageError("give at most two evaluation ids")
    try:
        if len(eval_ids) == 2:
            _print_diff(er.diff(obj.store, *eval_ids), as_json)
            return
        if eval_ids:
            row = er.get_eval(obj.store, eval_ids[0])
            items = er.eval_items(obj.store, eval_ids[0])
    except (StoreError, ValueError) as err:
        raise click.ClickException(str(err))
    if eval_ids:
        if as_json:
            click.echo(json.dumps({**row, "items": items}, indent=2, default=str))
            return
        m_avg = er.m_avg_of(row)
        click.echo(f"eval #{row['id']}: {row['model']} on {row['suite']}, "
                   f"{er.frames_label(row['frames'])}: {row['n_correct']}/{row['n_items']} correct, "
                   f"{row['n_unparsed']} unparsed"
                   + (f", M-avg {100 * m_avg:.1f}%" if m_avg is not None else "")
                   + f" (protocol {er.protocol_of(row)})")
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            click.echo(er.answers_table(items).to_string(index=False))
        return
    rows = er.list_evals(obj.store, suite=suite, protocol=protocol)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    elif not rows:
        click.echo("no evaluations yet: run `tpo eval`")
    else:
        click.echo(er.results_table(rows).to_string(index=False))


def _print_diff(d: dict, as_json: bool) -> None:
    import pandas as pd

    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    first, second = d["first"], d["second"]
    click.echo(f"first: #{first['id']} {first['model']}   second: #{second['id']} "
               f"{second['model']}   ({d['n']} shared questions, {d['unmatched']} unmatched)")
    if first["protocol"] != second["protocol"]:
        click.echo(f"protocols differ: first {first['protocol']}, second {second['protocol']}")
    for title, rows in (("", d["overall"]), ("per duration class", d["by_duration"]),
                        ("per task", d["by_task"])):
        if title and len(rows) < 2:
            continue
        click.echo((f"\n{title}\n" if title else "")
                   + pd.DataFrame(rows).to_string(index=False))
    click.echo(f"\nonly the first right: {len(d['only_first'])} · only the second right: "
               f"{len(d['only_second'])} · McNemar exact p = {d['p_value']:.3g}")


def _config_options(config_fields):
    """click options mirroring a config dataclass's fields (help from their metadata): a
    ``flag`` in the metadata names the option ("--lora/--full"), tuples take "a,b,c", and an
    option not given is None, so the dataclass's own default (or its quick value) applies."""
    def decorate(fn):
        for f in reversed(config_fields):
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            kind, help_text = str(f.type), f.metadata.get("help", "")
            if kind.split(" |")[0] == "bool":
                option = (click.option(flag, f.name, default=None, help=help_text) if "/" in flag
                          else click.option(flag, f.name, is_flag=True, help=help_text))
            elif kind.startswith("tuple"):
                option = click.option(flag, f.name, default=None, metavar="A,B,...",
                                      help=help_text)
            else:
                convert = {"int": int, "float": float}.get(kind.split(" |")[0], str)
                option = click.option(flag, f.name, type=convert, default=None, help=help_text)
            fn = option(fn)
        return fn
    return decorate


def _experiment_reporter():
    """A Reporter drawing one tqdm bar per stage and a line per finished stage (stderr)."""
    from tpo.evaluation.experiment import Reporter

    class Bars(Reporter):
        bar = None
        index = total = 0

        def stage_started(self, stage, index, total, resumed):
            self.index, self.total = index, total
            if resumed:
                click.echo(f"[{index:>2}/{total}] {stage.title:<34} done earlier", err=True)
                return
            self.bar = tqdm(total=1.0, desc=f"[{index:>2}/{total}] {stage.title}",
                            file=sys.stderr, leave=False,
                            bar_format="{l_bar}{bar}| {elapsed} {postfix}")

        def progress(self, fraction, text):
            if self.bar is not None:
                self.bar.set_postfix_str(text[-60:], refresh=False)
                self.bar.update(round(fraction, 4) - self.bar.n)

        def stage_finished(self, stage, record):
            self.close()
            click.echo(f"[{self.index:>2}/{self.total}] {stage.title:<34} {record['seconds']:>8.1f} s  "
                       f"{record['outputs'].get('summary', '')}", err=True)

        def close(self):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Bars()


@click.command("experiment")
@_config_options(experiment_fields())
@click.option("--restart", is_flag=True,
              help="Start afresh in a folder that holds this experiment with other settings.")
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def experiment_cmd(obj: Context, restart: bool, as_json: bool, **options) -> None:
    """Run TPO's self-training loop end to end and measure it: render synthetic training and
    held-out videos, generate pairs with the base model, accept them, fine-tune (DPO + SFT),
    and evaluate base and fine-tune on the held-out videos and the needle suite.

    Writes OUT/report.md and OUT/report.json (accuracy per suite, length and needle depth,
    McNemar p, pairs, time per stage). Run the same command again to resume after an
    interruption; --quick is a small run (about 20 minutes on 2 CPU cores).
    """
    from tpo.evaluation.experiment import ExperimentConfig, ExperimentError, run_experiment
    from tpo.models.vlm import ModelLoadError

    tuples = {f.name for f in experiment_fields() if str(f.type).startswith("tuple")}
    given = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in tuples:
            value = tuple(x.strip() for x in value.split(",") if x.strip())
            if name != "ablations":
                try:
                    value = tuple(float(x) for x in value)
                except ValueError:
                    raise click.UsageError(f"--{name.replace('_', '-')} takes numbers separated "
                                           f"by commas, got {options[name]!r}")
        given[name] = value
    try:
        config = ExperimentConfig(**given)
    except ValueError as err:
        raise click.UsageError(str(err))
    reporter = _experiment_reporter()
    try:
        report = run_experiment(config, obj.store, obj.settings.data_dir, restart=restart,
                                reporter=reporter)
    except (ExperimentError, ModelLoadError) as err:
        raise click.ClickException(str(err))
    except KeyboardInterrupt:
        raise click.ClickException("interrupted; run the same command again to resume")
    finally:
        reporter.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    _print_experiment(report)


def _print_experiment(report: dict) -> None:
    """The stage table and the accuracy table of an experiment's report."""
    import pandas as pd

    from tpo.evaluation.experiment import SUITES

    click.echo(pd.DataFrame([{"stage": s["title"], "seconds": s["seconds"],
                              "result": s["summary"][:70]} for s in report["stages"]]
                            ).to_string(index=False))
    rows = []
    for r in report["results"]:
        vs = r.get("vs_base", {})
        rows.append({"model": f"{r['name']} ({r['model']})",
                     **{f"{s} %": r["suites"][s]["accuracy %"] for s in SUITES},
                     "both %": r["pooled"]["accuracy %"],
                     **{f"p {s}": (f"{vs[s]['p']:.3g}" if s in vs else "-")
                        for s in (*SUITES, "pooled")}})
    if rows:
        click.echo("\n" + pd.DataFrame(rows).to_string(index=False))
    for variant, why in report["skipped"].items():
        click.echo(f"{variant}: skipped ({why})")
    click.echo(f"\nreport: {Path(report['out_dir']) / 'report.md'}")


@click.command("leaderboard")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of rows.")
@click.pass_obj
def leaderboard_cmd(obj: Context, as_json: bool) -> None:
    """Win rates per pair of models from the Compare tab's votes (95 % Wilson intervals)."""
    from tpo.evaluation.compare import leaderboard

    rows = leaderboard(obj.store)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no votes yet: compare two models in the app's Compare tab")
    for r in rows:
        rate = ("n/a" if r["win_rate"] is None else
                f"{100 * r['win_rate']:.0f}% [{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}]")
        click.echo(f"{r['model']} vs {r['opponent']}: win rate {rate} · {r['votes']} votes "
                   f"({r['wins']} won, {r['losses']} lost, {r['ties']} ties, "
                   f"{r['both_bad']} both bad)")


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (eval_cmd, evals_cmd, experiment_cmd, leaderboard_cmd)
