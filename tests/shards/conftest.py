import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmdata.shards.build import ShardConfig, ShardSummary, build_shards
from mmdata.shards.index import INDEX, SIZES
from mmdata.shards.reader import iter_samples
from mmdata.shards.writer import ShardWriter
from mmdata.testing.corpus import Corpus, make_corpus
from mmdata.utils import sha256_file

# clip 5 fails at frames; clips 8 and 9 (both of video vid004) fail at download: 7 clips are shardable
FAILURES = {5: ("frames", "no_video_stream"), 8: ("download", "http_404"), 9: ("download", "http_404")}


@dataclass
class Built:
    corpus: Corpus
    out: Path
    summary: ShardSummary
    cfg: ShardConfig


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("corpus"), 10, failures=FAILURES)


def build(corpus: Corpus, out: Path, **kw) -> Built:
    cfg = ShardConfig(tokenizers=str(corpus.tokenizers), **kw)
    return Built(corpus, out, build_shards(corpus.work, out, cfg, progress=False), cfg)


@pytest.fixture(scope="session")
def built(corpus, tmp_path_factory) -> Built:
    """Shards with frames and audio kept, 3 samples per shard: 7 samples in 3 shards."""
    return build(corpus, tmp_path_factory.mktemp("out"), keep=("frames", "audio"), max_samples=3)


@pytest.fixture
def built_copy(built, tmp_path) -> Path:
    """A copy of the built shards that a test may damage."""
    dst = tmp_path / "shards"
    shutil.copytree(built.out, dst)
    return dst


def rewrite_shard(out: Path, name: str, edit) -> None:
    """Rewrite one shard with `edit(key, fields) -> fields` applied to every sample, and update index.json
    and its checksum so that only the edit itself is wrong."""
    tmp = out / "rewrite"
    with ShardWriter(tmp, "x", max_bytes=1 << 40, max_samples=1 << 30) as w:
        for key, fields in iter_samples(out / name):
            w.write(key, edit(key, dict(fields)))
    os.replace(tmp / "x-000000.tar", out / name)
    shutil.rmtree(tmp)
    index = json.loads((out / INDEX).read_text())
    for s in index["shards"]:
        if s["name"] == name:
            s["bytes"], s["sha256"] = (out / name).stat().st_size, sha256_file(out / name)
    (out / INDEX).write_text(json.dumps(index))
    assert (out / SIZES).exists()
