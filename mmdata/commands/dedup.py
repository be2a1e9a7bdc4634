"""`mmdata dedup`: signatures of every clip, then each later copy rejected (mmdata/pipelines/dedup.py)."""
from __future__ import annotations

import logging
import sys

import click

from mmdata.commands import common
from mmdata.dedup.index import DedupConfig

HELP = """Find copies across the corpus and keep one: the first in manifest order (chunk, then row). A clip is
a copy of an earlier one when its source's video and audio packets and its window are the same (exact: a
re-muxed copy) or when its sampled frames' perceptual hashes are within --max-distance bits of the earlier
clip's (near: a re-encode at another bitrate, a crop of a few pixels). Each copy becomes an error row
`duplicate_of:<key>` (the detail says exact or near, and the distance); quantize, the tokenizer fit and shard
leave it out, and the funnel counts it. Run it after frames (and filter), before quantize.
The config file's section is `dedup:`.

Example:

\b
  mmdata dedup --work work --max-distance 10
  mmdata stats --work work            # the funnel: dedup: duplicate_of
"""


@click.command("dedup", help=HELP)
@common.stage_options
@click.option("--max-distance", "max_distance", type=int, default=None,
              help="near: most bits (of 64) the median sampled-frame pair may differ in. [10]")
@click.option("--exact/--no-exact", "exact", default=None, help="Find copies with the same packets and window. [on]")
@click.option("--near/--no-near", "near", default=None, help="Find copies with near-identical frames. [on]")
def dedup_cmd(run_opts: common.RunOptions, **opts):
    from mmdata.pipelines.dedup import run_dedup

    cfg = common.stage_config(DedupConfig, run_opts, "dedup", opts)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summaries = common.handle_usage_errors(run_dedup, run_opts.work, cfg, run_opts.runner)
    for s in summaries:
        click.echo(s.render())
    sys.exit(max(s.exit_code for s in summaries))
