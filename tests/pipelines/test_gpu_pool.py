"""GPU pools that never hang. The pool planner on cluster shapes (pure), and the quantize stage on a real
Ray cluster that declares 2 logical GPUs with 6 chunks to run: it completes, only GPU-holding actors ran
it, and the tokens equal a local run. (There is no GPU here: Ray schedules on the declared GPUs and sets
CUDA_VISIBLE_DEVICES; torch inside the actors sees none and computes on the CPU.)"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmdata.errors import ConfigError
from mmdata.pipelines.base import Resources
from mmdata.pipelines.pools import plan_pool
from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.testing.corpus import make_corpus
from mmdata.testing.workdirs import copy_work, stage_files
from mmdata.testing.raycluster import LocalRayCluster
from mmdata.tokenizers.fit import fit_speech, fit_text, fit_vision
from mmdata.tokenizers.speech import SpeechFitConfig
from mmdata.tokenizers.text import TextFitConfig
from mmdata.tokenizers.vision import VisionFitConfig
from mmdata.workdir import WorkDir

GB = 1 << 30
GPU_STAGE = Resources(cpus=1, gpus=1, memory_mb=2048)


def node(cpus, gpus=0, mem_gb=64):
    return {"CPU": cpus, "GPU": gpus, "memory": mem_gb * GB} if gpus else {"CPU": cpus, "memory": mem_gb * GB}


def test_one_gpu_many_cpus_many_chunks_gives_one_actor_not_a_hang():
    # the old sizing (CPUs // 1) asked for 16 one-GPU actors on a 1-GPU node: 15 could never start
    p = plan_pool(GPU_STAGE, [node(16, 1)], n_tasks=40)
    assert (p.actors, p.gpus) == (1, 1.0)


def test_actors_are_counted_node_by_node():
    # 2 nodes of 2 GPUs and 1 node of 0: four actors, whatever the CPU total
    p = plan_pool(GPU_STAGE, [node(8, 2), node(8, 2), node(64)], n_tasks=100)
    assert p.actors == 4 and "4 fit on 3 node(s)" in p.note


@pytest.mark.parametrize("frac, want", [(0.5, 4), (0.25, 8), (1 / 3, 6)])
def test_fractional_gpus_put_several_workers_on_one_gpu(frac, want):
    p = plan_pool(GPU_STAGE, [node(16, 2)], n_tasks=100, gpus_per_worker=frac)
    assert (p.actors, p.gpus) == (want, frac)


def test_cpus_or_memory_can_be_the_limit():
    assert plan_pool(GPU_STAGE, [node(2, 8)], n_tasks=100, gpus_per_worker=0.5).actors == 2  # CPUs
    assert plan_pool(GPU_STAGE, [node(32, 8, mem_gb=5)], n_tasks=100).actors == 2  # 5 GB / 2 GB


def test_no_gpu_in_the_cluster_falls_back_to_cpu_workers_and_says_so():
    p = plan_pool(GPU_STAGE, [node(4)], n_tasks=10)
    assert (p.actors, p.gpus) == (4, 0.0) and "no GPU, so this GPU stage runs on CPU workers" in p.note


def test_a_request_no_node_can_meet_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"gpus_per_worker 4: no node of the cluster has that many GPUs \(the largest has 2\)"):
        plan_pool(GPU_STAGE, [node(16, 2), node(16, 1)], n_tasks=10, gpus_per_worker=4)
    with pytest.raises(ConfigError, match="no node of the cluster can hold one worker"):
        plan_pool(Resources(cpus=8, memory_mb=1024), [node(4)], n_tasks=10)


def test_workers_beyond_what_fits_are_capped_with_a_note_and_never_beyond_the_tasks():
    p = plan_pool(GPU_STAGE, [node(16, 2)], n_tasks=100, workers=6)
    assert p.actors == 2 and "--workers 6 asked, but the cluster schedules 2" in p.note
    assert plan_pool(Resources(), [node(16)], n_tasks=3).actors == 3


def test_gpus_per_worker_is_validated():
    with pytest.raises(ConfigError, match="gpus_per_worker"):
        RunnerConfig(gpus_per_worker=1.5)
    with pytest.raises(ConfigError, match="gpus_per_worker"):
        RunnerConfig(gpus_per_worker=-1)


def _quantize_ready(root: Path) -> tuple[WorkDir, Path]:
    """A 6-chunk work folder (2 clips each) up to align, and tokenizers fitted on it for real."""
    corpus = make_corpus(root, n_clips=12, clips_per_chunk=2)
    corpus.work.reset_stage("quantize")
    tok = root / "fitted"
    fit_text(corpus.work, tok, TextFitConfig(vocab_size=280))
    fit_speech(corpus.work, tok, SpeechFitConfig(k=8, iters=5, device="cpu"))
    fit_vision(corpus.work, tok, VisionFitConfig(k=16, iters=5, pca_dim=16, max_patches=700, device="cpu"))
    return corpus.work, tok


def _tokens(work) -> dict[str, bytes]:
    return {k: v for k, v in stage_files(work, "quantize").items() if k.endswith(".npy")}


@pytest.mark.slow
def test_quantize_on_a_cluster_with_two_logical_gpus_and_six_chunks(tmp_path):
    work, tok = _quantize_ready(tmp_path / "c")
    local = copy_work(work, tmp_path / "local")
    run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(tok))), local, RunnerConfig(progress=False))
    cmd = [sys.executable, "-m", "mmdata.cli", "quantize", "--work", str(work.root), "--tokenizers", str(tok),
           "--no-progress"]
    with LocalRayCluster(nodes=1, cpus_per_node=4, gpus_per_node=2) as cluster:
        # a request no node can meet stops before any work with exit 2
        res = subprocess.run([*cmd, "--ray-address", cluster.address, "--gpus-per-worker", "3"],
                             capture_output=True, text=True, env=cluster.env, timeout=400)
        assert res.returncode == 2
        assert "no node of the cluster has that many GPUs (the largest has 2)" in res.stderr

        res = subprocess.run([*cmd, "--ray-address", cluster.address], capture_output=True, text=True,
                             env=cluster.env, timeout=400)
        assert res.returncode == 0, res.stdout + res.stderr
        assert re.search(r"ray: 6 chunks on 1 node\(s\), 6 of them on GPU workers; 2 workers of 1 GPU \+ 1 CPU each",
                         res.stdout), res.stdout
        assert "quantize: 12 items — ok 12, failed 0" in res.stdout
        assert _tokens(work) == _tokens(local)

        # half a GPU each: four workers share the two GPUs
        work.reset_stage("quantize")
        res = subprocess.run([*cmd, "--ray-address", cluster.address, "--gpus-per-worker", "0.5"],
                             capture_output=True, text=True, env=cluster.env, timeout=400)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "6 of them on GPU workers; 4 workers of 0.5 GPU + 1 CPU each" in res.stdout, res.stdout
        assert _tokens(work) == _tokens(local)
