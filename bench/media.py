"""Benchmark: mmdata's frames + audio stages vs the plain ffmpeg command lines that extract the same frames
(same presentation times, same size and crop) and the same audio (mono FLAC at the same rate), in one run.

Both sides get one core: decord decodes with one thread and ffmpeg runs with `-threads 1`
(`--ffmpeg-threads 0` shows ffmpeg with its default thread count too). Each side runs `--repeat` times,
interleaved, and the best time counts (the machine is shared). Prints the ratio mmdata / ffmpeg
(target <= 1.0) and clips per second per core.

    python bench/media.py                       # 8 clips of 30 s, 640x360 H.264 + AAC, icode preset
    python bench/media.py --preset avbert --clips 4
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.media.config import PRESETS, AudioConfig, FramesConfig  # noqa: E402
from mmdata.pipelines.audio import AudioStage  # noqa: E402
from mmdata.pipelines.frames import FramesStage  # noqa: E402
from mmdata.records import Clip  # noqa: E402
from mmdata.store.records import as_meta  # noqa: E402
from mmdata.testing.media import make_video  # noqa: E402
from mmdata.testing.workdirs import add_downloaded, make_work  # noqa: E402
from mmdata.environment import require_tool  # noqa: E402


def make_sources(folder: Path, n: int, duration_s: float, size: tuple[int, int], gop: int) -> list[Path]:
    """n distinct H.264 + AAC sources (a keyframe every `gop` frames, as web video has every few seconds)."""
    paths = []
    for i in range(n):
        p = folder / f"src{i:03d}.mp4"
        make_video(p, duration_s=duration_s, size=size, fps=25, tone_hz=300 + 50 * i,
                   extra_args=("-preset", "veryfast", "-g", str(gop), "-bf", "2"))
        paths.append(p)
    return paths


def build_work(root: Path, sources: list[Path]) -> tuple:
    clips = [Clip(key=f"src{i:03d}_all", video_id=f"src{i:03d}", url=str(p)) for i, p in enumerate(sources)]
    work = make_work(root, clips)
    for c, p in zip(clips, sources):
        add_downloaded(work, c.video_id, p)
    return work, clips


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_mmdata(work, clips, fcfg: FramesConfig, acfg: AudioConfig, out: Path) -> tuple[float, float, list]:
    """Both stages over every clip, as one worker would run them (fresh stages: no warm caches)."""
    shutil.rmtree(out, ignore_errors=True)
    # fresh stages: each probes every source once, cold (these sources carry no download probe)
    frames, audio = FramesStage(fcfg), AudioStage(acfg)
    frames.setup()
    audio.setup()
    metas = []
    t0, c0 = time.perf_counter(), cpu_now()
    for c in clips:
        fdir, adir = out / "f" / c.key, out / "a" / c.key
        fdir.mkdir(parents=True)
        adir.mkdir(parents=True)
        metas.append((as_meta(frames.process(c, fdir, work)), as_meta(audio.process(c, adir, work))))
    return time.perf_counter() - t0, cpu_now() - c0, metas


def ffmpeg_frames_args(src: Path, fmeta: dict, quality_q: int, threads: int, out: Path) -> list[str]:
    """Plain ffmpeg: seek to the window, keep exactly the frames mmdata kept (by time), scale, crop, JPEG."""
    w = fmeta["window"]
    if "fps" in fmeta["sampling"]:  # the first frame of every 1/fps slot (a long list is too deep for select)
        slot = f"floor((t+0.0001)*{fmeta['sampling']['fps']})+1"
        select = f"if(gt({slot}\\,ld(0))\\,st(0\\,{slot})\\,0)"
    else:  # the listed times, within half a frame
        half = 0.5 / (fmeta["source_fps"] or 25.0)
        select = "+".join(f"lt(abs(t-{t:.6f})\\,{half:.6f})" for t in sorted(set(fmeta["times"])))
    left = (fmeta["_scale_w"] - fmeta["width"]) // 2
    top = (fmeta["_scale_h"] - fmeta["height"]) // 2
    vf = (f"select='{select}',scale={fmeta['_scale_w']}:{fmeta['_scale_h']},"
          f"crop={fmeta['width']}:{fmeta['height']}:{left}:{top}")
    return [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-threads", str(threads),
            "-ss", f"{w['start_s']:.6f}", "-t", f"{w['end_s'] - w['start_s']:.6f}", "-i", str(src),
            "-an", "-vf", vf, "-filter_threads", "1", "-vsync", "0", "-q:v", str(quality_q),
            "-threads", str(threads), str(out / "%06d.jpg")]


def ffmpeg_audio_args(src: Path, ameta: dict, threads: int, out: Path) -> list[str]:
    w = ameta["window"]
    return [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-threads", str(threads),
            "-ss", f"{w['start_s']:.6f}", "-t", f"{w['end_s'] - w['start_s']:.6f}", "-i", str(src),
            "-vn", "-ac", "1", "-ar", str(ameta["sample_rate"]), "-c:a", "flac", str(out / "audio.flac")]


def run_ffmpeg(sources: list[Path], metas: list, threads: int, out: Path) -> tuple[float, float, int]:
    shutil.rmtree(out, ignore_errors=True)
    jobs = []
    for i, (src, (fm, am)) in enumerate(zip(sources, metas)):
        d = out / f"{i:03d}"
        d.mkdir(parents=True)
        jobs.append(ffmpeg_frames_args(src, fm, 3, threads, d))
        jobs.append(ffmpeg_audio_args(src, am, threads, d))
    t0, c0 = time.perf_counter(), cpu_now()
    for args in jobs:
        subprocess.run(args, check=True, capture_output=True)
    wall, cpu = time.perf_counter() - t0, cpu_now() - c0
    return wall, cpu, len(list(out.rglob("*.jpg")))


def attach_geometry(metas: list, fcfg: FramesConfig, sources: list[Path]) -> None:
    """The decoder-side scale size mmdata used (before its crop), for the ffmpeg scale filter."""
    from mmdata.media.probe import probe
    from mmdata.media.sampling import geometry

    for (fm, _), src in zip(metas, sources):
        g = geometry(*probe(src).video.display_size, fcfg)
        fm["_scale_w"], fm["_scale_h"] = g.scale_w, g.scale_h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--gop", type=int, default=125, help="keyframe interval in frames (25 fps)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="icode")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ffmpeg-threads", type=int, default=1, help="threads for plain ffmpeg (0 = its default)")
    args = ap.parse_args()
    fcfg = FramesConfig(**PRESETS[args.preset]["frames"])
    acfg = AudioConfig(**PRESETS[args.preset]["audio"])
    if args.preset == "avbert":  # the reference side makes no spectrograms: compare like with like
        acfg = replace(acfg, mel_bins=0)
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-media-") as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        t0 = time.perf_counter()
        sources = make_sources(tmp / "src", args.clips, args.duration, (w, h), args.gop)
        work, clips = build_work(tmp / "work", sources)
        print(f"generated {len(sources)} sources ({args.duration:g} s, {w}x{h}, H.264 + AAC, keyframe every "
              f"{args.gop / 25:g} s) in {time.perf_counter() - t0:.1f} s; preset {args.preset}")
        best_m, best_f = (1e9, 0.0), (1e9, 0.0)
        metas, n_jpg = None, 0
        for _ in range(args.repeat):
            mw, mc, metas = run_mmdata(work, clips, fcfg, acfg, tmp / "out_mm")
            best_m = min(best_m, (mw, mc))
            attach_geometry(metas, fcfg, sources)
            fw, fc, n_jpg = run_ffmpeg(sources, metas, args.ffmpeg_threads, tmp / "out_ff")
            best_f = min(best_f, (fw, fc))
        n_mm = sum(len(fm["files"]) for fm, _ in metas)
        report(args, best_m, best_f, n_mm, n_jpg)
        print("mmdata per clip, by phase (ms):")
        for name, sec in breakdown(sources, fcfg, acfg, tmp / "out_phases").items():
            print(f"  {name:<36}{sec * 1000:8.1f}")


def breakdown(sources: list[Path], fcfg: FramesConfig, acfg: AudioConfig, out: Path) -> dict[str, float]:
    """Where mmdata's time goes: the same work as the stages, phase by phase (seconds per clip)."""
    from mmdata.media.audio import extract_audio
    from mmdata.media.frames import open_video, sample_video, write_jpegs
    from mmdata.media.probe import probe
    from mmdata.media.window import Window

    phases = dict.fromkeys(("probe (ffprobe, once per source)", "decord open + packet index",
                            "decode + scale picked frames", "JPEG encode + write", "audio (one ffmpeg run)"), 0.0)
    names = list(phases)
    for i, src in enumerate(sources):
        d = out / f"{i:03d}"
        d.mkdir(parents=True)
        t = [time.perf_counter()]
        p = probe(src)
        t.append(time.perf_counter())
        video = open_video(src, p, fcfg, d)
        t.append(time.perf_counter())
        res = sample_video(video, Window(0.0, p.duration_s), fcfg)
        t.append(time.perf_counter())
        write_jpegs(res.frames, d, fcfg.jpeg_quality)
        t.append(time.perf_counter())
        extract_audio(src, p, Window(0.0, p.duration_s), acfg, d)
        t.append(time.perf_counter())
        for k, name in enumerate(names):
            phases[name] += (t[k + 1] - t[k]) / len(sources)
    return phases


def report(args, best_m: tuple[float, float], best_f: tuple[float, float], n_mm: int, n_ff: int) -> None:
    n = args.clips
    (mw, mc), (fw, fc) = best_m, best_f
    print(f"frames written: mmdata {n_mm}, ffmpeg {n_ff}")
    print(f"{'':<8}{'wall s':>9}{'cpu s':>9}{'clips/s':>10}{'clips/cpu-s':>13}")
    print(f"{'mmdata':<8}{mw:>9.2f}{mc:>9.2f}{n / mw:>10.2f}{n / mc:>13.2f}")
    print(f"{'ffmpeg':<8}{fw:>9.2f}{fc:>9.2f}{n / fw:>10.2f}{n / fc:>13.2f}   (-threads {args.ffmpeg_threads})")
    print(f"ratio mmdata/ffmpeg (wall): {mw / fw:.2f}   (cpu): {mc / fc:.2f}   target <= 1.0")
    print(f"mmdata clips/s per core: {n / mc:.2f}")


if __name__ == "__main__":
    main()
