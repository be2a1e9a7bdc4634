"""Issue 7's learning test on what the pipeline itself makes: videos of a coloured shape that a voice
names, with word-timed captions, through download -> ... -> shard; the tiny model trained a few hundred
CPU steps retrieves held-out clips across modalities far above chance and above its untrained self."""
import pytest
import torch  # noqa: F401  (imported here so the suite pins it to one thread: same numbers every run)

from mmdata.testing.demo_sources import build_sources, write_manifest
from mmdata.testing.server import MediaServer

pytestmark = pytest.mark.slow

PIPELINE = """
manifest: m.csv
work: work
out: shards
preset: icode
chunk_size: 48                 # one chunk: its shards are 16 + 16 + 16 samples, in key order
download: {allow_local: true}
frames: {frames: 2}
tokenizers:
  text: {vocab_size: 280, min_frequency: 1}
  speech: {k: 32, max_frames: 30000}
  vision: {k: 32, max_patches: 20000, iters: 8}
quantize: {device: cpu}
shard: {prefix: learn, max_samples: 16}
"""


def test_tiny_model_learns_cross_modal_retrieval_from_pipeline_shards(tmp_path):
    from mmdata.pipelines.pipeline import PipelineConfig, run_pipeline
    from mmdata.train.config import resolve_config
    from mmdata.train.evaluate import evaluate
    from mmdata.train.launch import run

    plan = build_sources(tmp_path / "served", n_videos=16, segments=3)
    with MediaServer(tmp_path / "served") as srv:
        write_manifest(tmp_path / "m.csv", plan, srv.url("").rstrip("/"))
        (tmp_path / "p.yaml").write_text(PIPELINE)
        results = run_pipeline(PipelineConfig.from_yaml(tmp_path / "p.yaml", {"progress": False}))
    assert all(r.failed == 0 for r in results)
    shards = sorted((tmp_path / "shards").glob("learn-*.tar"))
    assert len(shards) == 3  # 48 clips, 16 per shard: train on two, hold one out

    cfg = resolve_config({"preset": "tiny", "data": [{"shards": str(p), "weight": 1.0} for p in shards[:2]],
                          "out": str(tmp_path / "run"), "steps": 200, "batch_size": 16, "lr": 2e-3,
                          "warmup_steps": 20, "streams": 2, "workers": 0, "log_every": 50, "ckpt_every": 200}, {})
    run(cfg)
    trained = evaluate(tmp_path / "run", [str(shards[2])], device="cpu")["retrieval"]
    untrained = evaluate(tmp_path / "run", [str(shards[2])], device="cpu", untrained=True)["retrieval"]
    chance = 1 / 16
    print({k: (v["R@1"], untrained[k]["R@1"]) for k, v in trained.items()})  # shown with -s: trained vs untrained
    for name, r in trained.items():
        assert r["n"] == 16, (name, r)
        assert r["R@1"] >= 3 * chance, (name, r)  # 16 held-out clips over 12 colour-shape pairs
        assert r["R@1"] >= untrained[name]["R@1"] + 0.1, (name, r, untrained[name])
