"""Commands for the final corpus: `shard` (write it), `verify`, `inspect` and `stats` (read it)."""
from __future__ import annotations

import sys

import click

from mmdata.commands import common
from mmdata.config import build_config, load_yaml_section
from mmdata.pipelines.runner import EXECUTORS, RunnerConfig


def _read_or_exit(fn, *args, **kwargs):
    """Usage errors exit 2; a damaged shard met while reading exits 1 and points at `mmdata verify`."""
    from mmdata.shards.reader import ShardReadError

    try:
        return common.handle_usage_errors(fn, *args, **kwargs)
    except ShardReadError as e:
        click.echo(f"error: damaged shard {e.shard}: {e}; run `mmdata verify` for the full list of problems", err=True)
        sys.exit(1)


@click.command("shard", help="Write the work folder's quantized clips as webdataset tar shards, one sample per "
                             "clip, each chunk into its own shards (chunks in parallel; a re-run rewrites only "
                             "the chunks whose inputs changed), plus index.json and sizes.json. Example:\n\n"
                             "  mmdata shard --work work --out shards --keep frames --shard-size 1GB")
@click.option("--work", "work", required=True, type=common.Location(exists=True),
              help="Work store (folder or URL) whose quantize outputs become samples.")
@click.option("--out", "out", required=True, type=common.Location(), help="Folder or URL (s3://...) for the shards.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="YAML config; its `shard:` section uses the option names below.")
@click.option("--prefix", default=None,
              help="Shard file names: OUT/<prefix>-<chunk>-<part>.tar, e.g. shard-000012-000000.tar (default: shard).")
@click.option("--shard-size", "shard_size", default=None,
              help="Largest shard in bytes: 1000000000, 500MB, 1GiB (default: 1GB).")
@click.option("--max-samples", "max_samples", type=int, default=None, help="Samples per shard at most (default 10000).")
@click.option("--keep", "keep", multiple=True, type=click.Choice(["frames", "audio"]),
              help="Also store the frame JPEGs (frames) or the FLAC audio (audio); repeat for both.")
@click.option("--tokenizers", "tokenizers", type=common.Location(exists=True), default=None,
              help="Tokenizer folder (text/, speech/, vision/ with config.json) recorded in index.json and used "
                   "to check token ids against vocabulary sizes. [WORK/tokenizers, where quantize reads it; "
                   "refused when the clips were quantized with another set]")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="local: worker processes on this machine (default). ray: Ray actors (embedded, or --ray-address).")
@click.option("--ray-address", "ray_address", default=None, help="Address of a running Ray cluster, e.g. auto.")
@click.option("--workers", type=int, default=None,
              help="Chunks sharded at once (local: default one per core, 1 runs in this process).")
@click.option("--no-progress", "no_progress", is_flag=True, default=False, help="Hide the progress bar.")
def shard_cmd(work, out, config, executor, ray_address, workers, no_progress, **opts):
    from mmdata.shards.build import ShardConfig, build_shards
    from mmdata.workdir import WorkDir

    opts["keep"] = opts["keep"] or None  # nothing given: the config file or the default decides
    cfg = common.handle_usage_errors(lambda: build_config(ShardConfig, opts, load_yaml_section(config, "shard")))
    run = dict(executor=executor or ("ray" if ray_address else None), ray_address=ray_address, workers=workers)
    runner = common.handle_usage_errors(lambda: build_config(RunnerConfig, run, load_yaml_section(config, "runner")))
    summary = common.handle_usage_errors(build_shards, WorkDir(work), out, cfg, progress=not no_progress,
                                         runner=runner)
    click.echo(summary.render())
    sys.exit(summary.exit_code)


@click.command("verify", help="Read every shard back and check it against index.json and the sample schema; "
                              "exit 1 on any problem. Example:\n\n  mmdata verify shards")
@click.argument("out", type=common.Location(exists=True))
@click.option("--no-progress", "no_progress", is_flag=True, default=False, help="Hide the progress bar.")
def verify_cmd(out, no_progress):
    from mmdata.shards.verify import verify

    report = common.handle_usage_errors(verify, out, progress=not no_progress)
    click.echo(report.render())
    sys.exit(report.exit_code)


@click.command("inspect", help="Print one sample (by key, or the first of a shard) and optionally draw a contact "
                               "sheet. Example:\n\n  mmdata inspect shards vid001_0_4000 --png sheet.png")
@click.argument("out", type=common.Location(exists=True))
@click.argument("target")
@click.option("--sample", "position", type=int, default=0, help="With a shard name: which sample (0-based).")
@click.option("--png", "png", type=click.Path(dir_okay=False), default=None,
              help="Write a contact sheet: frames, waveform, words on a time line, token grids.")
def inspect_cmd(out, target, position, png):
    from mmdata.shards.inspect import contact_sheet, describe, find_sample

    shard, key, fields = _read_or_exit(find_sample, out, target, position)
    click.echo(describe(shard, key, fields))
    if png:
        contact_sheet(key, fields, png)
        click.echo(f"contact sheet: {png}")


@click.command("stats", help="Summarise a corpus: clips, hours, modality mixes, clip lengths, words per clip, "
                             "token histograms, failures by reason; with --work, the funnel (clips and hours each "
                             "stage and filter removed, in order) and the filter scores' histograms. OUT may be "
                             "left out to see only the funnel (before sharding, to tune filters). Example:\n\n"
                             "  mmdata stats shards --work work --html report.html\n"
                             "  mmdata stats --work work")
@click.argument("out", type=common.Location(exists=True), required=False)
@click.option("--work", "work", type=common.Location(exists=True), default=None,
              help="Read failures and the funnel from this work folder's status tables (default: as index.json "
                   "recorded the failures).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Also write an HTML page with the plots.")
@click.option("--no-progress", "no_progress", is_flag=True, default=False, help="Hide the progress bar.")
def stats_cmd(out, work, html_path, no_progress):
    from mmdata.shards.stats import corpus_stats, write_html

    if out is None and work is None:
        raise click.UsageError("give OUT (a shard folder), --work, or both")
    stats = _read_or_exit(corpus_stats, out, work, progress=not no_progress)
    click.echo(stats.render())
    if html_path:
        write_html(stats, html_path)
        click.echo(f"html: {html_path}")


COMMANDS = [shard_cmd, verify_cmd, inspect_cmd, stats_cmd]
