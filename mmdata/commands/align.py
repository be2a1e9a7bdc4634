"""`mmdata align`: each clip's transcript text and word times, from subtitles or aligned manifest text."""
from __future__ import annotations

import click

from mmdata.commands import common
from mmdata.media.shot_windows import SHORT_RULES
from mmdata.pipelines.align import SEGMENT_MODES, VAD_CHOICES, AlignConfig, AlignStage, segment_work

HELP = """Give every clip its transcript: text, words with clip-relative start/end seconds, and where the
timing came from (asr, manual, forced, vad_interpolated, interpolated).

Sources, in order: the subtitle file the manifest's `subtitles` column named, then YouTube captions
(json3, then WebVTT; manual before automatic; languages in --languages order), then the manifest's `text`
aligned to the clip audio (forced alignment with --forced-model and/or --checkpoint, otherwise placed in
the speech that --vad finds), then the manifest's `caption` without word times. Words of subtitles timed only
per cue (SRT, manual WebVTT) are timed again inside each cue from the clip audio the same way, when the audio
stage ran. A broken subtitle file becomes an error row with its reason;
a clip without any language is kept with present=false.

--segment fixed|cue first cuts whole sources (manifest rows without start/end) into clips: fixed windows
of --segment-len seconds grown until they hold --segment-min-words words (MERLOT Reserve style), or one
clip per caption cue (HowTo100M style). --segment shots cuts them at the shot boundaries of `mmdata shots`
instead (no transcript needed): a clip per shot, long shots split into equal windows of at most
--segment-max-len, shots under --segment-min-len dropped (or merged into the shot before: --short-shots
merge). --respect-shots keeps fixed and cue clips inside shots too. --segment vad makes clips bounded by the
speech `mmdata vad` found (for speech corpora): speech regions closer than --segment-pause join, a longer pause
ends a clip, speech longer than --segment-max-len is cut at its longest pause (equal windows when it has none),
speech under --segment-min-len is dropped; a source with no speech gives no clips (the log says why). Run it
right after `mmdata download` (and `mmdata shots` or `mmdata vad`), before frames and audio.

Example:

\b
  mmdata align --work work
  mmdata align --work work --segment fixed --segment-len 5 --segment-min-words 3
  mmdata align --work work --languages en,de --forced-model mms_fa
  mmdata align --work work --checkpoint wav2vec2_base_960h.pth
  mmdata shots --work work && mmdata align --work work --segment shots --segment-max-len 10
  mmdata vad --work work && mmdata align --work work --segment vad --segment-min-len 2
"""


@click.command("align", help=HELP)
@common.stage_options
@click.option("--languages", default=None, help="Subtitle languages in order of preference, comma-separated. [en]")
@click.option("--origins", default=None,
              help="Subtitle origins in order of preference, comma-separated. [manifest,manual,auto]")
@click.option("--forced-model", "--forced-bundle", "forced_model", default=None,
              help="Pretrained CTC model for forced alignment of manifest text: mms_fa, wav2vec2_base_960h, or a "
                   "torchaudio bundle name; weights from torch hub's cache (downloaded when missing); it also "
                   "retimes cue-level subtitles. [none: words placed in the speech --vad finds]")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
              help="Local weights file for --forced-model (alone: for wav2vec2_base_960h) instead of the cache's.")
@click.option("--device", default=None, help="Device for the alignment model: cpu, cuda. [cpu]")
@click.option("--no-fallback", "no_fallback", is_flag=True, default=False,
              help="Without a checkpoint, keep manifest text without word times instead of estimating them.")
@click.option("--vad", type=click.Choice(list(VAD_CHOICES)), default=None,
              help="Voice activity detector placing words without a checkpoint (none: cue words stay spread). [silero]")
@click.option("--segment", type=click.Choice(list(SEGMENT_MODES)), default=None,
              help="Cut whole sources into clips from their transcript (fixed, cue), their shots or their speech "
                   "(vad). [none]")
@click.option("--segment-len", "segment_len_s", type=float, default=None, help="Fixed window length, s. [5]")
@click.option("--segment-min-words", "segment_min_words", type=int, default=None,
              help="Grow a fixed window until it holds this many words. [3]")
@click.option("--segment-max-len", "segment_max_len_s", type=float, default=None,
              help="Longest a fixed window may grow, and longest clip cut from a shot or from speech, s. [15]")
@click.option("--segment-min-len", "segment_min_len_s", type=float, default=None,
              help="Shots, speech (vad) and, with --respect-shots, pieces of windows shorter than this are not "
                   "clips, s. [1]")
@click.option("--segment-pause", "segment_pause_s", type=float, default=None,
              help="--segment vad: pauses shorter than this stay inside a clip, longer ones end it, s. [0.5]")
@click.option("--short-shots", "short_shots", type=click.Choice(list(SHORT_RULES)), default=None,
              help="A shot under --segment-min-len: dropped, or merged into the shot before it. [drop]")
@click.option("--respect-shots", "respect_shots", is_flag=True, default=None,
              help="--segment fixed|cue: cut clips at the shot boundaries of `mmdata shots` too.")
def align_cmd(run_opts: common.RunOptions, no_fallback: bool, **opts):
    if no_fallback:
        opts["fallback"] = False
    cfg = common.stage_config(AlignConfig, run_opts, "align", opts)
    if cfg.segment != "none":
        sources, made = common.handle_usage_errors(segment_work, run_opts.work, cfg)
        click.echo(f"segment ({cfg.segment}): {sources} sources cut into {made} clips")
    common.run_stage_and_exit(AlignStage(cfg), run_opts)
