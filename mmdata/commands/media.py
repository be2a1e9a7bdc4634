"""`mmdata frames` and `mmdata audio`: parse options, build the typed config, run the stage."""
from __future__ import annotations

from typing import Any

import click

from mmdata.commands import common
from mmdata.config import load_yaml_section
from mmdata.media.config import PRESETS, RESIZE_MODES, WINDOW_POLICIES, build_media_config
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.frames import FramesStage

FRAMES_HELP = """Sample frames of every downloaded clip's [start, end] window with decord and store them as JPEGs
with their exact presentation times (seconds from the clip start) in WORK/frames/<clip>/.

Either --frames N (evenly spaced: the frame nearest each of N segment centres) or --fps F (the first frame
in every 1/F slot). Frames are resized so the short side is --size, then centre-cropped to a square
(--resize center_crop) or kept in aspect (--resize keep_aspect). Sources without video (audio files) give
`present: false`; broken files give error rows with a reason. Exit code: 0 all ok, 3 some items failed,
2 usage error.

Example:

\b
  mmdata frames --work work --preset icode            # 8 frames, 224x224
  mmdata frames --work work --fps 16 --size 128       # the AV transformer recipe
  mmdata frames --work work --frames 4 --resize keep_aspect --jpeg-quality 95
"""

AUDIO_HELP = """Extract every clip's waveform with ffmpeg: downmixed to mono, resampled to --sample-rate, stored as
FLAC in WORK/audio/<clip>/, covering exactly the clip's window (sample 0 = clip start; the same window
as the frames stage). Optional log-mel features (--mel-bins) for recipes that train on spectrograms.
A source with no audio track gives `present: false` (speech absent, not an error); digital silence is
detected and recorded (`silent: true`). Exit code: 0 all ok, 3 some items failed, 2 usage error.

Example:

\b
  mmdata audio --work work --preset icode             # 16 kHz
  mmdata audio --work work --preset avbert            # 44.1 kHz + 128 log-mel bins, 10 ms hop
  mmdata audio --work work --sample-rate 22050 --mel-bins 80 --mel-hop-ms 12.5
"""

_preset_option = click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default=None,
                              help="Recipe defaults (icode: 8 frames, 224 px, 16 kHz; avbert: 16 fps, 128 px, "
                                   "44.1 kHz, 128 mel bins); options and the config file override it.")
_window_option = click.option("--window", type=click.Choice(WINDOW_POLICIES), default=None,
                              help="A clip running past the source's end: clamp it there, or reject it. [clamp]")
_timeout_option = click.option("--timeout", "timeout_s", type=float, default=None,
                               help="Seconds allowed for each ffprobe/ffmpeg run, plus one per second of media "
                                    "it decodes. [60]")


def _build(stage: str, run_opts: common.RunOptions, cli: dict[str, Any], preset_name: str | None):
    return common.handle_usage_errors(lambda: build_media_config(
        stage, load_yaml_section(run_opts.config, stage), {**cli, "preset": preset_name}))


@click.command("frames", help=FRAMES_HELP)
@common.stage_options
@_preset_option
@click.option("--frames", "frames", type=int, default=None, help="Frames per clip, evenly spaced. [8]")
@click.option("--fps", "fps", type=float, default=None, help="Frames per second of clip instead of --frames.")
@click.option("--size", type=int, default=None, help="Short side in pixels after resizing (0 keeps it). [224]")
@click.option("--resize", type=click.Choice(RESIZE_MODES), default=None, help="Square centre crop or keep aspect. "
              "[center_crop]")
@click.option("--jpeg-quality", type=int, default=None, help="JPEG quality 1-100. [90]")
@click.option("--decode-threads", type=int, default=None, help="Decoder threads per worker (0: decoder's choice). [1]")
@click.option("--min-decoded-fraction", type=float, default=None,
              help="Keep a file with a corrupt tail when this share of the clip decodes. [0.5]")
@_window_option
@_timeout_option
def frames_cmd(run_opts: common.RunOptions, preset_name: str | None, **opts):
    cfg = _build("frames", run_opts, opts, preset_name)
    common.run_stage_and_exit(FramesStage(cfg), run_opts)


@click.command("audio", help=AUDIO_HELP)
@common.stage_options
@_preset_option
@click.option("--sample-rate", type=int, default=None, help="Output rate in Hz. [16000]")
@click.option("--mel-bins", type=int, default=None, help="Log-mel bins to store as mel.npy (0: none). [0]")
@click.option("--mel-hop-ms", type=float, default=None, help="Mel frame hop in milliseconds. [10]")
@click.option("--mel-win-ms", type=float, default=None, help="Mel analysis window in milliseconds. [25]")
@click.option("--silence-dbfs", type=float, default=None, help="Peak level at or below which a clip is silent. [-90]")
@_window_option
@_timeout_option
def audio_cmd(run_opts: common.RunOptions, preset_name: str | None, **opts):
    cfg = _build("audio", run_opts, opts, preset_name)
    common.run_stage_and_exit(AudioStage(cfg), run_opts)
