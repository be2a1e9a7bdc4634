"""`mmdata vad`: every downloaded source's speech regions (mmdata/pipelines/vad.py)."""
from __future__ import annotations

import click

from mmdata.commands import common
from mmdata.pipelines.vad import VadConfig, VadStage

HELP = """Find where each downloaded source's audio holds speech: its whole audio track is decoded at 16 kHz
and Silero VAD (weights shipped in the silero-vad package) gives its speech regions, stored per source in
source seconds with the detector's settings. Images and videos without an audio stream get `present: false`.
Run it after `mmdata download`; then `mmdata align --segment vad` makes clips bounded by speech (`mmdata run`
runs it by itself when `align: {segment: vad}`). The config file's section is `vad:`.

Example:

\b
  mmdata vad --work work
  mmdata align --work work --segment vad --segment-min-len 2 --segment-max-len 15 --segment-pause 0.5
"""


@click.command("vad", help=HELP)
@common.stage_options
@click.option("--threshold", type=float, default=None, help="Speech probability at which speech starts. [0.5]")
@click.option("--release", type=float, default=None, help="Speech ends where the probability stays under this. [0.35]")
@click.option("--min-silence", "min_silence_s", type=float, default=None,
              help="... for at least this long, s; shorter dips stay inside the speech. [0.1]")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="ffmpeg's allowance per source, s, plus a second per second of audio. [60]")
def vad_cmd(run_opts: common.RunOptions, **opts):
    cfg = common.stage_config(VadConfig, run_opts, "vad", opts)
    common.run_stage_and_exit(VadStage(cfg), run_opts)
