"""The `mmdata` command. Thin: each command lives in mmdata/commands/ and is registered here explicitly."""
from __future__ import annotations

import click

from mmdata.commands import shards, tokenizers
from mmdata.commands.align import align_cmd
from mmdata.commands.dedup import dedup_cmd
from mmdata.commands.doctor import doctor_cmd
from mmdata.commands.download import download_cmd
from mmdata.commands.filter import filter_cmd
from mmdata.commands.media import audio_cmd, frames_cmd
from mmdata.commands.run import run_cmd
from mmdata.commands.shots import shots_cmd
from mmdata.commands.train import eval_cmd, train_cmd
from mmdata.commands.vad import vad_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="mmdata")
@click.option("--storage-options", "storage_options", default=None, metavar="JSON",
              help="fsspec options for s3://, gs://... work stores and outputs, e.g. "
                   "'{\"endpoint_url\": \"http://minio:9000\"}' (also: MMDATA_STORAGE_OPTIONS, or `storage:` in a "
                   "pipeline YAML). Credentials are best left to the environment (AWS_*, a profile).")
def cli(storage_options):
    """mmdata builds tri-modal (video frames, speech, text) pretraining corpora as webdataset shards,
    and pretrains on them.

    \b
    Pipeline: download -> [shots] -> [vad] -> frames -> audio -> align -> [filter] -> [dedup] -> tokenizers fit -> quantize -> shard -> train
    Example:
      mmdata download manifest.csv --work work
      mmdata run examples/icode.yaml
      mmdata doctor                      # is this machine ready? (run it first when something fails)
      mmdata run pipeline.yaml           # with work: s3://bucket/work and out: s3://bucket/shards
    """
    if storage_options is not None:
        import os

        from mmdata.commands.common import handle_usage_errors
        from mmdata.store.fs import STORAGE_OPTIONS_ENV, storage_options_from_env

        os.environ[STORAGE_OPTIONS_ENV] = storage_options  # every store of this run, worker processes too
        handle_usage_errors(storage_options_from_env)  # a malformed value stops here, exit 2


for command in (download_cmd, shots_cmd, vad_cmd, frames_cmd, audio_cmd, align_cmd, filter_cmd, dedup_cmd, *tokenizers.COMMANDS,
                *shards.COMMANDS, train_cmd, eval_cmd, run_cmd, doctor_cmd):
    cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
