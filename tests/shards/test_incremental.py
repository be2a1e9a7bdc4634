"""Shards per chunk (shards/parts.py): names from the chunk number, the same bytes run after run (and
whatever the number of workers), a re-run that rewrites only the chunks whose inputs changed, stale shards of
failed or removed chunks removed, and an index merged from the chunks' records in chunk order."""
import dataclasses
import json

import numpy as np
import pytest
import webdataset as wds

from mmdata.manifests.table import write_clip_table
from mmdata.pipelines.runner import RunnerConfig
from mmdata.pipelines.status import write_status
from mmdata.records import StatusRow
from mmdata.shards.build import ShardConfig, build_shards
from mmdata.shards.index import ShardIndex
from mmdata.shards.inspect import find_sample
from mmdata.shards.verify import verify
from mmdata.testing.corpus import make_corpus
from mmdata.testing.workdirs import edit_item
from mmdata.utils import npy_bytes
from mmdata.workdir import table_name
from mmdata.workdir import WorkDir

# 12 clips of 6 videos, 4 clips (2 videos) per chunk: chunks 0, 1, 2; clip 5 fails at frames
N_CLIPS, PER_CHUNK = 12, 4


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "c", N_CLIPS, media=False, clips_per_chunk=PER_CHUNK,
                       failures={5: ("frames", "no_video_stream")})


def _build(corpus, out, runner=None, **kw):
    cfg = ShardConfig(tokenizers=str(corpus.tokenizers), max_samples=3, fsync=False, **kw)
    return build_shards(corpus.work, out, cfg, progress=False, runner=runner)


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _stats(out, chunk):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob(f"shard-{chunk:06d}-*.tar")}


def _keys(out):
    """Every sample read back with plain webdataset over the index's shard list."""
    urls = [str(out / s.name) for s in ShardIndex.read(out).shards]
    return [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]


def test_each_chunk_has_its_own_shards_and_the_index_lists_them_in_chunk_order(corpus, tmp_path):
    s = _build(corpus, tmp_path / "o")
    # chunk 0: 4 samples -> 3 + 1; chunk 1: 3 samples (clip 5 failed); chunk 2: 3 + 1
    assert [x.name for x in s.shards] == ["shard-000000-000000.tar", "shard-000000-000001.tar",
                                          "shard-000001-000000.tar",
                                          "shard-000002-000000.tar", "shard-000002-000001.tar"]
    assert (s.chunks_run, s.chunks_skipped, s.samples, s.clips) == (3, 0, 11, 12)
    assert s.left_out == {"frames:no_video_stream": 1}
    assert _keys(tmp_path / "o") == corpus.shardable  # in key order within each chunk; here chunks follow keys
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert index["samples"] == 11 and index["corpus"]["clips"] == 12
    assert index["failures"] == {"frames": {"no_video_stream": 1}}
    assert json.loads((tmp_path / "o" / "sizes.json").read_text()) == {x.name: x.samples for x in s.shards}
    records = sorted(p.name for p in (tmp_path / "o" / ".chunks").iterdir())
    assert records == ["chunk-000000.json", "chunk-000001.json", "chunk-000002.json"]
    assert verify(tmp_path / "o", progress=False).ok


def test_same_bytes_run_after_run_and_with_parallel_workers(corpus, tmp_path):
    _build(corpus, tmp_path / "a")
    _build(corpus, tmp_path / "b", runner=RunnerConfig(workers=2, progress=False))  # two worker processes
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_rerun_without_changes_rewrites_nothing(corpus, tmp_path):
    out = tmp_path / "o"
    _build(corpus, out)
    before = {c: _stats(out, c) for c in range(3)}
    s = _build(corpus, out)
    assert (s.chunks_run, s.chunks_skipped, s.samples) == (0, 3, 11)
    assert {c: _stats(out, c) for c in range(3)} == before
    assert "0 chunks sharded, 3 unchanged" in s.render()


def test_a_changed_chunk_alone_is_rewritten(corpus, tmp_path):
    out = tmp_path / "o"
    _build(corpus, out)
    old = _files(out)
    untouched = {c: _stats(out, c) for c in (0, 2)}
    key = corpus.clips[6].key  # chunk 1
    edit_item(corpus.work, "quantize", key, {"ttok.npy": npy_bytes(np.array([7, 8, 9], dtype=np.int32))})
    s = _build(corpus, out)
    assert (s.chunks_run, s.chunks_skipped) == (1, 2)
    assert {c: _stats(out, c) for c in (0, 2)} == untouched  # same files, not rewritten
    new = _files(out)
    assert new["shard-000001-000000.tar"] != old["shard-000001-000000.tar"]
    assert {n for n in new if new[n] != old.get(n)} == {"shard-000001-000000.tar", ".chunks/chunk-000001.json",
                                                         "index.json"}
    assert verify(out, progress=False).ok
    assert _files(out) == _files(_copy_built_fresh(corpus, tmp_path / "fresh"))  # as if built from scratch


def _copy_built_fresh(corpus, out):
    _build(corpus, out)
    return out


def test_a_new_chunk_is_added_and_merged(corpus, tmp_path):
    """Chunk 2 not quantized yet: its clips are left out; once it is, only chunk 2 is sharded."""
    work, out = corpus.work, tmp_path / "o"
    pack = work.read_table("quantize", 2).pack  # chunk 2's quantize kept aside: pack, then table (the commit)
    saved = {n: work.store.read_bytes(f"quantize/{n}") for n in (pack, table_name(2))}
    work.drop_table("quantize", 2)
    first = _build(corpus, out)
    assert first.samples == 7 and first.left_out == {"frames:no_video_stream": 1, "missing_quantize": 4}
    assert not list(out.glob("shard-000002-*.tar"))
    untouched = {c: _stats(out, c) for c in (0, 1)}
    for name, data in saved.items():
        work.store.write_bytes(f"quantize/{name}", data)
    s = _build(corpus, out)
    assert (s.chunks_run, s.chunks_skipped, s.samples) == (1, 2, 11)
    assert {c: _stats(out, c) for c in (0, 1)} == untouched
    assert _keys(out) == corpus.shardable and verify(out, progress=False).ok


def test_a_failed_chunk_loses_its_stale_shards(corpus, tmp_path):
    out = tmp_path / "o"
    _build(corpus, out)
    chunk2 = [c for c in corpus.clips if c.chunk == 2]
    # quantize re-run on chunk 2, and every clip failed
    write_status(corpus.work, "quantize", 2, [StatusRow(c.key, "error", "oom", "test") for c in chunk2])
    s = _build(corpus, out)
    assert (s.chunks_run, s.samples) == (1, 7) and s.left_out["quantize:oom"] == 4
    assert not list(out.glob("shard-000002-*.tar"))
    assert json.loads((out / ".chunks" / "chunk-000002.json").read_text())["shards"] == []
    assert ShardIndex.read(out).failures["quantize"] == {"oom": 4}
    assert verify(out, progress=False).ok


def test_a_removed_chunk_loses_its_shards_and_record(corpus, tmp_path):
    out = tmp_path / "o"
    _build(corpus, out)
    write_clip_table(corpus.work, [c for c in corpus.clips if c.chunk != 1])
    s = _build(corpus, out)
    assert (s.chunks_run, s.chunks_skipped, s.samples) == (0, 2, 8)
    assert not list(out.glob("shard-000001-*.tar")) and not (out / ".chunks" / "chunk-000001.json").exists()
    assert verify(out, progress=False).ok


def test_a_missing_or_damaged_shard_is_rebuilt(corpus, tmp_path):
    out = tmp_path / "o"
    _build(corpus, out)
    good = _files(out)
    (out / "shard-000002-000001.tar").unlink()
    with open(out / "shard-000000-000000.tar", "ab") as f:
        f.write(b"\0" * 512)
    s = _build(corpus, out)
    assert (s.chunks_run, s.chunks_skipped) == (2, 1) and _files(out) == good


def test_other_options_rebuild_every_chunk(corpus, tmp_path):
    out = tmp_path / "o"
    _build(corpus, out)
    s = _build(corpus, out, prefix="other")
    assert s.chunks_run == 3 and not list(out.glob("shard-*.tar"))
    assert sorted(p.name for p in out.glob("*.tar"))[0] == "other-000000-000000.tar"


def test_chunks_out_of_key_order_verify_and_inspect(tmp_path):
    """Chunks follow the manifest, not the keys: chunk 0 may hold later keys than chunk 1."""
    c = make_corpus(tmp_path / "c", 8, media=False, clips_per_chunk=4)
    swapped = [dataclasses.replace(clip, chunk=1 - clip.chunk) for clip in c.clips]
    write_clip_table(c.work, swapped)
    for st in ("download", "frames", "audio", "align", "quantize"):
        a, b = (c.work.store.read_bytes(f"{st}/{table_name(n)}") for n in (0, 1))  # a table names its pack
        c.work.store.write_bytes(f"{st}/{table_name(0)}", b)
        c.work.store.write_bytes(f"{st}/{table_name(1)}", a)
    out = tmp_path / "o"
    build_shards(WorkDir(c.work.root), out, ShardConfig(fsync=False), progress=False)
    keys = _keys(out)
    assert keys[0].startswith("vid002") and keys[4].startswith("vid000")  # chunk 0 holds vid002 and vid003
    assert keys[:4] == sorted(keys[:4]) and keys[4:] == sorted(keys[4:]) and sorted(keys) == c.shardable
    assert verify(out, progress=False).ok
    assert find_sample(out, "vid000_0_2000")[1] == "vid000_0_2000"


@pytest.mark.slow
def test_ray_actors_shard_the_same_bytes(corpus, tmp_path):
    _build(corpus, tmp_path / "here")
    s = _build(corpus, tmp_path / "ray", runner=RunnerConfig(executor="ray", workers=2, progress=False))
    assert s.chunks_run == 3 and _files(tmp_path / "here") == _files(tmp_path / "ray")


def test_a_job_for_an_unchanged_chunk_leaves_it_alone(corpus, tmp_path):
    """`mmdata run` gives shard a job for every chunk some stage ran on; the job itself checks the fingerprint."""
    from mmdata.shards.parts import record_stamps, shard_chunk

    out = tmp_path / "o"
    _build(corpus, out)
    before, shards = record_stamps(out, [0, 1, 2]), _stats(out, 1)
    cfg = ShardConfig(tokenizers=str(corpus.tokenizers), max_samples=3, fsync=False)
    assert shard_chunk(corpus.work, out, cfg, 1, corpus.work.chunks()[1]) is None
    assert record_stamps(out, [0, 1, 2]) == before and _stats(out, 1) == shards
