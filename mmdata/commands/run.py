"""`mmdata run`: the whole pipeline from one YAML file."""
from __future__ import annotations

import logging
import sys

import click

from mmdata.commands import common
from mmdata.pipelines.runner import EXECUTORS

HELP = """Run download -> frames -> audio -> align -> filter (with a `filters:` section) -> tokenizers (fit
unless given) -> quantize -> shard as described by PIPELINE (YAML). Each stage section uses the same option
names as that stage's command. At the end: the funnel (clips and hours each stage and filter removed).
Interrupted, it resumes: run the same command again. Exit code: 0 all ok, 3 some items failed, 2 usage error.

Example:

\b
  mmdata run examples/icode.yaml
  mmdata run examples/icode.yaml --ray-address auto
\b
  # pipeline.yaml
  manifest: manifest.csv
  work: work
  out: shards
  preset: icode
  download: {max_height: 360}
  filters: {min_duration: 2, min_side: 240, max_black_fraction: 0.5, min_motion: 0.01}
  tokenizers: {text: {vocab_size: 8000}, speech: {k: 100}, vision: {k: 1024}}
  shard: {shard_size: 1GB}
"""


@click.command("run", help=HELP)
@click.argument("pipeline", type=click.Path(dir_okay=False, exists=True))
@click.option("--executor", type=click.Choice(EXECUTORS), default=None, help="Overrides the YAML's runner.executor.")
@click.option("--ray-address", default=None, help="A running Ray cluster (implies --executor ray).")
@click.option("--workers", type=int, default=None, help="Worker processes (local; default one per core) or Ray actors per stage.")
@click.option("--gpus-per-worker", "gpus_per_worker", type=float, default=None,
              help="GPUs each worker of a GPU stage (quantize) asks Ray for: 1, 2, or a fraction such as 0.5. [1]")
@click.option("--force", is_flag=True, default=None,
              help="Redo the chunks made with options the YAML no longer has (and what reads them) instead of "
                   "stopping; see README \"Resume rules\".")
@click.option("--retry-failed", "retry_failed", is_flag=True, default=None,
              help="Give the items that failed another chance, in every stage (the YAML's runner.retry_failed).")
@click.option("--no-progress", is_flag=True, default=False, help="Hide progress bars.")
def run_cmd(pipeline, executor, ray_address, workers, gpus_per_worker, force, retry_failed, no_progress):
    from mmdata.pipelines.pipeline import PipelineConfig, pipeline_funnel, render, run_pipeline

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli = dict(executor=executor or ("ray" if ray_address else None), ray_address=ray_address, workers=workers,
               gpus_per_worker=gpus_per_worker, force=force, retry_failed=retry_failed)
    cfg = common.handle_usage_errors(PipelineConfig.from_yaml, pipeline, cli)
    cfg.runner.progress = not no_progress
    results = common.handle_usage_errors(run_pipeline, cfg)
    click.echo(render(results))
    click.echo(pipeline_funnel(cfg).render())
    sys.exit(common.EXIT_ITEMS_FAILED if any(r.failed for r in results) else common.EXIT_OK)
