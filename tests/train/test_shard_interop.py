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


def test_a_glob_is_a_data_spec(shards, tiny, tmp_path, monkeypatch):
    """`--data 'OUT/*.tar'` (quoted, so the shell leaves it to us): the matching shards in name order, relative
    paths kept relative; globs after brace expansion; a pattern that matches nothing names itself."""
    from pathlib import Path

    from mmdata.errors import ConfigError
    from mmdata.train.data import expand_shards

    tars, _, vocab = shards
    folder = Path(tars[0]).parent
    assert expand_shards(f"{folder}/*.tar") == tars
    monkeypatch.chdir(folder.parent)
    assert expand_shards("shards/*-00000[0-9].tar") == [f"shards/{Path(t).name}" for t in tars]
    assert expand_shards("shards/shard-{000000..000000}-*.tar::shards/*.tar") == [f"shards/{Path(t).name}"
                                                                                   for t in tars * 2]
    assert resolve_vocab(tiny(data=["shards/*.tar"], batch_size=4, steps=1)).model.vocab_text == vocab["text"]
    with pytest.raises(ConfigError, match=r"the pattern 'shards/nothing-\*\.tar' matches no file"):
        expand_shards("shards/nothing-*.tar")


def test_a_glob_on_an_object_store(shards, s3):
    """The same glob on s3:// goes through fsspec's glob (a real S3-compatible server); index.json beside the
    matches gives the vocabulary."""
    from pathlib import Path

    from mmdata.errors import ConfigError
    from mmdata.store.fs import Store
    from mmdata.train.data import expand_shards, read_vocab

    tars, _, vocab = shards
    bucket = s3.make_bucket("globbed")
    Store(f"{bucket}/corpus").put_dir(Path(tars[0]).parent, "")
    urls = expand_shards(f"{bucket}/corpus/*.tar")
    assert urls == [f"{bucket}/corpus/{Path(t).name}" for t in tars]
    assert read_vocab(urls)["language"]["vocab_size"] == vocab["text"]
    with pytest.raises(ConfigError, match=rf"the pattern '{bucket}/corpus/x\*\.tar' matches no file"):
        expand_shards(f"{bucket}/corpus/x*.tar")
