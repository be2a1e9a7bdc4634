"""The trainer reads what the real shard writer (`mmdata shard`) writes: index.json vocabularies and
tokenizer hashes, samples with one to three modalities. The work folder is the generated one of
mmdata.testing.corpus (token files written directly, not by the frames/audio/quantize stages)."""
import pytest

from mmdata.train.data import TrainLoader, resolve_vocab
from mmdata.train.evaluate import evaluate
from mmdata.train.loop import train


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from mmdata.shards.build import ShardConfig, build_shards
    from mmdata.testing.corpus import VOCAB, make_corpus

    root = tmp_path_factory.mktemp("interop")
    corpus = make_corpus(root, 10, media=False, grid=14)
    build_shards(corpus.work, root / "shards", ShardConfig(tokenizers=str(corpus.tokenizers)), progress=False)
    tars = sorted((root / "shards").glob("*.tar"))
    assert tars
    return [str(p) for p in tars], corpus, VOCAB


def test_train_and_eval_on_shard_writer_output(shards, tiny, tmp_path):
    tars, corpus, vocab = shards
    cfg = resolve_vocab(tiny(data=["::".join(tars)], batch_size=4, steps=2))
    assert (cfg.model.vocab_text, cfg.model.vocab_speech, cfg.model.vocab_vision) == (
        vocab["text"], vocab["speech"], vocab["vision"])
    batch = next(TrainLoader(cfg))
    for key, row in zip(batch.keys, batch.present.tolist()):
        want = corpus.modalities[key]
        assert row == [m in want for m in ("vision", "speech", "language")]
    assert train(cfg)["steps"] == 2
    report = evaluate(tmp_path / "run", ["::".join(tars)])
    assert report["samples"] == len(corpus.shardable) and not report["skipped"]
    both = sum(1 for m in corpus.modalities.values() if {"vision", "language"} <= set(m))
    assert report["retrieval"]["v->l"]["n"] == both


def test_a_shard_folder_is_a_data_spec(shards, tiny):
    """`--data OUT` (a folder `mmdata shard` wrote) means the shards its index.json lists, in that order."""
    import json
    from pathlib import Path

    from mmdata.train.data import expand_shards

    tars, _, vocab = shards
    folder = Path(tars[0]).parent
    listed = [str(folder / s["name"]) for s in json.loads((folder / "index.json").read_text())["shards"]]
    assert expand_shards(str(folder)) == listed and sorted(listed) == tars
    cfg = resolve_vocab(tiny(data=[str(folder)], batch_size=4, steps=1))
    assert cfg.model.vocab_text == vocab["text"]
