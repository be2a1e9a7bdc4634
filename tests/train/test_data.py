"""Decoding, padding and the stream loader: split by rank and worker, seeded, resumable."""
import json

import numpy as np
import pytest
import webdataset as wds

from mmdata.errors import ConfigError, ItemError
from mmdata.testing.synthetic import VOCAB, write_shards
from mmdata.train.data import StreamPlan, TrainLoader, resolve_vocab
from mmdata.train.samples import Preprocess, collate, merge, pad_id
from mmdata.utils import npy_bytes


def _raw(key, mods, **fields):
    raw = {"__key__": key, "json": json.dumps({"modalities": mods}).encode()}
    raw.update({k: npy_bytes(v) for k, v in fields.items()})
    return raw


def test_vocab_comes_from_index_json(tiny):
    cfg = resolve_vocab(tiny())
    assert (cfg.model.vocab_vision, cfg.model.vocab_speech, cfg.model.vocab_text) == (
        VOCAB["vision"], VOCAB["speech"], VOCAB["language"])
    assert cfg.model.tokenizers["language"] == "synthetic-text-v1"


def test_mixed_modalities_pad_with_masks(tiny):
    cfg = resolve_vocab(tiny())
    pre = Preprocess(cfg, train=False)
    samples = [
        pre(_raw("a", ["vision", "speech", "language"], **{"vtok.npy": np.ones((2, 3, 4), np.uint16),
            "stok.npy": np.arange(7, dtype=np.uint16), "ttok.npy": np.array([1, 2], np.int32)})),
        pre(_raw("b", ["language"], **{"ttok.npy": np.array([3, 4, 5, 6], np.int32)})),
    ]
    b = collate(samples, cfg)
    assert b.present.tolist() == [[True, True, True], [False, False, True]]
    assert b.vision.tok.shape == (2, 24) and b.vision.valid.sum(1).tolist() == [24, 0]
    assert b.vision.pos[0, 23].tolist() == [1, 2, 3]  # last token: frame 1, row 2, col 3
    assert b.speech.tok.shape == (2, 7) and b.speech.valid[1].sum() == 0
    assert b.language.tok.tolist() == [[1, 2, pad_id(VOCAB["language"]), pad_id(VOCAB["language"])], [3, 4, 5, 6]]
    assert b.language.pos[1, :, 0].tolist() == [0, 1, 2, 3]
    c = merge([b, collate([samples[0]], cfg)], cfg)  # re-padding keeps contents and masks
    assert c.language.tok.shape == (3, 4) and c.language.valid.sum(1).tolist() == [2, 4, 2]


def test_crops_to_model_limits(tiny):
    cfg = resolve_vocab(tiny())  # tiny: max_frames 4, max_speech 200, max_text 32
    out = Preprocess(cfg, train=False)(_raw("k", ["vision", "speech"], **{
        "vtok.npy": np.zeros((9, 14, 14), np.uint16), "stok.npy": np.zeros(500, np.uint16)}))
    assert len(out["vision"][0]) == 4 * 14 * 14 and len(out["speech"][0]) == 200


@pytest.mark.parametrize("raw, reason", [
    (_raw("k", ["vision"]), "missing_field"),
    (_raw("k", ["vision"], **{"vtok.npy": np.zeros((1, 20, 20), np.uint16)}), "bad_token_shape"),
    (_raw("k", ["language"], **{"ttok.npy": np.array([1, 10_000], np.int32)}), "token_out_of_range"),
    (_raw("k", ["language"], **{"ttok.npy": np.array([0.5])}), "bad_token_dtype"),
    (_raw("k", ["language"], **{"ttok.npy": np.array([], np.int32)}), "no_modality"),
    (_raw("k", ["smell"]), "unknown_modality"),
    ({"__key__": "k", "json": b"{not json", "ttok.npy": b"x"}, "corrupt_json"),
    ({"__key__": "k", "json": b"{}", "ttok.npy": b"not an npy"}, "corrupt_tokens"),
])
def test_bad_samples_raise_item_errors(tiny, raw, reason):
    with pytest.raises(ItemError) as e:
        Preprocess(resolve_vocab(tiny()))(raw, np.random.default_rng(0))
    assert e.value.reason == reason and "sample k" in e.value.detail


def _keys(loader, steps):
    return [next(loader).keys for _ in range(steps)]


def test_global_batch_is_the_same_for_any_nproc_and_workers(tiny):
    one = TrainLoader(resolve_vocab(tiny(streams=4, workers=0)))
    ref = _keys(one, 3)
    assert all(len(k) == 8 for k in ref)
    ranks = [TrainLoader(resolve_vocab(tiny(streams=4, workers=0)), rank=r, world=2) for r in range(2)]
    split = [_keys(loader, 3) for loader in ranks]
    for step in range(3):
        assert not set(split[0][step]) & set(split[1][step])  # ranks see disjoint samples
        assert sorted(split[0][step] + split[1][step]) == sorted(ref[step])
    workers = TrainLoader(resolve_vocab(tiny(streams=4, workers=2)))  # two DataLoader worker processes
    assert _keys(workers, 3) == ref


def test_seed_changes_the_order(tiny):
    a = _keys(TrainLoader(resolve_vocab(tiny(seed=1))), 2)
    b = _keys(TrainLoader(resolve_vocab(tiny(seed=2))), 2)
    assert a != b and a == _keys(TrainLoader(resolve_vocab(tiny(seed=1))), 2)


def test_resume_position_continues_the_stream(tiny):
    cfg = resolve_vocab(tiny(streams=2))
    full = TrainLoader(cfg)
    first = [next(full) for _ in range(5)]
    part = TrainLoader(cfg)
    for _ in range(3):
        next(part)
    resumed = TrainLoader(cfg, position=list(part.position))
    for want in first[3:]:
        got = next(resumed)
        assert got.keys == want.keys
        assert (got.language.inp == want.language.inp).all()  # the same masks too


def test_passes_over_shards_without_resampling(tiny):
    cfg = resolve_vocab(tiny(resample=False, streams=2, batch_size=16))
    keys = [k for ks in _keys(TrainLoader(cfg), 16) for k in ks]  # 256 samples = one pass
    assert len(set(keys)) == 256


def test_mixing_weights(tiny, tmp_path):
    other = write_shards(tmp_path / "pairs", 128, shard_size=64, seed=5, prefix="pairs")
    cfg = resolve_vocab(tiny(data=[{"shards": tiny().data[0].shards, "weight": 3}, {"shards": other, "weight": 1}],
                             batch_size=32))
    keys = [k for ks in _keys(TrainLoader(cfg), 10) for k in ks]
    share = sum(k.startswith("syn5_") for k in keys) / len(keys)
    assert 0.17 < share < 0.33  # 1/4 of 320 draws


def test_unreadable_shards_are_skipped_and_all_bad_is_an_error(tiny, tmp_path, corpus):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x-000000.tar").write_bytes(b"this is not a tar file" * 100)
    spec = str(bad / "x-{000000..000000}.tar")
    cfg = resolve_vocab(tiny(data=[spec], model={"vocab_vision": 80, "vocab_speech": 48, "vocab_text": 21}))
    with pytest.raises(ConfigError, match="no readable sample"):
        next(TrainLoader(cfg))


def test_stream_plan_checks():
    from mmdata.train.config import TrainConfig

    with pytest.raises(ConfigError, match="multiple of nproc"):
        StreamPlan(TrainConfig(streams=3, batch_size=8), world=2, workers=1)
    with pytest.raises(ConfigError, match="must be >= streams"):
        StreamPlan(TrainConfig(streams=8, batch_size=4), world=1, workers=1)
    plan = StreamPlan(TrainConfig(streams=4, batch_size=10), world=2, workers=1)
    assert plan.chunk == [3, 3, 2, 2] and plan.owned(0, 0) == [0, 2] and plan.owned(1, 0) == [1, 3]


def test_bad_samples_inside_a_shard_are_skipped(tiny, tmp_path):
    import shutil

    from mmdata.testing.synthetic import SynthSpec, make_sample

    rng = np.random.default_rng(0)
    path = tmp_path / "mixed-000000.tar"
    with wds.TarWriter(str(path), mtime=0) as sink:
        for i in range(12):
            sample = make_sample(f"good{i:02d}", i % 8, i % 8, rng, SynthSpec())
            if i in (3, 7):
                sample["__key__"] = f"bad{i:02d}"
                sample["ttok.npy"] = np.array([1, 999], np.int32)  # id beyond the text vocabulary
            sink.write(sample)
    shutil.copy(tiny().data[0].shards.split("/corpus-")[0] + "/index.json", tmp_path / "index.json")
    cfg = resolve_vocab(tiny(data=[str(path)], batch_size=10, resample=False, shuffle_buffer=1))
    keys = next(TrainLoader(cfg)).keys
    assert sorted(keys) == [f"good{i:02d}" for i in range(12) if i not in (3, 7)]
