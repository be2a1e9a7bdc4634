"""Benchmark: mmdata's audio stage on sources with many clips vs plain ffmpeg, one process per clip.

N sources of 60 s (640x360 H.264 + AAC), each cut into 20 clips of 3 s. mmdata runs its real stage class
as the runner does (`items()` for the chunk, then `process()` per clip): one ffmpeg decode per source
span. The reference runs the plain command line per clip that writes the same mono FLAC at the same rate
(`ffmpeg -ss S -t 3 -i SRC -vn -ac 1 -ar R -sample_fmt s16 -c:a flac`: 16-bit like mmdata's; left to
itself ffmpeg would write 24-bit FLAC from the AAC decoder's float samples). Both sides run one thread each, `--repeat` times
interleaved, and the best CPU time counts (the machine is shared). CPU time is this process plus its
children (ffprobe, ffmpeg): mmdata's includes its probe of each source (cold cache), its Python work
(levels, moving files) and its imports' first use. Prints CPU ms per clip for both, and the ratio
mmdata / ffmpeg (target <= 0.2: at least 5x cheaper per clip).

    python bench/audio_sources.py                       # 4 sources x 20 clips of 3 s, 16 kHz
    python bench/audio_sources.py --sources 2 --rate 44100
"""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.environment import require_tool  # noqa: E402
from mmdata.media.config import AudioConfig  # noqa: E402
from mmdata.pipelines.audio import AudioStage  # noqa: E402
from mmdata.records import Clip  # noqa: E402
from mmdata.pipelines.runner import run_chunk  # noqa: E402
from mmdata.testing.media import make_video  # noqa: E402
from mmdata.testing.workdirs import add_downloaded, make_work  # noqa: E402
from mmdata.workdir import WorkDir  # noqa: E402


def cpu_now() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def build(root: Path, n_sources: int, duration_s: float, clips_per_source: int, clip_s: float
          ) -> tuple[WorkDir, list[Clip], dict[str, Path]]:
    (root / "src").mkdir(parents=True)
    sources, clips = {}, []
    for i in range(n_sources):
        vid = f"src{i:03d}"
        sources[vid] = make_video(root / "src" / f"{vid}.mp4", duration_s=duration_s, size=(640, 360),
                                  tone_hz=300 + 50 * i, extra_args=("-preset", "veryfast", "-g", "125", "-bf", "2"))
        step = (duration_s - clip_s) / max(1, clips_per_source - 1)
        clips += [Clip(key=f"{vid}_{k:02d}", video_id=vid, url=str(sources[vid]), start_s=round(k * step, 3),
                       end_s=round(k * step + clip_s, 3)) for k in range(clips_per_source)]
    work = make_work(root / "work", clips)
    for vid, path in sources.items():
        add_downloaded(work, vid, path)
    return work, clips, sources


def run_mmdata(work: WorkDir, clips: list[Clip], cfg: AudioConfig) -> tuple[float, int]:
    """One chunk through a fresh stage (cold probe cache), as a worker runs it: the runner's run_chunk, its
    commit (the chunk's pack and table) included."""
    shutil.rmtree(work.root / "audio", ignore_errors=True)
    shutil.rmtree(work.root / "cache", ignore_errors=True)
    stage = AudioStage(cfg)
    stage.setup()
    c0 = cpu_now()
    run_chunk(stage, work, 0, clips)
    return cpu_now() - c0, stage.decodes


def ffmpeg_args(src: Path, clip: Clip, rate: int, out: Path) -> list[str]:
    return [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-threads", "1",
            "-ss", f"{clip.start_s:.6f}", "-t", f"{clip.end_s - clip.start_s:.6f}", "-i", str(src),
            "-vn", "-ac", "1", "-ar", str(rate), "-sample_fmt", "s16", "-c:a", "flac", str(out)]


def run_ffmpeg(clips: list[Clip], sources: dict[str, Path], rate: int, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    jobs = [ffmpeg_args(sources[c.video_id], c, rate, out / f"{c.key}.flac") for c in clips]
    c0 = cpu_now()
    for args in jobs:
        subprocess.run(args, check=True, capture_output=True)
    return cpu_now() - c0


def read_flac(path: Path) -> np.ndarray:
    out = subprocess.run([require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.int32)


def compare(work: WorkDir, clips: list[Clip], out: Path, rate: int) -> str:
    """Same audio on both sides? Sample counts, and the largest difference past the first 30 ms (where
    plain ffmpeg, seeking into the middle of an AAC frame, decodes a transient the span does not)."""
    counts, diff, peak = set(), 0, 0
    skip = round(0.03 * rate)
    for c in clips:
        a = read_flac(work.item_dir("audio", c.key) / "audio.flac")
        b = read_flac(out / f"{c.key}.flac")
        counts.add((a.size, b.size))
        m = min(a.size, b.size)
        diff = max(diff, int(np.abs(a[skip:m] - b[skip:m]).max()))
        peak = max(peak, int(np.abs(b[skip:]).max()))
    return (f"samples per clip (mmdata, ffmpeg): {sorted(counts)}; max |difference| past 30 ms: {diff} "
            f"(int16, signal peak {peak})")


def probe_cost(sources: dict[str, Path]) -> float:
    """CPU seconds of mmdata's probe of every source (part of mmdata's time above; shared with the frames
    stage through the probe cache when both run)."""
    from mmdata.media.probe import probe

    c0 = cpu_now()
    for path in sources.values():
        probe(path)
    return cpu_now() - c0


def source_arguments(doc: str) -> argparse.ArgumentParser:
    """The options of the benchmarks on generated sources cut into clips (this one and frames_sources.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--clips", type=int, default=20, help="clips per source")
    ap.add_argument("--clip-seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    return ap


def main() -> None:
    ap = source_arguments(__doc__)
    ap.add_argument("--rate", type=int, default=16000)
    args = ap.parse_args()
    cfg = AudioConfig(sample_rate=args.rate)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-audio-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        work, clips, sources = build(tmp, args.sources, args.duration, args.clips, args.clip_seconds)
        n = len(clips)
        print(f"generated {args.sources} sources ({args.duration:g} s, 640x360 H.264 + AAC 44.1 kHz), {args.clips} "
              f"clips of {args.clip_seconds:g} s each, in {time.perf_counter() - t0:.1f} s; output {args.rate} Hz")
        best_m = best_f = float("inf")
        runs = 0
        for _ in range(args.repeat):
            mc, runs = run_mmdata(work, clips, cfg)
            best_m = min(best_m, mc)
            best_f = min(best_f, run_ffmpeg(clips, sources, args.rate, tmp / "ref"))
        print(compare(work, clips, tmp / "ref", args.rate))
        print(f"ffmpeg decodes: mmdata {runs} for {n} clips (+ {args.sources} ffprobe), plain ffmpeg {n}")
        probe_s = min(probe_cost(sources) for _ in range(args.repeat))
        print(f"{'':<8}{'cpu s':>8}{'cpu ms/clip':>13}")
        print(f"{'mmdata':<8}{best_m:>8.2f}{best_m / n * 1000:>13.1f}   "
              f"(of which the probe, once per source: {probe_s / n * 1000:.1f})")
        print(f"{'ffmpeg':<8}{best_f:>8.2f}{best_f / n * 1000:>13.1f}")
        print(f"ratio mmdata/ffmpeg (cpu per clip): {best_m / best_f:.3f}   target <= 0.2 "
              f"({best_f / best_m:.1f}x cheaper per clip)")


if __name__ == "__main__":
    main()
