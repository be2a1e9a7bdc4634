"""`mmdata filter`: measure every clip and reject those outside the thresholds (mmdata/pipelines/filters.py)."""
from __future__ import annotations

import click

from mmdata.commands import common
from mmdata.filters.rules import FilterConfig
from mmdata.pipelines.filters import FilterStage

HELP = """Measure every clip (length, picture size and aspect, blank frames, motion between its sampled frames,
share of its audio that Silero VAD finds as speech, its transcript's words per second of speech and language)
and reject the clips outside the thresholds given: each becomes an error row whose reason names the filter
(too_short, too_long, low_resolution, bad_aspect, black_frames, static_video, low_speech, few_words,
wrong_language) and whose detail holds its scores. Quantize and shard leave rejected
clips out. Run it after frames and audio, before quantize. With no threshold it only records scores:
`mmdata stats --work W` shows their histograms and the funnel.
The config file's section is `filters:`.

Example:

\b
  mmdata filter --work work --min-duration 2 --min-side 240 --max-aspect 2.4 \\
      --max-black-fraction 0.5 --min-motion 0.01 --min-speech-ratio 0.3 --min-words-per-second 0.5 \\
      --language en
  mmdata stats --work work            # the funnel and the score histograms
"""


@click.command("filter", help=HELP)
@common.stage_options
@click.option("--min-duration", "min_duration_s", type=float, default=None, help="too_short: shortest clip kept, s.")
@click.option("--max-duration", "max_duration_s", type=float, default=None, help="too_long: longest clip kept, s.")
@click.option("--min-side", "min_side", type=int, default=None,
              help="low_resolution: smallest short side of the source picture kept, px (as shown).")
@click.option("--min-aspect", "min_aspect", type=float, default=None, help="bad_aspect: least width/height kept.")
@click.option("--max-aspect", "max_aspect", type=float, default=None, help="bad_aspect: greatest width/height kept.")
@click.option("--max-black-fraction", "max_black_fraction", type=float, default=None,
              help="black_frames: greatest share of blank (near-black or flat) sampled frames kept, 0..1.")
@click.option("--min-motion", "min_motion", type=float, default=None,
              help="static_video: least median change between consecutive sampled frames kept, 0..1.")
@click.option("--min-speech-ratio", "min_speech_ratio", type=float, default=None,
              help="low_speech: least share of the clip's audio that Silero VAD finds as speech, 0..1.")
@click.option("--min-words-per-second", "min_words_per_second", type=float, default=None,
              help="few_words: least transcript words per second of speech (the VAD's, else the clip's length).")
@click.option("--language", "language", default=None,
              help="wrong_language: the transcript languages kept, ISO 639 codes: en, or en,de. A transcript of "
                   "fewer than --language-min-words words has no language and passes.")
@click.option("--min-language-confidence", "min_language_confidence", type=float, default=None,
              help="wrong_language: a detection less sure than this (0..1) does not reject.")
@click.option("--language-min-words", "language_min_words", type=int, default=None,
              help="Fewer words than this: too few to tell the language (scored as none). [5]")
@click.option("--black-range", "black_range", type=float, default=None,
              help="A frame whose luma spread (1st-99th percentile, 0..1) is under this is blank. [0.06]")
def filter_cmd(run_opts: common.RunOptions, **opts):
    cfg = common.stage_config(FilterConfig, run_opts, "filters", opts)
    common.run_stage_and_exit(FilterStage(cfg), run_opts)
