import io
import json
import shutil
import tarfile

import numpy as np
import pytest
import webdataset as wds
from click.testing import CliRunner

from mmdata.cli import cli
from mmdata.errors import ConfigError
from mmdata.shards.build import ShardConfig, build_shards, parse_size
from mmdata.shards.index import ShardIndex
from mmdata.testing.corpus import make_corpus, make_tokenizers
from mmdata.testing.workdirs import edit_item
from mmdata.utils import npy_bytes
from mmdata.utils import sha256_file
from mmdata.workdir import WorkDir

from tests.shards.conftest import build


def _plain_webdataset(out):
    """Read the shards with webdataset alone: no decoding, no mmdata code."""
    urls = sorted(str(p) for p in out.glob("*.tar"))
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))


def test_plain_webdataset_reads_exactly_the_written_samples(built):
    corpus, work = built.corpus, built.corpus.work
    samples = _plain_webdataset(built.out)
    assert [s["__key__"] for s in samples] == corpus.shardable  # sorted, one sample per shardable clip
    for s in samples:
        key, mods = s["__key__"], corpus.modalities[s["__key__"]]
        meta = json.loads(s["json"])
        assert meta["key"] == key and meta["modalities"] == [m for m in ("vision", "speech", "language")
                                                             if m in mods]
        assert meta["fields"] == sorted(k for k in s if not k.startswith("__"))
        qdir = work.item_dir("quantize", key)
        for mod, name in (("vision", "vtok.npy"), ("speech", "stok.npy"), ("language", "ttok.npy")):
            if mod in mods:
                got, want = np.load(io.BytesIO(s[name])), np.load(qdir / name)
                np.testing.assert_array_equal(got, want)
                assert got.dtype == want.dtype
            else:
                assert name not in s
        frames = work.meta("frames", key)
        if "vision" in mods:
            assert meta["frame_times"] == frames["times"] == [0.25, 0.75, 1.25, 1.75]
            for i, f in enumerate(frames["files"]):
                assert s[f"frame{i:04d}.jpg"] == (work.item_dir("frames", key) / f).read_bytes()
        else:
            assert meta["frame_times"] == [] and not any(k.startswith("frame") for k in s)
        if "speech" in mods:
            assert s["flac"] == (work.item_dir("audio", key) / "audio.flac").read_bytes()
            assert meta["audio_sample_rate"] == 16000
        else:
            assert "flac" not in s and meta["audio_sample_rate"] is None
        align = work.meta("align", key)
        caption = next(c.caption for c in corpus.clips if c.key == key)
        assert s["txt"].decode() == (align["text"] if "language" in mods else caption)
        assert meta["words"] == align["words"]
        assert (meta["start_s"], meta["end_s"], meta["duration_s"]) == (
            (0.0, 2.0, 2.0) if key.endswith("_0_2000") else (2.0, 4.0, 2.0))
        assert meta["title"] == f"Test video {meta['video_id']}" and meta["license"] == "CC BY 4.0"
        assert meta["stok_rate_hz"] == (50.0 if "speech" in mods else None) and meta["kind"] == "video"


def test_clips_missing_a_modality_are_kept(built):
    index = ShardIndex.read(built.out)
    combos = {}
    for s in _plain_webdataset(built.out):
        combos[s["__key__"]] = json.loads(s["json"])["modalities"]
    assert ["vision", "language"] in combos.values() and ["speech", "language"] in combos.values()
    assert ["vision", "speech"] in combos.values()
    assert index.samples == len(combos) == 7


def test_summary_index_and_sizes(built):
    s = built.summary
    assert (s.clips, s.samples, s.exit_code) == (10, 7, 0)
    assert s.left_out == {"frames:no_video_stream": 1, "download:http_404": 2}
    assert [x.samples for x in s.shards] == [3, 3, 1]
    sizes = json.loads((built.out / "sizes.json").read_text())
    assert sizes == {"shard-000000-000000.tar": 3, "shard-000000-000001.tar": 3, "shard-000000-000002.tar": 1}
    index = json.loads((built.out / "index.json").read_text())
    for entry in index["shards"]:
        path = built.out / entry["name"]
        assert entry["bytes"] == path.stat().st_size and entry["sha256"] == sha256_file(path)
    assert index["vocab_sizes"] == {"language": 1000, "speech": 200, "vision": 512}
    assert index["tokenizers"]["text"]["name"] == "text" and index["tokenizers"]["speech"]["hash"]
    assert index["corpus"]["shard"] == {"prefix": "shard", "shard_size": 10**9, "max_samples": 3,
                                        "keep": ["audio", "frames"]}
    assert index["failures"] == {"download": {"http_404": 1}, "frames": {"no_video_stream": 1}}
    assert "frames:no_video_stream" in s.render() and "7 samples in 3 shards" in s.render()


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_input_gives_byte_identical_output(built, tmp_path):
    again = build(built.corpus, tmp_path / "again", keep=("audio", "frames"), max_samples=3)
    files = _files(built.out)
    assert sorted(files) == [".chunks/chunk-000000.json", "index.json", "shard-000000-000000.tar",
                             "shard-000000-000001.tar", "shard-000000-000002.tar", "sizes.json"]
    assert files == _files(again.out)


def test_rerun_cleans_temporary_and_stale_shards(built_copy, corpus):
    (built_copy / ".shard-000000-000001.tar.tmp").write_bytes(b"half a shard")
    (built_copy / "notes.tar").write_bytes(b"not ours")
    (built_copy / "shard-000007.tar").write_bytes(b"a flat shard of an older mmdata")
    summary = build_shards(corpus.work, built_copy, ShardConfig(tokenizers=str(corpus.tokenizers)), progress=False)
    assert [s.name for s in summary.shards] == ["shard-000000-000000.tar"]
    assert sorted(p.name for p in built_copy.iterdir()) == [".chunks", "index.json", "notes.tar",
                                                            "shard-000000-000000.tar", "sizes.json"]


def test_shard_size_cap(corpus, tmp_path):
    b = build(corpus, tmp_path / "o", keep=("frames", "audio"), shard_size="60KB")
    assert len(b.summary.shards) > 2
    for s in b.summary.shards:
        assert s.bytes <= 60_000 and (b.out / s.name).stat().st_size == s.bytes
    assert sum(s.samples for s in b.summary.shards) == 7


def test_bad_clip_outputs_are_rejected_with_reasons(tmp_path):
    c = make_corpus(tmp_path / "c", 5, media=False)
    work = c.work
    keys = sorted(c.modalities)
    edit_item(work, "quantize", keys[4], {"vtok.npy": npy_bytes(np.zeros((3, 14, 14), dtype=np.uint16))})
    # a word ending before it starts; a token id past the vocabulary; a deleted token file
    meta = work.meta("align", keys[0])
    meta["words"][-1]["start"], meta["words"][-1]["end"] = 1.9, 1.8
    edit_item(work, "align", keys[0], meta=meta)
    edit_item(work, "quantize", keys[1], {"ttok.npy": npy_bytes(np.array([1, 5000], dtype=np.int32))})
    edit_item(work, "quantize", keys[2], {"vtok.npy": None})
    s = build_shards(work, tmp_path / "o", ShardConfig(tokenizers=str(c.tokenizers)), progress=False)
    assert s.samples == 1 and s.exit_code == 3
    assert s.failed == {"invalid_sample": 3, "missing_output_file": 1}
    text = "\n".join(s.examples)
    assert "vtok.npy: 3 token grids for 4 frame times" in text
    assert "'garden' at 1.9-1.8 s outside the clip (0-2.0 s) or reversed" in text and "token id 5000 >= vocabulary size 1000" in text


def test_words_past_a_clamped_window_are_trimmed(tmp_path):
    """Frames and audio cut the clip at 1.5 s (the source ended): words after that are dropped or cut."""
    c = make_corpus(tmp_path / "c", 1, media=False)
    key, work = c.clips[0].key, c.work
    for stage in ("frames", "audio"):
        meta = work.meta(stage, key)
        meta["window"].update(end_s=1.5, clamped=True)
        if stage == "frames":
            meta["times"] = [0.25, 0.75, 1.25, 1.45]
        edit_item(work, stage, key, meta=meta)
    s = build_shards(work, tmp_path / "o", ShardConfig(), progress=False)
    assert s.samples == 1
    meta = json.loads(_plain_webdataset(tmp_path / "o")[0]["json"])
    assert (meta["start_s"], meta["end_s"], meta["duration_s"]) == (0.0, 1.5, 1.5)
    # words at .05-.283 .383-.617 .717-.95 1.05-1.283 1.383-1.617 1.717-1.95
    assert [(w["w"], w["end"]) for w in meta["words"]][-2:] == [("fruit", 1.283), ("tree", 1.5)]
    assert meta["words_trimmed"] == 2


def test_tokenizer_mismatch_is_rejected(tmp_path):
    c = make_corpus(tmp_path / "c", 2, media=False)
    other = make_tokenizers(tmp_path / "other", vocab={"text": 2000})
    s = build_shards(c.work, tmp_path / "o", ShardConfig(tokenizers=str(other)), progress=False)
    assert s.samples == 0 and s.failed == {"tokenizer_mismatch": 2} and s.exit_code == 3
    assert "language tokens were made with" in s.examples[0] and "text hash" in s.examples[0]


def test_without_tokenizers_the_work_folders_set_is_recorded(corpus, tmp_path):
    """No --tokenizers: the set quantize read by default, WORK/tokenizers, goes into index.json (the trainer
    takes its vocabulary sizes from there)."""
    s = build_shards(corpus.work, tmp_path / "o", ShardConfig(), progress=False)
    index = ShardIndex.read(tmp_path / "o")
    assert corpus.tokenizers == corpus.work.root / "tokenizers"
    assert s.samples == 7 and index.vocab_sizes() == {"language": 1000, "speech": 200, "vision": 512}
    assert index.tokenizers.configs == ShardIndex.read(corpus_out(corpus, tmp_path / "given")).tokenizers.configs
    with tarfile.open(tmp_path / "o" / "shard-000000-000000.tar") as tf:
        exts = {m.name.split(".", 1)[1] for m in tf.getmembers()}
    assert exts == {"json", "txt", "vtok.npy", "stok.npy", "ttok.npy"}


def corpus_out(corpus, out):
    build_shards(corpus.work, out, ShardConfig(tokenizers=str(corpus.tokenizers)), progress=False)
    return out


def test_work_folders_set_refitted_after_quantize_is_refused(tmp_path):
    c = make_corpus(tmp_path / "c", 2, media=False)
    used = json.loads((c.tokenizers / "text" / "config.json").read_text())["hash"]
    make_tokenizers(c.work.root / "tokenizers", vocab={"text": 2000})  # refitted: another text hash
    now = json.loads((c.tokenizers / "text" / "config.json").read_text())["hash"]
    with pytest.raises(ConfigError, match=rf"quantized with tokenizers speech \w+, text {used}, vision \w+, but "
                                          rf".*work/tokenizers holds speech \w+, text {now}, vision \w+; "
                                          r"pass --tokenizers with the folder quantize used"):
        build_shards(c.work, tmp_path / "o", ShardConfig(), progress=False)
    assert not (tmp_path / "o" / "index.json").exists()


def test_quantized_with_a_set_elsewhere_needs_tokenizers(tmp_path):
    c = make_corpus(tmp_path / "c", 2, media=False)
    shutil.move(c.tokenizers, tmp_path / "tok")
    with pytest.raises(ConfigError, match=r"work/tokenizers holds no tokenizer set; pass --tokenizers"):
        build_shards(c.work, tmp_path / "o", ShardConfig(), progress=False)
    res = CliRunner().invoke(cli, ["shard", "--work", str(c.work.root), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert res.exit_code == 2 and "holds no tokenizer set; pass --tokenizers" in res.output
    s = build_shards(c.work, tmp_path / "o", ShardConfig(tokenizers=str(tmp_path / "tok")), progress=False)
    assert s.samples == 2 and ShardIndex.read(tmp_path / "o").vocab_sizes()["language"] == 1000


def test_clips_quantized_with_different_sets_are_refused(tmp_path):
    """A refit between two quantize runs leaves the finished chunks with the old tokens: refused, whichever set
    is named, with the counts per hash."""
    c = make_corpus(tmp_path / "c", 3, media=False)
    meta = c.work.meta("quantize", c.clips[0].key)
    edit_item(c.work, "quantize", c.clips[0].key, meta={**meta, "tokenizers": {**meta["tokenizers"], "text": "0ld"}})
    for cfg in (ShardConfig(), ShardConfig(tokenizers=str(c.tokenizers))):
        with pytest.raises(ConfigError, match=r"quantized with different tokenizer sets \(text: hash 0ld \(1 clips\), "
                                              r"hash [0-9a-f]{8} \(2 clips\)\).*run `mmdata quantize` again"):
            build_shards(WorkDir(c.work.root), tmp_path / "o", cfg, progress=False)


def test_nothing_quantized_exits_3(tmp_path):
    c = make_corpus(tmp_path / "c", 2, media=False, failures={0: ("quantize", "oom"), 1: ("align", "bad_vtt")})
    s = build_shards(c.work, tmp_path / "o", ShardConfig(), progress=False)
    assert s.samples == 0 and s.exit_code == 3 and s.left_out == {"quantize:oom": 1, "align:bad_vtt": 1}
    assert json.loads((tmp_path / "o" / "index.json").read_text())["shards"] == []


@pytest.mark.parametrize("text,value", [("1GB", 10**9), ("256MiB", 2**28), ("5000", 5000), (1234, 1234),
                                        ("1.5kb", 1500)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("kw", [{"shard_size": "lots"}, {"shard_size": 0}, {"max_samples": 0},
                                {"keep": ("video",)}, {"prefix": "a.b"}])
def test_config_errors(kw):
    with pytest.raises(ConfigError):
        ShardConfig(**kw)


def test_clip_with_neither_output_nor_error_row_is_left_out_as_missing_quantize(tmp_path):
    c = make_corpus(tmp_path / "c", 2, media=False)
    chunk = c.clips[1].chunk  # its quantize chunk committed again without the clip's row
    c.work.commit_chunk("quantize", chunk, [r for r in c.work.read_table("quantize", chunk).rows
                                            if r.key != c.clips[1].key])
    s = build_shards(WorkDir(c.work.root), tmp_path / "o", ShardConfig(), progress=False)
    assert s.samples == 1 and s.left_out == {"missing_quantize": 1}
