"""The `mmdata` command. Thin: each command lives in mmdata/commands/ and is registered here explicitly."""
from __future__ import annotations

import click

from mmdata.commands import shards, tokenizers
from mmdata.commands.align import align_cmd
from mmdata.commands.doctor import doctor_cmd
from mmdata.commands.download import download_cmd
from mmdata.commands.media import audio_cmd, frames_cmd
from mmdata.commands.run import run_cmd
from mmdata.commands.train import eval_cmd, train_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="mmdata")
def cli():
    """mmdata builds tri-modal (video frames, speech, text) pretraining corpora as webdataset shards,
    and pretrains on them.

    \b
    Pipeline: download -> frames -> audio -> align -> tokenizers fit -> quantize -> shard -> train
    Example:
      mmdata download manifest.csv --work work
      mmdata run examples/icode.yaml
      mmdata doctor                      # is this machine ready? (run it first when something fails)
    """


for command in (download_cmd, frames_cmd, audio_cmd, align_cmd, *tokenizers.COMMANDS, *shards.COMMANDS, train_cmd, eval_cmd, run_cmd, doctor_cmd):
    cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
