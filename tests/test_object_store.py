"""The whole pipeline with its work store and its shards on S3 (a real S3-compatible server, moto, on
127.0.0.1, reached through s3fs as AWS would be): the same shard bytes as on local disk, read back by plain
webdataset through the store, `mmdata verify` passing on the URL; and a run killed mid-stage against the
store, run again, gives the same corpus."""
import hashlib
import random
import subprocess
import sys
import time

import pytest

from mmdata.testing.demo_sources import build_sources, write_manifest
from mmdata.testing.server import MediaServer
from tests.test_end_to_end import PIPELINE

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "mmdata.cli"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("sources")
    plan = build_sources(d / "served", n_videos=4, segments=2)
    with MediaServer(d / "served") as srv:
        yield d, write_manifest(d / "m.csv", plan, srv.url("").rstrip("/"))


def _run(cfg_path, work, out, manifest, env, progress=False):
    cfg_path.write_text(PIPELINE.format(manifest=manifest, work=work, out=out))
    return subprocess.Popen(CLI + ["run", str(cfg_path)] + ([] if progress else ["--no-progress"]), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _digests(store_url: str, env) -> dict[str, str]:
    from mmdata.store.fs import Store

    st = Store(store_url)
    names = [n for n in st.list() if n.endswith(".tar")] + ["sizes.json"]
    return {n: hashlib.sha256(st.read_bytes(n)).hexdigest() for n in names}


@pytest.fixture(scope="module")
def local_corpus(served, tmp_path_factory, s3):
    d, manifest = served
    root = tmp_path_factory.mktemp("local")
    proc = _run(root / "p.yaml", root / "work", root / "out", manifest, s3.env)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return _digests(str(root / "out"), s3.env)


def test_pipeline_on_s3_gives_the_local_bytes_and_reads_back(served, local_corpus, s3, tmp_path):
    _, manifest = served
    bucket = s3.make_bucket("corpus")
    proc = _run(tmp_path / "p.yaml", f"{bucket}/work", f"{bucket}/shards", manifest, s3.env)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert _digests(f"{bucket}/shards", s3.env) == local_corpus

    verify = subprocess.run(CLI + ["verify", f"{bucket}/shards", "--no-progress"], env=s3.env, capture_output=True,
                            text=True)
    assert verify.returncode == 0 and "8 samples read, 0 problems" in verify.stdout, verify.stdout + verify.stderr

    # plain webdataset, opening s3:// through fsspec (the two lines mmdata's trainer registers)
    import fsspec
    import webdataset as wds
    from webdataset.gopen import gopen_schemes

    gopen_schemes["s3"] = lambda url, mode="rb", bufsize=8192, **kw: fsspec.open(url, mode).open()
    samples = list(wds.WebDataset(f"{bucket}/shards/e2e-{{000000..000003}}-000000.tar", shardshuffle=False))
    assert len(samples) == 8 and all({"json", "txt", "vtok.npy", "stok.npy"} <= set(s) for s in samples)

    # the corpus is inspected, summarised and trained on where it lies
    inspect = subprocess.run(CLI + ["inspect", f"{bucket}/shards", "e2e-000001-000000"], env=s3.env,
                             capture_output=True, text=True)
    assert inspect.returncode == 0 and "(shard e2e-000001-000000.tar)" in inspect.stdout, inspect.stderr
    stats = subprocess.run(CLI + ["stats", f"{bucket}/shards", "--work", f"{bucket}/work", "--no-progress"],
                           env=s3.env, capture_output=True, text=True)
    assert stats.returncode == 0 and "8 clips" in stats.stdout, stats.stdout + stats.stderr
    train = subprocess.run(CLI + ["train", "--data", f"{bucket}/shards", "--preset", "tiny", "--steps", "2",
                                  "--batch-size", "4", "--out", str(tmp_path / "run")], env=s3.env,
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 0 and "trained 2 steps" in train.stdout, train.stdout[-2000:] + train.stderr[-2000:]
    held_out = subprocess.run(CLI + ["eval", "--checkpoint", str(tmp_path / "run"), "--data", f"{bucket}/shards"],
                              env=s3.env, capture_output=True, text=True, timeout=300)
    assert held_out.returncode == 0 and "retrieval on 8 held-out samples" in held_out.stdout, held_out.stderr[-2000:]

    # a handful of objects per chunk and stage: 4 chunks x (download, frames, audio, quantize: pack + table;
    # align: only a table, its items have no files), the clip table, its manifest record, the layout mark
    objects = s3.objects("corpus", "work/")
    chunk_objects = [k for k in objects if "/chunk-" in k]
    assert len(chunk_objects) == 4 * (4 * 2 + 1), sorted(objects)
    assert {k for k in objects if "/chunk-" not in k and "/tokenizers/" not in k} == {
        "work/clips.parquet", "work/manifest.json", "work/layout.json"}
    assert not [k for k in objects if "/.markers/" in k]  # in-flight markers are gone once items finish


def test_killed_against_s3_then_rerun_gives_the_same_corpus(served, local_corpus, s3, tmp_path):
    """Killed at a random moment once some chunk has committed a stage; no partial chunk is read back."""
    _, manifest = served
    bucket = s3.make_bucket("killed")
    rng = random.Random(7)
    proc = _run(tmp_path / "p.yaml", f"{bucket}/work", f"{bucket}/shards", manifest, s3.env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(k.endswith(".parquet") and "/chunk-" in k
                                                 for k in s3.objects("killed", "work/")):
        time.sleep(0.2)
    time.sleep(rng.uniform(0.5, 6.0))
    proc.kill()
    proc.communicate()
    partial = s3.objects("killed")
    assert "shards/index.json" not in partial, "the kill must land before the end"
    again = _run(tmp_path / "p.yaml", f"{bucket}/work", f"{bucket}/shards", manifest, s3.env)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert _digests(f"{bucket}/shards", s3.env) == local_corpus


def test_two_node_ray_cluster_with_the_work_store_on_s3(served, local_corpus, s3, tmp_path):
    """Each node has its own scratch folder and the nodes share nothing but the store: both nodes work, the
    driver's scratch holds no item, and the shards are the local run's bytes."""
    from mmdata.testing.raycluster import LocalRayCluster

    _, manifest = served
    bucket = s3.make_bucket("cluster")
    scratch = {name: tmp_path / f"scratch-{name}" for name in ("driver", "node0", "node1")}
    nodes = [{"MMDATA_SCRATCH": str(scratch[f"node{i}"])} for i in range(2)]
    with LocalRayCluster(nodes=2, cpus_per_node=1, node_env=nodes) as cluster:
        env = {**cluster.env, **s3.client_env(), "MMDATA_SCRATCH": str(scratch["driver"])}
        cfg = tmp_path / "p.yaml"
        cfg.write_text(PIPELINE.format(manifest=manifest, work=f"{bucket}/work", out=f"{bucket}/shards"))
        proc = subprocess.run(CLI + ["run", str(cfg), "--ray-address", cluster.address, "--no-progress"], env=env,
                              capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "on 2 node(s)" in proc.stdout, proc.stdout[-2000:]
    assert _digests(f"{bucket}/shards", s3.env) == local_corpus
    staged = {name: sorted(p.name for p in d.glob("*/staging/*")) for name, d in scratch.items()}
    assert staged["node0"] and staged["node1"], staged  # items were worked on in both nodes' own scratch
    assert staged["driver"] == [], staged  # the driver (plan, fit, merge) reads the store, stages nothing
