"""`mmdata run` with a `dedup:` section, end to end on the local executor: a source uploaded twice under
another name (the same bytes) streams through signatures and dedup; its later clips are `duplicate_of` rows
naming the first copy's clips, never in the shards, and counted in the run's funnel."""
import json
import shutil
import subprocess
import sys
import tarfile

import pytest

from mmdata.pipelines.status import read_all_status
from mmdata.testing.demo_sources import build_sources, write_manifest
from mmdata.testing.server import MediaServer
from mmdata.workdir import WorkDir

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "mmdata.cli"]

PIPELINE = """
manifest: {manifest}
work: {work}
out: {out}
preset: icode
chunk_size: 2
download: {{allow_local: true, timeout_s: 20}}
frames: {{frames: 4, size: 224}}
dedup: {{max_distance: 10}}
tokenizers:
  text: {{vocab_size: 280, min_frequency: 1}}
  speech: {{k: 16, max_frames: 20000}}
  vision: {{k: 16, max_patches: 10000, iters: 5}}
quantize: {{device: cpu}}
shard: {{prefix: dd, max_samples: 8}}
"""


def test_run_with_a_dedup_section_leaves_the_reupload_out(tmp_path):
    served = tmp_path / "served"
    plan = build_sources(served, n_videos=2, segments=2)
    manifest = write_manifest(tmp_path / "m.csv", plan, "BASE")
    # the re-upload: video00's bytes under another name, listed last (so in a later chunk than the original)
    shutil.copy(served / "video00.mp4", served / "reupload.mp4")
    shutil.copy(served / "video00.en.vtt", served / "reupload.en.vtt")
    lines = manifest.read_text().splitlines()
    copies = [ln.replace("video00", "reupload") for ln in lines[1:] if "video00" in ln]
    with MediaServer(served) as srv:
        base = srv.url("").rstrip("/")
        manifest.write_text("\n".join(lines + copies).replace("BASE", base) + "\n")
        cfg = tmp_path / "p.yaml"
        cfg.write_text(PIPELINE.format(manifest=manifest, work=tmp_path / "work", out=tmp_path / "out"))
        proc = subprocess.run(CLI + ["run", str(cfg), "--no-progress", "--workers", "2"], capture_output=True,
                              text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 3), out[-4000:]
    assert "Traceback" not in out, out[-4000:]

    work = WorkDir(tmp_path / "work")
    rows = {r.key: r for r in read_all_status(work, "dedup")}
    originals = sorted(k for k in rows if k.startswith("video00"))
    copied = sorted(k for k in rows if k.startswith("reupload"))
    assert len(originals) == 2 and len(copied) == 2
    assert all(rows[k].status == "ok" for k in rows if not k.startswith("reupload"))
    # each copy names the original clip of the same window, and says it is an exact copy
    for orig, copy in zip(originals, copied):
        assert rows[copy].reason == f"duplicate_of:{orig}", (copy, rows[copy].reason)
        assert "exact copy" in rows[copy].detail

    sharded = set()
    for tar in (tmp_path / "out").glob("*.tar"):
        with tarfile.open(tar) as t:
            sharded |= {m.name.split(".", 1)[0] for m in t.getmembers()}
    assert sharded == {k for k in rows if not k.startswith("reupload")}  # the 4 clips of the 2 videos; the copy left out
    assert json.loads((tmp_path / "out" / "index.json").read_text())["samples"] == 4
    assert "duplicate_of" in out  # the run's funnel counts the copies
