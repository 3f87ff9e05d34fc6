"""``tpo train``: DPO + SFT fine-tuning, in this process or as a job."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm


from tpo.cli.common import Context


@click.command("train", context_settings={"ignore_unknown_options": True,
                                       "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def train_cmd(obj: Context, args: tuple[str, ...]) -> None:
    """Fine-tune with DPO + alpha*SFT (TRL, LoRA by default) as a background job, and follow it.

    Takes the options of `python -m tpo.training.train` (see `tpo train --help`: TPO's and
    every option of TRL's DPOConfig, e.g. --lr, --epochs, --batch-size, --warmup-ratio,
    --gradient-accumulation-steps, --seed), a YAML file of them with --config FILE (e.g.
    configs/longva.yaml; options given after it win), plus
    --from-store (export the accepted pairs into OUTPUT/dataset and train on them; --frames
    and --frames-from shape that export, as in `tpo export`),
    --num-processes N and --accelerate-config FILE (several GPUs through accelerate).
    The run is registered as a model in the store; Ctrl-C cancels it.
    """
    from tpo import jobs
    from tpo.training.train import build_parser, parse_options
    from tpo.training.train_data import TrainError
    from tpo.training.train_job import job_params

    parser = build_parser(prog="tpo train", description=(
        "Fine-tune a video-LM on curated pairs (TPO: DPO + alpha * SFT) as a background job; "
        "the run is registered as a model."))
    parser.add_argument("--from-store", action="store_true",
                        help="Train on the store's accepted pairs (exported into OUTPUT/dataset).")
    parser.add_argument("--frames", type=int, default=None,
                        help="--from-store: frames per exported pair (default 64; whole: at most "
                             "1 per second of video, so a 3 s video gives 3; --max-frames, when "
                             "lower, wins).")
    parser.add_argument("--frames-from", choices=["whole", "chosen", "rejected", "union"],
                        default=None,
                        help="--from-store: whole (default, the paper's setting: the whole video "
                             "sampled uniformly, the same frames for chosen and rejected); "
                             "chosen / rejected / union: the frames that side saw (departures "
                             "from the paper). See `tpo export --help`.")
    parser.add_argument("--num-processes", type=int, default=1, help="Processes (GPUs).")
    parser.add_argument("--accelerate-config", default=None,
                        help="An accelerate config file, e.g. configs/accelerate/multi_gpu_ddp.yaml.")
    # --data is optional here (TrainConfig's default None): --from-store replaces it. The
    # options are checked here (TPO's checks); the job builds the TrainConfig (DPOConfig's).
    options, ns = parse_options(parser, list(args))
    if bool(options.get("data")) == ns.from_store:
        parser.error("give --data EXPORT_DIR or --from-store")
    if not ns.from_store and (ns.frames is not None or ns.frames_from is not None):
        parser.error("--frames / --frames-from shape the --from-store export; an export folder's "
                     "frames are fixed (--max-frames caps them)")
    if ns.frames is not None and ns.frames < 1:
        parser.error(f"--frames must be at least 1 (frames per pair), got {ns.frames}")
    try:
        launcher = "accelerate" if ns.accelerate_config or ns.num_processes > 1 else "python"
        frames = {k: v for k, v in (("frames", ns.frames), ("frames_from", ns.frames_from))
                  if v is not None}
        params = job_params(options, launcher=launcher, num_processes=ns.num_processes,
                            accelerate_config=ns.accelerate_config, export_from_store=ns.from_store,
                            **frames)
    except (ValueError, TrainError) as err:
        parser.error(str(err))
    store = obj.store
    job_id = jobs.submit(store, "train", params, log_dir=obj.settings.log_dir)
    click.echo(f"training job #{job_id}; log: {jobs.get(store, job_id)['log_path']}", err=True)
    bar = tqdm(total=1.0, desc="training", file=sys.stderr, leave=False,
               bar_format="{l_bar}{bar}| {elapsed} {postfix}")
    try:
        with bar:
            while (row := jobs.wait(store, job_id, timeout_s=1.0))["status"] not in jobs.FINISHED_STATUSES:
                bar.set_postfix_str((row["progress_text"] or row["status"])[-70:], refresh=False)
                bar.update(round(row["progress"] or 0.0, 4) - bar.n)
    except KeyboardInterrupt:
        jobs.cancel(store, job_id)
        row = jobs.wait(store, job_id, timeout_s=60)
    if row["status"] != "succeeded":
        raise click.ClickException(f"training job #{job_id} {row['status']}: {row['error'] or ''}".strip())
    out = row["output"]
    click.echo(f"{out['summary']}\nregistered as model #{out['model_id']}\n"
               f"adapter and processor in {out['output_dir']}")


#: The commands this module adds to ``tpo`` (see :mod:`tpo.cli`).
COMMANDS = (train_cmd,)
