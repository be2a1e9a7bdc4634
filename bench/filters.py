"""Benchmark: what each filter costs per clip, against what decoding the clip costs (the frames stage's time on
the same clips), in one run.

Clips are generated (testsrc2 with a tone, H.264 + AAC, `--size`, `--seconds` each); the frames stage samples
them (`--frames` per clip, 224 px, in this process), then each filter's share of the filter stage is timed on
its own: the duration and picture filters read stored records; black_frames and static_video read the clip's
JPEGs from the frames pack and decode them at 1/8 scale (that read and decode is counted in both), then
compute their score; low_speech decodes the audio stage's FLAC at 16 kHz and runs Silero VAD over it (the
clips carry a tone: no speech, the whole length scored), timed two ways: the network called window by window,
one clip at a time (silero's own API, `vad.stepwise_probabilities`), and batched as the filter stage runs it
(`batch_size` clips at once, only the LSTM cell stepping through time: transcripts/vad.py); few_words reads
the align stage's record and counts its words, wrong_language runs py3langid over the text (each clip carries
a manifest transcript of 2.5 words per second, through the align stage; the identifier is loaded before the
timing, as a worker loads it once). The whole filter stage is timed too. Prints, per filter, ms per clip,
seconds per hour of video and the ratio filter / frames decode (target: well under 0.1 for the model-free
filters and the language identifier; low_speech runs a network over every 32 ms of audio). Best of `--repeat`.

    .venv/bin/python bench/filters.py
    .venv/bin/python bench/filters.py --clips 8 --seconds 20 --size 1280x720
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.filters import language  # noqa: E402
from mmdata.filters.measures import (black_fraction, clip_audio, clip_duration, grey_frame, motion,  # noqa: E402
                                     speech_ratios, speech_share, transcript, transcript_scores)
from mmdata.pipelines.align import AlignConfig, AlignStage  # noqa: E402
from mmdata.pipelines.audio import AudioStage  # noqa: E402
from mmdata.filters.rules import FilterConfig  # noqa: E402
from mmdata.media.config import FramesConfig  # noqa: E402
from mmdata.pipelines.filters import FilterStage  # noqa: E402
from mmdata.pipelines.frames import FramesStage  # noqa: E402
from mmdata.pipelines.runner import RunnerConfig, run_stage  # noqa: E402
from mmdata.records import Clip  # noqa: E402
from mmdata.testing.media import make_video  # noqa: E402
from mmdata.testing.workdirs import add_downloaded, make_work  # noqa: E402
from mmdata.transcripts.vad import SILERO_RATE, SILERO_WINDOW, hysteresis, stepwise_probabilities  # noqa: E402
from mmdata.workdir import WorkDir  # noqa: E402

RUN = RunnerConfig(workers=1, progress=False)
SENTENCE = "so today we are going to talk about how the engine works and why it matters to all of us".split()


def talk(seconds: float) -> str:
    """A transcript of 2.5 words per second, a conversational pace."""
    n = max(1, round(2.5 * seconds))
    return " ".join(SENTENCE[i % len(SENTENCE)] for i in range(n))


def build(root: Path, n: int, seconds: float, size: tuple[int, int], frames: int) -> tuple[WorkDir, float]:
    """A work store of `n` clips with their frames; returns it and the frames stage's seconds."""
    media = root / "media"
    media.mkdir()
    make_video(media / "src.mp4", seconds, size=size)
    clips = [Clip(key=f"v{i:03d}_0", video_id=f"v{i:03d}", url="http://127.0.0.1/x.mp4", kind="video",
                  text=talk(seconds)) for i in range(n)]
    work = make_work(root / "work", clips)
    for c in clips:  # one file each: every clip is its own decode, as distinct sources are
        add_downloaded(work, c.video_id, media / "src.mp4")
    t0 = time.perf_counter()
    s = run_stage(FramesStage(FramesConfig(frames=frames, size=224)), work, RUN)
    assert s.failed == 0, s.render()
    decode_s = time.perf_counter() - t0
    assert run_stage(AudioStage(), work, RUN).failed == 0
    assert run_stage(AlignStage(AlignConfig(vad="energy")), work, RUN).failed == 0
    return work, decode_s


def time_parts(work: WorkDir, cfg: FilterConfig, vad, batch: int) -> dict[str, float]:
    """Seconds over all clips for each filter's own work (a fresh view: nothing cached from the last pass)."""
    view = work.fresh()
    t = dict.fromkeys(("records", "frames_read", "black", "motion", "speech", "words", "language",
                       "speech_batched"), 0.0)
    try:
        for clip in view.clips():
            t0 = time.perf_counter()
            fr, au, dl = view.output("frames", clip.key), view.output("audio", clip.key), view.output("download", clip.video_id)
            clip_duration(clip, fr, au, dl)
            (fr.extra.get("source_width"), fr.extra.get("source_height"))
            t1 = time.perf_counter()
            files = view.item_files("frames", clip.key)
            grey = [grey_frame(files[name], cfg.measure_size) for name in fr.files]
            t2 = time.perf_counter()
            black_fraction(grey, cfg.black_range)
            t3 = time.perf_counter()
            motion(grey)
            t4 = time.perf_counter()
            wav = clip_audio(view, clip)
            regions = hysteresis(stepwise_probabilities(vad.model, wav), SILERO_WINDOW / SILERO_RATE,
                                 wav.size / SILERO_RATE, vad.cfg)
            ratio = speech_share(regions, wav.size / SILERO_RATE)
            t5 = time.perf_counter()
            text = transcript(view.output("align", clip.key))
            scores = {"duration_s": clip_duration(clip, fr, au, dl), "speech_ratio": ratio}
            transcript_scores(text, scores, min_words=len(text.split()) + 1)  # words and words/s, no language
            t6 = time.perf_counter()
            language.detect(text)
            t7 = time.perf_counter()
            for k, v in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
                t[k] += v
        clips = view.clips()
        t0 = time.perf_counter()
        for i in range(0, len(clips), batch):
            speech_ratios([clip_audio(view, c) for c in clips[i:i + batch]], lambda: vad)
        t["speech_batched"] = time.perf_counter() - t0
    finally:
        view.close()
    return t


def time_stage(work: WorkDir, cfg: FilterConfig) -> float:
    work.reset_stage("filter")
    t0 = time.perf_counter()
    run_stage(FilterStage(cfg), work, RUN)
    return time.perf_counter() - t0


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    cfg = FilterConfig(min_duration_s=2, min_side=240, max_aspect=2.4, max_black_fraction=0.5, min_motion=0.01,
                       min_speech_ratio=0.3, min_words_per_second=0.5, language=("en",))
    stage = FilterStage(cfg)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-filters-") as d:
        work, decode_s = build(Path(d), args.clips, args.seconds, size, args.frames)
        language.identifier.cache_clear()  # the config's code check loaded it in this process: load it afresh
        t0 = time.perf_counter()
        language.identifier()  # loaded once per worker, before its first transcript: not per clip
        load_s = time.perf_counter() - t0
        parts = [time_parts(work, cfg, stage.vad(), stage.batch_size) for _ in range(args.repeat)]
        best = {k: min(p[k] for p in parts) for k in parts[0]}
        stage_s = min(time_stage(work, cfg) for _ in range(args.repeat))
    n, hours = args.clips, args.clips * args.seconds / 3600
    per_filter = {
        "too_short / too_long": best["records"], "low_resolution / bad_aspect": best["records"],
        "black_frames": best["frames_read"] + best["black"], "static_video": best["frames_read"] + best["motion"],
        "low_speech (FLAC + Silero, stepwise)": best["speech"],
        f"low_speech (batched, {stage.batch_size} clips)": best["speech_batched"],
        "few_words (align record, word count)": best["words"],
        "wrong_language (py3langid)": best["language"],
        "filter stage (all, with its commit)": stage_s,
    }
    print(f"{n} clips of {args.seconds:g} s at {args.size}, {args.frames} frames each; frames stage (decode): "
          f"{1000 * decode_s / n:.1f} ms/clip, {decode_s / hours:.1f} s per hour of video")
    print(f"  of which shared by black_frames and static_video: reading + decoding the JPEGs at 1/8 scale "
          f"{1000 * best['frames_read'] / n:.2f} ms/clip")
    print(f"  loading py3langid's model: {load_s:.2f} s once per worker (not counted per clip)")
    print(f"  Silero batched vs window by window: {best['speech'] / best['speech_batched']:.1f}x faster")
    worst = 0.0
    for name, s in per_filter.items():
        ratio = s / decode_s
        worst = max(worst, ratio)
        print(f"  {name:<36} {1000 * s / n:8.3f} ms/clip  {s / hours:8.2f} s/hour  ratio {ratio:.4f} of decode")
    return worst


if __name__ == "__main__":
    main()
