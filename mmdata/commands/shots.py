"""`mmdata shots`: every downloaded source's shot boundaries (mmdata/pipelines/shots.py)."""
from __future__ import annotations

import click

from mmdata.commands import common
from mmdata.media.shots import DETECTORS, ShotsConfig
from mmdata.pipelines.shots import ShotsStage

HELP = """Find the shot boundaries (hard cuts) of every downloaded video source: each frame is decoded once,
small, and scored by a detector; the cut times (source seconds) and the detector's settings are stored per
source. Detectors: content (PySceneDetect's HSV difference between frames; the default), adaptive (that
difference against its rolling average: fewer false cuts in fast motion), both without model weights; and
transnetv2 (a neural network whose weights ship in the `transnet` extra; slow on a CPU, meant for a GPU).
Image and audio sources get `present: false`. Run it after `mmdata download`; then
`mmdata align --segment shots` makes clips that never cross a cut, and `--respect-shots` keeps fixed or cue
clips inside shots. The config file's section is `shots:`.

Example:

\b
  mmdata shots --work work                                  # content detector, threshold 27
  mmdata shots --work work --detector adaptive --min-shot 1.0
  mmdata align --work work --segment shots --segment-max-len 10 --segment-min-len 2
"""


@click.command("shots", help=HELP)
@common.stage_options
@click.option("--detector", type=click.Choice(list(DETECTORS)), default=None, help="Shot detector. [content]")
@click.option("--threshold", type=float, default=None,
              help="Score over which a frame starts a shot. [content 27, adaptive 3, transnetv2 0.5]")
@click.option("--min-shot", "min_shot_s", type=float, default=None,
              help="A cut closer than this to the previous one is not a cut, s. [0.5]")
@click.option("--width", type=int, default=None, help="Frames are scaled to this width for the detector, px. [256]")
@click.option("--device", default=None, help="Device for transnetv2: cpu, cuda. [cpu]")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="ffmpeg's allowance per source, s, plus a second per second of video. [60]")
def shots_cmd(run_opts: common.RunOptions, **opts):
    cfg = common.stage_config(ShotsConfig, run_opts, "shots", opts)
    common.run_stage_and_exit(ShotsStage(cfg), run_opts)
