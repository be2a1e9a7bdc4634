"""The demo's pipeline, smaller, end to end: generated sources served on 127.0.0.1, `mmdata run` through
yt-dlp on a real local Ray, shards that pass `mmdata verify`; and a run killed at a random moment that,
run again, gives the same shards as an uninterrupted run."""
import hashlib
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmdata.testing.demo_sources import build_sources, write_manifest
from mmdata.testing.server import MediaServer

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "mmdata.cli"]

PIPELINE = """
manifest: {manifest}
work: {work}
out: {out}
preset: icode
chunk_size: 3
download: {{allow_local: true, timeout_s: 20}}
frames: {{frames: 2, size: 224}}
tokenizers:
  text: {{vocab_size: 280, min_frequency: 1}}
  speech: {{k: 16, max_frames: 20000}}
  vision: {{k: 16, max_patches: 10000, iters: 5}}
quantize: {{device: cpu}}
shard: {{prefix: e2e, max_samples: 4}}
"""


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    plan = build_sources(d / "served", n_videos=4, segments=2)
    return d, plan


def _pipeline(root: Path, manifest: Path, name: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(PIPELINE.format(manifest=manifest, work=root / f"{name}-work", out=root / f"{name}-out"))
    return path


def _shard_digests(out: Path) -> dict[str, str]:
    files = sorted(out.glob("*.tar")) + [out / "sizes.json"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_pipeline_on_local_ray_passes_verify(tmp_path, sources):
    d, plan = sources
    with MediaServer(d / "served") as srv:
        manifest = write_manifest(tmp_path / "m.csv", plan, srv.url("").rstrip("/"))
        cfg = _pipeline(tmp_path, manifest, "ray")
        proc = subprocess.run(CLI + ["run", str(cfg), "--executor", "ray", "--no-progress"], capture_output=True,
                              text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # 4 sources of 2 clips, chunks of <= 3 clips: 4 chunks through 6 steps, streamed through one pool
    assert "streaming download, frames, audio, align, quantize, shard over 4 chunk(s)" in proc.stdout
    assert "ray: 24 chunk jobs on 1 node(s)" in proc.stdout
    out = tmp_path / "ray-out"
    verify = subprocess.run(CLI + ["verify", str(out)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    import webdataset as wds

    samples = list(wds.WebDataset(str(out / "e2e-{000000..000003}-000000.tar"), shardshuffle=False))  # per chunk
    assert len(samples) == 8
    import json

    for s in samples:
        meta = json.loads(s["json"])
        assert sorted(meta["modalities"]) == ["language", "speech", "vision"]
        assert [w["w"] for w in meta["words"]] == s["txt"].decode().split()  # "<colour> <shape>"
        assert len(meta["words"]) == 2 and all(w["timing"] == "asr" for w in meta["words"])


def test_killed_run_resumes_to_the_same_corpus(tmp_path, sources):
    d, plan = sources
    with MediaServer(d / "served") as srv:
        manifest = write_manifest(tmp_path / "m.csv", plan, srv.url("").rstrip("/"))
        ref_cfg, cut_cfg = _pipeline(tmp_path, manifest, "ref"), _pipeline(tmp_path, manifest, "cut")
        t0 = time.monotonic()
        ref = subprocess.run(CLI + ["run", str(ref_cfg), "--no-progress"], capture_output=True, text=True, timeout=600)
        full_s = time.monotonic() - t0
        assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]

        delay = random.Random(1234).uniform(0.25, 0.85) * full_s  # a random moment, the same every run
        proc = subprocess.Popen(CLI + ["run", str(cut_cfg), "--no-progress"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        again = subprocess.run(CLI + ["run", str(cut_cfg), "--no-progress"], capture_output=True, text=True,
                               timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert _shard_digests(tmp_path / "cut-out") == _shard_digests(tmp_path / "ref-out")
    assert len(_shard_digests(tmp_path / "ref-out")) == 5  # 4 chunks of 2 samples: a shard each, + sizes.json
