"""Benchmark: mmdata side by side with video2dataset 1.3.0, the peer a user would otherwise pick (issue 13).

The same clips (default 24 of 30 s, 640x360 H.264 + AAC at 30 fps, made by the peer folder's make_clips.sh),
served from 127.0.0.1, and the same work per clip: download, 8 frames, 16 kHz mono audio. Each tool runs
with its default parallelism on this machine, as a user would start it.

- video2dataset: `run_v2d.sh` from ../shared/peers/video2dataset (its venv: install_v2d.sh), which serves
  the clips with `python3 -m http.server` and runs v2d_run.py: processes = cores (PROCS), 4 threads each,
  FrameSubsampler at 8/30 fps + AudioRateSubsampler 16 kHz mono. Per clip it writes a webdataset sample:
  the mp4 re-encoded to its 8 frames (640x360), a 16 kHz mono WAV, json and txt, in tar shards of 6.
  1.3.0 as released drops every clip when it subsamples frames and audio together and reports no failure;
  v2d_patches.py fixes that at run time. The peer counts only when its result says ok == clips and 8
  frames in every sample (`frames_per_ok_sample == [8]`); otherwise this benchmark fails.
- mmdata: `mmdata run` with stages download, frames, audio (no align, tokenizers, quantize or shard: the
  peer does none of that), chunks of 6 clips (the peer's shard size), the local executor's default pool
  (one worker per core, and one for download). Per clip it writes 8 JPEG frames at the source size (640x360,
  `size: 0`) with their exact times, a 16 kHz mono FLAC, meta.json files and status tables. Checked: every
  clip ok in all three stages, 8 frames each, and a FLAC that says 16 kHz mono.

Each side runs `--repeat` times, alternately (the machine is shared), and the best run counts. Printed: wall
seconds and clips/s of both, peak memory of each process tree (RSS summed over the tree, sampled every
0.5 s by the peer folder's tree_mem.py), and the ratio mmdata clips/s / video2dataset clips/s (target >= 3).

    .venv/bin/python bench/peer_v2d.py [--repeat 1] [--clips 24] [--seconds 30] [--chunk-size 6]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmdata.pipelines.pools import local_cpus  # noqa: E402
from mmdata.pipelines.status import read_all_status  # noqa: E402
from mmdata.testing.server import MediaServer  # noqa: E402
from mmdata.workdir import WorkDir  # noqa: E402

PEER = ROOT.parent / "shared" / "peers" / "video2dataset"
V2D_VENV = Path(os.environ.get("V2D_VENV", "/tmp/peer/v2d-venv"))
TARGET = 3.0
FRAMES, RATE = 8, 16000
PIPELINE = """manifest: manifest.csv
work: work
out: out
chunk_size: {chunk_size}
stages: [download, frames, audio]
download: {{allow_local: true}}
frames: {{frames: {frames}, size: 0}}
audio: {{sample_rate: {rate}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clips(folder: Path, n: int, seconds: int) -> Path:
    """The peer's clips (kept between runs: same ffmpeg, same bytes) and its manifest, on a free port."""
    subprocess.run(["bash", str(PEER / "make_clips.sh"), str(folder), str(n), str(free_port()), str(seconds)],
                   check=True, capture_output=True)
    return folder


def run_peer(clips: Path, rundir: Path, seconds: int) -> dict:
    env = dict(os.environ, V2D_VENV=str(V2D_VENV), PROCS=str(local_cpus()), FRAMES=str(FRAMES),
               AUDIO_RATE=str(RATE), CLIP_SECONDS=str(seconds))
    proc = subprocess.run(["bash", str(PEER / "run_v2d.sh"), str(clips), str(rundir)], env=env,
                          capture_output=True, text=True)
    result = rundir / "result.json"
    if proc.returncode != 0 or not result.exists():
        sys.exit(f"video2dataset failed (exit {proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return json.loads(result.read_text())


def check_peer(res: dict, n: int) -> None:
    """A peer run that dropped clips (1.3.0 does so silently) is not a baseline."""
    if res["ok"] != n or res["frames_per_ok_sample"] != [FRAMES]:
        sys.exit(f"video2dataset failed: {res['ok']} of {n} clips ok, frames per sample "
                 f"{res['frames_per_ok_sample']} (want {FRAMES}); see {json.dumps(res)}")


def flac_format(path: Path) -> tuple[int, int]:
    """(sample rate, channels) from a FLAC file's STREAMINFO block."""
    head = path.read_bytes()[:42]
    if head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        raise ValueError(f"{path} is not a FLAC file")
    bits = int.from_bytes(head[18:21], "big")  # 20 bits of sample rate, 3 of channels - 1, 1 of bps
    return bits >> 4, ((bits >> 1) & 0x7) + 1


def run_mmdata(clips: Path, rundir: Path, n: int, chunk_size: int) -> dict:
    rundir.mkdir(parents=True)
    with MediaServer(clips) as srv:
        names = sorted(p.name for p in clips.glob("clip[0-9][0-9][0-9].mp4"))[:n]
        (rundir / "manifest.csv").write_text("url,caption\n" + "".join(
            f"{srv.url(name)},synthetic clip {name[4:7]}\n" for name in names))
        (rundir / "pipeline.yaml").write_text(PIPELINE.format(chunk_size=chunk_size, frames=FRAMES, rate=RATE))
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "mmdata"), "run", str(rundir / "pipeline.yaml"),
                                 "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = subprocess.Popen([sys.executable, str(PEER / "tree_mem.py"), str(proc.pid),
                                    str(rundir / "treemem.json"), "0.5"])
        out, _ = proc.communicate()
        seconds = time.perf_counter() - t0
        sampler.wait()
    if proc.returncode != 0:
        sys.exit(f"mmdata run failed (exit {proc.returncode}):\n{out[-3000:]}")
    return {"seconds": seconds, "ok": check_mmdata(WorkDir(rundir / "work"), n), "log": out,
            "peak_rss_mb_tree_sum": json.loads((rundir / "treemem.json").read_text())["peak_rss_mb"]}


def check_mmdata(work: WorkDir, n: int) -> int:
    """Clips ok in every stage with 8 frames and a 16 kHz mono FLAC; exits on anything else."""
    bad = []
    for stage in ("download", "frames", "audio"):
        rows = read_all_status(work, stage)
        bad += [f"{stage} {r.key}: {r.reason}" for r in rows if r.status != "ok"]
        if len(rows) != n:
            bad.append(f"{stage}: {len(rows)} status rows for {n} clips")
    ok = 0
    for clip in work.clips():
        frames, audio = work.meta("frames", clip.key) or {}, work.meta("audio", clip.key) or {}
        flac = work.item_dir("audio", clip.key) / audio.get("file", "audio.flac")
        fmt = flac_format(flac) if flac.exists() else None
        if len(frames.get("files", [])) == FRAMES and fmt == (RATE, 1):
            ok += 1
        else:
            bad.append(f"{clip.key}: {len(frames.get('files', []))} frames, audio {fmt}")
    if bad or ok != n:
        sys.exit("mmdata failed: " + "; ".join(bad[:10]))
    return ok


def stage_seconds(log: str) -> str:
    """`download 3.2 s, frames 8.1 s, audio 9.0 s` from mmdata's pipeline summary table."""
    rows = [ln.split() for ln in log.splitlines() if ln.strip().split()[:1] in (["download"], ["frames"], ["audio"])]
    return ", ".join(f"{r[0]} {float(r[3]):.1f} s" for r in rows if len(r) >= 4 and r[1].isdigit())


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side, alternately; the best counts")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=int, default=30, help="length of each clip")
    ap.add_argument("--chunk-size", type=int, default=6, help="mmdata's chunk (the peer writes shards of 6)")
    ap.add_argument("--clip-dir", type=Path, default=Path(tempfile.gettempdir()) / "mmdata-bench-peer-clips",
                    help="where the clips are made (kept: later runs reuse them)")
    args = ap.parse_args()
    if not (V2D_VENV / "bin" / "python").exists():
        sys.exit(f"no video2dataset venv at {V2D_VENV}: bash {PEER / 'install_v2d.sh'} {V2D_VENV}  (or set V2D_VENV)")
    clips = make_clips(args.clip_dir / f"{args.clips}x{args.seconds}s", args.clips, args.seconds)
    peers, ours = [], []
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-peer-") as d:
        for i in range(args.repeat):
            res = run_peer(clips, Path(d) / f"v2d-{i}", args.seconds)
            check_peer(res, args.clips)
            peers.append(res)
            ours.append(run_mmdata(clips, Path(d) / f"mmdata-{i}", args.clips, args.chunk_size))
            print(f"  run {i + 1}: video2dataset {res['seconds']:.1f} s, mmdata {ours[-1]['seconds']:.1f} s "
                  f"({stage_seconds(ours[-1]['log'])})", flush=True)
    peer, best = min(peers, key=lambda r: r["seconds"]), min(ours, key=lambda r: r["seconds"])
    peer_cps, our_cps = peer["ok"] / peer["seconds"], best["ok"] / best["seconds"]
    ratio = our_cps / peer_cps
    print(f"peer_v2d: {args.clips} clips of {args.seconds} s, 640x360, from 127.0.0.1; download + {FRAMES} frames + "
          f"{RATE // 1000} kHz mono audio per clip; {local_cpus()} cores; best of {args.repeat}")
    print(f"  video2dataset 1.3.0  {peer['seconds']:6.1f} s  {peer_cps:5.2f} clips/s  {peer['ok']} ok, "
          f"{peer['frames_per_ok_sample']} frames/sample; peak RSS of its tree {peer['peak_rss_mb_tree_sum']:.0f} MB")
    print(f"  mmdata               {best['seconds']:6.1f} s  {our_cps:5.2f} clips/s  {best['ok']} ok, "
          f"[{FRAMES}] frames/clip; peak RSS of its tree {best['peak_rss_mb_tree_sum']:.0f} MB")
    print(f"  ratio {ratio:.2f}  mmdata clips/s / video2dataset clips/s (target >= {TARGET:g})")
    return {"bench": "peer_v2d", "ratio": ratio, "target": TARGET, "reference": "video2dataset 1.3.0"}


if __name__ == "__main__":
    main()
